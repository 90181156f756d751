"""Metrics measured on the training batches inside the fused epoch (issue 15): shown in
the epoch lines, written to metrics.jsonl and TensorBoard, carried across chunks and
checkpoints; the model graph and parameter histograms in the TensorBoard event file."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from _util import write

from nnlang.train.epochs import TrainProgress

NN = """model MLP {
    input image: f32[8, 8, 1]
    output logits = image -> flatten -> dense(32) -> relu -> dense(10)
}
train MLP {
    data = digits(test = 0.2, seed = 0)
    normalize = scale(0.0625)
    loss = cross_entropy(logits, label)
    optimizer = OPT
    batch = 64
    epochs = 2
    metrics = [accuracy, top_k(3)]
}
"""


def _engine(tmp_path, opt: str):
    from nnlang.lower.network import lower
    from nnlang.train.loop import load, make_engine
    from nnlang.train.run import setup

    s = setup(write(tmp_path, "m.nn", NN.replace("OPT", opt)))
    data = load(s.graph, s.spec, s.program.root)
    net = lower(s.graph, 0)
    shapes = {k: v.shape[1:] for k, v in data.splits["train"].items() if k in net.input_names}
    eng = make_engine(s.graph, s.spec, net, data.size("train"), shapes)
    arrays = {k: jax.device_put(v) for k, v in data.splits["train"].items()}
    return eng, data, arrays


def test_training_metrics_match_evaluation_when_nothing_changes(tmp_path) -> None:
    """With lr = 1e-20 the weights do not move (below float32 resolution): the accuracy summed over an epoch's batches
    is the accuracy of evaluating the examples those batches held, however the epoch
    is cut into chunks; the sums survive a checkpoint's progress record."""
    eng, data, arrays = _engine(tmp_path, "sgd(lr = 1e-20)")
    spe, b = eng.steps_per_epoch, eng.spec.batch
    copy = lambda: jax.tree.map(lambda x: x.copy(), eng.state)  # noqa: E731 (runs donate it)
    _, whole = eng.run(copy(), arrays, 0, 0, spe)
    p = TrainProgress()
    state = copy()
    for lo in range(0, spe, 7):
        state, c = eng.run(state, arrays, 0, lo, min(spe, lo + 7))
        p = TrainProgress.from_record(p.to_record())  # as a resume would read it
        p.add_metrics(c.metrics)
    for m in eng.train_metrics:
        lab = m.label
        np.testing.assert_allclose(p.metric_sums[lab]["correct"], whole.metrics[lab]["correct"])
        seen = np.asarray(eng.permutation(0))[: spe * b]
        ref = eng.evaluate(state, {k: v[seen] for k, v in data.splits["train"].items()})
        assert m.finalize(p.metric_sums[lab]) == pytest.approx(ref[lab], abs=1e-6)


def test_training_metrics_in_lines_jsonl_and_tensorboard(tmp_path, capsys) -> None:
    import json

    from test_tensorboard_runs import read_events

    from nnlang.cli import main

    f = write(tmp_path, "m.nn", NN.replace("OPT", "adam(lr = 1e-2)"))
    run = tmp_path / "r"
    sets = ["--set", "monitor=accuracy", "--set", "histograms=true"]
    assert main(["train", str(f), "--out", str(run), *sets]) == 0
    err = capsys.readouterr().err
    hist = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert list(hist[0])[:5] == ["epoch", "step", "loss", "accuracy", "top_3"]
    assert hist[1]["accuracy"] > hist[0]["accuracy"] > 0.3
    assert f"epoch 2/2  loss={hist[1]['loss']:.4f} accuracy={hist[1]['accuracy']:.4f}" in err
    assert "highest `accuracy`" in json.loads((run / "result.json").read_text())["best"]["why"]
    tb = read_events(run / "tensorboard" / "train")
    assert tb["top_3"][2] == pytest.approx(hist[1]["top_3"], rel=1e-6)
    # parameter histograms per epoch (histograms = true), read back from the event file
    events = _events(run / "tensorboard" / "train")
    histos = {(e.step, v.tag): v.histo for e in events for v in e.summary.value if v.histo.num}
    assert {t for _, t in histos} == {
        "dense/kernel",
        "dense/bias",
        "dense_1/kernel",
        "dense_1/bias",
    }
    assert {s for s, _ in histos} == {1, 2} and histos[2, "dense/kernel"].num == 64 * 32
    assert sum(histos[2, "dense_1/bias"].bucket) == 10
    graphs = [e.graph_def for e in events if e.graph_def]
    assert len(graphs) == 1 and "dense_1" in {n.name for n in _graph(graphs[0]).node}


def _events(folder):
    import struct

    from tensorboardX.proto import event_pb2

    out = []
    for f in sorted(folder.glob("events.out.tfevents.*")):
        data, i = f.read_bytes(), 0
        while i < len(data):
            (n,) = struct.unpack("<Q", data[i : i + 8])
            out.append(event_pb2.Event.FromString(data[i + 12 : i + 12 + n]))
            i += 16 + n
    return out


def _graph(raw: bytes):
    from tensorboardX.proto import graph_pb2

    return graph_pb2.GraphDef.FromString(raw)


def test_graph_def_of_a_model_with_blocks() -> None:
    """Every layer a node named by its id (a block's layers under their instance, so
    TensorBoard groups them), the kind as op, edges from the call inputs, output types."""
    from _util import ROOT

    import nnlang
    from nnlang.train.tblog import graph_def

    graph = nnlang.build(ROOT / "examples" / "residual.nn")
    g = _graph(graph_def(graph).SerializeToString())
    nodes = {n.name: n for n in g.node}
    assert set(nodes) == {n.id for n in graph.order()} | {f"output/{o.name}" for o in graph.outputs}
    for n in graph.order():
        assert nodes[n.id].op == n.kind_name
        assert [i.split(":")[0] for i in nodes[n.id].input] == [s for s, _ in n.inputs]
        dims = [d.size for d in nodes[n.id].attr["_output_shapes"].list.shape[0].dim]
        assert dims[1:] == [d if isinstance(d, int) else -1 for d in n.out_types[0].shape]
    assert any("/" in name for name in nodes)  # block layers are scoped by their instance
    assert nodes[graph.order()[-1].id].attr["parameters"].i == graph.order()[-1].params


def test_train_metrics_false_leaves_them_out(tmp_path) -> None:
    import nnlang

    text = NN.replace("OPT", "adam(lr = 1e-3)").replace(
        "epochs = 2", "epochs = 2\n    train_metrics = false"
    )
    eng, _, _ = _engine(tmp_path, "adam(lr = 1e-3)\n    train_metrics = false")
    assert eng.train_metrics == [] and eng.zero_sums() == {}
    res = nnlang.check(
        "m.nn", text=text.replace("epochs = 2\n", "epochs = 2\n    monitor = accuracy\n")
    )
    assert [d.code for d in res.diagnostics] == ["E403"]  # no training accuracy to monitor
