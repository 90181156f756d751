"""Tensors with no input: constants (``zeros``, ``ones``, ``full``) and learned tensors
(``param``), each the same for every sample and broadcast over the batch.

A kind here takes no tensor input (``n_inputs = (0, 0)``). The lowered network calls
its function with one of the model's inputs only to learn the batch size (called alone,
it gives a batch of 1). Imports only the layer base and shapes; build rules import JAX
lazily.
"""

from __future__ import annotations

import math
from typing import Any

from nnlang.layers.base import Args, Attr, fail, layer
from nnlang.layers.elementwise import number_fits
from nnlang.shapes import DTYPES, FLOAT_DTYPES, TensorType

FAMILY = "constant"

_SHAPE = Attr(
    "shape", "shape", doc="per-sample shape (an integer or a tuple; the batch axis is not written)"
)


def _dtype(choices: tuple[str, ...]) -> Attr:
    return Attr("dtype", "str", "f32", doc="element type", choices=choices)


def dims(a: Args) -> tuple[int, ...]:
    return tuple(a.shape) if isinstance(a.shape, (tuple, list)) else (a.shape,)


def _type(kind: str, a: Args) -> TensorType:
    if any(d < 1 for d in dims(a)):
        raise fail(f"`{kind}` sizes must be positive but got {a.shape}", arg="shape", code="E202")
    return TensorType(a.dtype, dims(a))


def _constant_build(fill: float | None) -> Any:
    def build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
        from nnlang.layers.modules import constant

        value = a.value if fill is None else fill
        return constant(value, dims(a), TensorType(a.dtype, ()))

    return build


def _constant_kind(name: str, doc: str, fill: float | None, example: str) -> None:
    def shape(a: Args, ins: list[TensorType]) -> list[TensorType]:
        t = _type(name, a)
        if fill is None:
            number_fits("`full`", t, a.value, "value")
        return [t]

    value = (Attr("value", "number", doc="the value of every element"),) if fill is None else ()
    layer(
        name,
        family=FAMILY,
        doc=doc,
        attrs=(_SHAPE, *value, _dtype(tuple(d for d in DTYPES))),
        build=_constant_build(fill),
        n_inputs=(0, 0),
        example=example,
    )(shape)


_constant_kind(
    "zeros",
    "A tensor of zeros, the same for every sample (`jnp.zeros`, broadcast over the batch).",
    0,
    """model Example {
    input x: f32[4]
    output y = (x, zeros(4)) -> concat
}""",
)
_constant_kind(
    "ones",
    "A tensor of ones, the same for every sample (`jnp.ones`, broadcast over the batch).",
    1,
    """model Example {
    input x: f32[4]
    output y = x * ones((2, 4))
}""",
)
_constant_kind(
    "full",
    "A tensor filled with `value`, the same for every sample (`jnp.full`, broadcast over "
    "the batch); an integer dtype takes an integer value.",
    None,
    """model Example {
    input x: f32[4]
    output y = x + full(4, 0.5)
}""",
)


def _param_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    from nnlang.layers.modules import Learned, dtype_of

    return Learned(dims(a), a.init, a.stddev, dtype_of(TensorType(a.dtype, ())), rngs=rngs)


@layer(
    "param",
    family=FAMILY,
    doc="A learned tensor, the same for every sample and broadcast over the batch (one "
    "`nnx.Param`): a bias, a class token, a learned query or temperature.",
    attrs=(
        _SHAPE,
        Attr(
            "init",
            "str",
            "zeros",
            doc='initial values (`"normal"` draws with `stddev`)',
            choices=("zeros", "ones", "normal", "glorot_uniform"),
        ),
        Attr("stddev", "float", 0.02, doc='standard deviation for init = "normal"', min=0.0),
        _dtype(tuple(d for d in DTYPES if d in FLOAT_DTYPES)),
    ),
    params=lambda a, ins: math.prod(dims(a)),
    build=_param_build,
    n_inputs=(0, 0),
    example="""model Example {
    input tokens: f32[T, 16]
    query = param((1, 16), init = "normal")
    output y = (query, tokens) -> attention(heads = 2)
}""",
)
def _param(a: Args, ins: list[TensorType]) -> list[TensorType]:
    return [_type("param", a)]
