"""Normalisation over the last (feature) axis: ``nnx.BatchNorm``, ``LayerNorm``,
``GroupNorm``, ``RMSNorm``. Shapes are kept; parameters are per feature."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nnlang.layers.base import Args, Attr, expect_float, expect_min_rank, fail, layer
from nnlang.layers.core import concrete_last
from nnlang.shapes import TensorType, concrete_numel

FAMILY = "normalization"

_EPS = "small constant added to the variance"


def _norm_kind(
    name: str,
    doc: str,
    attrs: tuple[Attr, ...],
    make: Callable[[Any, Args, int, Any, Any], Any],
    *,
    per_feature: int,
    state_per_feature: int = 0,
    check: Callable[[Args, TensorType, int], None] | None = None,
    has_train_mode: bool = False,
    call: str = "",
) -> None:
    """Declare a feature-axis norm built by ``make(nnx, args, features, dtype, rngs)``;
    ``per_feature`` parameters (scale, bias) per feature."""

    def shape(a: Args, ins: list[TensorType]) -> list[TensorType]:
        x = ins[0]
        expect_float(name, x)
        expect_min_rank(name, x, 1, "[..., C]")
        c = concrete_last(name, x)
        if check is not None:
            check(a, x, c)
        return [x]

    def build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
        from flax import nnx

        from nnlang.layers.modules import dtype_of

        return make(nnx, a, int(ins[0].shape[-1]), dtype_of(ins[0]), rngs)

    layer(
        name,
        family=FAMILY,
        doc=doc,
        attrs=attrs,
        params=lambda a, ins: per_feature * int(ins[0].shape[-1]),
        state=lambda a, ins: state_per_feature * int(ins[0].shape[-1]),
        # mean, variance, normalise, scale, shift: a handful of operations per element
        flops=lambda a, ins, outs: 5 * concrete_numel(ins[0].shape),
        build=build,
        has_train_mode=has_train_mode,
        example=f"""model Example {{
    input x: f32[16, 16, 32]
    output y = x -> conv(32, 3) -> {call or name} -> relu
}}""",
    )(shape)


def _check_groups(a: Args, x: TensorType, c: int) -> None:
    if c % a.groups:
        raise fail(
            f"`group_norm` groups = {a.groups} must divide the {c} channels of {x}",
            arg="groups",
        )


_norm_kind(
    "batch_norm",
    "Batch normalisation per channel (last axis) over the batch and all other axes "
    "(`nnx.BatchNorm`). Training uses batch statistics and updates the running averages "
    "(`nnx.BatchStat`, not parameters); eval mode uses the running averages.",
    (
        Attr(
            "momentum",
            "float",
            0.99,
            doc="decay of the running averages (as Flax and Keras; PyTorch's 0.1 is 0.9 here). "
            "They settle in about 5 / (1 - momentum) steps (500 for 0.99): `nnlang train` "
            "warns (W401) when a run has fewer; use 0.9 for short runs",
            min=0.0,
            max=1.0,
        ),
        Attr("epsilon", "float", 1e-5, doc=_EPS, min=0.0),
    ),
    lambda nnx, a, c, dt, rngs: nnx.BatchNorm(
        c, momentum=a.momentum, epsilon=a.epsilon, dtype=dt, rngs=rngs
    ),
    per_feature=2,
    state_per_feature=2,  # the running mean and variance
    has_train_mode=True,
)
_norm_kind(
    "layer_norm",
    "Layer normalisation over the last axis of each position, with learned scale and "
    "bias (`nnx.LayerNorm`).",
    (Attr("epsilon", "float", 1e-6, doc=_EPS, min=0.0),),
    lambda nnx, a, c, dt, rngs: nnx.LayerNorm(c, epsilon=a.epsilon, dtype=dt, rngs=rngs),
    per_feature=2,
)
_norm_kind(
    "group_norm",
    "Group normalisation (`nnx.GroupNorm`): channels are split into `groups`; each group "
    "is normalised over all per-sample axes of the sample; learned scale and bias.",
    (
        Attr("groups", "int", 32, doc="number of channel groups; must divide the channels", min=1),
        Attr("epsilon", "float", 1e-6, doc=_EPS, min=0.0),
    ),
    lambda nnx, a, c, dt, rngs: nnx.GroupNorm(
        c, num_groups=a.groups, epsilon=a.epsilon, dtype=dt, rngs=rngs
    ),
    per_feature=2,
    check=_check_groups,
    call="group_norm(groups = 8)",
)
_norm_kind(
    "rms_norm",
    "Root-mean-square normalisation over the last axis with a learned scale and no "
    "centering (`nnx.RMSNorm`).",
    (Attr("epsilon", "float", 1e-6, doc=_EPS, min=0.0),),
    lambda nnx, a, c, dt, rngs: nnx.RMSNorm(c, epsilon=a.epsilon, dtype=dt, rngs=rngs),
    per_feature=1,
)
