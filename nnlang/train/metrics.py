"""Metric catalogue for streaming evaluation.

A metric is computed from per-batch *sufficient statistics*: a dict of arrays that are
plain sums, so batches combine by addition and the result does not depend on how the
data was batched. ``stats(pred, target, mask)`` is pure JAX (call it inside the jitted
eval step); ``mask`` ([B], bool or 0/1) marks the real rows, so a padded last batch
counts only its real examples. ``finalize(stats)`` turns the totals into a float.

Predictions are raw model outputs (logits for classification). Class predictions are
the argmax over the last axis; a single output per position ([B] or [..., 1]) is a
binary logit, positive when > ``threshold``.

    m = bind_metric("top_k", [], {"k": 3})
    totals = m.init()
    for pred, target, mask in batches:          # m.stats runs under jit
        totals = m.add(totals, m.stats(pred, target, mask))
    value = m.finalize(totals)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from nnlang.diagnostics import ArgError
from nnlang.train.catalog import Entry, Param, resolve

Stats = dict[str, jax.Array]

METRICS: dict[str, Entry] = {}


@dataclass(frozen=True)
class MetricImpl:
    """What a metric entry's ``fn`` is: statistics, finalisation and zero totals."""

    stats: Callable[..., Stats]  # (pred, target, mask, **args) -> Stats
    finalize: Callable[..., float]  # (stats as numpy, **args) -> float
    zeros: Callable[..., dict[str, np.ndarray]]  # (**args) -> zero Stats


def _metric(name: str, doc: str, *params: Param, greater_is_better: bool, **extra: Any):
    def register(impl: MetricImpl) -> MetricImpl:
        METRICS[name] = Entry(
            name, doc, tuple(params), impl, {"greater_is_better": greater_is_better, **extra}
        )
        return impl

    return register


# ------------------------------------------------------------------------- helpers
def _mask(mask: jax.Array | None, batch: int) -> jax.Array:
    if mask is None:
        return jnp.ones((batch,), jnp.float32)
    return jnp.asarray(mask).astype(jnp.float32).reshape(batch)


def _expand(m: jax.Array, like: jax.Array) -> jax.Array:
    """The [B] mask broadcast over ``like``'s further axes."""
    return jnp.broadcast_to(m.reshape(m.shape + (1,) * (like.ndim - 1)), like.shape)


def _is_binary(pred: jax.Array) -> bool:
    return pred.ndim == 1 or pred.shape[-1] == 1


def _class_targets(name: str, pred: jax.Array, target: jax.Array) -> jax.Array:
    """Integer class targets with the prediction's shape minus the class axis."""
    if target.shape == pred.shape and pred.shape[-1] > 1:  # one-hot / probabilities
        return jnp.argmax(target, axis=-1)
    if target.shape == pred.shape[:-1] + (1,):
        target = target[..., 0]
    if target.shape != pred.shape[:-1]:
        raise ArgError(
            "E407",
            f"metric `{name}` needs one class label per prediction: prediction "
            f"{list(pred.shape[1:])}, target {list(target.shape[1:])} (per sample)",
        )
    return target.astype(jnp.int32)


def _binary_targets(pred: jax.Array, target: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Prediction and 0/1 target flattened to [B, n] for a binary-logit output."""
    b = pred.shape[0]
    p = pred.reshape(b, -1)
    if target.size != pred.size:
        raise ArgError(
            "E407",
            f"a binary metric needs one target per output: prediction {list(pred.shape[1:])}, "
            f"target {list(target.shape[1:])} (per sample)",
        )
    return p, target.reshape(b, -1)


def _ratio(num: Any, den: Any) -> float:
    den = float(den)
    return float(num) / den if den > 0 else float("nan")


def _counted(key: str) -> Callable[..., float]:
    return lambda s, **_: _ratio(s[key], s["count"])


def _scalar_zeros(*keys: str) -> Callable[..., dict[str, np.ndarray]]:
    return lambda **_: {k: np.zeros((), np.float32) for k in keys}


# ------------------------------------------------------------------------- metrics
def _accuracy_stats(
    pred: jax.Array, target: jax.Array, mask: jax.Array | None, threshold: float
) -> Stats:
    m = _mask(mask, pred.shape[0])
    if _is_binary(pred):
        p, t = _binary_targets(pred, target)
        correct = ((p > threshold) == (t > 0.5)).astype(jnp.float32)
    else:
        correct = (jnp.argmax(pred, axis=-1) == _class_targets("accuracy", pred, target)).astype(
            jnp.float32
        )
    w = _expand(m, correct)
    return {"correct": (correct * w).sum(), "count": w.sum()}


_metric(
    "accuracy",
    "Fraction of correct predictions (every position counts, for sequence outputs).",
    Param(
        "threshold",
        "float",
        0.0,
        "decision threshold for a single binary output (0 for logits, 0.5 for probabilities)",
    ),
    greater_is_better=True,
)(MetricImpl(_accuracy_stats, _counted("correct"), _scalar_zeros("correct", "count")))


def _top_k_stats(pred: jax.Array, target: jax.Array, mask: jax.Array | None, k: int) -> Stats:
    if _is_binary(pred) or k > pred.shape[-1]:
        raise ArgError(
            "E202",
            f"`top_k` with k = {k} needs more than {k} classes; the prediction has {pred.shape[-1]}",
            arg="k",
        )
    m = _mask(mask, pred.shape[0])
    t = _class_targets("top_k", pred, target)
    _, idx = jax.lax.top_k(pred, k)
    correct = (idx == t[..., None]).any(axis=-1).astype(jnp.float32)
    w = _expand(m, correct)
    return {"correct": (correct * w).sum(), "count": w.sum()}


_metric(
    "top_k",
    "Fraction of examples whose label is among the k highest-scoring classes.",
    Param("k", "int", 5, "number of top classes that count as a hit", min=1),
    greater_is_better=True,
)(MetricImpl(_top_k_stats, _counted("correct"), _scalar_zeros("correct", "count")))


def _error_stats(power: int) -> Callable[..., Stats]:
    def stats(pred: jax.Array, target: jax.Array, mask: jax.Array | None) -> Stats:
        if target.shape != pred.shape:
            if target.size != pred.size:
                raise ArgError(
                    "E407",
                    f"an error metric needs a target shaped like the prediction: prediction "
                    f"{list(pred.shape[1:])}, target {list(target.shape[1:])} (per sample)",
                )
            target = target.reshape(pred.shape)
        err = jnp.abs(pred.astype(jnp.float32) - target.astype(jnp.float32)) ** power
        w = _expand(_mask(mask, pred.shape[0]), err)
        return {"total": (err * w).sum(), "count": w.sum()}

    return stats


_metric("mse", "Mean squared error over all output elements.", greater_is_better=False)(
    MetricImpl(_error_stats(2), _counted("total"), _scalar_zeros("total", "count"))
)
_metric("mae", "Mean absolute error over all output elements.", greater_is_better=False)(
    MetricImpl(_error_stats(1), _counted("total"), _scalar_zeros("total", "count"))
)


def _nll_stats(pred: jax.Array, target: jax.Array, mask: jax.Array | None) -> Stats:
    m = _mask(mask, pred.shape[0])
    pred = pred.astype(jnp.float32)
    if _is_binary(pred):
        p, t = _binary_targets(pred, target)
        t = t.astype(jnp.float32)
        loss = -(t * jax.nn.log_sigmoid(p) + (1 - t) * jax.nn.log_sigmoid(-p))
    else:
        t = _class_targets("nll", pred, target)
        logp = jax.nn.log_softmax(pred, axis=-1)
        loss = -jnp.take_along_axis(logp, t[..., None], axis=-1)[..., 0]
    w = _expand(m, loss)
    return {"total": (loss * w).sum(), "count": w.sum()}


_metric(
    "nll",
    "Mean negative log-likelihood of the labels under softmax (or sigmoid, for one output) of the logits.",
    greater_is_better=False,
)(MetricImpl(_nll_stats, _counted("total"), _scalar_zeros("total", "count")))


def _confidences(pred: jax.Array, target: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(confidence of the predicted class, 1.0 where it is right), flattened."""
    pred = pred.astype(jnp.float32)
    if _is_binary(pred):
        p, t = _binary_targets(pred, target)
        prob = jax.nn.sigmoid(p)
        yes = prob > 0.5
        conf = jnp.where(yes, prob, 1 - prob)
        correct = yes == (t > 0.5)
    else:
        t = _class_targets("ece", pred, target)
        probs = jax.nn.softmax(pred, axis=-1)
        conf = probs.max(axis=-1)
        correct = jnp.argmax(probs, axis=-1) == t
    return conf.reshape(pred.shape[0], -1), correct.astype(jnp.float32).reshape(pred.shape[0], -1)


def _ece_stats(pred: jax.Array, target: jax.Array, mask: jax.Array | None, bins: int) -> Stats:
    conf, correct = _confidences(pred, target)
    w = _expand(_mask(mask, pred.shape[0]), conf)
    # Equal-width bins (lo, hi] as in Guo et al. 2017; confidence 0 joins the first bin.
    b = jnp.clip(jnp.ceil(conf * bins).astype(jnp.int32) - 1, 0, bins - 1)
    onehot = jax.nn.one_hot(b, bins, dtype=jnp.float32) * w[..., None]
    return {
        "count": onehot.sum(axis=(0, 1)),
        "confidence": (onehot * conf[..., None]).sum(axis=(0, 1)),
        "correct": (onehot * correct[..., None]).sum(axis=(0, 1)),
    }


def _ece_finalize(s: Mapping[str, Any], **_: Any) -> float:
    n = float(np.sum(s["count"]))
    if n == 0:
        return float("nan")
    return float(np.abs(np.asarray(s["correct"]) - np.asarray(s["confidence"])).sum() / n)


_metric(
    "ece",
    "Expected calibration error: the count-weighted mean over equal-width confidence "
    "bins of |accuracy - mean confidence|, confidences from the softmax (sigmoid for one output).",
    Param("bins", "int", 15, "number of confidence bins", min=1, max=1000),
    greater_is_better=False,
)(
    MetricImpl(
        _ece_stats,
        _ece_finalize,
        lambda bins, **_: {
            k: np.zeros((bins,), np.float32) for k in ("count", "confidence", "correct")
        },
    )
)


def _binary_accuracy_stats(
    pred: jax.Array, target: jax.Array, mask: jax.Array | None, threshold: float
) -> Stats:
    p, t = _binary_targets(pred, target)
    correct = ((p > threshold) == (t > 0.5)).astype(jnp.float32)
    w = _expand(_mask(mask, pred.shape[0]), correct)
    return {"correct": (correct * w).sum(), "count": w.sum()}


_metric(
    "binary_accuracy",
    "Fraction of correct elements, each output element an independent binary decision "
    "(multi-label outputs `[.., C]` of logits): `mean(1[pred > threshold] == 1[target > 0.5])`.",
    Param(
        "threshold",
        "float",
        0.0,
        "decision threshold (0 for logits, 0.5 for probabilities)",
    ),
    greater_is_better=True,
)(MetricImpl(_binary_accuracy_stats, _counted("correct"), _scalar_zeros("correct", "count")))


def _pair_accuracy_stats(
    pred: jax.Array, target: jax.Array, mask: jax.Array | None, threshold: float
) -> Stats:
    d, t = _binary_targets(pred, target)
    correct = ((d < threshold) == (t > 0.5)).astype(jnp.float32)
    w = _expand(_mask(mask, pred.shape[0]), correct)
    return {"correct": (correct * w).sum(), "count": w.sum()}


_metric(
    "pair_accuracy",
    "Fraction of pairs classified right from their distance (as trained by "
    "`contrastive`): a pair is predicted similar when `distance < threshold` and is "
    "similar when its label is > 0.5.",
    Param(
        "threshold",
        "float",
        0.5,
        "distance below which a pair counts as similar (half the contrastive margin)",
    ),
    greater_is_better=True,
)(MetricImpl(_pair_accuracy_stats, _counted("correct"), _scalar_zeros("correct", "count")))


def _r2_stats(pred: jax.Array, target: jax.Array, mask: jax.Array | None) -> Stats:
    if target.size != pred.size:
        raise ArgError(
            "E407",
            f"metric `r2` needs a target shaped like the prediction: prediction "
            f"{list(pred.shape[1:])}, target {list(target.shape[1:])} (per sample)",
        )
    p = pred.astype(jnp.float32).reshape(pred.shape[0], -1)
    t = target.astype(jnp.float32).reshape(p.shape)
    w = _expand(_mask(mask, pred.shape[0]), p)
    return {
        "count": w.sum(),
        "sum": (t * w).sum(),
        "sum_sq": (t * t * w).sum(),
        "residual": (jnp.square(t - p) * w).sum(),
    }


def _r2_finalize(s: Mapping[str, Any], **_: Any) -> float:
    n = float(s["count"])
    if n == 0:
        return float("nan")
    total = float(s["sum_sq"]) - float(s["sum"]) ** 2 / n
    return 1.0 - float(s["residual"]) / total if total > 0 else float("nan")


_metric(
    "r2",
    "Coefficient of determination over all output elements: "
    "`R^2 = 1 - sum (y - p)^2 / sum (y - mean(y))^2` (1 is a perfect fit, 0 is no better "
    "than predicting the mean).",
    greater_is_better=True,
)(MetricImpl(_r2_stats, _r2_finalize, _scalar_zeros("count", "sum", "sum_sq", "residual")))


def _perplexity_finalize(s: Mapping[str, Any], **_: Any) -> float:
    return float(np.exp(_ratio(s["total"], s["count"])))


_metric(
    "perplexity",
    "`exp` of the mean negative log-likelihood per prediction (per token, for sequence "
    "outputs): `exp(-mean log softmax(logits)[label])`.",
    greater_is_better=False,
)(MetricImpl(_nll_stats, _perplexity_finalize, _scalar_zeros("total", "count")))


# ----------------------------------------------------------------------------- API
@dataclass(frozen=True)
class BoundMetric:
    """A metric call with its arguments checked."""

    name: str
    args: Mapping[str, Any]
    impl: MetricImpl
    greater_is_better: bool

    @property
    def label(self) -> str:
        """Column name for logs: ``accuracy``, ``top_3``, ``ece``."""
        return metric_label(self.name, self.args)

    def init(self) -> dict[str, np.ndarray]:
        return self.impl.zeros(**self.args)

    def stats(self, pred: jax.Array, target: jax.Array, mask: jax.Array | None = None) -> Stats:
        """Sufficient statistics of one batch (pure JAX, jit-safe)."""
        return self.impl.stats(jnp.asarray(pred), jnp.asarray(target), mask, **self.args)

    @staticmethod
    def add(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
        return {k: a[k] + b[k] for k in a}

    def update(
        self,
        totals: Mapping[str, Any],
        pred: jax.Array,
        target: jax.Array,
        mask: jax.Array | None = None,
    ) -> dict[str, Any]:
        """``add(totals, stats(...))``: jit-safe, for totals carried on device."""
        return self.add(totals, self.stats(pred, target, mask))

    def finalize(self, totals: Mapping[str, Any]) -> float:
        return self.impl.finalize({k: np.asarray(v) for k, v in totals.items()}, **self.args)


def bind_metric(
    name: str, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
) -> BoundMetric:
    entry, bound = resolve(METRICS, "metric", name, args, kwargs)
    return metric_from(entry, bound)


def metric_from(entry: Entry, bound: Mapping[str, Any]) -> BoundMetric:
    """The metric of a call already bound to ``entry`` (every param in ``bound``):
    nothing is bound again."""
    return BoundMetric(entry.name, bound, entry.fn, entry.extra["greater_is_better"])


def compute(
    metric: BoundMetric | str, preds: Any, targets: Any, mask: Any = None, **kwargs: Any
) -> float:
    """The metric over whole arrays (a name binds ``kwargs`` as its arguments)."""
    m = metric if isinstance(metric, BoundMetric) else bind_metric(metric, (), kwargs)
    return m.finalize(m.stats(jnp.asarray(preds), jnp.asarray(targets), mask))


def metric_label(name: str, args: Mapping[str, Any]) -> str:
    """A metric's column name in logs and for `monitor`: ``accuracy``, ``top_3``."""
    return f"top_{args['k']}" if name == "top_k" else name


def metric_labels(calls: Sequence[tuple[str, Mapping[str, Any], Sequence[str]]]) -> list[str]:
    """Column names of a train section's metrics ``(name, args, tensors)``. Two that
    would share a name (`accuracy` of two outputs) are named after their prediction."""
    plain = [metric_label(name, args) for name, args, _ in calls]
    return [
        f"{lab}_{tensors[0]}" if plain.count(lab) > 1 and tensors else lab
        for lab, (_, _, tensors) in zip(plain, calls, strict=True)
    ]
