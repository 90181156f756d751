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

``train`` also holds the model graph (:func:`log_graph`: a ``GraphDef`` built from the
nnlang graph with tensorboardX's protobufs, no PyTorch; TensorBoard's Graphs tab) and,
with ``histograms = true``, a histogram of every parameter per epoch
(:func:`log_histograms`).
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
    epoch = x_of(history[i], i)
    for split, values in scalars(history, i).items():
        w = _writer(run, split) if values else None
        if w is None:
            continue
        from tensorboardX.proto.event_pb2 import Event
        from tensorboardX.summary import scalar

        for name, v in values.items():
            w.write_event(Event(wall_time=time.time(), step=epoch, summary=scalar(name, v)))
        w.flush()


def graph_def(graph: Any) -> Any:
    """The nnlang graph as a TensorBoard ``GraphDef``: one node per layer (its id, so a
    block's layers group under their instance, `enc/dense`), the layer kind as its op,
    its arguments, parameters and output types as attributes; inputs and outputs are
    nodes of their own (``input`` and ``output/<name>``)."""
    from tensorboardX.proto.attr_value_pb2 import AttrValue
    from tensorboardX.proto.graph_pb2 import GraphDef
    from tensorboardX.proto.node_def_pb2 import NodeDef
    from tensorboardX.proto.tensor_shape_pb2 import TensorShapeProto
    from tensorboardX.proto.versions_pb2 import VersionDef

    def shapes(types: list[Any]) -> AttrValue:
        dims = [
            TensorShapeProto(
                dim=[TensorShapeProto.Dim(size=-1)]  # the batch
                + [TensorShapeProto.Dim(size=d if isinstance(d, int) else -1) for d in t.shape]
            )
            for t in types
        ]
        return AttrValue(list=AttrValue.ListValue(shape=dims))

    def ref(src: str, port: int) -> str:
        return src if port == 0 else f"{src}:{port}"

    nodes = []
    for n in graph.order():
        attr = {
            "_output_shapes": shapes(n.out_types),
            "type": AttrValue(s=", ".join(map(str, n.out_types)).encode()),
        }
        if n.params:
            attr["parameters"] = AttrValue(i=n.params)
        for k, v in (n.args or {}).items():
            attr[f"arg/{k}"] = AttrValue(s=str(v).encode())
        nodes.append(
            NodeDef(name=n.id, op=n.kind_name, input=[ref(s, p) for s, p in n.inputs], attr=attr)
        )
    for o in graph.outputs:
        nodes.append(
            NodeDef(
                name=f"output/{o.name}",
                op="output",
                input=[ref(o.node, o.port)],
                attr={
                    "_output_shapes": shapes([o.type]),
                    "type": AttrValue(s=str(o.type).encode()),
                },
            )
        )
    return GraphDef(node=nodes, versions=VersionDef(producer=22))


def log_graph(run: Path, graph: Any) -> None:
    """The model graph into the ``train`` event file (TensorBoard's Graphs tab)."""
    w = _writer(run, "train")
    if w is None:
        return
    from tensorboardX.proto.event_pb2 import Event

    w.write_event(Event(wall_time=time.time(), graph_def=graph_def(graph).SerializeToString()))
    w.flush()


def log_histograms(run: Path, step: int, params: dict[str, Any]) -> None:
    """One histogram per parameter (``params``: name -> host array) at ``step`` (the
    epoch's x value, as the scalars use)."""
    w = _writer(run, "train")
    if w is None or not params:
        return
    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.summary import histogram

    for name, v in params.items():
        summary = histogram(name, v.astype("float64").ravel(), "auto")
        w.write_event(Event(wall_time=time.time(), step=step, summary=summary))
    w.flush()


def x_of(rec: dict[str, Any], i: int) -> int:
    """The x value of epoch record ``rec`` (``history[i]``): its epoch, or its step in a
    run of `phase` blocks (which restarts its epochs in each phase)."""
    return int(rec["step"] if "phase" in rec else rec.get("epoch", i + 1))


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
