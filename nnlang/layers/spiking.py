"""Spiking layers (snnTorch-style): the leaky integrate-and-fire neuron over a time
axis, with a surrogate gradient, and the rate and latency spike encoders.

Time is the first per-sample axis: an encoder turns ``[...]`` into ``[steps, ...]``,
``lif`` maps ``[T, ...]`` currents to ``[T, ...]`` spikes. Imports the layer base and
shapes only; build rules import JAX lazily.
"""

from __future__ import annotations

from typing import Any

from nnlang.layers.base import Args, Attr, expect_float, expect_min_rank, layer
from nnlang.shapes import TensorType, concrete_numel

FAMILY = "spiking"


def _elements(a: Args, ins: list[TensorType], outs: list[TensorType]) -> int:
    return concrete_numel(outs[0].shape)


# ----------------------------------------------------------------------- lif
def _lif_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    from nnlang.layers.family_modules import lif

    return lif(a.beta, a.threshold, a.reset, a.surrogate, a.slope)


@layer(
    "lif",
    family=FAMILY,
    doc="Leaky integrate-and-fire neurons over time (snnTorch `Leaky`), a `lax.scan` over "
    "the first axis of `[T, ...]` input currents `I`: the membrane is "
    "`U[t] = β U[t−1] + I[t] − S[t−1] θ` (reset `subtract`; `zero`: "
    "`U[t] = β U[t−1] (1 − S[t−1]) + I[t]`), from `U = 0`, and the output spikes are "
    "`S[t] = Θ(U[t] − θ)`: real 0/1 values forwards; backwards the Heaviside step has the "
    "surrogate derivative `1/(k|u| + 1)²` (fast_sigmoid) or `(k/2)/(1 + (πku/2)²)` "
    "(arctan), `u = U − θ`, `k = slope` (`jax.custom_vjp`). As in snnTorch the reset "
    "term is not differentiated.",
    attrs=(
        Attr("beta", "float", 0.9, doc="membrane decay per step β", min=0.0, max=1.0),
        Attr("threshold", "float", 1.0, doc="firing threshold θ", min=0.0, min_open=True),
        Attr(
            "reset",
            "str",
            "subtract",
            doc="how a spike resets the membrane",
            choices=("subtract", "zero"),
        ),
        Attr(
            "surrogate",
            "str",
            "fast_sigmoid",
            doc="the surrogate gradient of the spike",
            choices=("fast_sigmoid", "arctan"),
        ),
        Attr("slope", "float", 25.0, doc="steepness k of the surrogate", min=0.0, min_open=True),
    ),
    flops=lambda a, ins, outs: 5 * concrete_numel(outs[0].shape),
    build=_lif_build,
    example="""model Example {
    input x: f32[64]
    spikes = x -> rate_encode(25) -> dense(100) -> lif(beta = 0.9) -> dense(10) -> lif
    output counts = spikes -> sum(axis = 0)
}""",
)
def _lif(a: Args, ins: list[TensorType]) -> list[TensorType]:
    x = ins[0]
    expect_float("lif", x)
    expect_min_rank("lif", x, 2, "[T, ...]")
    return [x]


# ------------------------------------------------------------------ encoders
_STEPS = Attr("steps", "int", doc="number of time steps T of the output", min=1)


def _encoded(kind: str, a: Args, ins: list[TensorType]) -> list[TensorType]:
    x = ins[0]
    expect_float(kind, x)
    return [x.with_shape((a.steps, *x.shape))]


def _rate_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    from nnlang.layers.family_modules import RateEncode

    return RateEncode(a.steps, rngs=rngs)


@layer(
    "rate_encode",
    family=FAMILY,
    doc="Rate coding (snnTorch `spikegen.rate`): `[...]` to `[steps, ...]` spikes, each a "
    "Bernoulli draw with probability `x` clipped to [0, 1]. Training draws fresh spikes "
    "from the `dropout` RNG stream, as `dropout` does; in eval mode a fixed key, so "
    "evaluation, prediction and export give the same spikes every run. Exports to "
    "StableHLO only (ONNX has no counter-based random numbers).",
    attrs=(_STEPS,),
    flops=_elements,
    build=_rate_build,
    has_train_mode=True,
    onnx=False,  # jax.random's threefry does not convert; StableHLO export works
    example="""model Example {
    input x: f32[64]
    output counts = x -> rate_encode(20) -> dense(10) -> lif -> sum(axis = 0)
}""",
)
def _rate(a: Args, ins: list[TensorType]) -> list[TensorType]:
    return _encoded("rate_encode", a, ins)


def _latency_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    from nnlang.layers.family_modules import latency_encode

    return latency_encode(a.steps, a.threshold)


@layer(
    "latency_encode",
    family=FAMILY,
    doc="Latency coding (linear, deterministic): `[...]` to `[steps, ...]`; an element "
    "`x` (clipped to [0, 1]) fires once, at step `round((1 − x)(steps − 1))`, so larger "
    "values fire earlier; elements below `threshold` never fire.",
    attrs=(
        _STEPS,
        Attr("threshold", "float", 0.01, doc="values below it emit no spike", min=0.0),
    ),
    flops=_elements,
    build=_latency_build,
    example="""model Example {
    input x: f32[64]
    output counts = x -> latency_encode(10) -> dense(10) -> lif -> sum(axis = 0)
}""",
)
def _latency(a: Args, ins: list[TensorType]) -> list[TensorType]:
    return _encoded("latency_encode", a, ins)
