"""Learning curves and run comparison, from what a run directory holds.

:func:`draw` is the one drawing of curves: a run's ``curves.png`` (written at the end of
training) and ``nnlang curves RUN...`` (several runs on shared axes). One panel per
metric, training and validation on the same panel. With one run the colour names the
split (training always blue, validation always orange, on every panel); with several
the colour names the run (the same on every panel) and the line style the split (solid
training, dashed validation). :func:`flat_settings` and :func:`best` compare runs for
``nnlang runs``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nnlang.fsio import atomic_write_bytes

NOT_CURVES = ("phase", "epoch", "step", "seconds", "lr", "skipped")
SPLIT_COLOUR = {"train": "tab:blue", "validation": "tab:orange"}
SPLIT_STYLE = {"train": "-", "validation": "--"}


def panels(histories: Sequence[list[dict[str, Any]]]) -> dict[str, list[str]]:
    """Metric name -> its record keys (``accuracy`` -> ``accuracy``, ``val_accuracy``)."""
    groups: dict[str, list[str]] = {}
    for history in histories:
        for rec in history:
            for k in rec:
                if k not in NOT_CURVES and k not in groups.get(k.removeprefix("val_"), []):
                    groups.setdefault(k.removeprefix("val_"), []).append(k)
    return groups


def draw(runs: Sequence[tuple[str, list[dict[str, Any]]]], path: Path) -> None:
    """``runs`` = (label, epoch records) pairs drawn into one PNG at ``path``."""
    runs = [(name, h) for name, h in runs if h]
    if not runs:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    groups = panels([h for _, h in runs])
    # a run of `phase` blocks restarts its epochs in each phase: draw it against steps
    x = "step" if any("phase" in h[0] for _, h in runs) else "epoch"
    fig, axes = plt.subplots(1, len(groups), figsize=(4.5 * len(groups), 3.5), squeeze=False)
    for ax, (metric, keys) in zip(axes[0], groups.items(), strict=True):
        for i, (name, history) in enumerate(runs):
            epochs = [h[x] for h in history]
            for k in keys:
                split = "validation" if k.startswith("val_") else "train"
                if not any(k in h for h in history):
                    continue
                ax.plot(
                    epochs,
                    [h.get(k, np.nan) for h in history],
                    color=SPLIT_COLOUR[split] if len(runs) == 1 else f"C{i % 10}",
                    linestyle=SPLIT_STYLE[split],
                    label=split if len(runs) == 1 else f"{name} {split}",
                )
        ax.set_title(metric)
        ax.set_xlabel(x)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def flat_settings(settings: dict[str, Any]) -> dict[str, str]:
    """What a run was asked to do, as ``key -> text`` to compare runs by: the model and
    its arguments, and every train setting (``optimizer`` = its name, ``optimizer.lr``)."""
    out: dict[str, str] = {"model": str(settings.get("model"))}
    for k, v in (settings.get("model_args") or {}).items():
        out[k] = json.dumps(v)

    def walk(prefix: str, v: Any) -> None:
        if isinstance(v, dict) and set(v) <= {"name", "args", "tensors"} and "name" in v:
            out[prefix] = str(v["name"])
            for k, x in (v.get("args") or {}).items():
                walk(f"{prefix}.{k}", x)
        elif isinstance(v, dict):
            for k, x in v.items():
                walk(f"{prefix}.{k}" if prefix else k, x)
        else:
            out[prefix] = json.dumps(v) if not isinstance(v, str) else v

    walk("", settings.get("train") or {})
    return out


def greater_is_better(settings: dict[str, Any], key: str) -> bool:
    """Whether a larger value of record key ``key`` (``val_accuracy``) is better."""
    from nnlang.train.metrics import METRICS, metric_label

    bare = key.removeprefix("val_")
    if bare == "loss":
        return False
    for m in (settings.get("train") or {}).get("metrics") or []:
        name, args = m.get("name"), m.get("args") or {}
        if name in METRICS and bare in (metric_label(name, args), name):
            return bool(METRICS[name].extra.get("greater_is_better", True))
    return not bare.endswith(("loss", "error", "mse", "mae"))


def best(settings: dict[str, Any], history: list[dict[str, Any]], key: str) -> tuple[float, int]:
    """The best value of ``key`` over the epochs and the (first) epoch it came at."""
    seen = [
        (float(h[key]), int(h["epoch"])) for h in history if isinstance(h.get(key), int | float)
    ]
    if not seen:
        raise KeyError(key)
    up = greater_is_better(settings, key)
    value = max(v for v, _ in seen) if up else min(v for v, _ in seen)
    return value, next(e for v, e in seen if v == value)
