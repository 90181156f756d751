"""Regression targets standardised (issue 13): `normalize = standardize(targets =
[label])` trains on standardised targets with the training split's statistics, stored
in the run; metrics and `predict` are in the original units."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _util import write

import nnlang
from nnlang.cli import main

NN = """model Diabetes {
    input x: f32[10]
    output y = x -> dense(32) -> relu -> dense(1)
}
train Diabetes {
    data      = diabetes(test = 0.2, val = 0.1, seed = 0)
    normalize = standardize(targets = [label])
    loss      = mse(y, label)
    optimizer = adam(lr = 3e-3)
    batch     = 32
    epochs    = 8
    metrics   = [mse, mae, r2]
}
"""


def test_predict_is_in_original_units_and_reproduces_eval(tmp_path, capsys) -> None:
    from nnlang.train.data import load_data
    from nnlang.train.rundir import load_normalizers

    f = write(tmp_path, "d.nn", NN)
    run = tmp_path / "run"
    assert main(["train", str(f), "--out", str(run), "-q"]) == 0
    ds = load_data("diabetes", (), {"test": 0.2, "val": 0.1, "seed": 0}, root=Path("."))
    y_train = ds.splits["train"]["label"]
    norm = load_normalizers(run)["target:label"]  # the training split's statistics
    assert norm.shift == pytest.approx(y_train.mean(), rel=1e-5)
    assert 1 / norm.mul == pytest.approx(y_train.std(), rel=1e-5)
    hist = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert hist[-1]["loss"] < 1.5 and hist[-1]["mse"] > 1000  # loss standardised, mse not
    capsys.readouterr()
    assert main(["eval", str(f), "--run", str(run), "--json"]) == 0
    test = json.loads(capsys.readouterr().out)["test"]
    x, y = ds.splits["test"]["x"], ds.splits["test"]["label"]
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "y.npy"
    assert (
        main(
            [
                "predict",
                str(f),
                "--run",
                str(run),
                "--input",
                str(tmp_path / "x.npy"),
                "-o",
                str(out),
            ]
        )
        == 0
    )
    pred = np.load(out)[:, 0]
    assert 100 < pred.mean() < 200  # the targets' own units (their mean is ~150)
    assert np.mean((pred - y) ** 2) == pytest.approx(test["mse"], rel=1e-4)
    assert np.mean(np.abs(pred - y)) == pytest.approx(test["mae"], rel=1e-4)
    r2 = 1 - np.sum((pred - y) ** 2) / np.sum((y - y.mean()) ** 2)
    assert r2 == pytest.approx(test["r2"], abs=1e-4) and test["r2"] > 0.3
    # an exported artifact: its sidecar says which output to de-standardise, and
    # `predict --artifact` gives what `predict --run` gives
    art = tmp_path / "d.stablehlo"
    assert (
        main(["export", str(f), "--run", str(run), "--format", "stablehlo", "--out", str(art)]) == 0
    )
    meta = json.loads((tmp_path / "d.stablehlo.json").read_text())
    assert meta["normalization"]["outputs"] == {"y": "target:label"}
    assert meta["normalization"]["inputs"] == ["x"]
    out2 = tmp_path / "y2.npy"
    argv = ["predict", "--artifact", str(art), "--input", str(tmp_path / "x.npy"), "-o", str(out2)]
    assert main(argv) == 0
    np.testing.assert_allclose(np.load(out2)[:, 0], pred, rtol=1e-5, atol=1e-3)


def test_targets_must_be_regression_targets_of_the_data(tmp_path, capsys) -> None:
    f = write(tmp_path, "d.nn", NN.replace("targets = [label]", "targets = [lable]"))
    assert main(["train", str(f), "--out", str(tmp_path / "r"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "E403" in err and "`lable`" in err and "normalize" in err
    digits = (
        NN.replace("diabetes(", "digits(")
        .replace("f32[10]", "f32[64]")
        .replace("dense(1)", "dense(10)")
        .replace("mse(y, label)", "cross_entropy(y, label)")
        .replace("[mse, mae, r2]", "[accuracy]")
    )
    res = nnlang.check("c.nn", text=digits)
    assert any(d.code == "E403" and "class labels" in d.message for d in res.diagnostics), [
        d.message for d in res.diagnostics
    ]
