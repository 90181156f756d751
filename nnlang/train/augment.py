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
from nnlang.train.catalog import Entry, Param, declare, named_inputs, resolve

Augment = Callable[[jax.Array, jax.Array], jax.Array]

AUGMENTATIONS: dict[str, Entry] = {}

#: every augmentation's last parameter: the model inputs it applies to
_INPUTS = Param(
    "inputs",
    "any",
    None,
    "the model inputs it applies to, e.g. `inputs = [image]` (default: every floating "
    "input; for an image augmentation every image input)",
)


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
    _INPUTS,
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
    _INPUTS,
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
    _INPUTS,
    image=False,
)
def noise(std: float) -> Augment:
    def apply(key: jax.Array, x: jax.Array) -> jax.Array:
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise ArgError("E403", "augmentation `noise` needs floating-point data")
        return x + std * jax.random.normal(key, x.shape, x.dtype)

    return apply


def _per_sample(fn: Callable[[jax.Array, jax.Array], jax.Array]) -> Augment:
    """``fn(key, image)`` on one [H, W, C] image, vectorised over the batch with one key
    per sample."""

    def apply(key: jax.Array, x: jax.Array) -> jax.Array:
        return jax.vmap(fn)(jax.random.split(key, x.shape[0]), x)

    return apply


@declare(
    AUGMENTATIONS,
    "rotate",
    "Rotate each image about its centre by an angle drawn uniformly from [-degrees, "
    "degrees], bilinear, the uncovered corners zero (dm_pix `rotate`).",
    Param("degrees", "float", 15.0, "largest rotation either way", min=0.0, min_open=True),
    _INPUTS,
    image=True,
)
def rotate(degrees: float) -> Augment:
    import dm_pix as pix

    limit = float(jnp.deg2rad(degrees))

    def one(key: jax.Array, img: jax.Array) -> jax.Array:
        angle = jax.random.uniform(key, (), minval=-limit, maxval=limit)
        return pix.rotate(img, angle, order=1, mode="constant", cval=0.0)

    inner = _per_sample(one)

    def apply(key: jax.Array, x: jax.Array) -> jax.Array:
        _need_image("rotate", x.ndim)
        return inner(key, x)

    return apply


@declare(
    AUGMENTATIONS,
    "crop",
    "Cut a random window of `scale` times each side from each image (dm_pix "
    "`random_crop`) and resize it back to the image's size (bilinear): a random zoom in.",
    Param(
        "scale",
        "float",
        0.875,
        "side of the window, a fraction of the image's",
        min=0.0,
        max=1.0,
        min_open=True,
    ),
    _INPUTS,
    image=True,
)
def crop(scale: float) -> Augment:
    import dm_pix as pix

    def apply(key: jax.Array, x: jax.Array) -> jax.Array:
        _need_image("crop", x.ndim)
        _, h, w, c = x.shape
        ch, cw = max(1, round(h * scale)), max(1, round(w * scale))

        def one(k: jax.Array, img: jax.Array) -> jax.Array:
            window = pix.random_crop(k, img, (ch, cw, c))
            return jax.image.resize(window, (h, w, c), "bilinear")

        return _per_sample(one)(key, x)

    return apply


@declare(
    AUGMENTATIONS,
    "jitter",
    "Colour jitter per image (dm_pix): brightness `x + d`, d ~ U(-brightness, brightness); "
    "contrast `(x - mean) * f + mean`, f ~ U(1 - contrast, 1 + contrast); for RGB images "
    "also saturation (the same with the grey image) and hue (a rotation of up to `hue` of "
    "the colour circle). For data in [0, 1], as `images` gives.",
    Param("brightness", "float", 0.2, "largest brightness change", min=0.0),
    Param("contrast", "float", 0.2, "largest relative contrast change", min=0.0, max=1.0),
    Param("saturation", "float", 0.0, "largest relative saturation change (RGB)", min=0.0, max=1.0),
    Param(
        "hue",
        "float",
        0.0,
        "largest hue rotation, a fraction of the circle (RGB)",
        min=0.0,
        max=0.5,
    ),
    _INPUTS,
    image=True,
)
def jitter(brightness: float, contrast: float, saturation: float, hue: float) -> Augment:
    import dm_pix as pix

    def one(key: jax.Array, img: jax.Array) -> jax.Array:
        kb, kc, ks, kh = jax.random.split(key, 4)
        if brightness > 0:
            img = pix.random_brightness(kb, img, brightness)
        if contrast > 0:
            img = pix.random_contrast(kc, img, 1 - contrast, 1 + contrast)
        if saturation > 0:
            img = pix.random_saturation(ks, img, 1 - saturation, 1 + saturation)
        if hue > 0:
            img = pix.random_hue(kh, img, hue)
        return img

    inner = _per_sample(one)

    def apply(key: jax.Array, x: jax.Array) -> jax.Array:
        _need_image("jitter", x.ndim)
        if (saturation > 0 or hue > 0) and x.shape[-1] != 3:
            raise ArgError(
                "E403",
                f"augmentation `jitter`: saturation and hue need RGB images, the data has {x.shape[-1]} channel(s)",
                help="use brightness and contrast only, or `channels = 3`",
            )
        return inner(key, x)

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
    return entry.fn(**{k: v for k, v in bound.items() if k != "inputs"})


def per_input(
    calls: Sequence[tuple[Entry, Mapping[str, Any]]], sample_shapes: Mapping[str, Sequence[Any]]
) -> dict[str, Augment]:
    """For each model input (``sample_shapes``: per-sample shapes, noise inputs left
    out), the augmentations that apply to it composed in order: those naming it in
    ``inputs = [...]``, and those naming none (every input; an image augmentation then
    every image input, and the first input when there is none, to refuse it). E403 for a
    name that is no input."""
    names = list(sample_shapes)
    images = [n for n, s in sample_shapes.items() if len(s) == 3]
    fns: dict[str, list[Augment]] = {n: [] for n in names}
    for entry, bound in calls:
        targets = named_inputs(bound.get("inputs"), names, f"augmentation `{entry.name}`")
        if targets is None:
            targets = (images or names[:1]) if entry.extra.get("image") else names
        for n in targets:
            fns[n].append(augment_from(entry, bound, sample_shapes[n]))
    return {n: compose(f) for n, f in fns.items() if f}


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
