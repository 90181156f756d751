"""In-model preprocessing with constants (Keras ``Rescaling`` and ``Normalization``):
the numbers live in the model, so a trained run, its export and ``predict`` take raw
inputs. Imports the layer base and shapes only; build rules import NumPy/JAX lazily.
"""

from __future__ import annotations

import math
from typing import Any

from nnlang.diagnostics import ArgError
from nnlang.layers.base import Args, Attr, expect_float, layer
from nnlang.shapes import TensorType, concrete_numel, is_concrete

FAMILY = "preprocess"


def _elements(a: Args, ins: list[TensorType], outs: list[TensorType]) -> int:
    return 2 * concrete_numel(outs[0].shape)


def _affine_build(scale: Any, offset: Any, ins: list[TensorType]) -> Any:
    from nnlang.layers.family_modules import affine
    from nnlang.layers.modules import dtype_of

    return affine(scale, offset, dtype_of(ins[0]))


@layer(
    "rescale",
    family=FAMILY,
    doc="`x · scale + offset` with constant numbers (Keras `Rescaling`), e.g. "
    "`rescale(1/255)` for byte images cast to f32, `rescale(1/127.5, -1)` for [−1, 1].",
    attrs=(
        Attr("scale", "float", doc="the factor"),
        Attr("offset", "float", 0.0, doc="added after scaling"),
    ),
    flops=_elements,
    build=lambda a, ins, rngs: _affine_build(a.scale, a.offset, ins),
    example="""model Example {
    input x: f32[8, 8, 1]
    output y = x -> rescale(1 / 16) -> flatten -> dense(10)
}""",
)
def _rescale(a: Args, ins: list[TensorType]) -> list[TensorType]:
    expect_float("rescale", ins[0])
    return [ins[0]]


def _numbers(x: TensorType, value: Any, arg: str) -> list[float]:
    """A number, or one number per feature of the last axis."""
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in items
    ):
        raise ArgError(
            "E201",
            f"`normalize` {arg} must be a number or a list of numbers, not {value!r}",
            arg=arg,
        )
    if len(items) > 1:
        last = x.shape[-1] if x.rank else 1
        if not is_concrete(last) or int(last) != len(items):
            raise ArgError(
                "E302",
                f"`normalize` {arg} has {len(items)} values but the input {x} has "
                f"{last} features on its last axis",
                arg=arg,
                help="give one number, or one per feature of the last axis",
            )
    return [float(v) for v in items]


def _normalize_config(a: Args, x: TensorType) -> tuple[list[float], list[float]]:
    mean = _numbers(x, a.mean, "mean")
    variance = _numbers(x, a.variance, "variance")
    if any(v <= 0 for v in variance):
        raise ArgError("E202", "`normalize` variance must be greater than 0", arg="variance")
    return mean, variance


def _normalize_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    mean, variance = _normalize_config(a, ins[0])
    scale = [1.0 / math.sqrt(v) for v in variance]
    if len(scale) > 1 or len(mean) > 1:
        width = max(len(scale), len(mean))
        scale = scale * (width // len(scale))
        mean = mean * (width // len(mean))
    offset = [-m * s for m, s in zip(mean, scale, strict=True)]
    one = len(scale) == 1
    return _affine_build(scale[0] if one else scale, offset[0] if one else offset, ins)


@layer(
    "normalize",
    family=FAMILY,
    doc="`(x − mean) / sqrt(variance)` with constant statistics (Keras `Normalization`): "
    "each a number, or a list of one number per feature of the last axis.",
    attrs=(
        Attr("mean", "any", doc="a number, or a list with one mean per feature"),
        Attr("variance", "any", doc="a number, or a list with one variance (> 0) per feature"),
    ),
    flops=_elements,
    build=_normalize_build,
    example="""model Example {
    input x: f32[3]
    output y = x -> normalize([0.5, 1.0, 2.0], [0.25, 1.0, 4.0]) -> dense(2)
}""",
)
def _normalize(a: Args, ins: list[TensorType]) -> list[TensorType]:
    expect_float("normalize", ins[0])
    _normalize_config(a, ins[0])
    return [ins[0]]
