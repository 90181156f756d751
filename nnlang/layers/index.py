"""Indexing: ``slice``, ``take``, ``split``, ``flip``, ``pad``, ``stack``,
``expand_dims`` and ``squeeze`` (integer ids: :mod:`nnlang.layers.ids`).

Every axis counts over the per-sample shape (the batch axis is never indexed; negative
axes count from the end). Slicing a symbolic axis is allowed where the result's size is
known (``slice(0, 1)`` of ``f32[T, 8]`` is ``f32[T - 1, 8]``). Imports only the layer base
and shapes; build rules import JAX lazily.
"""

from __future__ import annotations

from typing import Any

from nnlang.diagnostics import ArgError
from nnlang.layers.base import Args, Attr, fail, layer, norm_axis
from nnlang.layers.elementwise import number_fits
from nnlang.layers.merge import same_dtype
from nnlang.shapes import Dim, TensorType, dim_add, is_concrete

FAMILY = "index"

_AXIS = Attr("axis", "int", doc="per-sample axis (batch not counted; negative counts from the end)")


def _with_axis(x: TensorType, axis: int, size: Dim | None) -> TensorType:
    """``x`` with axis ``axis`` resized to ``size`` (removed when None)."""
    dims = list(x.shape)
    if size is None:
        del dims[axis]
    else:
        dims[axis] = size
    return x.with_shape(tuple(dims))


def _batched(axis: int, rank: int) -> int:
    return axis - rank  # the same axis of the batched array, counted from the end


# ---------------------------------------------------------------------- slice
def _slice_size(a: Args, x: TensorType, axis: int) -> Dim:
    d = x.shape[axis]
    if is_concrete(d):
        n = len(range(*slice(a.start, a.stop, a.step).indices(int(d))))
        if n == 0:
            stop = "the end" if a.stop is None else a.stop
            raise fail(
                f"`slice` from {a.start} to {stop} of axis {a.axis} (size {d}) is empty",
                arg="start",
                code="E202",
            )
        return n
    start, stop = a.start, a.stop
    if a.step == 1 and start >= 0 and (stop is None or stop < 0):
        return dim_add(d, -(start - (stop or 0)))
    raise ArgError(
        "E305",
        f"`slice` from {start} to {'the end' if stop is None else stop} (step {a.step}) of "
        f"the symbolic axis {d} in {x} "
        "has no known size",
        arg="stop" if stop is not None else "start",
        help="on a symbolic axis, slice with step 1 from a non-negative start to the end or "
        "to a negative stop (`take` picks single positions)",
    )


def _slice_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    x = ins[0]
    index = (Ellipsis, slice(a.start, a.stop, a.step)) + (slice(None),) * (
        x.rank - 1 - norm_axis("slice", a.axis, x.rank)
    )

    def slice_(v: Any) -> Any:
        return v[index]

    return slice_


@layer(
    "slice",
    family=FAMILY,
    doc="Elements `start` to `stop` (excluded) with a `step` along one axis, like Python's "
    "`x[start:stop:step]`; negative positions count from the end.",
    attrs=(
        _AXIS,
        Attr("start", "int", 0, doc="first position (negative counts from the end)"),
        Attr("stop", "int", None, doc="position to stop before (unset: the end)"),
        Attr("step", "int", 1, doc="stride between taken positions", min=1),
    ),
    build=_slice_build,
    example="""model Example {
    input x: f32[T, 8]
    output y = x -> slice(0, 1)
}""",
)
def _slice(a: Args, ins: list[TensorType]) -> list[TensorType]:
    x = ins[0]
    axis = norm_axis("slice", a.axis, x.rank)
    return [_with_axis(x, axis, _slice_size(a, x, axis))]


# ----------------------------------------------------------------------- take
def _take_index(a: Args, x: TensorType) -> tuple[int, tuple[int, ...] | int]:
    axis = norm_axis("take", a.axis, x.rank)
    d = x.shape[axis]
    given = a.index if isinstance(a.index, tuple) else (a.index,)
    if is_concrete(d):
        bad = [i for i in given if not -int(d) <= i < int(d)]
        if bad:
            raise fail(
                f"`take` index {bad[0]} is outside axis {a.axis} of {x} (size {d})",
                arg="index",
                code="E202",
            )
        given = tuple(i % int(d) for i in given)
    return axis, given if isinstance(a.index, tuple) else given[0]


def _take_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    import jax.numpy as jnp

    x = ins[0]
    axis, index = _take_index(a, x)
    if isinstance(index, int):
        pick = (Ellipsis, index) + (slice(None),) * (x.rank - 1 - axis)
        return lambda v: v[pick]
    rows = tuple(index)
    return lambda v: jnp.take(v, jnp.asarray(rows, jnp.int32), axis=_batched(axis, x.rank))


@layer(
    "take",
    family=FAMILY,
    doc="The elements at fixed positions along one axis: one index removes the axis "
    "(`x[..., i]`), a tuple of indices keeps it with one entry per index (`jnp.take`). "
    "Indices are checked against fixed sizes (not against a symbolic axis).",
    attrs=(_AXIS, Attr("index", "ints", doc="a position, or a tuple of positions")),
    build=_take_build,
    example="""model Example {
    input x: f32[T, 8]
    output last = x -> take(0, -1) -> dense(2)
}""",
)
def _take(a: Args, ins: list[TensorType]) -> list[TensorType]:
    x = ins[0]
    axis, index = _take_index(a, x)
    return [_with_axis(x, axis, None if isinstance(index, int) else len(index))]


# ---------------------------------------------------------------------- split
def _split_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    import jax.numpy as jnp

    x = ins[0]
    axis = _batched(norm_axis("split", a.axis, x.rank), x.rank)

    def split(v: Any) -> Any:
        return tuple(jnp.split(v, a.parts, axis=axis))

    return split


@layer(
    "split",
    family=FAMILY,
    doc="Cut one axis into `parts` equal pieces (`jnp.split`); gives `parts` tensors.",
    attrs=(
        Attr("parts", "int", doc="number of pieces; must divide the axis", min=2),
        Attr("axis", "int", -1, doc="per-sample axis to cut (negative counts from the end)"),
    ),
    build=_split_build,
    n_outputs=lambda a: int(a.parts),
    example="""model Example {
    input x: f32[16]
    a, b = x -> split(2)
    output y = a * (b -> sigmoid)
}""",
)
def _split(a: Args, ins: list[TensorType]) -> list[TensorType]:
    x = ins[0]
    axis = norm_axis("split", a.axis, x.rank)
    d = x.shape[axis]
    if not is_concrete(d):
        raise ArgError(
            "E305", f"`split` cannot cut the symbolic axis {d} of {x} evenly", arg="axis"
        )
    if int(d) % a.parts:
        raise fail(
            f"`split` cannot cut axis {a.axis} of {x} (size {d}) into {a.parts} equal parts",
            arg="parts",
        )
    return [_with_axis(x, axis, int(d) // a.parts)] * a.parts


# ----------------------------------------------------------------------- flip
def _axes(kind: str, a: Args, x: TensorType) -> tuple[int, ...]:
    given = a.axis if isinstance(a.axis, tuple) else (a.axis,)
    axes = tuple(norm_axis(kind, ax, x.rank) for ax in given)
    if len(set(axes)) != len(axes):
        raise fail(f"`{kind}` names an axis twice in axis = {a.axis}", arg="axis", code="E202")
    return axes


def _flip_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    import jax.numpy as jnp

    x = ins[0]
    axes = tuple(_batched(ax, x.rank) for ax in _axes("flip", a, x))
    return lambda v: jnp.flip(v, axis=axes)


@layer(
    "flip",
    family=FAMILY,
    doc="Reverse the order of elements along one or more axes (`jnp.flip`).",
    attrs=(
        Attr(
            "axis",
            "ints",
            doc="per-sample axis or tuple of axes (batch not counted; negative counts from "
            "the end)",
        ),
    ),
    build=_flip_build,
    example="""model Example {
    input x: f32[T, 8]
    output y = x + (x -> flip(0))
}""",
)
def _flip(a: Args, ins: list[TensorType]) -> list[TensorType]:
    _axes("flip", a, ins[0])
    return [ins[0]]


# ------------------------------------------------------------------------ pad
def _widths(a: Args, x: TensorType) -> list[tuple[int, int]]:
    """``widths`` as one (before, after) pair per per-sample axis."""
    w = a.widths

    def width(n: Any) -> bool:
        return isinstance(n, int) and not isinstance(n, bool) and n >= 0

    def pair(v: Any) -> tuple[int, int] | None:
        if width(v):
            return (v, v)
        if isinstance(v, tuple) and len(v) == 2 and all(width(n) for n in v):
            return (v[0], v[1])
        return None

    if width(w):
        return [(w, w)] * x.rank
    if x.rank == 1 and pair(w) is not None and isinstance(w, tuple):
        return [(w[0], w[1])]  # one axis: a bare (before, after) pair
    if isinstance(w, tuple) and len(w) == x.rank:
        pairs = [pair(v) for v in w]
        if all(p is not None for p in pairs):
            return [p for p in pairs if p is not None]
    raise ArgError(
        "E201",
        f"`pad` widths must be a non-negative integer or a tuple of {x.rank} entries (one "
        f"per per-sample axis of {x}), each an integer or a (before, after) pair, not {w}",
        arg="widths",
        help="e.g. `pad(((0, 0), (1, 2)))` pads the second axis by 1 before and 2 after",
    )


def _pad_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    import jax.numpy as jnp

    widths = [(0, 0), *_widths(a, ins[0])]
    if a.mode == "edge":
        from nnlang.layers.modules import edge_pad

        return edge_pad(widths)
    if a.mode == "constant":
        return lambda v: jnp.pad(v, widths, constant_values=a.value)
    return lambda v: jnp.pad(v, widths, mode=a.mode)


@layer(
    "pad",
    family=FAMILY,
    doc="Pad the per-sample axes (`jnp.pad`), each by its own (before, after) widths: with "
    '`value` (`mode = "constant"`), the mirrored inner elements (`"reflect"`) or the edge '
    'element repeated (`"edge"`).',
    attrs=(
        Attr(
            "widths",
            "any",
            doc="an integer (every axis, both sides) or one entry per per-sample axis: an "
            "integer or a (before, after) pair (a rank-1 input also takes a bare pair)",
        ),
        Attr("value", "number", 0, doc='the padding value for mode "constant"'),
        Attr("mode", "str", "constant", doc="how to pad", choices=("constant", "reflect", "edge")),
    ),
    build=_pad_build,
    example="""model Example {
    input x: f32[T, 8]
    output y = x -> pad(((2, 0), 0)) -> conv1d(4, 3, padding = "valid")
}""",
)
def _pad(a: Args, ins: list[TensorType]) -> list[TensorType]:
    x = ins[0]
    widths = _widths(a, x)
    number_fits("`pad`", x, a.value, "value")
    if a.mode == "reflect":
        for d, (lo, hi) in zip(x.shape, widths, strict=True):
            if is_concrete(d) and max(lo, hi) >= int(d):
                raise fail(
                    f'`pad` mode "reflect" needs widths below the axis size, but {x} is padded '
                    f"by {(lo, hi)}",
                    arg="widths",
                    code="E202",
                )
    return [
        x.with_shape(
            tuple(dim_add(d, lo + hi) for d, (lo, hi) in zip(x.shape, widths, strict=True))
        )
    ]


# ---------------------------------------------------------------------- stack
def _stack_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    import jax.numpy as jnp

    rank = ins[0].rank + 1
    axis = _batched(norm_axis("stack", a.axis, rank), rank)
    return lambda *vs: jnp.stack(vs, axis=axis)


@layer(
    "stack",
    family=FAMILY,
    doc="Join two or more tensors of one type along a new axis (`jnp.stack`).",
    attrs=(
        Attr(
            "axis",
            "int",
            0,
            doc="position of the new axis among the output's per-sample axes (negative counts "
            "from the end)",
        ),
    ),
    build=_stack_build,
    n_inputs=(2, None),
    example="""model Example {
    input a: f32[8]
    input b: f32[8]
    output y = (a, b) -> stack(axis = -1) -> dense(1)
}""",
)
def _stack(a: Args, ins: list[TensorType]) -> list[TensorType]:
    same_dtype("stack", ins)
    first = ins[0]
    for x in ins[1:]:
        if x.shape != first.shape:
            raise fail(f"`stack` needs inputs of one shape, but got {first} and {x}")
    axis = norm_axis("stack", a.axis, first.rank + 1)
    return [first.with_shape(first.shape[:axis] + (len(ins),) + first.shape[axis:])]


# ------------------------------------------------------- expand_dims, squeeze
def _expand_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    import jax.numpy as jnp

    rank = ins[0].rank + 1
    axis = _batched(norm_axis("expand_dims", a.axis, rank), rank)
    return lambda v: jnp.expand_dims(v, axis)


@layer(
    "expand_dims",
    family=FAMILY,
    doc="Insert an axis of size 1 (`jnp.expand_dims`).",
    attrs=(
        Attr(
            "axis",
            "int",
            -1,
            doc="position of the new axis among the output's per-sample axes (negative counts "
            "from the end)",
        ),
    ),
    build=_expand_build,
    example="""model Example {
    input x: f32[8, 8]
    output y = x -> expand_dims -> conv(4, 3)
}""",
)
def _expand_dims(a: Args, ins: list[TensorType]) -> list[TensorType]:
    x = ins[0]
    axis = norm_axis("expand_dims", a.axis, x.rank + 1)
    return [x.with_shape(x.shape[:axis] + (1,) + x.shape[axis:])]


def _squeezed(a: Args, x: TensorType) -> tuple[int, ...]:
    if a.axis is None:
        return tuple(i for i, d in enumerate(x.shape) if d == 1)
    axes = _axes("squeeze", a, x)
    for ax in axes:
        if x.shape[ax] != 1:
            raise fail(f"`squeeze` axis {ax} of {x} has size {x.shape[ax]}, not 1", arg="axis")
    return axes


def _squeeze_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    axes = tuple(i + 1 for i in _squeezed(a, ins[0]))
    return lambda v: v.squeeze(axes) if axes else v


@layer(
    "squeeze",
    family=FAMILY,
    doc="Remove axes of size 1 (`jnp.squeeze`): the given ones, or every one of fixed size 1.",
    attrs=(
        Attr(
            "axis",
            "ints",
            None,
            doc="per-sample axis or tuple of axes, each of size 1 (unset: all of size 1)",
        ),
    ),
    build=_squeeze_build,
    example="""model Example {
    input x: f32[8]
    output y = x -> dense(1) -> squeeze
}""",
)
def _squeeze(a: Args, ins: list[TensorType]) -> list[TensorType]:
    x = ins[0]
    axes = _squeezed(a, x)
    return [x.with_shape(tuple(d for i, d in enumerate(x.shape) if i not in axes))]
