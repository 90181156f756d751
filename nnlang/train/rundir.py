"""The run directory: where a run lives, what it writes there, and reading it back.

Run directory layout (arrays and plain text only — nothing in it is ever executed):

    settings.json      resolved model arguments, train settings, data binding, versions
    sources/           the .nn source files as they were when the run started
    normalizer.npz     per-input normalisation statistics fitted on the training split
    metrics.jsonl      one JSON object per epoch
    result.json        the reported split's metrics and how the run stopped
    curves.png         learning curves, written at the end
    checkpoints/       Orbax checkpoints (last N and the best)

May import the standard library, NumPy, ``diagnostics``, ``fsio``, the graph room and
``train.data``, ``train.spec`` and ``train.loop`` (for ``Data``); matplotlib only when
the curves are drawn.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from nnlang.diagnostics import Diagnostic, NNError
from nnlang.fsio import atomic_write_bytes, atomic_write_text
from nnlang.graph.graph import Graph
from nnlang.graph.program import Program
from nnlang.train.data import Normalizer, normalizers_npz, read_normalizers_npz
from nnlang.train.loop import Data
from nnlang.train.spec import TrainSpec


def next_run_dir(base: Path) -> Path:
    """``base`` if it is free, else the first free ``base-2``, ``base-3``, ..."""
    if not base.exists():
        return base
    i = 2
    while Path(f"{base}-{i}").exists():
        i += 1
    return Path(f"{base}-{i}")


def latest_run_dir(base: Path) -> Path | None:
    """The most recently changed of ``base`` and ``base-N`` that has checkpoints."""
    candidates = [
        p for p in [base, *base.parent.glob(base.name + "-*")] if (p / "checkpoints").is_dir()
    ]
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def _versions() -> dict[str, str]:
    from nnlang.train.versions import installed

    return installed()


def write_settings(
    run: Path,
    program: Program,
    graph: Graph,
    spec: TrainSpec,
    model_args: dict[str, Any],
    data: Data,
    sets: list[str],
) -> None:
    """settings.json, sources/ and normalizer.npz, written when a run starts."""
    settings = {
        "model": graph.name,
        "model_args": model_args,
        "file": program.main,
        "overrides": sets,
        "train": {
            "data": {"name": spec.data.name, "args": spec.data.args},
            "loss": spec.loss_text,
            "optimizer": {"name": spec.optimizer.name, "args": spec.optimizer.args},
            "schedule": {"name": spec.schedule.name, "args": spec.schedule.args},
            "normalize": {"name": spec.normalize.name, "args": spec.normalize.args}
            if spec.normalize
            else None,
            "augment": [{"name": c.name, "args": c.args} for c in spec.augment],
            "metrics": [
                {"name": c.name, "args": c.args, "tensors": list(c.tensors)} for c in spec.metrics
            ],
            "batch": spec.batch,
            "epochs": spec.epochs,
            "seed": spec.seed,
            "clip": spec.clip,
            "keep": spec.keep,
            "checkpoint_every": spec.checkpoint_every,
            "monitor": spec.monitor,
            "patience": spec.patience,
            "init_from": spec.init_from,
        },
        "inputs": [
            {"name": p.name, "type": str(p.type), "data": data.mapping.get(p.name)}
            for p in graph.inputs
        ],
        "outputs": [{"name": p.name, "type": str(p.type)} for p in graph.outputs],
        "data": {"sizes": {k: data.size(k) for k in data.splits}, "meta": _jsonable(data.meta)},
        "versions": _versions(),
    }
    atomic_write_text(run / "settings.json", json.dumps(settings, indent=2, default=str) + "\n")
    for name, text in program.sources.texts.items():
        safe = name.replace(os.sep, "__").replace("..", "up")
        atomic_write_text(run / "sources" / safe, text)
    if data.normalizers:
        atomic_write_bytes(run / "normalizer.npz", normalizers_npz(data.normalizers))


def _jsonable(x: Any) -> Any:
    try:
        json.dumps(x)
        return x
    except TypeError:
        if isinstance(x, dict):
            return {str(k): _jsonable(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [_jsonable(v) for v in x]
        if isinstance(x, np.ndarray):
            return x.tolist()
        return str(x)


def read_settings(run: Path) -> dict[str, Any]:
    """settings.json of a run directory; E503 if ``run`` is not one."""
    if not (run / "settings.json").is_file() or not (run / "checkpoints").is_dir():
        raise NNError(
            Diagnostic(
                "E503",
                f"`{run}` is not a run directory (no settings.json or checkpoints/)",
                help="pass the folder `nnlang train` printed, e.g. --run runs/digits_mlp",
            )
        )
    settings: dict[str, Any] = json.loads((run / "settings.json").read_text("utf-8"))
    return settings


def load_normalizers(run: Path) -> dict[str, Normalizer]:
    """normalizer.npz of a run directory (empty if the run normalises nothing)."""
    path = run / "normalizer.npz"
    if not path.exists():
        return {}
    try:
        return read_normalizers_npz(path)
    except (OSError, ValueError, KeyError) as e:
        raise NNError(Diagnostic("E503", f"`{path}` cannot be read: {e}")) from None


def write_result(run: Path, test: dict[str, Any], stopped: str, epochs: int) -> None:
    atomic_write_text(
        run / "result.json",
        json.dumps({"test": test, "stopped": stopped, "epochs": epochs}, indent=2) + "\n",
    )


def plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    """curves.png: one panel per metric, training and validation side by side."""
    if not history:
        return
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in history[0] if k not in ("epoch", "step", "seconds", "lr")]
    groups: dict[str, list[str]] = {}
    for k in keys:
        groups.setdefault(k.removeprefix("val_"), []).append(k)
    fig, axes = plt.subplots(1, len(groups), figsize=(4.5 * len(groups), 3.5), squeeze=False)
    epochs = [h["epoch"] for h in history]
    for ax, (name, ks) in zip(axes[0], groups.items(), strict=True):
        for k in ks:
            ax.plot(
                epochs,
                [h.get(k, np.nan) for h in history],
                label="validation" if k.startswith("val_") else "train",
            )
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
