"""Multi-step training (issue 10): `step` blocks checked by `nnlang check`, each step
updating only its own parameter groups, the GAN example's sample quality, `nnlang
sample`, and exact resume of a multi-step run after `kill -9`."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from _util import ROOT, train_cmd, write

from nnlang.api import check
from nnlang.cli import main
from nnlang.train.run import train
from nnlang.train.trained import TrainedRun

GAN = ROOT / "examples" / "gan.nn"

MODEL = """
block Gen {
    input  z
    output image = z -> dense(32) -> relu -> dense(64) -> sigmoid -> reshape((8, 8, 1))
}
block Disc {
    input  image: f32[8, 8, 1]
    output logit = image -> flatten -> dense(32) -> relu -> dense(1)
}
model GAN {
    input  z: f32[4]
    input  image: f32[8, 8, 1]
    shared G = Gen()
    shared D = Disc()
    output fake   = G(z)
    output d_real = D(image)
    output d_fake = D(stop_gradient(fake))
    output g_fake = D(fake)
}
"""


def _train_section(steps: str, extra: str = "") -> str:
    return f"""{MODEL}
train GAN {{
    data = digits(test = 0.2, seed = 0)
    normalize = scale(0.0625)
    noise = z
    sample = fake
    {extra}
    {steps}
    batch = 64
    epochs = 2
}}
"""


GOOD_STEPS = """
    step d { loss = binary_cross_entropy(d_real, 1) + binary_cross_entropy(d_fake, zeros_like); update = D }
    step g { loss = binary_cross_entropy(g_fake, ones_like(g_fake)); update = G; optimizer = sgd(lr = 0.1) }
"""


def _codes(tmp_path: Path, text: str) -> list[tuple[str, int]]:
    res = check(write(tmp_path, "m.nn", text))
    return [(d.code, d.span.line if d.span else 0) for d in res.diagnostics]


def test_good_steps_check(tmp_path) -> None:
    assert _codes(tmp_path, _train_section(GOOD_STEPS)) == []


@pytest.mark.parametrize(
    ("steps", "extra", "code"),
    [
        ("step d { loss = binary_cross_entropy(d_real, 1); update = Dx }", "", "E420"),
        ("step d { loss = binary_cross_entropy(d_real, 1); update = [] }", "", "E420"),
        ("step d { loss = binary_cross_entropy(d_real, 1) }", "", "E402"),
        ("step d { update = D }", "", "E402"),
        # the generator is behind stop_gradient in d_fake: this loss cannot move G
        ("step g { loss = binary_cross_entropy(d_fake, 1); update = G }", "", "E421"),
        ("step g { loss = binary_cross_entropy(d_real, 1); update = G }", "", "E421"),
        ("step d { lose = mse(fake, image); update = G }", "", "E401"),
        ("step d { loss = mse(fake, image); update = G; every = 0 }", "", "E202"),
        ("step d { loss = mse(fake, image); update = G }", "loss = mse(fake, image)", "E403"),
        (
            "step d { loss = mse(fake, image); update = G }\n step d { loss = mse(fake, image); update = G }",
            "",
            "E102",
        ),
    ],
)
def test_step_mistakes_are_located(tmp_path, steps: str, extra: str, code: str) -> None:
    got = _codes(tmp_path, _train_section(steps, extra))
    assert got and got[0][0] == code, got
    assert got[0][1] > 0  # located


def test_noise_and_sample_name_the_model(tmp_path) -> None:
    text = _train_section(GOOD_STEPS).replace("noise = z", "noise = zz")
    assert [c for c, _ in _codes(tmp_path, text)] == ["E404"]
    text = _train_section(GOOD_STEPS).replace("sample = fake", "sample = fakes")
    assert [c for c, _ in _codes(tmp_path, text)] == ["E404"]


def test_each_step_updates_only_its_groups(tmp_path) -> None:
    """A step that updates D leaves G bitwise as initialised; its optimizer holds
    moments for D's parameters only."""
    from flax import nnx

    steps = "step d { loss = binary_cross_entropy(d_real, 1) + binary_cross_entropy(d_fake, 0); update = D }"
    src = write(tmp_path, "m.nn", _train_section(steps))
    r = train(src, out=tmp_path / "run", progress=False, cache=False)
    fresh = train(
        src, out=tmp_path / "fresh", progress=False, cache=False, sets=["epochs=1"], max_epochs=0
    )
    a = nnx.to_flat_state(nnx.state(r.model, nnx.Param))
    b = dict(nnx.to_flat_state(nnx.state(fresh.model, nnx.Param)))
    g = [(p, v) for p, v in a if p[1].startswith("G/")]
    d = [(p, v) for p, v in a if p[1].startswith("D/")]
    assert g and d
    assert all(np.array_equal(v.get_value(), b[p].get_value()) for p, v in g)
    assert not all(np.array_equal(v.get_value(), b[p].get_value()) for p, v in d)
    run = TrainedRun.open(src, r.run_dir)
    _, opts = nnx.merge(run.engine.train_def, run.state)
    moments = [p for p, _ in nnx.to_flat_state(nnx.state(opts[0]))]
    assert any("D/dense" in str(p) for p in moments)
    assert not any("G/dense" in str(p) for p in moments)


def test_gan_samples_are_digits_of_every_class(tmp_path, capsys) -> None:
    """Issue 10's done-when, shortened: the shipped GAN trained for 50 of its 200 epochs,
    1000 samples scored by a logistic regression trained on the real digits. The full
    criterion (mean top probability >= 0.8, >= 8 classes with >= 3%) is checked by
    bench/gan_quality.py on the full run (measured 0.82 and 10 classes)."""
    pytest.importorskip("sklearn")
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    from gan_quality import score

    r = train(GAN, out=tmp_path / "run", progress=False, sets=["epochs=50"])
    out = tmp_path / "s.npy"
    argv = ["sample", str(GAN), "--run", str(r.run_dir), "-n", "1000", "-o", str(out)]
    assert main(argv) == 0
    s = score(np.load(out))
    assert s["mean_top_prob"] >= 0.65 and s["classes_3pct"] >= 8, s
    run = TrainedRun.open(GAN, r.run_dir)  # seeded and reproducible
    assert np.array_equal(run.sample(1000, 0).array, np.load(out))
    assert not np.array_equal(run.sample(10, 1).array, run.sample(10, 0).array)


def test_sample_needs_a_generative_train_section(tmp_path, capsys) -> None:
    src = write(tmp_path, "m.nn", _train_section(GOOD_STEPS).replace("sample = fake", ""))
    r = train(src, out=tmp_path / "run", progress=False, sets=["epochs=1"])
    rc = main(
        ["sample", str(src), "--run", str(r.run_dir), "-n", "4", "-o", str(tmp_path / "o.npy")]
    )
    assert rc == 1 and "E512" in capsys.readouterr().err


def test_kill_and_resume_of_a_gan_is_exact(tmp_path) -> None:
    """kill -9 a real multi-step training process; resuming gives bitwise the same
    parameters, both steps' optimizer states and RNG state as an uninterrupted run."""
    from test_train import assert_same, final_arrays

    src = write(
        tmp_path,
        "gan.nn",
        _train_section(GOOD_STEPS.replace("; update = D }", "; update = D; every = 2 }")),
    )
    sets = {"epochs": 30, "batch": 16}
    ref = tmp_path / "ref"
    subprocess.run(train_cmd(src, ref, sets), check=True, capture_output=True)
    run = tmp_path / "killed"
    proc = subprocess.Popen(
        train_cmd(src, run, sets), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    t = time.time()
    while time.time() - t < 120:
        ck = run / "checkpoints"
        if ck.is_dir() and len([p for p in ck.iterdir() if p.name.isdigit()]) >= 2:
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert not (run / "result.json").exists(), "the run finished before it was killed"
    subprocess.run(train_cmd(src, run, sets, "--resume"), check=True, capture_output=True)
    a = final_arrays(ref)
    # both steps' optimizer states are checkpointed, each over its own group
    assert any(k.startswith("['1']['0']['opt_state']") and "'D/" in k for k in a), list(a)
    assert any(k.startswith("['1']['1']['opt_state']") for k in a), list(a)  # G's sgd
    assert not any(k.startswith("['1']['0']['opt_state']") and "'G/" in k for k in a)
    assert_same(a, final_arrays(run))
