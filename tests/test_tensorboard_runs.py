"""TensorBoard event files in every run, `nnlang runs` and `nnlang curves` (issue 15),
on three tiny runs of the Siamese example."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from _util import ROOT

from nnlang.cli import main

SIAMESE = ROOT / "examples" / "siamese.nn"


def read_events(folder: Path) -> dict[str, dict[int, float]]:
    """tag -> {step: value} of every event file in ``folder`` (TFRecord framing: length,
    its CRC, the Event protobuf, its CRC), read with tensorboardX's own protobuf."""
    from tensorboardX.proto import event_pb2

    out: dict[str, dict[int, float]] = {}
    for f in sorted(folder.glob("events.out.tfevents.*")):
        data, i = f.read_bytes(), 0
        while i < len(data):
            (n,) = struct.unpack("<Q", data[i : i + 8])
            event = event_pb2.Event()
            event.ParseFromString(data[i + 12 : i + 12 + n])
            i += 12 + n + 4
            for v in event.summary.value:
                out.setdefault(v.tag, {})[event.step] = v.simple_value
    return out


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory) -> Path:
    import contextlib
    import io

    base = tmp_path_factory.mktemp("runs")
    for i, lr in enumerate(("1e-3", "3e-3", "1e-2")):
        sets = ["--set", "epochs=2", "--set", f"optimizer.lr={lr}", "--set", "batch=128"]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["train", str(SIAMESE), "--out", str(base / f"s{i}"), "-q", *sets]) == 0
        (base / f"s{i}.out").write_text(out.getvalue())
    return base


def test_best_epoch_and_why_in_result_and_final_line(three_runs) -> None:
    run = three_runs / "s0"
    history = _history(run)
    best = json.loads((run / "result.json").read_text())["best"]
    top = max(h["val_accuracy"] for h in history)  # siamese.nn: monitor = val_accuracy
    assert best["monitor"] == "val_accuracy" and best["mode"] == "highest"
    assert best["epoch"] == next(h["epoch"] for h in history if h["val_accuracy"] == top)
    assert best["value"] == top and "highest `val_accuracy`" in best["why"]
    line = (three_runs / "s0.out").read_text().strip().splitlines()[-1]
    assert f"weights of epoch {best['epoch']}: {best['why']}) -> " in line


def _history(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_event_files_hold_every_scalar(three_runs) -> None:
    run = three_runs / "s0"
    history = _history(run)
    train, val = (
        read_events(run / "tensorboard" / "train"),
        read_events(run / "tensorboard" / "validation"),
    )
    assert set(train) == {"loss", "accuracy", "lr", "step_seconds"}
    assert set(val) == {"loss", "accuracy"}
    for rec in history:
        e = rec["epoch"]
        assert train["loss"][e] == pytest.approx(rec["loss"], rel=1e-6)
        assert train["lr"][e] == pytest.approx(1e-3, rel=1e-6)
        assert val["accuracy"][e] == pytest.approx(rec["val_accuracy"], rel=1e-6)
        # measured on the training batches as they ran, in the fused loop (issue 15)
        assert train["accuracy"][e] == pytest.approx(rec["accuracy"], rel=1e-6)
        assert 0.0 <= rec["accuracy"] <= 1.0
        assert train["step_seconds"][e] > 0
    # a resume rewrites metrics.jsonl from the checkpoint's history: the events follow
    from nnlang.train.rundir import write_metrics

    write_metrics(run, history[:1])
    assert set(read_events(run / "tensorboard" / "train")["loss"]) == {1}
    write_metrics(run, history)
    assert set(read_events(run / "tensorboard" / "validation")["loss"]) == {1, 2}


def test_runs_table_compares_three_runs(three_runs, capsys) -> None:
    assert main(["runs", str(three_runs), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [Path(r["run"]).name for r in rows] == ["s0", "s1", "s2"]
    assert [r["settings"] for r in rows] == [
        {"optimizer.lr": "0.001"},
        {"optimizer.lr": "0.003"},
        {"optimizer.lr": "0.01"},
    ]
    for r in rows:
        history = _history(Path(r["run"]))
        top = max(h["val_accuracy"] for h in history)
        assert r["best"]["val_accuracy"]["value"] == top
        low = min(h["val_loss"] for h in history)
        assert r["best"]["val_loss"]["value"] == low  # a loss is best when lowest
        assert r["epochs"] == 2 and r["stopped"] == "finished" and "accuracy" in r["test"]
    assert main(["runs", str(three_runs)]) == 0
    out = capsys.readouterr().out
    assert "optimizer.lr" in out and "best val_accuracy" in out and "s2" in out


def test_curves_of_several_runs(three_runs, tmp_path, capsys) -> None:
    out = tmp_path / "c.png"
    runs = [str(three_runs / f"s{i}") for i in range(3)]
    assert main(["curves", *runs, "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "3 runs" in capsys.readouterr().out
    assert main(["curves", *runs, "-o", str(tmp_path / "c.svg")]) == 1
    assert "E504" in capsys.readouterr().err


def test_curves_without_matplotlib_is_an_environment_error(
    three_runs, tmp_path, monkeypatch, capsys
) -> None:
    import sys

    from nnlang.cli import EXIT_ENV

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["curves", str(three_runs / "s0"), "-o", str(tmp_path / "c.png")]) == EXIT_ENV
    err = capsys.readouterr().err
    assert "E705" in err and "nnlang[plots]" in err


def test_curve_colours_name_the_split_or_the_run(monkeypatch, tmp_path) -> None:
    """One run: training blue and validation orange on every panel (the validation
    colour once changed between panels); several: one colour per run everywhere."""
    import matplotlib.pyplot as plt

    from nnlang.train import curves

    seen: list[list[tuple[str, str, str]]] = []
    monkeypatch.setattr(
        plt,
        "close",
        lambda fig: seen.append(
            [
                (ln.get_label(), ln.get_color(), ln.get_linestyle())
                for ax in fig.axes
                for ln in ax.lines
            ]
        ),
    )
    h = [{"epoch": e, "loss": 1.0 / e, "val_loss": 1.2 / e, "val_accuracy": 0.5} for e in (1, 2)]
    curves.draw([("a", h)], tmp_path / "one.png")
    colours = {label: {c for lab, c, _ in seen[-1] if lab == label} for label, _, _ in seen[-1]}
    assert colours == {"train": {"tab:blue"}, "validation": {"tab:orange"}}
    curves.draw([("a", h), ("b", h)], tmp_path / "two.png")
    by_run = {
        lab.split()[0]: {c for la, c, _ in seen[-1] if la.startswith(lab.split()[0])}
        for lab, _, _ in seen[-1]
    }
    assert all(len(c) == 1 for c in by_run.values()) and by_run["a"] != by_run["b"]
    assert {s for lab, _, s in seen[-1] if lab.endswith("validation")} == {"--"}
