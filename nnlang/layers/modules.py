"""Flax-side helpers shared by the build rules of the layer families.

The family modules import this lazily, inside their ``build`` functions, so that the
catalogue itself (shape rules, docs, ``nnlang check``) never imports JAX. Only what
``flax.nnx`` does not offer as one module lives here: thin wrappers that fix a call
convention (last step of a recurrence, causal attention, learned positions).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from nnlang.shapes import DTYPES, TensorType


def dtype_of(t: TensorType) -> Any:
    """The JAX dtype of a tensor type (bf16 included, via ml_dtypes)."""
    return jnp.dtype(DTYPES[t.dtype])


def per_sample_axis(axis: int, rank: int) -> int:
    """A per-sample axis (``0..rank-1``) as a negative axis of the batched array, so it
    names the same axis whatever the number of leading batch axes."""
    return axis - rank


def unsqueeze_to(x: jax.Array, rank: int) -> jax.Array:
    """Insert size-1 axes after the batch axis so a per-sample rank-r array broadcasts
    like numpy would broadcast its per-sample shape against rank ``rank``."""
    missing = rank - (x.ndim - 1)
    return x.reshape(x.shape[:1] + (1,) * missing + x.shape[1:]) if missing > 0 else x


class Recurrent(nnx.Module):
    """``nnx.RNN`` (a scan over time) returning the sequence or last step, and the
    final state when asked: ``(out, h, c)`` for an LSTM cell, ``(out, h)`` otherwise."""

    def __init__(
        self,
        cell: nnx.RNNCellBase,
        units: int,
        *,
        return_sequences: bool,
        return_state: bool,
    ) -> None:
        # rngs=False: the carry starts at zeros (built in __call__), so the RNN needs
        # no RNG stream of its own.
        self.rnn = nnx.RNN(cell, return_carry=True, rngs=False)
        self.units = units
        self.is_lstm = isinstance(cell, nnx.LSTMCell)
        self.return_sequences = return_sequences
        self.return_state = return_state

    def __call__(self, x: jax.Array) -> jax.Array | tuple[jax.Array, ...]:
        # A zero carry in the input dtype keeps the scan carry type fixed for
        # f16/bf16 inputs (the cells' own initialize_carry uses param_dtype).
        zeros = jnp.zeros((x.shape[0], self.units), x.dtype)
        carry0 = (zeros, zeros) if self.is_lstm else zeros
        carry, ys = self.rnn(x, initial_carry=carry0)
        out = ys if self.return_sequences else ys[:, -1]
        if not self.return_state:
            return out
        if self.is_lstm:
            c, h = carry  # flax's LSTM carry order is (c, h)
            return out, h, c
        return out, carry


class Attention(nnx.Module):
    """``nnx.MultiHeadAttention`` with the causal flag fixed at construction; with
    ``key_mask`` the last input is a ``[batch, T_key]`` mask (nonzero = attend)."""

    def __init__(self, mha: nnx.MultiHeadAttention, *, causal: bool, key_mask: bool) -> None:
        self.mha = mha
        self.causal = causal
        self.key_mask = key_mask

    def __call__(self, *xs: jax.Array) -> jax.Array:
        mask = None
        if self.key_mask:
            *xs_, m = xs
            xs = tuple(xs_)
            mask = (m != 0)[:, None, None, :]  # [batch, heads, T_query, T_key]
        q, k, v = (*xs, None, None)[:3]
        return self.mha(q, k, v, mask=mask, is_causal=self.causal)


class Embedding(nnx.Embed):
    """``nnx.Embed`` that looks up integer ids and projects float inputs onto its table
    (``attend``: the tied output projection); same parameters, same paths."""

    def __call__(self, x: jax.Array) -> jax.Array:  # type: ignore[override]
        if jnp.issubdtype(x.dtype, jnp.floating):
            return self.attend(x)
        return super().__call__(x)


class PositionalEmbedding(nnx.Module):
    """Learned positions: row ``t`` of an ``nnx.Embed(max_len, F)`` table is added to
    time step ``t`` of a ``[batch, T, F]`` input."""

    def __init__(self, max_len: int, features: int, *, dtype: Any, rngs: nnx.Rngs) -> None:
        self.embed = nnx.Embed(max_len, features, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        positions = self.embed(jnp.arange(x.shape[1]))
        return x + positions[None].astype(x.dtype)


def reduction(fn: str, axes: tuple[int, ...], keepdims: bool, ord: int = 2) -> Any:
    """A reduction of the batched array over ``axes`` (batch axis 0 excluded)."""
    if fn == "logsumexp":
        return lambda x: jax.nn.logsumexp(x, axis=axes, keepdims=keepdims)
    if fn == "norm":
        if ord == 1:
            return lambda x: jnp.sum(jnp.abs(x), axis=axes, keepdims=keepdims)
        return lambda x: jnp.sqrt(jnp.sum(jnp.square(x), axis=axes, keepdims=keepdims))
    f = getattr(jnp, fn)
    if fn in ("sum", "prod"):  # in the input's dtype (jnp widens small integers)
        return lambda x: f(x, axis=axes, keepdims=keepdims, dtype=x.dtype)
    return lambda x: f(x, axis=axes, keepdims=keepdims)


@jax.custom_vjp
def _reverse(x: jax.Array, scale: jax.Array) -> jax.Array:
    return x


def _reverse_fwd(x: jax.Array, scale: jax.Array) -> tuple[jax.Array, jax.Array]:
    return x, scale


def _reverse_bwd(scale: jax.Array, g: jax.Array) -> tuple[jax.Array, jax.Array]:
    return (-scale * g).astype(g.dtype), jnp.zeros_like(scale)


_reverse.defvjp(_reverse_fwd, _reverse_bwd)


def grad_reverse(scale: float) -> Any:
    """Identity forward; the gradient flowing back is multiplied by ``-scale``
    (gradient reversal, as in domain-adversarial training)."""

    def reverse(x: jax.Array) -> jax.Array:
        return _reverse(x, jnp.asarray(scale, jnp.float32))

    return reverse


def _batch_of(ref: jax.Array | None) -> Any:
    return 1 if ref is None else ref.shape[0]


def constant(value: float, shape: tuple[int, ...], t: TensorType) -> Any:
    """A constant of per-sample ``shape``, broadcast over the batch of ``ref``."""
    dtype = dtype_of(t)

    def const(ref: jax.Array | None = None) -> jax.Array:
        return jnp.broadcast_to(jnp.asarray(value, dtype), (_batch_of(ref), *shape))

    return const


class Learned(nnx.Module):
    """One learned tensor of per-sample ``shape``, broadcast over the batch of ``ref``."""

    def __init__(
        self, shape: tuple[int, ...], init: str, stddev: float, dtype: Any, *, rngs: nnx.Rngs
    ) -> None:
        initializers = {
            "zeros": nnx.initializers.zeros,
            "ones": nnx.initializers.ones,
            "normal": nnx.initializers.normal(stddev),
            # glorot needs a fan-in and fan-out: the last two axes (a vector: 1 and its size)
            "glorot_uniform": nnx.initializers.glorot_uniform(in_axis=-2, out_axis=-1),
        }
        key = rngs.params()
        if init == "glorot_uniform" and len(shape) < 2:
            value = initializers[init](key, (1, *shape), dtype).reshape(shape)
        else:
            value = initializers[init](key, shape, dtype)
        self.value = nnx.Param(value)
        self.shape = shape

    def __call__(self, ref: jax.Array | None = None) -> jax.Array:
        return jnp.broadcast_to(self.value[...][None], (_batch_of(ref), *self.shape))


def edge_pad(widths: list[tuple[int, int]]) -> Any:
    """``jnp.pad(mode="edge")`` written as concatenations of repeated edge slices (one
    converter mis-translates edge padding; this form exports the same everywhere)."""

    def pad(x: jax.Array) -> jax.Array:
        for axis, (lo, hi) in enumerate(widths):
            if not lo and not hi:
                continue
            n = x.shape[axis]
            first = jax.lax.slice_in_dim(x, 0, 1, axis=axis)
            last = jax.lax.slice_in_dim(x, n - 1, n, axis=axis)
            parts = [jnp.repeat(first, lo, axis=axis)] if lo else []
            parts.append(x)
            if hi:
                parts.append(jnp.repeat(last, hi, axis=axis))
            x = jnp.concatenate(parts, axis=axis)
        return x

    return pad


class Stochastic(nnx.Module):
    """A layer that draws random numbers while training: ``train(key, *xs)`` there, and
    ``infer(key, *xs)`` in eval mode (``model.eval()`` sets ``deterministic``).

    The key comes from its own fork of the ``dropout`` stream, as ``nnx.Dropout``'s does:
    the stream's counter is model state, so it is checkpointed and a resumed run draws
    exactly the numbers an uninterrupted one would. ``infer`` gets a key too, for the
    ``eval = "sample"`` variants; the deterministic ones ignore it.
    """

    def __init__(self, train: Any, infer: Any, *, rngs: nnx.Rngs) -> None:
        self.train_fn = train
        self.infer_fn = infer
        self.deterministic = False
        self.rngs = rngs["dropout"].fork()

    def __call__(self, *xs: jax.Array) -> jax.Array:
        if self.deterministic:
            return self.infer_fn(self.rngs, *xs)
        return self.train_fn(self.rngs(), *xs)
