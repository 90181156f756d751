"""`nnlang predict` reads the training data's format with the training source's
reader: predicting on the training file reproduces `eval`'s accuracy, class names and
probabilities are written for classifiers, and mismatches name the input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from _util import ROOT

from nnlang.cli import main
from nnlang.train.trained import TrainedRun

TABLE = ROOT / "examples" / "table.nn"
CUSTOMERS = ROOT / "examples" / "data" / "customers.csv"


@pytest.fixture(scope="module")
def table_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("table") / "run"
    assert main(["train", str(TABLE), "--out", str(run), "-q", "--set", "epochs=5"]) == 0
    return run


def test_predict_on_the_training_file_reproduces_eval(table_run, tmp_path, capsys) -> None:
    out = tmp_path / "p.csv"
    args = ["predict", str(TABLE), "--run", str(table_run), "--input", str(CUSTOMERS)]
    assert main([*args, "-o", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "class,p_no,p_yes" and len(lines) == 801
    truth = [r.split(",")[-1] for r in CUSTOMERS.read_text().splitlines()[1:]]
    predicted = [r.split(",")[0] for r in lines[1:]]
    accuracy = np.mean([p == t for p, t in zip(predicted, truth, strict=True)])
    # eval's accuracy on the splits, weighted by their sizes, is the file's accuracy
    run = TrainedRun.open(TABLE, table_run)
    res, data = run.evaluate(("train", "test")), run.data()
    n = {s: data.size(s) for s in ("train", "test")}
    expected = sum(res[s]["accuracy"] * n[s] for s in n) / sum(n.values())
    assert accuracy == pytest.approx(expected, abs=1e-6)
    assert f"accuracy {accuracy:.4f} on its labels" in capsys.readouterr().out
    probs = np.array([[float(v) for v in r.split(",")[1:]] for r in lines[1:]])
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


def test_unlabelled_file_json_and_mismatches_named(table_run, tmp_path, capsys) -> None:
    rows = CUSTOMERS.read_text().splitlines()
    (tmp_path / "new.csv").write_text("\n".join(r.rsplit(",", 1)[0] for r in rows[:4]) + "\n")
    out = tmp_path / "p.json"
    args = ["predict", str(TABLE), "--run", str(table_run), "--input"]
    assert main([*args, str(tmp_path / "new.csv"), "-o", str(out)]) == 0
    got = json.loads(out.read_text())
    assert len(got) == 3 and set(got[0]["probabilities"]) == {"no", "yes"}
    (tmp_path / "bad.csv").write_text("age,city,plan,monthly_fee\n30,Paris,basic,9\n")
    assert main([*args, str(tmp_path / "bad.csv"), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "E504" in err and "bad.csv" in err and "category `Paris`" in err
    (tmp_path / "few.csv").write_text("age,city\n30,Oslo\n")
    assert main([*args, str(tmp_path / "few.csv"), "-o", str(out)]) == 1
    assert "few.csv" in capsys.readouterr().err


def test_image_folder_predict_reads_folders_and_refuses_unknown_classes(
    tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    example = ROOT / "examples" / "image_folder.nn"
    run = tmp_path / "run"
    assert main(["train", str(example), "--out", str(run), "-q", "--set", "epochs=2"]) == 0
    folder = ROOT / "examples" / "data" / "digit_images"
    args = ["predict", str(example), "--run", str(run), "--input"]
    assert main([*args, str(folder), "-o", str(tmp_path / "p.csv")]) == 0
    assert "400 rows" in capsys.readouterr().out
    flat = tmp_path / "flat"
    flat.mkdir()
    for f in sorted((folder / "7").glob("*.png"))[:5]:
        shutil.copy(f, flat / f.name)
    assert main([*args, str(flat), "-o", str(tmp_path / "q.npy")]) == 0
    assert np.load(tmp_path / "q.npy").shape == (5, 10)
    (tmp_path / "other" / "cat").mkdir(parents=True)
    shutil.copy(next(folder.glob("1/*.png")), tmp_path / "other" / "cat" / "a.png")
    assert main([*args, str(tmp_path / "other"), "-o", str(tmp_path / "r.csv")]) == 1
    assert (
        "class folder `other/cat` is not a class the model was trained on"
        in capsys.readouterr().err
    )
