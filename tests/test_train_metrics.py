"""Metrics measured on the training batches inside the fused epoch (issue 15): shown in
the epoch lines, written to metrics.jsonl and TensorBoard, carried across chunks and
checkpoints."""

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
    assert main(["train", str(f), "--out", str(run), "--set", "monitor=accuracy"]) == 0
    err = capsys.readouterr().err
    hist = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert list(hist[0])[:5] == ["epoch", "step", "loss", "accuracy", "top_3"]
    assert hist[1]["accuracy"] > hist[0]["accuracy"] > 0.3
    assert f"epoch 2/2  loss={hist[1]['loss']:.4f} accuracy={hist[1]['accuracy']:.4f}" in err
    assert "highest `accuracy`" in json.loads((run / "result.json").read_text())["best"]["why"]
    tb = read_events(run / "tensorboard" / "train")
    assert tb["top_3"][2] == pytest.approx(hist[1]["top_3"], rel=1e-6)
