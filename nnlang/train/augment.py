"""Data augmentation: pure JAX functions of ``(key, batch)`` run inside the jitted step.

Each augmentation draws its randomness per sample from the key, so one call on a batch
is one vectorised computation (no Python loop over samples) and a fixed key gives a
fixed result. Image augmentations take channels-last batches ``[B, H, W, C]``.
Augmentation is for training only; evaluation sees the data as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from nnlang.diagnostics import ArgError
from nnlang.train.catalog import Entry, Param, declare, resolve

Augment = Callable[[jax.Array, jax.Array], jax.Array]

AUGMENTATIONS: dict[str, Entry] = {}


def _need_image(name: str, ndim: int) -> None:
    """E403 unless the batch is [B, H, W, C] (per-sample rank 3)."""
    if ndim != 4:
        raise ArgError(
            "E403",
            f"augmentation `{name}` works on images [H, W, C] but the data is rank {ndim - 1} per sample",
            help="image augmentations need per-sample [H, W, C] arrays; drop it or reshape the data",
        )


@declare(
    AUGMENTATIONS,
    "flip",
    "Mirror each image with probability 0.5, independently per sample and direction.",
    Param("horizontal", "bool", True, "flip left-right"),
    Param("vertical", "bool", False, "flip top-bottom"),
    image=True,
)
def flip(horizontal: bool, vertical: bool) -> Augment:
    def apply(key: jax.Array, x: jax.Array) -> jax.Array:
        _need_image("flip", x.ndim)
        kh, kv = jax.random.split(key)
        for on, k, axis in ((horizontal, kh, 2), (vertical, kv, 1)):
            if on:
                pick = jax.random.bernoulli(k, 0.5, (x.shape[0], 1, 1, 1))
                x = jnp.where(pick, jnp.flip(x, axis=axis), x)
        return x

    return apply


@declare(
    AUGMENTATIONS,
    "shift",
    "Translate each image by a random whole number of pixels in [-pixels, pixels] along "
    "each spatial axis, filling the uncovered border with zeros.",
    Param("pixels", "int", 2, "largest shift in each direction", min=1),
    image=True,
)
def shift(pixels: int) -> Augment:
    p = pixels

    def apply(key: jax.Array, x: jax.Array) -> jax.Array:
        _need_image("shift", x.ndim)
        b, h, w, c = x.shape
        # Output pixel (i, j) reads padded pixel (i + p - dy, j + p - dx): a slice of
        # the zero-padded image at a per-sample offset in [0, 2p].
        offsets = jax.random.randint(key, (b, 2), 0, 2 * p + 1)
        padded = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))

        def one(img: jax.Array, off: jax.Array) -> jax.Array:
            return jax.lax.dynamic_slice(img, (off[0], off[1], 0), (h, w, c))

        return jax.vmap(one)(padded, offsets)

    return apply


@declare(
    AUGMENTATIONS,
    "noise",
    "Add Gaussian noise with standard deviation `std` to every element (any input rank).",
    Param("std", "float", 0.1, "standard deviation of the noise", min=0.0, min_open=True),
    image=False,
)
def noise(std: float) -> Augment:
    def apply(key: jax.Array, x: jax.Array) -> jax.Array:
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise ArgError("E403", "augmentation `noise` needs floating-point data")
        return x + std * jax.random.normal(key, x.shape, x.dtype)

    return apply


def bind_augment(
    name: str,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    sample_shape: Sequence[Any] | None = None,
) -> Augment:
    """One augmentation call, checked; with ``sample_shape`` (per sample, no batch axis)
    image augmentations on non-image data are refused now rather than at trace time."""
    entry, bound = resolve(AUGMENTATIONS, "augmentation", name, args, kwargs)
    return augment_from(entry, bound, sample_shape)


def augment_from(
    entry: Entry, bound: Mapping[str, Any], sample_shape: Sequence[Any] | None = None
) -> Augment:
    """:func:`bind_augment` for a call already bound to ``entry`` (every param in
    ``bound``): nothing is bound again."""
    if sample_shape is not None and entry.extra.get("image"):
        _need_image(entry.name, len(sample_shape) + 1)
    return entry.fn(**bound)


def make_augment(
    specs: Sequence[tuple[str, Sequence[Any], Mapping[str, Any]]],
    sample_shape: Sequence[Any] | None = None,
) -> Augment:
    """Compose ``[(name, args, kwargs), ...]`` into one ``fn(key, x) -> x``, applied
    in order, each with its own split of the key."""
    return compose([bind_augment(n, a, k, sample_shape) for n, a, k in specs])


def compose(fns: Sequence[Augment]) -> Augment:
    """Augmentations applied in order, each with its own split of the key."""
    fns = list(fns)

    def apply(key: jax.Array, x: jax.Array) -> jax.Array:
        if not fns:
            return x
        for f, k in zip(fns, jax.random.split(key, len(fns)), strict=True):
            x = f(k, x)
        return x

    return apply
