"""Regressions for bugs found while documenting (each once reproduced by hand)."""

from __future__ import annotations

import json

from _util import ROOT, write

import nnlang
from nnlang.cli import main
from nnlang.train.run import train

ORDER = """
model M {
    input x: f32[4]
    output first = h -> dense(3)
    output second = x -> dense(5)
    h = x -> relu
}
block Two {
    input x
    output first = h -> dense(3)
    output second = x -> dense(5)
    h = x -> relu
}
model N {
    input x: f32[4]
    p, q = x -> Two
    output a = p
    output b = q
}
"""


def test_outputs_keep_declaration_order() -> None:
    m = nnlang.build("o.nn", "M", text=ORDER)
    assert [p.name for p in m.outputs] == ["first", "second"]
    n = nnlang.build("o.nn", "N", text=ORDER)
    assert [str(p.type) for p in n.outputs] == ["f32[3]", "f32[5]"]


def test_no_unused_warning_after_a_bad_condition() -> None:
    res = nnlang.check(
        "c.nn",
        text="model C(n: int = 3) {\n    input x: f32[4]\n    if n { h = x -> dense(64) } else { h = x }\n    output y = h\n}\n",
    )
    assert [d.code for d in res.diagnostics] == ["E204"]


def test_blocks_only_library_checks_clean() -> None:
    res = nnlang.check(ROOT / "examples" / "blocks" / "resnet.nn")
    assert res.ok and not res.diagnostics


def test_monitor_must_be_reported(tmp_path, capsys) -> None:
    f = ROOT / "examples" / "digits_mlp.nn"
    assert (
        main(["train", str(f), "--out", str(tmp_path / "r"), "-q", "--set", "monitor=accurcy"]) == 1
    )
    err = capsys.readouterr().err
    assert "E403" in err and "accuracy" in err
    assert not (tmp_path / "r").exists()


def test_val_monitor_needs_a_validation_split(tmp_path, capsys) -> None:
    """The name is right (checked with the train section), but the data has no `val`."""
    f = ROOT / "examples" / "digits_mlp.nn"
    r = tmp_path / "r"
    assert main(["train", str(f), "--out", str(r), "-q", "--set", "monitor=val_accuracy"]) == 1
    err = capsys.readouterr().err
    assert "E403" in err and "add `val = 0.1` to the data source" in err
    assert not r.exists()


def test_duplicate_metric_columns_and_lr_logged(tmp_path) -> None:
    f = write(
        tmp_path,
        "m.nn",
        """
model M {
    input image: f32[8, 8, 1]
    h = image -> flatten -> dense(32) -> relu
    output logits = h -> dense(10)
    output big = h -> dense(10)
}
train M {
    data = digits(test = 0.2, val = 0.2, seed = 0)
    loss = cross_entropy(logits, label) + cross_entropy(big, label)
    optimizer = adam(3e-3)
    batch = 64
    epochs = 2
    metrics = [accuracy, accuracy(big, label)]
}
""",
    )
    r = train(f, out=tmp_path / "run", progress=False, sets=["optimizer.lr=1e-3"])
    rec = json.loads((r.run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"val_accuracy_logits", "val_accuracy_big"} <= rec.keys()
    assert abs(rec["lr"] - 1e-3) < 1e-9


def test_loss_that_does_not_fit_fails_before_the_run(tmp_path, capsys) -> None:
    f = write(
        tmp_path,
        "m.nn",
        """
model M {
    input image: f32[8, 8, 1]
    output logits = image -> dense(10)
}
train M {
    data = digits(test = 0.2, seed = 0)
    loss = cross_entropy(logits, label)
}
""",
    )
    assert main(["train", str(f), "--out", str(tmp_path / "r"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "E407" in err and "m.nn:8" in err and "^^^" in err
    assert not (tmp_path / "r").exists()


def test_eval_uses_the_same_best_checkpoint_as_train(tmp_path, capsys) -> None:
    """The direction of `monitor` is stored with each checkpoint: a reader that does not
    know it (eval, predict, export) still picks the checkpoint train reported."""
    src = ROOT / "examples" / "digits_mlp.nn"
    for sets in (
        ["epochs=4"],
        ["epochs=4", "data=digits(test = 0.2, val = 0.2, seed = 0)", "monitor=val_accuracy"],
    ):
        run = tmp_path / str(len(sets))
        r = train(src, out=run, sets=sets, progress=False)
        assert main(["eval", str(src), "--run", str(run), "--json"]) == 0
        got = json.loads(capsys.readouterr().out)["test"]
        assert got["loss"] == r.test["loss"] and got["accuracy"] == r.test["accuracy"]


def test_a_relative_run_directory_opens_for_predict_and_eval(tmp_path, monkeypatch) -> None:
    """`--run runs/m` (relative to the working directory) looked for
    `runs/m/runs/m/settings.json`: the run's files were confined from the run folder."""
    import numpy as np

    (tmp_path / "m.nn").write_text(
        "model M {\n    input x: f32[4]\n    output y = x -> dense(3)\n}\n"
        "train M {\n    data = iris()\n    loss = cross_entropy(y, label)\n    epochs = 1\n}\n"
    )
    monkeypatch.chdir(tmp_path)
    train("m.nn", out="runs/m", progress=False)
    np.save("x.npy", np.zeros((2, 4), np.float32))
    assert main(["predict", "m.nn", "--run", "runs/m", "--input", "x.npy", "-o", "y.npy"]) == 0
    assert np.load("y.npy").shape == (2, 3)
    assert main(["eval", "m.nn", "--run", "runs/m"]) == 0
