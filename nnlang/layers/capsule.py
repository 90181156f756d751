"""Capsule layers (Sabour, Frosst & Hinton 2017, "Dynamic Routing Between Capsules"):
the squash non-linearity, primary capsules, capsule layers routed by agreement, and
the label mask in front of the reconstruction decoder. A capsule's length is its
class score: ``caps -> norm(axis = -1)`` (see Reductions).

Imports the layer base, the convolution helpers and shapes; build rules import Flax
lazily.
"""

from __future__ import annotations

import math
from typing import Any

from nnlang.diagnostics import ArgError
from nnlang.layers.base import Args, Attr, expect_float, expect_min_rank, expect_rank, layer
from nnlang.layers.conv import per_axis, window_out
from nnlang.layers.core import concrete_last
from nnlang.shapes import TensorType, concrete_numel, dim_mul, is_concrete

FAMILY = "capsule"


def _elements(a: Args, ins: list[TensorType], outs: list[TensorType]) -> int:
    return 4 * concrete_numel(outs[0].shape)


# --------------------------------------------------------------------- squash
def _squash_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    from nnlang.layers.family_modules import squash

    return squash


@layer(
    "squash",
    family=FAMILY,
    doc="The capsule non-linearity along the last axis: `v = ‖s‖²/(1 + ‖s‖²) · s/‖s‖` "
    "(Sabour et al. 2017, eq. 1): short vectors shrink to almost zero, long ones to just "
    "under unit length.",
    flops=_elements,
    build=_squash_build,
    example="""model Example {
    input x: f32[32, 8]
    output v = x -> squash
}""",
)
def _squash(a: Args, ins: list[TensorType]) -> list[TensorType]:
    expect_float("squash", ins[0])
    expect_min_rank("squash", ins[0], 1, "[..., D]")
    return [ins[0]]


# --------------------------------------------------------------- primary_caps
def _primary_config(a: Args, x: TensorType) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    expect_float("primary_caps", x)
    expect_rank("primary_caps", x, (3,), "[H, W, C]")
    cin = concrete_last("primary_caps", x, "channel")
    return cin, per_axis("primary_caps", a, "kernel", 2), per_axis("primary_caps", a, "stride", 2)


def _primary_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    from flax import nnx

    from nnlang.layers.family_modules import PrimaryCaps
    from nnlang.layers.modules import dtype_of

    cin, kernel, stride = _primary_config(a, ins[0])
    conv = nnx.Conv(
        cin,
        a.capsules * a.dim,
        kernel_size=kernel,
        strides=stride,
        padding="VALID",
        dtype=dtype_of(ins[0]),
        rngs=rngs,
    )
    return PrimaryCaps(conv, a.dim)


def _primary_params(a: Args, ins: list[TensorType]) -> int:
    cin, kernel, _ = _primary_config(a, ins[0])
    out = a.capsules * a.dim
    return math.prod(kernel) * cin * out + out


@layer(
    "primary_caps",
    family=FAMILY,
    doc="Primary capsules: a VALID convolution of `capsules · dim` filters over "
    "`[H, W, C]`, each output position's channels cut into `capsules` vectors of `dim`, "
    "all positions' capsules listed as `[H'·W'·capsules, dim]` and squashed.",
    attrs=(
        Attr("capsules", "int", doc="capsule types per position", min=1),
        Attr("dim", "int", doc="length of each capsule vector", min=1),
        Attr("kernel", "ints", doc="window size: one int, or (height, width)", min=1),
        Attr("stride", "ints", 1, doc="step between windows: one int, or two", min=1),
    ),
    params=_primary_params,
    flops=lambda a, ins, outs: (
        2
        * concrete_numel(outs[0].shape)
        * math.prod(_primary_config(a, ins[0])[1])
        * _primary_config(a, ins[0])[0]
    ),
    build=_primary_build,
    example="""model Example {
    input image: f32[8, 8, 1]
    output caps = image -> conv(32, 3) -> relu -> primary_caps(8, 8, 3, stride = 2)
}""",
)
def _primary(a: Args, ins: list[TensorType]) -> list[TensorType]:
    x = ins[0]
    _, kernel, stride = _primary_config(a, x)
    h, w = window_out("primary_caps", x, kernel, stride, (1, 1), "VALID", arg="kernel")
    return [x.with_shape((dim_mul(dim_mul(h, w), a.capsules), a.dim))]


# -------------------------------------------------------------------- capsule
def _capsule_input(x: TensorType) -> tuple[int, int]:
    expect_float("capsule", x)
    expect_rank("capsule", x, (2,), "[N, D] (N input capsules of length D)")
    n = x.shape[0]
    if not is_concrete(n):
        raise ArgError(
            "E305",
            f"`capsule` needs a fixed number of input capsules but got {x}",
            help="each input capsule has its own transformation matrices",
        )
    return int(n), concrete_last("capsule", x, "capsule length")


def _capsule_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    from nnlang.layers.family_modules import Capsule
    from nnlang.layers.modules import dtype_of

    n, d = _capsule_input(ins[0])
    return Capsule(n, d, a.capsules, a.dim, a.routing, dtype=dtype_of(ins[0]), rngs=rngs)


def _capsule_params(a: Args, ins: list[TensorType]) -> int:
    n, d = _capsule_input(ins[0])
    return n * a.capsules * a.dim * d


def _capsule_flops(a: Args, ins: list[TensorType], outs: list[TensorType]) -> int:
    n, d = _capsule_input(ins[0])
    predictions = 2 * n * a.capsules * a.dim * d
    return predictions + a.routing * 4 * n * a.capsules * a.dim


@layer(
    "capsule",
    family=FAMILY,
    doc="A capsule layer routed by agreement (Sabour et al. 2017, procedure 1) from "
    "`[N, D]` input capsules `u_i` to `[capsules, dim]`: predictions "
    "`û_{j|i} = W_ij u_i` (learned `W_ij`, no bias); logits `b_ij = 0`; `routing` times: "
    "`c_ij = softmax_j(b_ij)`, `s_j = Σ_i c_ij û_{j|i}`, `v_j = squash(s_j)`, and, "
    "between iterations, `b_ij += û_{j|i} · v_j`. The output is the last `v`.",
    attrs=(
        Attr("capsules", "int", doc="number of output capsules (e.g. one per class)", min=1),
        Attr("dim", "int", doc="length of each output capsule", min=1),
        Attr("routing", "int", 3, doc="iterations of routing by agreement", min=1),
    ),
    params=_capsule_params,
    flops=_capsule_flops,
    build=_capsule_build,
    example="""model Example {
    input u: f32[72, 8]
    caps = u -> capsule(10, 16, routing = 3)
    output lengths = caps -> norm(axis = -1)
}""",
)
def _capsule(a: Args, ins: list[TensorType]) -> list[TensorType]:
    _capsule_input(ins[0])
    return [ins[0].with_shape((a.capsules, a.dim))]


# -------------------------------------------------------------- mask_capsules
def _mask_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    from nnlang.layers.family_modules import MaskCapsules

    return MaskCapsules()


@layer(
    "mask_capsules",
    family=FAMILY,
    doc="Keep one capsule of `[K, D]`, zeroing the others, for the reconstruction "
    "decoder: while training, the one its second input (a one-hot label `[K]`, e.g. "
    "`label -> one_hot(10)`) marks; in eval mode, or with no label input, the longest "
    "one (the prediction).",
    flops=_elements,
    build=_mask_build,
    n_inputs=(1, 2),
    has_train_mode=True,
    example="""model Example {
    input caps: f32[10, 16]
    input label: i32[]
    masked = mask_capsules(caps, label -> one_hot(10))
    output image = masked -> flatten -> dense(64) -> sigmoid
}""",
)
def _mask(a: Args, ins: list[TensorType]) -> list[TensorType]:
    caps = ins[0]
    expect_float("mask_capsules", caps)
    expect_rank("mask_capsules", caps, (2,), "[K, D]")
    if len(ins) == 2:
        label = ins[1]
        if label.shape != caps.shape[:1]:
            raise ArgError(
                "E302",
                f"`mask_capsules` needs a one-hot label [{caps.shape[0]}] for the "
                f"capsules {caps} but got {label}",
                help=f"one-hot encode class ids with `one_hot({caps.shape[0]})`",
            )
    return [caps]
