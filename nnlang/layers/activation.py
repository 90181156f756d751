"""Activations: elementwise (or per-axis, for softmax) float functions from ``flax.nnx``.

Each kind is one :func:`_activation` line; the factory supplies the shape rule (float
input, shape kept), the FLOP count (one per element) and a build rule that binds the
kind's attributes to the ``nnx`` function of the same meaning.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from nnlang.layers.base import Args, Attr, expect_float, layer, norm_axis
from nnlang.shapes import TensorType, concrete_numel

FAMILY = "activation"

_AXIS = Attr(
    "axis",
    "int",
    -1,
    doc="per-sample axis to normalise over (batch not counted; negative counts from the end)",
)

Kwargs = Callable[[Args, TensorType], dict[str, Any]]


def _no_kwargs(a: Args, x: TensorType) -> dict[str, Any]:
    return {}


def _axis_kwargs(a: Args, x: TensorType) -> dict[str, Any]:
    # A negative axis names the same axis of the batched array.
    return {"axis": norm_axis("softmax", a.axis, x.rank) - x.rank}


def _activation(
    name: str,
    doc: str,
    fn: str,
    *,
    attrs: tuple[Attr, ...] = (),
    kwargs: Kwargs = _no_kwargs,
    call: str = "",
) -> None:
    """Declare activation ``name`` lowering to ``flax.nnx.<fn>(x, **kwargs(args, x))``."""

    def build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
        from flax import nnx

        return functools.partial(getattr(nnx, fn), **kwargs(a, ins[0]))

    def shape(a: Args, ins: list[TensorType]) -> list[TensorType]:
        expect_float(name, ins[0])
        if any(x.name == "axis" for x in attrs):
            norm_axis(name, a.axis, ins[0].rank)
        return [ins[0]]

    layer(
        name,
        family=FAMILY,
        doc=doc,
        attrs=attrs,
        flops=lambda a, ins, outs: concrete_numel(outs[0].shape),
        build=build,
        example=f"""model Example {{
    input x: f32[16]
    output y = x -> dense(8) -> {call or name}
}}""",
    )(shape)


_activation("relu", "Rectified linear unit, `max(x, 0)` (`nnx.relu`).", "relu")
_activation(
    "leaky_relu",
    "Leaky ReLU, `x` if `x >= 0` else `alpha * x` (`nnx.leaky_relu`).",
    "leaky_relu",
    attrs=(Attr("alpha", "float", 0.01, doc="slope for negative inputs"),),
    kwargs=lambda a, x: {"negative_slope": a.alpha},
    call="leaky_relu(alpha = 0.1)",
)
_activation(
    "elu",
    "Exponential linear unit, `x` if `x > 0` else `alpha * (exp(x) - 1)` (`nnx.elu`).",
    "elu",
    attrs=(Attr("alpha", "float", 1.0, doc="scale of the negative branch"),),
    kwargs=lambda a, x: {"alpha": a.alpha},
)
_activation("relu6", "ReLU capped at 6, `min(max(x, 0), 6)` (`nnx.relu6`).", "relu6")
_activation(
    "hard_sigmoid",
    "Piecewise-linear sigmoid, `relu6(x + 3) / 6` (`nnx.hard_sigmoid`).",
    "hard_sigmoid",
)
_activation(
    "hard_swish",
    "Piecewise-linear swish, `x * relu6(x + 3) / 6` (`nnx.hard_swish`).",
    "hard_swish",
)
_activation("selu", "Scaled ELU with the self-normalising constants (`nnx.selu`).", "selu")
_activation(
    "gelu",
    "Gaussian error linear unit (`nnx.gelu`); exact erf form unless `approximate`.",
    "gelu",
    attrs=(Attr("approximate", "bool", False, doc="use the tanh approximation"),),
    kwargs=lambda a, x: {"approximate": a.approximate},
)
_activation("silu", "Sigmoid linear unit, `x * sigmoid(x)` (`nnx.silu`).", "silu")
_activation("swish", "Same as `silu`: `x * sigmoid(x)` (`nnx.swish`).", "swish")
_activation("sigmoid", "Logistic sigmoid, `1 / (1 + exp(-x))` (`nnx.sigmoid`).", "sigmoid")
_activation("tanh", "Hyperbolic tangent (`nnx.tanh`).", "tanh")
_activation("softplus", "Smooth ReLU, `log(1 + exp(x))` (`nnx.softplus`).", "softplus")
_activation(
    "softmax",
    "Softmax over one per-sample axis (`nnx.softmax`); entries along it sum to 1.",
    "softmax",
    attrs=(_AXIS,),
    kwargs=_axis_kwargs,
)
_activation(
    "log_softmax",
    "Log of the softmax over one per-sample axis (`nnx.log_softmax`), computed stably.",
    "log_softmax",
    attrs=(_AXIS,),
    kwargs=_axis_kwargs,
)
