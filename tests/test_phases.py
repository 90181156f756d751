"""Training phases (issue 10 item 3): `phase` blocks run in order, each with its own
loss, epochs, optimizer and frozen parts; records and checkpoints name the phase; a run
paused at a phase boundary, or killed with `kill -9` inside a phase, resumes to bitwise
the same model as an uninterrupted run; eval uses the final model."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import numpy as np
import pytest
from _util import ROOT, train_cmd, write
from test_train import assert_same, final_arrays

from nnlang.api import check
from nnlang.diagnostics import NNError
from nnlang.train.run import train
from nnlang.train.trained import TrainedRun

THREE = """
model AE {
    input  image: f32[8, 8, 1]
    shared enc1 = dense(16)
    shared enc2 = dense(8)
    output pixels = image -> flatten
    output code1  = pixels -> enc1 -> sigmoid
    output code2  = code1 -> enc2 -> sigmoid
    output recon1 = code1 -> dense(64) -> sigmoid
    output recon2 = code2 -> dense(16) -> sigmoid
    output logits = code2 -> dense(10)
}
train AE {
    data      = digits(test = 0.2, seed = 0)
    normalize = scale(1 / 16)
    optimizer = adam(lr = 3e-3)
    batch     = 64
    phase layer1 { loss = mse(recon1, pixels); epochs = E1 }
    phase layer2 { loss = mse(recon2, code1); freeze = [enc1]; epochs = E2 }
    phase finetune {
        loss = cross_entropy(logits, label)
        optimizer = adam(lr = 2e-2)
        metrics = [accuracy]
        epochs = E3
    }
}
"""


def _file(tmp_path, e1: int, e2: int, e3: int):
    text = THREE.replace("E1", str(e1)).replace("E2", str(e2)).replace("E3", str(e3))
    return write(tmp_path, "ae.nn", text)


def _steps(run) -> list[int]:
    return sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit())


def test_phases_check_and_run_in_order(tmp_path) -> None:
    src = _file(tmp_path, 2, 2, 1)
    assert check(src).ok
    # `--set PHASE.SETTING=...` sets one phase's setting
    r = train(src, out=tmp_path / "run", progress=False, sets=["keep=10", "finetune.epochs=2"])
    assert r.stopped == "finished" and r.steps == 6 * (1437 // 64)
    lines = [json.loads(x) for x in (r.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [(x["phase"], x["epoch"]) for x in lines] == [
        ("layer1", 1),
        ("layer1", 2),
        ("layer2", 1),
        ("layer2", 2),
        ("finetune", 1),
        ("finetune", 2),
    ]
    assert [x["step"] for x in lines] == [22 * i for i in range(1, 7)]
    assert "accuracy" in r.test and r.test["accuracy"] > 0.2
    # phase 2 froze enc1: bitwise what phase 1 left; phase 3 (nothing frozen) changed it
    import orbax.checkpoint as ocp

    def enc1(step: int) -> np.ndarray:
        tree = ocp.StandardCheckpointer().restore(
            (r.run_dir / "checkpoints" / str(step) / "state").absolute()
        )
        return np.asarray(tree["0"]["layers"]["enc1"]["kernel"])

    assert np.array_equal(enc1(44), enc1(88))
    assert not np.array_equal(enc1(88), enc1(132))
    # eval opens the final model (the last phase's optimizer state and metrics)
    tr = TrainedRun.open(src, r.run_dir)
    got = tr.evaluate(("test",))["test"]
    assert abs(got["accuracy"] - r.test["accuracy"]) < 1e-6


def test_pause_at_a_phase_boundary_resumes_exactly(tmp_path) -> None:
    src = _file(tmp_path, 2, 2, 1)
    ref = train(src, out=tmp_path / "ref", progress=False)
    run = tmp_path / "paused"
    first = train(src, out=run, progress=False, max_epochs=2)  # exactly phase 1
    assert first.stopped == "paused" and _steps(run)[-1] == 44
    with pytest.raises(NNError) as e:  # no final model yet: eval would open phase 1's
        TrainedRun.open(src, run)
    assert e.value.diagnostics[0].code == "E503" and "layer1" in e.value.diagnostics[0].message
    second = train(src, out=run, progress=False, resume=True, max_epochs=3)  # into phase 3
    assert second.stopped == "paused"
    last = train(src, out=run, progress=False, resume=True)
    assert last.stopped == "finished" and last.test == ref.test
    assert_same(final_arrays(ref.run_dir), final_arrays(run))


def test_kill_inside_phase_two_resumes_exactly(tmp_path) -> None:
    """kill -9 a real training process while it trains phase 2; the resumed run ends
    bitwise equal to an uninterrupted one (parameters, optimizer and RNG state)."""
    src = _file(tmp_path, 3, 25, 3)
    ref = train(src, out=tmp_path / "ref", progress=False).run_dir  # in-process: quicker
    run = tmp_path / "killed"
    proc = subprocess.Popen(train_cmd(src, run, {}), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    start, end = 3 * 22, 28 * 22  # phase 2's steps
    t = time.time()
    while time.time() - t < 120:
        ck = run / "checkpoints"
        if ck.is_dir() and any(int(p.name) > start + 22 for p in ck.iterdir() if p.name.isdigit()):
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert not (run / "result.json").exists(), "the run finished before it was killed"
    assert start < _steps(run)[-1] < end, _steps(run)
    subprocess.run(train_cmd(src, run, {}, "--resume"), check=True, capture_output=True)
    assert_same(final_arrays(ref), final_arrays(run))
    assert json.loads((run / "result.json").read_text()) == json.loads(
        (ref / "result.json").read_text()
    )


def test_stacked_autoencoder_example_trains_briefly(tmp_path) -> None:
    r = train(
        ROOT / "examples" / "stacked_ae.nn",
        out=tmp_path / "run",
        sets=["epochs=5"],
        progress=False,
    )
    assert r.stopped == "finished"
    assert r.test["accuracy"] >= 0.8, r.test


def test_deep_belief_network_example_trains_briefly_and_exports(tmp_path) -> None:
    """Greedy CD-1 pretraining of two RBMs, then fine-tuning of the stack; the final
    model (the RBMs as sigmoid layers p(h|v)) exports through the parity gate."""
    from nnlang.export import export

    src = ROOT / "examples" / "dbn.nn"
    r = train(src, out=tmp_path / "run", sets=["epochs=5"], progress=False)
    assert r.stopped == "finished"
    assert r.test["accuracy"] >= 0.8, r.test
    phases = [
        json.loads(x)["phase"] for x in (r.run_dir / "metrics.jsonl").read_text().splitlines()
    ]
    assert phases == ["rbm1"] * 5 + ["rbm2"] * 5 + ["finetune"] * 5
    export(src, r.run_dir, fmt="stablehlo", out=tmp_path / "dbn.stablehlo")


def test_summary_names_what_each_phase_freezes(capsys) -> None:
    from nnlang.cli import main

    ex = ROOT / "examples" / "stacked_ae.nn"
    assert main(["summary", str(ex), "--json"]) == 0
    phases = json.loads(capsys.readouterr().out)["phases"]
    assert [p["name"] for p in phases] == ["layer1", "layer2", "finetune"]
    assert phases[1]["frozen"] == ["enc1"] and phases[1]["frozen_params"] == 4160
    assert phases[0]["frozen"] == [] and phases[2]["frozen"] == []
    assert main(["summary", str(ex)]) == 0
    assert "`layer2` freezes enc1 (4,160 params)" in capsys.readouterr().out
