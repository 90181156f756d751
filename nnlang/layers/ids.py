"""Integer ids: ``one_hot`` and ``padding_mask`` (listed with the indexing family).

Imports only the layer base, shapes and the dtype help of the element-wise family;
build rules import JAX lazily.
"""

from __future__ import annotations

from typing import Any

from nnlang.diagnostics import ArgError
from nnlang.layers.base import Args, Attr, layer
from nnlang.layers.elementwise import CAST_HELP
from nnlang.layers.index import FAMILY
from nnlang.shapes import DTYPES, INT_DTYPES, TensorType


# -------------------------------------------------------------------- one_hot
def _one_hot_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    import jax

    from nnlang.layers.modules import dtype_of

    dtype = dtype_of(ins[0].with_dtype(a.dtype))
    return lambda v: jax.nn.one_hot(v, a.classes, dtype=dtype)


@layer(
    "one_hot",
    family=FAMILY,
    doc="One-hot encode integer ids (`jax.nn.one_hot`): `i32[...] -> f32[..., classes]`; "
    "an id outside `0..classes-1` gives a row of zeros.",
    attrs=(
        Attr("classes", "int", doc="number of classes (length of each row)", min=1),
        Attr(
            "dtype",
            "str",
            "f32",
            doc="dtype of the rows",
            choices=tuple(d for d in DTYPES if d != "bool"),
        ),
    ),
    build=_one_hot_build,
    example="""model Example {
    input ids: i32[T]
    output y = ids -> one_hot(10) -> dense(4)
}""",
)
def _one_hot(a: Args, ins: list[TensorType]) -> list[TensorType]:
    x = ins[0]
    if x.dtype not in INT_DTYPES:
        raise ArgError(
            "E304",
            f"`one_hot` expects integer ids but got {x}",
            help=CAST_HELP.replace("f32", "i32"),
        )
    return [TensorType(a.dtype, x.shape + (a.classes,))]


# --------------------------------------------------------------- padding_mask
def _padding_mask_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    from nnlang.layers.modules import dtype_of

    dtype = dtype_of(ins[0].with_dtype(a.dtype))
    return lambda v: (v != a.pad).astype(dtype)


@layer(
    "padding_mask",
    family=FAMILY,
    doc="1 where an integer id is not the padding id, 0 where it is: `i32[T] -> f32[T]`. "
    "The mask `attention(..., key_mask = true)` takes, and a weight for pooling only the "
    "real positions: `sum(h * expand_dims(m, -1), axis = 0) / sum(m)`.",
    attrs=(
        Attr("pad", "int", 0, doc="the padding id"),
        Attr(
            "dtype",
            "str",
            "f32",
            doc="dtype of the mask",
            choices=tuple(d for d in DTYPES if d != "bool"),
        ),
    ),
    build=_padding_mask_build,
    example="""model Example {
    input ids: i32[T]
    m = ids -> padding_mask
    h = ids -> embedding(100, 32)
    output y = attention(h, m, heads = 4, key_mask = true)
}""",
)
def _padding_mask(a: Args, ins: list[TensorType]) -> list[TensorType]:
    x = ins[0]
    if x.dtype not in INT_DTYPES:
        raise ArgError(
            "E304",
            f"`padding_mask` expects integer ids but got {x}",
            help=CAST_HELP.replace("f32", "i32"),
        )
    return [x.with_dtype(a.dtype)]
