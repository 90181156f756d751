"""Reductions over per-sample axes: ``sum``, ``mean``, ``max``, ``min``, ``prod``,
``norm`` and ``logsumexp``, each with ``axis`` (one axis, a tuple of axes, or unset for
every per-sample axis) and ``keepdims``.

The batch axis is never reduced: axes count over the per-sample shape, negative ones
from the end, so ``sum(axis = -1)`` of ``f32[T, 8]`` is ``f32[T]``. An axis out of range
or named twice is E202 at the ``axis`` argument. Imports only the layer base and shapes;
build rules import JAX lazily.
"""

from __future__ import annotations

from typing import Any

from nnlang.diagnostics import ArgError
from nnlang.layers.base import Args, Attr, fail, layer, norm_axis
from nnlang.layers.elementwise import CAST_HELP
from nnlang.shapes import TensorType, concrete_numel

FAMILY = "reduce"

_ATTRS = (
    Attr(
        "axis",
        "ints",
        None,
        doc="per-sample axis or tuple of axes to reduce (batch not counted; negative counts "
        "from the end); unset: every per-sample axis",
    ),
    Attr("keepdims", "bool", False, doc="keep each reduced axis with size 1"),
)


def reduced_axes(kind: str, a: Args, x: TensorType) -> tuple[int, ...]:
    """The reduced per-sample axes, ``0..rank-1``, in increasing order."""
    if a.axis is None:
        return tuple(range(x.rank))
    given = a.axis if isinstance(a.axis, tuple) else (a.axis,)
    axes = [norm_axis(kind, ax, x.rank) for ax in given]
    if len(set(axes)) != len(axes):
        raise fail(f"`{kind}` names an axis twice in axis = {a.axis}", arg="axis", code="E202")
    return tuple(sorted(axes))


def _reduce_kind(
    name: str, doc: str, fn: str, *, float_only: bool, extra: tuple[Attr, ...] = ()
) -> None:
    def shape(a: Args, ins: list[TensorType]) -> list[TensorType]:
        x = ins[0]
        if x.dtype == "bool" or (float_only and not x.is_float):
            raise ArgError(
                "E304",
                f"`{name}` needs a {'floating-point' if float_only else 'numeric'} tensor "
                f"but got {x}",
                help=CAST_HELP,
            )
        axes = reduced_axes(name, a, x)
        if a.keepdims:
            dims = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
        else:
            dims = tuple(d for i, d in enumerate(x.shape) if i not in axes)
        return [x.with_shape(dims)]

    def build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
        from nnlang.layers.modules import reduction

        axes = tuple(i + 1 for i in reduced_axes(name, a, ins[0]))  # the batched array's
        return reduction(fn, axes, a.keepdims, a.get("ord", 2))

    layer(
        name,
        family=FAMILY,
        doc=doc,
        attrs=_ATTRS + extra,
        flops=lambda a, ins, outs: concrete_numel(ins[0].shape),
        build=build,
        example=f"""model Example {{
    input x: f32[T, 8]
    output y = x -> {name}(axis = -1, keepdims = true)
}}""",
    )(shape)


_reduce_kind(
    "sum", "Sum over per-sample axes (`jnp.sum`), in the input's dtype.", "sum", float_only=False
)
_reduce_kind("mean", "Mean over per-sample axes (`jnp.mean`).", "mean", float_only=True)
_reduce_kind("max", "Largest element over per-sample axes (`jnp.max`).", "max", float_only=False)
_reduce_kind("min", "Smallest element over per-sample axes (`jnp.min`).", "min", float_only=False)
_reduce_kind(
    "prod",
    "Product over per-sample axes (`jnp.prod`), in the input's dtype.",
    "prod",
    float_only=False,
)
_reduce_kind(
    "logsumexp",
    "`log(sum(exp(x)))` over per-sample axes, computed stably (`jax.nn.logsumexp`).",
    "logsumexp",
    float_only=True,
)
_reduce_kind(
    "norm",
    "Vector norm over per-sample axes: `sqrt(sum(x ** 2))` for `ord = 2`, `sum(abs(x))` "
    "for `ord = 1`.",
    "norm",
    float_only=True,
    extra=(Attr("ord", "int", 2, doc="which norm: 1 or 2", choices=(1, 2)),),
)
