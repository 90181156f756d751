"""The `monitor` setting checked at check time: it must name a value reported per epoch.

Imports the diagnostics and this package's metrics (the spec is duck-typed, since the
spec imports this).
"""

from __future__ import annotations

from typing import Any

from nnlang.diagnostics import Diagnostic, Reporter, did_you_mean
from nnlang.train import metrics


def check_monitor(spec: Any, rep: Reporter) -> bool:
    """`monitor` must name a value reported per epoch: `loss`, `val_loss`, a
    validation metric or a metric of the training batches (none with `step` blocks;
    whether the data has a validation split is known at run time)."""
    labels = metrics.metric_labels([(m.name, m.args, m.tensors) for m in spec.metrics])
    known = {"loss", "val_loss", *(f"val_{x}" for x in labels)}
    if not spec.steps and spec.train_metrics:  # no rule metric: Engine.train_metrics
        known.update(x for x, m in zip(labels, spec.metrics, strict=True) if not _rule(m))
    if spec.monitor in known:
        return True
    hint = did_you_mean(spec.monitor or "", known)
    rep.add(
        Diagnostic(
            "E403",
            f"`monitor = {spec.monitor}` names no value reported per epoch",
            spec.spans.get("monitor"),
            help=hint or f"values reported per epoch: {', '.join(sorted(known))}",
        )
    )
    return False


def _rule(m: Any) -> bool:
    return bool(m.entry.extra.get("rule_stat"))
