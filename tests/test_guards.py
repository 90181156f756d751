"""The training step's guards and how failures are reported (issue 8): non-finite
updates are never applied or saved, `nonfinite = skip` for reduced precision, a
non-finite evaluation is no success."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
from _util import write

from nnlang.cli import main

#: A float16 model: its first kernel at seed 0 is [0.535, -0.485, -0.402, -0.619], so
#: the example x = [a, a * 0.535 / 0.485, 0, 0] gives y ~ 0: a finite loss (target 100)
#: whose float16 gradient (about 25 * a) overflows.
F16 = """
model Tiny {
    input x: f16[4]
    output y = x -> dense(1)
}
train Tiny {
    data = npz("d.npz", x = "x", label = "label")
    loss = mse(y, label)
    optimizer = sgd(lr = 0.01)
    batch = 8
    epochs = 1
}
"""


def _f16_project(tmp_path: Path, n: int = 8) -> Path:
    r = np.random.default_rng(0)
    w = np.array([1, 2, 3, 4.0]) * 0.1
    x = r.standard_normal((n, 4)).astype(np.float32)
    a = 3000.0
    x[3] = [a, a * 0.5350889 / 0.48486355, 0, 0]  # the one example that overflows
    y = (x @ w)[:, None].astype(np.float32)
    y[3] = 100
    xt = r.standard_normal((16, 4)).astype(np.float32)
    yt = (xt @ w)[:, None].astype(np.float32)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=xt, y_test=yt)
    return write(tmp_path, "m.nn", F16)


def _saved(run: Path) -> dict[str, np.ndarray]:
    steps = sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit())
    tree = ocp.StandardCheckpointer().restore(
        (run / "checkpoints" / str(steps[-1]) / "state").absolute()
    )
    return {
        jax.tree_util.keystr(k): np.asarray(v)
        for k, v in jax.tree_util.tree_flatten_with_path(tree)[0]
    }


def test_f16_gradient_overflow_on_the_last_step_is_no_success(tmp_path, capsys) -> None:
    # before: exit 0, `test: loss=nan`, and the NaN weights kept as the best checkpoint
    nn = _f16_project(tmp_path)
    code = main(["train", str(nn), "--out", str(tmp_path / "run"), "-q"])
    err = capsys.readouterr().err
    assert code == 1
    assert "E501" in err and "gradients became non-finite at step 1 (epoch 1)" in err
    assert "was not applied" in err and "nonfinite = skip" in err
    assert not list((tmp_path / "run" / "checkpoints").glob("[0-9]*"))


def test_skip_policy_finishes_with_finite_weights_and_a_count(tmp_path, capsys) -> None:
    nn = _f16_project(tmp_path, n=32)  # 4 steps per epoch, one of them overflows
    run = tmp_path / "run"
    code = main(
        ["train", str(nn), "--out", str(run), "-q", "--set", "nonfinite=skip", "--set", "epochs=3"]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "12 steps, 3 skipped" in out and "nan" not in out
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["skipped"] for x in lines] == [1, 1, 1]
    assert all(np.isfinite(v).all() for v in _saved(run).values() if v.dtype.kind == "f")


def test_skip_policy_has_a_cap(tmp_path, capsys) -> None:
    nn = _f16_project(tmp_path)
    code = main(
        [
            "train",
            str(nn),
            "--out",
            str(tmp_path / "r"),
            "-q",
            "--set",
            "nonfinite=skip",
            "--set",
            "max_skipped=0",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and "E501" in err and "max_skipped = 0" in err


def test_update_that_overflows_the_weights_is_not_saved(tmp_path, capsys) -> None:
    # finite gradients, an absurd learning rate: the weights become inf in the last step
    _f16_project(tmp_path)
    nn = write(tmp_path, "h.nn", F16.replace("f16", "f32").replace("lr = 0.01", "lr = 1e37"))
    code = main(["train", str(nn), "--out", str(tmp_path / "run"), "-q"])
    err = capsys.readouterr().err
    assert code == 1
    assert "E501" in err and "the update at step 1 (epoch 1) made the parameters" in err
    assert not list((tmp_path / "run" / "checkpoints").glob("[0-9]*"))


def test_non_finite_evaluation_is_no_success(tmp_path, capsys) -> None:
    # float16 outputs that overflow on the test split (weights finite, kept in float32)
    r = np.random.default_rng(0)
    x = r.standard_normal((8, 4)).astype(np.float32)
    y = np.zeros((8, 1), np.float32)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=np.clip(x, -1, 1) * 2e4, y_test=y)
    nn = write(tmp_path, "m.nn", F16)
    code = main(["train", str(nn), "--out", str(tmp_path / "run"), "-q"])
    cap = capsys.readouterr()
    assert code == 1 and "test:" not in cap.out
    assert "E505" in cap.err and "not finite" in cap.err
    assert not (tmp_path / "run" / "result.json").exists()


def test_nonfinite_setting_is_checked(tmp_path, capsys) -> None:
    nn = write(tmp_path, "m.nn", F16.replace("epochs = 1", "epochs = 1\n    nonfinite = skp"))
    assert main(["check", str(nn)]) == 1
    assert "E202" in capsys.readouterr().err


def test_run_written_by_other_versions_loads_with_a_notice(tmp_path, capsys) -> None:
    from _util import ROOT

    mlp = ROOT / "examples" / "digits_mlp.nn"
    run = tmp_path / "run"
    assert main(["train", str(mlp), "--out", str(run), "-q", "--set", "epochs=1"]) == 0
    settings = json.loads((run / "settings.json").read_text())
    assert {"nnlang", "jax", "flax", "optax", "orbax-checkpoint"} <= set(settings["versions"])
    capsys.readouterr()
    assert main(["eval", str(mlp), "--run", str(run)]) == 0
    assert "warning" not in capsys.readouterr().err  # same versions: nothing said
    settings["versions"]["jax"] = "0.0.1"
    (run / "settings.json").write_text(json.dumps(settings))
    assert main(["eval", str(mlp), "--run", str(run)]) == 0  # a notice, not an error
    err = capsys.readouterr().err
    assert "warning:" in err and "jax 0.0.1 (installed: " in err and "flax" not in err


BN = """
model Iris {
    input x: f32[4]
    output logits = x -> dense(16) -> batch_norm(momentum = MOMENTUM) -> relu -> dense(3)
}
train Iris {
    data = iris(test = 0.2)
    loss = cross_entropy(logits, label)
    batch = 16
    epochs = 20
}
"""


def test_batch_norm_that_cannot_settle_is_warned(tmp_path, capsys) -> None:
    # 140 steps: momentum 0.99 needs about 500 to forget its starting statistics
    nn = write(tmp_path, "bn.nn", BN.replace("MOMENTUM", "0.99"))
    assert main(["train", str(nn), "--out", str(tmp_path / "a"), "-q"]) == 0
    err = capsys.readouterr().err
    assert "warning[W401]" in err and "needs about 500 training steps" in err
    assert "this run has 140" in err and "momentum = 0.9" in err
    nn = write(tmp_path, "bn.nn", BN.replace("MOMENTUM", "0.9"))
    assert main(["train", str(nn), "--out", str(tmp_path / "b"), "-q"]) == 0
    assert "W401" not in capsys.readouterr().err


WIDE = """
model Wide {
    input x: f32[64, 64, 3]
    output logits = x -> conv(64, 3) -> relu -> flatten -> dense(10)
}
train Wide {
    data = digits()
    loss = cross_entropy(logits, label)
    batch = 65536
}
"""


def test_batch_that_does_not_fit_is_refused_at_check(tmp_path, capsys) -> None:
    nn = write(tmp_path, "wide.nn", WIDE)
    assert main(["check", str(nn), "--memory-mb", "16384"]) == 1
    err = capsys.readouterr().err
    assert "E409" in err and "`batch = 65536` needs about 390.0 GiB" in err
    assert "the largest batch that fits is 2682: `batch = 2682`" in err
    assert "wide.nn:9:13" in err  # at the batch setting
    # the same limit, the suggested batch: accepted (check also reads the data, and the
    # digits do not fit this wide input: E407, but no E409)
    nn = write(tmp_path, "wide.nn", WIDE.replace("65536", "2682"))
    main(["check", str(nn), "--memory-mb", "16384"])
    err = capsys.readouterr().err
    assert "E409" not in err and "E407" in err
    # the default limit is the host's memory: no accelerator is asked at check time
    from nnlang.graph.checks import Budget, memory_of

    host = memory_of(Budget())
    assert host is not None and "host" in host[1]
