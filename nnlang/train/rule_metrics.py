"""The metrics of the local learning rules (`som`, `rbm`, `hopfield`): the mean of a
statistic the rule layer computes per example (`quantization_error(bmu)`), and
`recall_accuracy`. Declaring them fills :data:`nnlang.train.metrics.METRICS`
(imported by :mod:`nnlang.train.settings`).

Imports JAX and the metric catalogue only.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from nnlang.diagnostics import ArgError
from nnlang.train.metrics import MetricImpl, Stats, _counted, _mask, _metric, _scalar_zeros


# ---------------------------------------------------------- local learning rules
def _mean_stats(value: jax.Array, target: jax.Array, mask: jax.Array | None) -> Stats:
    """The mean of one number per example (a rule layer's statistic)."""
    m = _mask(mask, value.shape[0])
    v = value.reshape(value.shape[0]).astype(jnp.float32)
    return {"total": jnp.sum(v * m), "count": jnp.sum(m)}


def _rule_metric(name: str, doc: str, *, greater_is_better: bool) -> None:
    _metric(name, doc, greater_is_better=greater_is_better, inputs=("output",), rule_stat=name)(
        MetricImpl(_mean_stats, _counted("total"), _scalar_zeros("total", "count"))
    )


_rule_metric(
    "quantization_error",
    "`som`: the mean distance ‖x − w_c‖ of a sample to its best-matching unit's codebook "
    "vector (MiniSom's `quantization_error`). Written `quantization_error(bmu)`.",
    greater_is_better=False,
)
_rule_metric(
    "topographic_error",
    "`som`: the fraction of samples whose best and second-best units are not grid "
    "neighbours (8-neighbourhood on a rectangular grid, 6 on a hexagonal one; MiniSom's "
    "`topographic_error`). Written `topographic_error(bmu)`.",
    greater_is_better=False,
)
_rule_metric(
    "reconstruction_error",
    "`rbm`: the mean squared error between the data `v` and its mean-field "
    "reconstruction `E[v | h = p(h | v)]`, over the visible units. Written "
    "`reconstruction_error(h)`.",
    greater_is_better=False,
)
_rule_metric(
    "pseudo_log_likelihood",
    "`rbm`: scikit-learn's `score_samples`, `N log σ(F(ṽ) − F(v))` with `ṽ` the data with "
    "one random visible unit flipped (a stochastic estimate of the pseudo-log-likelihood; "
    "binary data). Written `pseudo_log_likelihood(h)`.",
    greater_is_better=True,
)
_rule_metric(
    "energy",
    "`hopfield`: the mean energy `E(s) = −½ sᵀWs` of the recalled states. Written `energy(y)`.",
    greater_is_better=False,
)


def _exact_stats(pred: jax.Array, target: jax.Array, mask: jax.Array | None) -> Stats:
    m = _mask(mask, pred.shape[0])
    if target.size != pred.size:
        raise ArgError(
            "E407",
            f"`recall_accuracy` needs a target of the output's shape: prediction "
            f"{list(pred.shape[1:])}, target {list(target.shape[1:])} (per sample)",
        )
    b = pred.shape[0]
    same = jnp.all(pred.reshape(b, -1) == target.reshape(b, -1).astype(pred.dtype), axis=1)
    return {"correct": jnp.sum(same.astype(jnp.float32) * m), "count": jnp.sum(m)}


_metric(
    "recall_accuracy",
    "Fraction of examples whose whole output equals the target (a Hopfield network's "
    "recall of the stored pattern from a noisy probe): `recall_accuracy(y, label)`.",
    greater_is_better=True,
)(MetricImpl(_exact_stats, _counted("correct"), _scalar_zeros("correct", "count")))
