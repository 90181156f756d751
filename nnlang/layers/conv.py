"""Convolutions over channels-last inputs ``[*spatial, C]`` (``nnx.Conv``,
``nnx.ConvTranspose``), and the window arithmetic that pooling shares.

Output sizes follow XLA exactly: with ``"same"`` padding ``ceil(n / stride)``; with
``"valid"`` ``floor((n - dilated_kernel) / stride) + 1``; with explicit padding ``p``
``floor((n + 2p - dilated_kernel) / stride) + 1``, where
``dilated_kernel = (kernel - 1) * dilation + 1``.
"""

from __future__ import annotations

import math
from typing import Any

from nnlang.diagnostics import ArgError
from nnlang.layers.base import Args, Attr, expect_float, expect_rank, fail, layer
from nnlang.layers.core import concrete_last
from nnlang.shapes import (
    Dim,
    TensorType,
    concrete_numel,
    dim_add,
    dim_ceildiv,
    dim_floordiv,
    dim_mul,
    is_concrete,
)

FAMILY = "convolution"

#: per-sample layout by number of spatial axes, for rank error messages.
LAYOUTS = {1: "[L, C]", 2: "[H, W, C]", 3: "[D, H, W, C]"}
ANY_LAYOUT = "[L, C], [H, W, C] or [D, H, W, C]"

Padding = str | tuple[int, ...]  # "SAME", "VALID" or one symmetric pad per axis


# ----------------------------------------------------------------- shared helpers
def spatial_input(kind: str, x: TensorType, n: int | None) -> int:
    """Check a float ``[*spatial, C]`` input with ``n`` (or 1..3) spatial axes."""
    expect_float(kind, x)
    if n is None:
        expect_rank(kind, x, (2, 3, 4), ANY_LAYOUT)
    else:
        expect_rank(kind, x, (n + 1,), LAYOUTS[n])
    return x.rank - 1


def per_axis(kind: str, a: Args, name: str, n: int, *, default: Any = None) -> tuple[int, ...]:
    """An ``ints`` attribute as one positive int per spatial axis."""
    v = a[name] if a[name] is not None else default
    vals = tuple(v) if isinstance(v, (tuple, list)) else (v,) * n
    if len(vals) != n:
        raise fail(
            f"`{kind}` got {name} = {v} with {len(vals)} entries for an input with "
            f"{n} spatial ax{'is' if n == 1 else 'es'}",
            arg=name,
            code="E202",
            help=f"give one int, or a tuple of {n}",
        )
    if any(not isinstance(k, int) or k < 1 for k in vals):
        raise fail(f"`{kind}` {name} entries must be at least 1 but got {v}", arg=name, code="E202")
    return vals


def padding_of(kind: str, a: Args, n: int) -> Padding:
    """The ``padding`` attribute as "SAME", "VALID" or one symmetric pad per axis."""
    p = a.padding
    if isinstance(p, str):
        if p.lower() not in ("same", "valid"):
            raise fail(
                f'`{kind}` padding must be "same", "valid" or ints but got "{p}"',
                arg="padding",
                code="E202",
            )
        return p.upper()
    pads = tuple(p) if isinstance(p, (tuple, list)) else (p,) * n
    if len(pads) != n or any(not isinstance(q, int) or q < 0 for q in pads):
        raise fail(
            f"`{kind}` padding {p} must be a non-negative int or a tuple of {n}",
            arg="padding",
            code="E202",
        )
    return pads


def lax_padding(pad: Padding) -> Any:
    """Padding as flax/lax take it: a string, or ``(low, high)`` pairs."""
    return pad if isinstance(pad, str) else [(q, q) for q in pad]


def window_out(
    kind: str,
    x: TensorType,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    pad: Padding,
    *,
    arg: str,
) -> tuple[Dim, ...]:
    """Spatial output sizes of a strided window (conv or pool) over ``x``."""
    out: list[Dim] = []
    for i, (size, k, s, d) in enumerate(zip(x.shape[:-1], kernel, stride, dilation, strict=True)):
        if pad == "SAME":
            out.append(dim_ceildiv(size, s))
            continue
        span = (k - 1) * d + 1
        extra = 2 * pad[i] if isinstance(pad, tuple) else 0
        reach = dim_add(size, extra - span)
        if is_concrete(reach) and reach < 0:
            raise ArgError(
                "E303",
                f"`{kind}` output reaches size 0 on spatial axis {i}: the input {x} has "
                f"{size} there{f' (+{extra} padding)' if extra else ''} but the {arg} "
                f"spans {span}",
                arg=arg,
                help='use a smaller window, padding = "same", or a larger input',
            )
        out.append(dim_add(dim_floordiv(reach, s), 1))
    return tuple(out)


# --------------------------------------------------------------------- conv
_CONV_ATTRS = (
    Attr("filters", "int", doc="number of output channels", min=1),
    Attr("kernel", "ints", doc="window size: one int, or one per spatial axis", min=1),
    Attr("stride", "ints", 1, doc="step between windows: one int, or one per spatial axis", min=1),
    Attr(
        "padding",
        "padding",
        "same",
        doc='"same" (output = ceil(input / stride)), "valid" (no padding), or symmetric '
        "zero padding: one int, or one per spatial axis",
    ),
    Attr("dilation", "ints", 1, doc="kernel dilation: one int, or one per spatial axis", min=1),
    Attr(
        "groups",
        "int",
        1,
        doc="feature groups; must divide input and output channels; groups = input channels "
        "is a depthwise convolution",
        min=1,
    ),
    Attr("use_bias", "bool", True, doc="add a learned bias per output channel"),
)


def _conv_config(kind: str, a: Args, x: TensorType, n: int | None) -> dict[str, Any]:
    n = spatial_input(kind, x, n)
    cin = concrete_last(kind, x, "channel")
    if cin % a.groups or a.filters % a.groups:
        raise fail(
            f"`{kind}` groups = {a.groups} must divide the input channels ({cin}) and "
            f"filters ({a.filters})",
            arg="groups",
        )
    return {
        "cin": cin,
        "kernel": per_axis(kind, a, "kernel", n),
        "stride": per_axis(kind, a, "stride", n),
        "dilation": per_axis(kind, a, "dilation", n),
        "pad": padding_of(kind, a, n),
    }


def _conv_kind(name: str, n: int | None) -> None:
    """Declare ``conv`` (rank inferred, ``n`` None) or its fixed-rank variant."""

    def shape(a: Args, ins: list[TensorType]) -> list[TensorType]:
        x = ins[0]
        c = _conv_config(name, a, x, n)
        sp = window_out(name, x, c["kernel"], c["stride"], c["dilation"], c["pad"], arg="kernel")
        return [x.with_shape(sp + (a.filters,))]

    def params(a: Args, ins: list[TensorType]) -> int:
        c = _conv_config(name, a, ins[0], n)
        per_filter = math.prod(c["kernel"]) * c["cin"] // a.groups
        return a.filters * per_filter + (a.filters if a.use_bias else 0)

    def flops(a: Args, ins: list[TensorType], outs: list[TensorType]) -> int:
        c = _conv_config(name, a, ins[0], n)
        macs = math.prod(c["kernel"]) * c["cin"] // a.groups
        return 2 * concrete_numel(outs[0].shape) * macs

    def build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
        from flax import nnx

        from nnlang.layers.modules import dtype_of

        c = _conv_config(name, a, ins[0], n)
        return nnx.Conv(
            c["cin"],
            a.filters,
            kernel_size=c["kernel"],
            strides=c["stride"],
            padding=lax_padding(c["pad"]),
            kernel_dilation=c["dilation"],
            feature_group_count=a.groups,
            use_bias=a.use_bias,
            dtype=dtype_of(ins[0]),
            rngs=rngs,
        )

    what = {
        None: "Convolution over channels-last `[L, C]`, `[H, W, C]` or `[D, H, W, C]`, "
        "1-, 2- or 3-D by input rank",
        1: "1-D convolution over channels-last `[L, C]`",
        2: "2-D convolution over channels-last `[H, W, C]`",
        3: "3-D convolution over channels-last `[D, H, W, C]`",
    }[n]
    example_input = {
        None: "f32[8, 8, 3]",
        1: "f32[T, 16]",
        2: "f32[28, 28, 1]",
        3: "f32[8, 8, 8, 1]",
    }
    layer(
        name,
        family=FAMILY,
        doc=f"{what} (`nnx.Conv`); output sizes follow XLA's SAME/VALID rules.",
        attrs=_CONV_ATTRS,
        params=params,
        flops=flops,
        build=build,
        example=f"""model Example {{
    input x: {example_input[n]}
    output y = x -> {name}(16, 3, stride = 2) -> relu
}}""",
    )(shape)


_conv_kind("conv", None)
for _n in (1, 2, 3):
    _conv_kind(f"conv{_n}d", _n)


# ----------------------------------------------------------- conv_transpose
def _convt_config(a: Args, x: TensorType) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    n = spatial_input("conv_transpose", x, None)
    cin = concrete_last("conv_transpose", x, "channel")
    return (
        cin,
        per_axis("conv_transpose", a, "kernel", n),
        per_axis("conv_transpose", a, "stride", n),
    )


def _convt_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    from flax import nnx

    from nnlang.layers.modules import dtype_of

    cin, kernel, stride = _convt_config(a, ins[0])
    return nnx.ConvTranspose(
        cin,
        a.filters,
        kernel_size=kernel,
        strides=stride,
        padding=a.padding.upper(),
        use_bias=a.use_bias,
        dtype=dtype_of(ins[0]),
        rngs=rngs,
    )


def _convt_params(a: Args, ins: list[TensorType]) -> int:
    cin, kernel, _ = _convt_config(a, ins[0])
    return math.prod(kernel) * cin * a.filters + (a.filters if a.use_bias else 0)


def _convt_flops(a: Args, ins: list[TensorType], outs: list[TensorType]) -> int:
    cin, kernel, _ = _convt_config(a, ins[0])
    return 2 * concrete_numel(ins[0].shape[:-1]) * math.prod(kernel) * cin * a.filters


@layer(
    "conv_transpose",
    family=FAMILY,
    doc="Transposed (fractionally strided) convolution over `[*spatial, C]` "
    "(`nnx.ConvTranspose`, i.e. `lax.conv_transpose`): each spatial size n becomes "
    '`n * stride` with "same" padding, `n * stride + max(kernel - stride, 0)` with "valid".',
    attrs=(
        Attr("filters", "int", doc="number of output channels", min=1),
        Attr("kernel", "ints", doc="window size: one int, or one per spatial axis", min=1),
        Attr("stride", "ints", 1, doc="upsampling step: one int, or one per spatial axis", min=1),
        Attr("padding", "str", "same", doc='"same" or "valid"', choices=("same", "valid")),
        Attr("use_bias", "bool", True, doc="add a learned bias per output channel"),
    ),
    params=_convt_params,
    flops=_convt_flops,
    build=_convt_build,
    example="""model Example {
    input x: f32[7, 7, 32]
    output y = x -> conv_transpose(16, 3, stride = 2) -> relu
}""",
)
def _conv_transpose(a: Args, ins: list[TensorType]) -> list[TensorType]:
    x = ins[0]
    _, kernel, stride = _convt_config(a, x)
    valid = a.padding.lower() == "valid"
    sp = tuple(
        dim_add(dim_mul(size, s), max(k - s, 0) if valid else 0)
        for size, k, s in zip(x.shape[:-1], kernel, stride, strict=True)
    )
    return [x.with_shape(sp + (a.filters,))]
