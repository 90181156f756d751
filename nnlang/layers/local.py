"""Layers that learn by a local rule rather than by the gradient of a loss: the
self-organising map (Kohonen), the restricted Boltzmann machine (contrastive
divergence) and the classical Hopfield network (Hebbian, pseudo-inverse, Storkey);
and the modern Hopfield layer (Ramsauer et al. 2020), which trains by gradient.

A kind with ``rule`` set trains with ``loss = rule(output)`` in the train section
(:mod:`nnlang.train.rules`). Imports the layer base and shapes only; the build rules
import Flax lazily (:mod:`nnlang.layers.rule_modules`).
"""

from __future__ import annotations

import math
from typing import Any

from nnlang.layers.base import Args, Attr, expect_float, expect_min_rank, expect_rank, fail, layer
from nnlang.shapes import TensorType, concrete_numel, is_concrete

FAMILY = "local"


def _features(kind: str, x: TensorType) -> int:
    expect_float(kind, x)
    expect_min_rank(kind, x, 1, "[...]")
    if not all(is_concrete(d) for d in x.shape):
        raise fail(f"`{kind}` needs a fixed per-sample shape but got {x}", code="E305")
    return math.prod(int(d) for d in x.shape)


# ----------------------------------------------------------------------- som
def _som_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    from nnlang.layers.modules import dtype_of
    from nnlang.layers.rule_modules import SOM

    x = ins[0]
    return SOM(
        concrete_numel(x.shape),
        a.rows,
        a.cols,
        a.grid,
        a.neighbourhood,
        a.sigma,
        a.variant,
        dtype=dtype_of(x),
        rngs=rngs,
    )


@layer(
    "som",
    family=FAMILY,
    doc="A self-organising map (Kohonen 1982) of `rows × cols` units with codebook "
    "vectors `w_j` (the flattened sample's size, initialised uniform in [0, 1)): the output "
    "is the best-matching unit `c = argmin_j ‖x − w_j‖` (row-major index, `i32`). Trained "
    "by `loss = rule(bmu)` with `sgd(lr = η)`: online (batch 1: `w_j ← w_j + η(t) "
    "h_{j,c}(σ(t)) (x − w_j)`; larger batches average it) or batch (Kohonen's batch map, "
    "`w_j ← (1 − η) w_j + η Σ_b h_{j,c_b} x_b / Σ_b h_{j,c_b}`). The neighbourhood is "
    "gaussian `exp(−‖p_j − p_c‖²/2σ²)` over grid positions (hexagonal: rows √3/2 apart, "
    "every other row shifted by ½) or bubble (`|Δrow| < σ` and `|Δcol| < σ`). `η(t)` "
    "follows `schedule`, `σ(t) = sigma · rule_schedule(t)`. Metrics: "
    "`quantization_error(bmu)`, `topographic_error(bmu)`.",
    attrs=(
        Attr("rows", "int", doc="rows of the map", min=1),
        Attr("cols", "int", doc="columns of the map", min=1),
        Attr("grid", "str", "rectangular", "unit layout", choices=("rectangular", "hexagonal")),
        Attr(
            "neighbourhood",
            "str",
            "gaussian",
            "the neighbourhood function h",
            choices=("gaussian", "bubble"),
        ),
        Attr("sigma", "float", 1.0, "the neighbourhood radius σ at step 0", min=0.0, min_open=True),
        Attr(
            "variant",
            "str",
            "online",
            "online (Kohonen's rule per sample, averaged over a batch) or batch (batch map)",
            choices=("online", "batch"),
        ),
    ),
    params=lambda a, ins: a.rows * a.cols * concrete_numel(ins[0].shape),
    flops=lambda a, ins, outs: 3 * a.rows * a.cols * concrete_numel(ins[0].shape),
    build=_som_build,
    rule="kohonen",
    example="""model Example {
    input x: f32[64]
    output bmu = x -> som(10, 10, sigma = 3.0)
}""",
)
def _som(a: Args, ins: list[TensorType]) -> list[TensorType]:
    _features("som", ins[0])
    if a.rows * a.cols < 2:
        raise fail("`som` needs at least two units", arg="rows", code="E202")
    return [TensorType("i32", ())]


# ----------------------------------------------------------------------- rbm
def _rbm_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    from nnlang.layers.modules import dtype_of
    from nnlang.layers.rule_modules import RBM

    x = ins[0]
    return RBM(
        concrete_numel(x.shape), a.hidden, a.visible, a.k, a.chains, dtype=dtype_of(x), rngs=rngs
    )


@layer(
    "rbm",
    family=FAMILY,
    doc="A restricted Boltzmann machine (Smolensky 1986; Hinton 2002) with `hidden` "
    "Bernoulli units over the flattened sample's visible units, Bernoulli (data in "
    "[0, 1]) or Gaussian with unit variance (standardised data). The output is "
    "`p(h = 1 | v) = σ(c + vW)`. Free energy `F(v) = −b·v − Σ_j softplus(c_j + v·W_j)` "
    "(Gaussian: `½‖v − b‖² − Σ_j softplus(c_j + v·W_j)`). Trained by `loss = rule(h)`: "
    "SGD on `F(v) − F(sg(v_k))`, whose gradient is CD-k's `Δθ ∝ ⟨∂(−F)/∂θ⟩_data − "
    "⟨∂(−F)/∂θ⟩_chain` with `v_k` after `k` Gibbs rounds from the data (`chains = 0`) or "
    "continued from the persistent chain of `chains` particles (PCD, Tieleman 2008). "
    "`W ~ N(0, 0.01²)`, zero biases (scikit-learn's BernoulliRBM). Metrics: "
    "`reconstruction_error(h)`, `pseudo_log_likelihood(h)`.",
    attrs=(
        Attr("hidden", "int", doc="number of hidden units", min=1),
        Attr(
            "visible",
            "str",
            "bernoulli",
            "the visible units' distribution",
            choices=("bernoulli", "gaussian"),
        ),
        Attr("k", "int", 1, "Gibbs rounds per step (CD-k)", min=1),
        Attr("chains", "int", 0, "persistent chains (PCD); 0: CD-k from the data", min=0),
    ),
    params=lambda a, ins: (
        (concrete_numel(ins[0].shape) + 1) * a.hidden + concrete_numel(ins[0].shape)
    ),
    flops=lambda a, ins, outs: 2 * concrete_numel(ins[0].shape) * a.hidden,
    state=lambda a, ins: a.chains * a.hidden,  # the persistent chain's hidden samples
    build=_rbm_build,
    rule="contrastive divergence",
    example="""model Example {
    input x: f32[64]
    output h = x -> rbm(256, chains = 10)
}""",
)
def _rbm(a: Args, ins: list[TensorType]) -> list[TensorType]:
    _features("rbm", ins[0])
    return [ins[0].with_shape((a.hidden,))]


# ------------------------------------------------------------------ hopfield
def _hopfield_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    from nnlang.layers.modules import dtype_of
    from nnlang.layers.rule_modules import Hopfield

    x = ins[0]
    return Hopfield(int(x.shape[0]), a.storage, a.update, a.steps, dtype=dtype_of(x), rngs=rngs)


@layer(
    "hopfield",
    family=FAMILY,
    doc="A classical Hopfield network (Hopfield 1982) of ±1 units, symmetric weights, no "
    "self-connections, energy `E(s) = −½ sᵀWs`. The output is recall from the probe: "
    "`s_i ← sign(Σ_j W_ij s_j)` (0 keeps the state) for every unit at once (synchronous) "
    "or unit by unit in index order (asynchronous: E never rises), `steps` sweeps at most, "
    "stopping at a fixed point. Trained by `loss = rule(y)` with `sgd(lr = 1)`, which sets "
    "`W` to the storage rule's: Hebbian `W += (1/N) Σ_μ ξ^μ ξ^μᵀ` (one epoch stores the "
    "training patterns), pseudo-inverse `W = X⁺X` (the batch holds all patterns) or Storkey "
    "(1997) `ΔW_ij = (ξ_i ξ_j − ξ_i h_ji − h_ij ξ_j)/N`, one pattern after another; the "
    "diagonal is kept at 0. Metrics: `energy(y)`, `recall_accuracy(y, label)`.",
    attrs=(
        Attr(
            "storage",
            "str",
            "hebbian",
            "the storage rule",
            choices=("hebbian", "pseudoinverse", "storkey"),
        ),
        Attr(
            "update",
            "str",
            "asynchronous",
            "recall dynamics",
            choices=("asynchronous", "synchronous"),
        ),
        Attr(
            "steps", "int", 20, "most sweeps of recall (it stops earlier at a fixed point)", min=1
        ),
    ),
    params=lambda a, ins: int(ins[0].shape[0]) ** 2,
    flops=lambda a, ins, outs: 2 * a.steps * int(ins[0].shape[0]) ** 2,
    build=_hopfield_build,
    rule="hebbian storage",
    onnx=False,
    example="""model Example {
    input x: f32[100]
    output y = x -> hopfield(update = "asynchronous")
}""",
)
def _hopfield(a: Args, ins: list[TensorType]) -> list[TensorType]:
    x = ins[0]
    expect_float("hopfield", x)
    expect_rank("hopfield", x, (1,), "[N]")
    if not is_concrete(x.shape[0]):
        raise fail(f"`hopfield` needs a fixed number of units but got {x}", code="E305")
    return [x]


# ---------------------------------------------------------- modern hopfield
def _modern_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    from nnlang.layers.modules import dtype_of
    from nnlang.layers.rule_modules import ModernHopfield

    x = ins[0]
    return ModernHopfield(
        int(x.shape[-1]), a.patterns, a.beta, a.steps, dtype=dtype_of(x), rngs=rngs
    )


@layer(
    "modern_hopfield",
    family=FAMILY,
    doc="The modern (continuous) Hopfield layer of Ramsauer et al. (2020), 'Hopfield "
    "networks is all you need': `patterns` learned stored patterns `X` (rows, "
    "`N(0, 1/F)`) and the update `ξ ← Xᵀ softmax(β X ξ)` of the last axis, `steps` "
    "times (one step retrieves, with exponentially many patterns storable). Trained by "
    "gradient like any layer.",
    attrs=(
        Attr("patterns", "int", doc="number of stored patterns", min=1),
        Attr("beta", "float", 1.0, "inverse temperature β", min=0.0, min_open=True),
        Attr("steps", "int", 1, "update steps", min=1),
    ),
    params=lambda a, ins: a.patterns * int(ins[0].shape[-1]),
    flops=lambda a, ins, outs: 4 * a.steps * a.patterns * concrete_numel(ins[0].shape),
    build=_modern_build,
    example="""model Example {
    input x: f32[16, 32]
    output y = x -> modern_hopfield(64, beta = 0.5)
}""",
)
def _modern(a: Args, ins: list[TensorType]) -> list[TensorType]:
    x = ins[0]
    expect_float("modern_hopfield", x)
    expect_min_rank("modern_hopfield", x, 1, "[..., F]")
    if not is_concrete(x.shape[-1]):
        raise fail(f"`modern_hopfield` needs a fixed last axis but got {x}", code="E305")
    return [x]
