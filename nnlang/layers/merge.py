"""Merges: elementwise arithmetic with numpy broadcasting, and concatenation.

Broadcasting is numpy's, applied to the per-sample shapes (right-aligned; a size-1
axis stretches). At run time the lower-rank inputs get size-1 axes inserted after the
batch axis, so the batch axis never lines up with a per-sample axis.
"""

from __future__ import annotations

import functools
from typing import Any

from nnlang.diagnostics import ArgError
from nnlang.layers.base import Args, Attr, fail, layer, norm_axis
from nnlang.shapes import Dim, TensorType, concrete_numel, dim_add

FAMILY = "merge"


def same_dtype(kind: str, ins: list[TensorType]) -> None:
    for x in ins[1:]:
        if x.dtype != ins[0].dtype:
            raise ArgError(
                "E304",
                f"`{kind}` inputs have different dtypes: {ins[0]} and {x}",
                help='convert one of them with `cast("...")`',
            )


def _broadcast_dim(a: Dim, b: Dim) -> Dim | None:
    if a == b or b == 1:
        return a
    if a == 1:
        return b
    return None  # includes a symbolic axis against a different size: not provable


def broadcast(kind: str, ins: list[TensorType]) -> TensorType:
    """numpy broadcasting of the per-sample shapes, E302 naming both shapes."""
    same_dtype(kind, ins)
    out = ins[0]
    for x in ins[1:]:
        rank = max(out.rank, x.rank)
        a = (1,) * (rank - out.rank) + out.shape
        b = (1,) * (rank - x.rank) + x.shape
        dims = [_broadcast_dim(p, q) for p, q in zip(a, b, strict=True)]
        if any(d is None for d in dims):
            raise fail(
                f"`{kind}` cannot broadcast {out} with {x}",
                help="per-sample shapes broadcast like numpy's: right-aligned, equal "
                "or 1 on every axis (the batch axis is not written)",
            )
        out = out.with_shape(tuple(d for d in dims if d is not None))
    return out


def _arith_kind(
    name: str,
    op: str,
    what: str,
    n_inputs: tuple[int, int | None],
    *,
    float_only: bool = False,
    written: str = "",
) -> None:
    """Declare an elementwise merge lowering to ``jnp.<op>`` folded over the inputs."""

    def shape(a: Args, ins: list[TensorType]) -> list[TensorType]:
        out = broadcast(name, ins)
        if float_only and not out.is_float:
            raise ArgError(
                "E304",
                f"`{name}` needs floating-point tensors but got {', '.join(map(str, ins))}",
                help='cast them first, e.g. `x -> cast("f32")`',
            )
        return [out]

    def build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
        import jax.numpy as jnp

        from nnlang.layers.modules import unsqueeze_to

        rank = max(x.rank for x in ins)
        fn = getattr(jnp, op)

        def merge(*xs: Any) -> Any:
            return functools.reduce(fn, (unsqueeze_to(x, rank) for x in xs))

        return merge

    many = "two or more inputs" if n_inputs[1] is None else "two inputs"
    layer(
        name,
        family=FAMILY,
        doc=f"{what} of {many} (`jnp.{op}`{written}), with numpy broadcasting over the "
        "per-sample shapes; dtypes must match"
        + ("; floating-point tensors only." if float_only else "."),
        flops=lambda a, ins, outs: (len(ins) - 1) * concrete_numel(outs[0].shape),
        build=build,
        n_inputs=n_inputs,
        example=f"""model Example {{
    input a: f32[8, 16]
    input b: f32[16]
    output y = {name}(a, b)
}}""",
    )(shape)


_arith_kind("add", "add", "Elementwise sum", (2, None), written="; `a + b`")
_arith_kind(
    "sub", "subtract", "Elementwise difference (first minus second)", (2, 2), written="; `a - b`"
)
_arith_kind("mul", "multiply", "Elementwise product", (2, None), written="; `a * b`")
_arith_kind(
    "div",
    "divide",
    "Elementwise quotient (first over second)",
    (2, 2),
    float_only=True,
    written="; `a / b`",
)
_arith_kind("pow", "power", "Elementwise power (first to the second)", (2, 2), written="; `a ** b`")
_arith_kind("maximum", "maximum", "Elementwise maximum", (2, 2))
_arith_kind("minimum", "minimum", "Elementwise minimum", (2, 2))


def _concat_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    import jax.numpy as jnp

    axis = norm_axis("concat", a.axis, ins[0].rank) - ins[0].rank  # same axis when batched

    def concat(*xs: Any) -> Any:
        return jnp.concatenate(xs, axis=axis)

    return concat


@layer(
    "concat",
    family=FAMILY,
    doc="Join two or more inputs along one per-sample axis (`jnp.concatenate`); all other "
    "axes and the dtypes must match.",
    attrs=(
        Attr(
            "axis",
            "int",
            -1,
            doc="per-sample axis to join along (batch not counted; negative counts from the end)",
        ),
    ),
    build=_concat_build,
    n_inputs=(2, None),
    example="""model Example {
    input a: f32[8, 8, 16]
    input b: f32[8, 8, 4]
    output y = (a, b) -> concat -> conv(8, 1)
}""",
)
def _concat(a: Args, ins: list[TensorType]) -> list[TensorType]:
    same_dtype("concat", ins)
    first = ins[0]
    axis = norm_axis("concat", a.axis, first.rank)
    size: Dim = first.shape[axis]
    for x in ins[1:]:
        if x.rank != first.rank:
            raise ArgError("E301", f"`concat` inputs have different ranks: {first} and {x}")
        if any(
            p != q for i, (p, q) in enumerate(zip(first.shape, x.shape, strict=True)) if i != axis
        ):
            raise fail(
                f"`concat` along axis {a.axis} needs all other axes equal, but got {first} and {x}",
                arg="axis",
            )
        size = dim_add(size, x.shape[axis])
    return [first.with_shape(first.shape[:axis] + (size,) + first.shape[axis + 1 :])]
