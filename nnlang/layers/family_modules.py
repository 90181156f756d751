"""Flax-side modules for the paper families: radial basis functions, spiking neurons
and their encoders, capsules with routing by agreement, bidirectional recurrence,
fixed positional encodings and in-model preprocessing.

Like ``modules.py`` this is imported lazily, inside ``build`` rules, so the catalogue
itself never imports JAX. Imports JAX, Flax and NumPy only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


# ----------------------------------------------------------------------- rbf
def kmeans(
    x: np.ndarray, k: int, rng: np.random.Generator, iterations: int = 25
) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means of the rows of ``x`` with k-means++ seeding (Arthur and
    Vassilvitskii 2007): ``(centroids [k, F], assignment [N])``. With fewer distinct rows
    than ``k``, the extra centres repeat rows."""
    n = len(x)
    sq = np.sum(x * x, axis=1)
    centres = np.empty((k, x.shape[1]), x.dtype)
    centres[0] = x[rng.integers(n)]
    d2 = np.maximum(sq - 2 * x @ centres[0] + centres[0] @ centres[0], 0)
    for j in range(1, k):
        total = d2.sum()
        i = rng.choice(n, p=d2 / total) if total > 0 else rng.integers(n)
        centres[j] = x[i]
        d2 = np.minimum(d2, np.maximum(sq - 2 * x @ centres[j] + centres[j] @ centres[j], 0))
    for _ in range(iterations):
        assign = np.argmin(sq[:, None] - 2 * x @ centres.T + np.sum(centres**2, 1)[None], axis=1)
        sums = np.zeros_like(centres)
        np.add.at(sums, assign, x)
        counts = np.bincount(assign, minlength=k)
        moved = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], centres)
        if np.array_equal(moved, centres):
            break
        centres = moved
    assign = np.argmin(sq[:, None] - 2 * x @ centres.T + np.sum(centres**2, 1)[None], axis=1)
    return centres, assign


#: The trainer's data-dependent initialisation (``nnlang.train.datainit``) pushes a
#: callback here while it runs the model once, eagerly, on training examples; a module
#: that initialises from data calls it with itself and its input. Empty otherwise, so
#: traced programs never see it.
DATA_INIT: list[Callable[[nnx.Module, jax.Array], None]] = []


class RBF(nnx.Module):
    """``units`` radial basis functions with learned centres ``c_j`` and widths
    ``beta_j = exp(log_beta_j)`` (positive by construction) of the last axis."""

    def __init__(
        self, features: int, units: int, kernel: str, init: str, *, dtype: Any, rngs: nnx.Rngs
    ) -> None:
        # centres ~ N(0, 1): the scale of standardised inputs; widths so that a point at
        # the typical distance (2F for unit-variance data) starts at exp(-1).
        self.centres = nnx.Param(jax.random.normal(rngs.params(), (units, features), dtype))
        self.log_beta = nnx.Param(jnp.full((units,), -math.log(2.0 * features), dtype))
        self.kernel = kernel
        self.init_mode = init

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.init_mode == "kmeans" and DATA_INIT:  # eager, before training: see DATA_INIT
            DATA_INIT[-1](self, x)
        c = self.centres[...]
        beta = jnp.exp(self.log_beta[...])
        d2 = (
            jnp.sum(x * x, axis=-1, keepdims=True)
            - 2.0 * jnp.einsum("...f,uf->...u", x, c)
            + jnp.sum(c * c, axis=-1)
        )
        r = beta * jnp.maximum(d2, 0.0)
        if self.kernel == "gaussian":
            return jnp.exp(-r)
        if self.kernel == "multiquadric":
            return jnp.sqrt(1.0 + r)
        return jax.lax.rsqrt(1.0 + r)

    def init_from_data(self, x: np.ndarray, rng: np.random.Generator) -> None:
        """Centres = k-means centroids of ``x`` (rows: the layer's inputs), widths
        ``β_j = 1/(2σ_j²)`` from the members' mean squared distance (Moody & Darken)."""
        x = x.reshape(-1, x.shape[-1]).astype(np.float64)
        k = self.centres.shape[0]
        centres, assign = kmeans(x, k, rng)
        d2 = np.sum((x - centres[assign]) ** 2, axis=1)
        counts = np.bincount(assign, minlength=k)
        spread = np.bincount(assign, weights=d2, minlength=k) / np.maximum(counts, 1)
        typical = float(np.mean(d2)) if np.mean(d2) > 0 else 1.0
        spread = np.where((counts > 1) & (spread > 0), spread, typical)
        dtype = self.centres[...].dtype
        self.centres[...] = jnp.asarray(centres, dtype)
        self.log_beta[...] = jnp.asarray(-np.log(2.0 * spread), dtype)


# ------------------------------------------------------------------- spiking
def spike_fn(surrogate: str, slope: float) -> Callable[[jax.Array], jax.Array]:
    """Heaviside forward (real 0/1 spikes); the surrogate's derivative backward."""

    @jax.custom_vjp
    def spike(u: jax.Array) -> jax.Array:
        return (u > 0).astype(u.dtype)

    def fwd(u: jax.Array) -> tuple[jax.Array, jax.Array]:
        return spike(u), u

    def bwd(u: jax.Array, g: jax.Array) -> tuple[jax.Array]:
        if surrogate == "fast_sigmoid":  # snnTorch fast_sigmoid: 1 / (k|u| + 1)^2
            d = 1.0 / jnp.square(slope * jnp.abs(u) + 1.0)
        else:  # snnTorch atan: (a/2) / (1 + (pi/2 a u)^2)
            d = (slope / 2.0) / (1.0 + jnp.square(math.pi / 2.0 * slope * u))
        return ((g * d).astype(g.dtype),)

    spike.defvjp(fwd, bwd)
    return spike


def lif(beta: float, threshold: float, reset: str, surrogate: str, slope: float) -> Any:
    """Leaky integrate-and-fire over axis 1 of ``[batch, T, ...]`` (``lax.scan``)."""
    spike = spike_fn(surrogate, slope)

    def run(x: jax.Array) -> jax.Array:
        def step(
            carry: tuple[jax.Array, jax.Array], i: jax.Array
        ) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
            u, s = carry
            s = jax.lax.stop_gradient(s)  # the reset is not differentiated (snnTorch)
            if reset == "subtract":
                u = beta * u + i - s * threshold
            else:
                u = beta * u * (1.0 - s) + i
            s = spike(u - threshold)
            return (u, s), s

        xs = jnp.moveaxis(x, 1, 0)
        zeros = jnp.zeros_like(xs[0])
        _, spikes = jax.lax.scan(step, (zeros, zeros), xs)
        return jnp.moveaxis(spikes, 0, 1)

    return run


class RateEncode(nnx.Module):
    """Bernoulli rate coding: ``steps`` copies of ``x`` clipped to [0, 1], each element
    a spike with probability ``x``. Training draws from the ``dropout`` RNG stream; in
    eval mode (``deterministic``) a fixed key, so evaluation and export repeat."""

    def __init__(self, steps: int, *, rngs: nnx.Rngs) -> None:
        self.steps = steps
        self.deterministic = False
        self.rngs = rngs["dropout"].fork()

    def __call__(self, x: jax.Array) -> jax.Array:
        key = jax.random.key(0) if self.deterministic else self.rngs()
        p = jnp.clip(x, 0.0, 1.0)
        shape = (x.shape[0], self.steps, *x.shape[1:])
        u = jax.random.uniform(key, shape, dtype=jnp.float32)
        return (u < p[:, None].astype(jnp.float32)).astype(x.dtype)


def latency_encode(steps: int, threshold: float) -> Any:
    """One spike per element at step ``round((1 - x) (steps - 1))`` (bright = early);
    elements below ``threshold`` never fire."""

    def encode(x: jax.Array) -> jax.Array:
        p = jnp.clip(x, 0.0, 1.0)
        at = jnp.round((1.0 - p) * (steps - 1)).astype(jnp.int32)
        t = jnp.arange(steps).reshape((1, steps) + (1,) * (x.ndim - 1))
        fire = (t == at[:, None]) & (p[:, None] >= threshold)
        return fire.astype(x.dtype)

    return encode


# ------------------------------------------------------------------ capsules
def squash(s: jax.Array, axis: int = -1) -> jax.Array:
    """``v = |s|^2 / (1 + |s|^2) * s / |s|`` (Sabour et al. 2017, eq. 1)."""
    n2 = jnp.sum(jnp.square(s), axis=axis, keepdims=True)
    return s * (n2 / (1.0 + n2) * jax.lax.rsqrt(n2 + 1e-9))


class PrimaryCaps(nnx.Module):
    """A convolution of ``capsules * dim`` filters, its positions and capsule types
    reshaped to ``[N, dim]`` capsules, squashed."""

    def __init__(self, conv: nnx.Conv, dim: int) -> None:
        self.conv = conv
        self.dim = dim

    def __call__(self, x: jax.Array) -> jax.Array:
        y = self.conv(x)
        return squash(y.reshape(y.shape[0], -1, self.dim))


class Capsule(nnx.Module):
    """A capsule layer with ``routing`` iterations of routing by agreement."""

    def __init__(
        self,
        n_in: int,
        d_in: int,
        capsules: int,
        dim: int,
        routing: int,
        *,
        dtype: Any,
        rngs: nnx.Rngs,
    ) -> None:
        init = nnx.initializers.normal(0.01)
        self.weight = nnx.Param(init(rngs.params(), (n_in, capsules, dim, d_in), dtype))
        self.routing = routing

    def __call__(self, u: jax.Array) -> jax.Array:
        u_hat = jnp.einsum("nkod,bnd->bnko", self.weight[...], u)  # u_hat[j|i] = W_ij u_i
        b = jnp.zeros(u_hat.shape[:3], u_hat.dtype)
        v = u_hat[:, 0]
        for r in range(self.routing):
            c = jax.nn.softmax(b, axis=2)  # coupling of input i over outputs j
            v = squash(jnp.einsum("bnk,bnko->bko", c, u_hat))
            if r + 1 < self.routing:
                b = b + jnp.einsum("bnko,bko->bnk", u_hat, v)  # agreement
        return v


class MaskCapsules(nnx.Module):
    """Zero every capsule but one: the labelled one while training (when a one-hot
    label is given), the longest one otherwise."""

    def __init__(self) -> None:
        self.deterministic = False

    def __call__(self, caps: jax.Array, label: jax.Array | None = None) -> jax.Array:
        if label is None or self.deterministic:
            lengths = jnp.sum(jnp.square(caps), axis=-1)
            mask = jax.nn.one_hot(jnp.argmax(lengths, axis=-1), caps.shape[1], dtype=caps.dtype)
        else:
            mask = label.astype(caps.dtype)
        return caps * mask[..., None]


# ------------------------------------------------------------- bidirectional
class Bidirectional(nnx.Module):
    """Two ``nnx.RNN`` scans, forwards and backwards in time, their outputs merged."""

    def __init__(
        self,
        forward: nnx.RNNCellBase,
        backward: nnx.RNNCellBase,
        units: int,
        *,
        merge: str,
        return_sequences: bool,
    ) -> None:
        self.forward = nnx.RNN(forward, rngs=False)
        self.backward = nnx.RNN(backward, reverse=True, keep_order=True, rngs=False)
        self.is_lstm = isinstance(forward, nnx.LSTMCell)
        self.units = units
        self.merge = merge
        self.return_sequences = return_sequences

    def __call__(self, x: jax.Array) -> jax.Array:
        zeros = jnp.zeros((x.shape[0], self.units), x.dtype)
        carry0 = (zeros, zeros) if self.is_lstm else zeros
        f = self.forward(x, initial_carry=carry0)
        b = self.backward(x, initial_carry=carry0)
        if not self.return_sequences:  # each direction's last step
            f, b = f[:, -1], b[:, 0]
        if self.merge == "concat":
            return jnp.concatenate([f, b], axis=-1)
        if self.merge == "sum":
            return f + b
        if self.merge == "mul":
            return f * b
        return (f + b) / 2


# --------------------------------------------------------------- positions
def sinusoid_table(steps: int, features: int, base: float) -> jax.Array:
    """PE[t, 2i] = sin(t / base^(2i/F)), PE[t, 2i+1] = cos(...) (Vaswani et al. 2017)."""
    t = jnp.arange(steps, dtype=jnp.float32)[:, None]
    freq = jnp.exp(-math.log(base) * jnp.arange(0, features, 2, dtype=jnp.float32) / features)
    angle = t * freq
    pe = jnp.stack([jnp.sin(angle), jnp.cos(angle)], axis=-1).reshape(steps, -1)
    return pe[:, :features]


def sinusoidal_position(base: float) -> Any:
    def add(x: jax.Array) -> jax.Array:
        return x + sinusoid_table(x.shape[1], x.shape[2], base)[None].astype(x.dtype)

    return add


def rotary(base: float) -> Any:
    """Rotate feature pairs ``(x[2i], x[2i+1])`` at step t by the angle
    ``t / base^(2i/F)`` (RoPE, Su et al. 2021)."""

    def rotate(x: jax.Array) -> jax.Array:
        steps, features = x.shape[1], x.shape[-1]
        t = jnp.arange(steps, dtype=jnp.float32)[:, None]
        freq = jnp.exp(-math.log(base) * jnp.arange(0, features, 2, dtype=jnp.float32) / features)
        angle = (t * freq).reshape((1, steps) + (1,) * (x.ndim - 3) + (features // 2,))
        cos, sin = jnp.cos(angle).astype(x.dtype), jnp.sin(angle).astype(x.dtype)
        pairs = x.reshape(*x.shape[:-1], features // 2, 2)
        even, odd = pairs[..., 0], pairs[..., 1]
        out = jnp.stack([even * cos - odd * sin, even * sin + odd * cos], axis=-1)
        return out.reshape(x.shape)

    return rotate


# ------------------------------------------------------------- preprocessing
def affine(scale: Any, offset: Any, dtype: Any) -> Any:
    """``x * scale + offset`` with constants (numbers or per-feature vectors)."""
    # NumPy constants: a build rule may run under a trace (jnp here would leak a tracer)
    s = np.asarray(scale, dtype)
    o = np.asarray(offset, dtype)

    def apply(x: jax.Array) -> jax.Array:
        return x * s + o

    return apply
