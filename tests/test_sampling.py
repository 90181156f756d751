"""`nnlang sample` beyond a GAN's noise inputs: a VAE's decoder fed from the prior, and a
causal language model drawn token by token (prompt, temperature, top-k, text out)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from _util import ROOT, write

from nnlang.cli import main
from nnlang.train.run import train
from nnlang.train.trained import TrainedRun

VAE = ROOT / "examples" / "vae.nn"

LM = """
model LM(vocab: int = 16) {
    input x: i32[8]
    h = x -> embedding(vocab, 16) -> sinusoidal_position
         -> attention(heads = 2, causal = true) -> dense(32) -> relu
    output logits = h -> dense(vocab)
}

train LM {
    data      = text("c.txt", window = 8, stride = 2, test = 0.1)
    loss      = cross_entropy(logits, label)
    optimizer = adam(lr = 1e-2)
    batch     = 16
    epochs    = 8
    seed      = 0
}
"""


def test_vae_samples_from_the_prior_are_digits_of_many_classes(tmp_path, capsys) -> None:
    """`sample = pixels` behind a `sample_normal`: z drawn from N(0, I), decoded. The full
    30-epoch run gives mean top probability 0.58 under a classifier of real digits, with
    every class drawn 6.5-13% of the time; here 10 epochs."""
    pytest.importorskip("sklearn")
    sys.path.insert(0, str(ROOT / "bench"))
    from gan_quality import score

    r = train(VAE, out=tmp_path / "run", progress=False, sets=["epochs=10"])
    out = tmp_path / "s.npy"
    assert main(["sample", str(VAE), "--run", str(r.run_dir), "-n", "500", "-o", str(out)]) == 0
    assert "500 draws of `pixels` [8, 8, 1]" in capsys.readouterr().out
    s = np.load(out)
    assert s.shape == (500, 8, 8, 1) and 0 <= s.min() and s.max() <= 1
    q = score(s)
    assert q["classes_3pct"] >= 8, q
    run = TrainedRun.open(VAE, r.run_dir)
    assert np.array_equal(run.sample(500, 0).array, s)  # seeded: reproducible
    assert not np.array_equal(run.sample(8, 1).array, s[:8])
    # the prior, not the encoder: the zeros fed as `image` do not matter
    assert s.std(axis=0).mean() > 0.05


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    """A small causal model of a repeating text, trained once for this module's tests."""
    tmp_path = tmp_path_factory.mktemp("lm")
    (tmp_path / "c.txt").write_text("abcdefghij " * 80, encoding="utf-8")
    src = write(tmp_path, "lm.nn", LM)
    return src, train(src, out=tmp_path / "run", progress=False)


def test_language_model_continues_a_prompt_as_text(lm_run, tmp_path, capsys) -> None:
    src, r = lm_run
    argv = ["sample", str(src), "--run", str(r.run_dir), "--prompt", "ab", "--length", "30"]
    assert main([*argv, "-n", "2", "--temperature", "0"]) == 0
    texts = capsys.readouterr().out.split("\n\n")
    assert texts[0] == texts[1].rstrip("\n")  # greedy: both the same
    # a context longer than the input's 8 positions slides: the corpus goes on repeating
    assert texts[0] == "abcdefghij abcdefghij abcdefghij", texts[0]
    out = tmp_path / "s.txt"
    assert main([*argv, "-n", "3", "--top-k", "3", "--seed", "4", "-o", str(out)]) == 0
    assert "3 samples of 32 tokens from `logits`" in capsys.readouterr().out
    drawn = out.read_text(encoding="utf-8").split("\n\n")
    assert len(drawn) == 3 and all(t.startswith("ab") and len(t.rstrip("\n")) == 32 for t in drawn)
    assert set("".join(drawn)) <= set("abcdefghij \n")


def test_language_model_draws_are_seeded_and_top_k_one_is_greedy(lm_run) -> None:
    src, r = lm_run
    run = TrainedRun.open(src, r.run_dir)
    kw = {"prompt": "ef", "length": 12}
    a = run.sample(4, 0, **kw)
    assert a.tokens and a.array.shape == (4, 14) and a.array.dtype == np.int32
    assert np.array_equal(a.array, run.sample(4, 0, **kw).array)
    hot = run.sample(64, 1, temperature=5.0, **kw).array
    assert len({tuple(row) for row in hot.tolist()}) > 1  # a high temperature varies
    greedy = run.sample(2, 0, temperature=0.0, **kw).array
    assert np.array_equal(run.sample(2, 9, top_k=1, **kw).array, greedy)


def test_sample_options_are_checked(lm_run, capsys) -> None:
    src, r = lm_run
    base = ["sample", str(src), "--run", str(r.run_dir)]
    assert main([*base, "--length", "0"]) == 1
    assert "E504" in capsys.readouterr().err
    assert main([*base, "--prompt", ""]) == 1
    assert "`--prompt` is empty" in capsys.readouterr().err


RBM = ROOT / "examples" / "rbm.nn"


def test_rbm_gibbs_samples_look_like_digits(tmp_path, capsys) -> None:
    """1000 rounds of Gibbs sampling in the trained RBM. Scored by the distance to the
    nearest real digit (mean squared, pixels in [0, 1]): the full run's samples measure
    0.027, uniform noise 0.196; the mean sample correlates 0.93 with the mean digit."""
    from sklearn.datasets import load_digits

    r = train(RBM, out=tmp_path / "run", progress=False)
    out = tmp_path / "s.npy"
    argv = ["sample", str(RBM), "--run", str(r.run_dir), "-n", "300", "-o", str(out)]
    assert main(argv) == 0
    assert "300 draws of `image` [8, 8, 1]" in capsys.readouterr().out
    s = np.load(out)
    assert s.shape == (300, 8, 8, 1) and 0 <= s.min() and s.max() <= 1
    x = load_digits().data / 16
    flat = s.reshape(300, 64)
    nearest = ((flat[:, None, :] - x[None, :, :]) ** 2).mean(-1).min(1).mean()
    assert nearest < 0.06, nearest
    assert np.corrcoef(flat.mean(0), x.mean(0))[0, 1] > 0.8
    run = TrainedRun.open(RBM, r.run_dir)
    assert np.array_equal(run.sample(300, 0).array, s)
    assert not np.array_equal(run.sample(300, 0, steps=10).array, s)


def test_a_stack_of_rbms_is_sampled_top_down(tmp_path) -> None:
    src = write(
        tmp_path,
        "dbn.nn",
        """
model Stack {
    input image: f32[8, 8, 1]
    h1 = image -> rbm(32)
    output h2 = h1 -> rbm(16)
}

train Stack {
    data      = digits(test = 0.2, seed = 0)
    normalize = scale(1 / 16)
    loss      = rule(h2)
    optimizer = sgd(lr = 0.1)
    epochs    = 1
}
""",
    )
    r = train(src, out=tmp_path / "run", progress=False)
    drawn = TrainedRun.open(src, r.run_dir).sample(5, 0, steps=20)
    assert drawn.name == "image" and drawn.array.shape == (5, 8, 8, 1)
    assert 0 <= drawn.array.min() and drawn.array.max() <= 1
