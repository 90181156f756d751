"""TensorBoard event files of a run, written from the epoch records of metrics.jsonl.

``<run>/tensorboard/train`` and ``<run>/tensorboard/validation`` hold one event file
each (written with tensorboardX's protobufs and record writer, no TensorFlow), laid out as Keras's TensorBoard callback does so
that ``tensorboard --logdir runs/`` draws the training and validation value of a metric
on one chart: a record's ``val_accuracy`` is ``accuracy`` in ``validation``, ``loss`` is
``loss`` in ``train``, and the learning rate (``lr``), the mean seconds per step over the
epoch (``step_seconds``) and the skipped steps are scalars of ``train``. The x axis is the
epoch. It is called only by :func:`nnlang.train.rundir.append_metrics` and
:func:`~nnlang.train.rundir.write_metrics`, the one place that writes epoch records: a
resume rewrites the events from the restored history, as it rewrites metrics.jsonl, so
each epoch appears once. Without tensorboardX installed nothing is written.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

DIR = "tensorboard"
SPLITS = {"train": "train", "val": "validation"}
_open: dict[Path, dict[str, Any]] = {}  # run -> split -> EventsWriter


def scalars(history: list[dict[str, Any]], i: int) -> dict[str, dict[str, float]]:
    """The scalars of epoch record ``history[i]``, by split: ``{"train": {"loss": ...}}``."""
    rec = history[i]
    out: dict[str, dict[str, float]] = {"train": {}, "val": {}}
    for k, v in rec.items():
        if k in ("epoch", "step", "seconds") or not isinstance(v, int | float):
            continue
        split, name = ("val", k[4:]) if k.startswith("val_") else ("train", k)
        out[split][name] = float(v)
    prev = history[i - 1] if i > 0 else {"step": 0, "seconds": 0.0}
    steps = rec.get("step", 0) - prev.get("step", 0)
    if "seconds" in rec and steps > 0:
        out["train"]["step_seconds"] = (rec["seconds"] - prev.get("seconds", 0.0)) / steps
    return out


def _events_writer() -> Any:
    """tensorboardX's ``EventsWriter``, imported without PyTorch: tensorboardX's package
    imports torch when it is installed, only to recognise its tensors (1.1 s of every
    run here). While the import runs, ``import torch`` fails unless torch is loaded
    already (then it costs nothing); a later ``import torch`` works as usual."""
    import sys

    block = "torch" not in sys.modules
    if block:
        sys.modules["torch"] = None  # type: ignore[assignment]
    try:
        from tensorboardX.event_file_writer import EventsWriter
    finally:
        if block and sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]
    return EventsWriter


def _writer(run: Path, split: str) -> Any | None:
    """The run's event writer of one split, opened on first use (None without
    tensorboardX). tensorboardX's synchronous ``EventsWriter``: an epoch's events are in
    the file when :func:`log_epoch` returns (``SummaryWriter`` queues them to a thread)."""
    writers = _open.setdefault(run, {})
    if split not in writers:
        try:
            EventsWriter = _events_writer()
        except ImportError:
            return None
        folder = run / DIR / SPLITS[split]
        folder.mkdir(parents=True, exist_ok=True)
        writers[split] = EventsWriter(str(folder / "events"))
    return writers[split]


def log_epoch(run: Path, history: list[dict[str, Any]], i: int) -> None:
    """Write epoch record ``history[i]`` and flush (an epoch is on disk when it ends)."""
    # a run of `phase` blocks restarts its epochs in each phase: its x axis is the step
    rec = history[i]
    epoch = int(rec["step"] if "phase" in rec else rec.get("epoch", i + 1))
    for split, values in scalars(history, i).items():
        w = _writer(run, split) if values else None
        if w is None:
            continue
        from tensorboardX.proto.event_pb2 import Event
        from tensorboardX.summary import scalar

        for name, v in values.items():
            w.write_event(Event(wall_time=time.time(), step=epoch, summary=scalar(name, v)))
        w.flush()


def close(run: Path) -> None:
    for w in _open.pop(run, {}).values():
        w.close()


def rewrite(run: Path, history: list[dict[str, Any]]) -> None:
    """The event files made again from ``history`` (a start or a resume)."""
    close(run)
    tb = run / DIR
    if tb.is_dir() and not tb.is_symlink():
        shutil.rmtree(tb)
    for i in range(len(history)):
        log_epoch(run, history, i)
