"""The local-rule families against their reference libraries, side by side.

- SOM: examples/som.nn against MiniSom on the same split of the 8x8 digits (pixels
  scaled to [0, 1]), 10x10 rectangular map, gaussian neighbourhood, sigma 1, lr 0.5,
  MiniSom's asymptotic decay of both, one sample per update in random order, the same
  number of iterations (epochs x training samples). Quantisation and topographic error
  on the test split; seconds per epoch (nnlang: the fused epoch loop after compilation,
  from metrics.jsonl, one checkpoint at the end; MiniSom: its training time / epochs).
- RBM: examples/rbm.nn against scikit-learn's BernoulliRBM with the same hidden size,
  learning rate, batch, epochs and PCD (one chain per batch row); mean squared
  reconstruction error of the mean-field reconstruction on the test split.
- DBN: examples/dbn.nn (two RBMs of 256 units pretrained greedily with CD-1, lr 0.1,
  batch 10, 10 epochs each, then 30 epochs of supervised fine-tuning of the stack with a
  softmax head) against scikit-learn's BernoulliRBM (256 units, lr 0.1, batch 10, 10
  epochs) + LogisticRegression pipeline on the same split, for several C (the best
  reported); and the same network trained from scratch (the fine-tuning phase alone).
  Test accuracy.
- Hopfield: examples/hopfield.nn, N = 100, P = 1..10 random patterns, recall from 10%
  flipped bits (the textbook capacity 0.138 N for Hebbian storage; 100% recall expected
  for P <= 0.1 N).

    python bench/local_rules.py [som|rbm|dbn|hopfield ...]    # all four by default

Needs the `bench` extra (minisom, scikit-learn).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EX = ROOT / "examples"


def digits01() -> tuple[np.ndarray, np.ndarray]:
    """The examples' train and test images, flattened and scaled to [0, 1]."""
    from nnlang.train.data import load_data

    ds = load_data("digits", (), {"test": 0.2, "seed": 0}, root=EX)
    key = ds.feature_keys[0]
    return tuple(  # type: ignore[return-value]
        ds.splits[s][key].reshape(-1, 64).astype(np.float32) / 16 for s in ("train", "test")
    )


def nnlang_run(example: str, sets: list[str]) -> tuple[dict[str, float], float]:
    """Test metrics and the median seconds per epoch after the first (compiling) one."""
    from nnlang.train.run import train

    with tempfile.TemporaryDirectory() as tmp:
        r = train(EX / example, out=Path(tmp) / "run", progress=False, sets=sets)
        rows = [
            json.loads(x) for x in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()
        ]
    secs = [b["seconds"] - a["seconds"] for a, b in zip(rows, rows[1:], strict=False)]
    return dict(r.test), statistics.median(secs) if secs else float("nan")


def som(epochs: int = 10, seed: int = 0, rounds: int = 5) -> bool:
    """``rounds`` pairs (nnlang, MiniSom) taken in turn, so that load from elsewhere
    falls on both; the speed-up is the median of the pairs' ratios."""
    from minisom import MiniSom

    train, test = digits01()
    # one checkpoint, at the end: MiniSom writes none
    sets = [f"epochs={epochs}", f"seed={seed}", f"checkpoint_every={epochs}"]
    ours_s, ref_s = [], []
    for _ in range(rounds):
        ours, ours_epoch = nnlang_run("som.nn", sets)
        ref = MiniSom(10, 10, 64, sigma=1.0, learning_rate=0.5, random_seed=seed)
        ref.random_weights_init(train)
        t = time.perf_counter()
        ref.train(train, epochs * len(train), random_order=True)
        ours_s.append(ours_epoch)
        ref_s.append((time.perf_counter() - t) / epochs)
    qe, te = ref.quantization_error(test), ref.topographic_error(test)
    oq, ot = ours["quantization_error"], ours["topographic_error"]
    ratios = sorted(r / o for r, o in zip(ref_s, ours_s, strict=True))
    speed = statistics.median(ratios)
    print(f"SOM 10x10 digits, {epochs} epochs ({epochs * len(train)} iterations), {rounds} pairs:")
    print(f"  MiniSom: QE {qe:.4f}  TE {te:.4f}  {statistics.median(ref_s) * 1e3:.1f} ms/epoch")
    print(f"  nnlang:  QE {oq:.4f}  TE {ot:.4f}  {statistics.median(ours_s) * 1e3:.1f} ms/epoch")
    print(
        f"  pairs (ms/epoch, MiniSom / nnlang): {[(round(r * 1e3, 1), round(o * 1e3, 1)) for r, o in zip(ref_s, ours_s, strict=True)]}"
    )
    print(
        f"  QE ratio {oq / qe:.4f} (<= 1.05), TE diff {ot - te:+.4f} (<= 0.02), "
        f"speed {speed:.1f}x (>= 10; pairs {ratios[0]:.1f}-{ratios[-1]:.1f}x)"
    )
    return oq <= 1.05 * qe and ot <= te + 0.02 and speed >= 10


def rbm(epochs: int = 10, seed: int = 0) -> bool:
    from sklearn.neural_network import BernoulliRBM

    train, test = digits01()
    ours, ours_epoch = nnlang_run("rbm.nn", [f"epochs={epochs}", f"seed={seed}"])
    ref = BernoulliRBM(
        n_components=256, learning_rate=0.1, batch_size=10, n_iter=epochs, random_state=seed
    )
    t = time.perf_counter()
    ref.fit(train)
    ref_epoch = (time.perf_counter() - t) / epochs
    h = ref.transform(test)
    recon = 1 / (1 + np.exp(-(h @ ref.components_ + ref.intercept_visible_)))
    ref_err = float(np.mean(np.square(test - recon)))
    err = ours["reconstruction_error"]
    print(f"RBM 256 hidden, PCD, lr 0.1, batch 10, {epochs} epochs:")
    print(f"  BernoulliRBM: reconstruction error {ref_err:.5f}  {ref_epoch * 1e3:.1f} ms/epoch")
    print(f"  nnlang:       reconstruction error {err:.5f}  {ours_epoch * 1e3:.1f} ms/epoch")
    print(f"  ratio {err / ref_err:.4f} (<= 1), speed {ref_epoch / ours_epoch:.1f}x")
    return err <= ref_err


def dbn(seed: int = 0) -> bool:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import BernoulliRBM
    from sklearn.pipeline import Pipeline

    from nnlang.train.data import load_data

    (train, test), ds = digits01(), load_data("digits", (), {"test": 0.2, "seed": 0}, root=EX)
    y_train, y_test = (ds.splits[s]["label"] for s in ("train", "test"))
    t = time.perf_counter()
    ours, _ = nnlang_run("dbn.nn", [f"seed={seed}"])
    ours_s = time.perf_counter() - t
    # the same network and fine-tuning, no pretraining: the last phase alone
    text = (EX / "dbn.nn").read_text("utf-8")
    head, finetune = text.split("    phase rbm1")[0], text.split("    phase finetune {")[1]
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp) / "scratch.nn"
        scratch.write_text(head + finetune.replace("\n    }\n}", "\n}", 1), "utf-8")
        plain, _ = nnlang_run(str(scratch), [f"seed={seed}"])
    refs = {}
    for c in (1.0, 100.0, 6000.0):
        t = time.perf_counter()
        pipe = Pipeline(
            [
                (
                    "rbm",
                    BernoulliRBM(
                        n_components=256,
                        learning_rate=0.1,
                        batch_size=10,
                        n_iter=10,
                        random_state=seed,
                    ),
                ),
                ("logistic", LogisticRegression(C=c, max_iter=2000)),
            ]
        )
        pipe.fit(train, y_train)
        refs[c] = (float(pipe.score(test, y_test)), time.perf_counter() - t)
    best = max(refs, key=lambda c: refs[c][0])
    print("DBN 256-256 on the digits (test accuracy):")
    for c, (acc, secs) in refs.items():
        print(f"  BernoulliRBM + LogisticRegression(C={c:g}): {acc:.4f}  ({secs:.1f} s)")
    print(f"  nnlang dbn.nn (pretrain + fine-tune):     {ours['accuracy']:.4f}  ({ours_s:.1f} s)")
    print(f"  nnlang, same network from scratch:        {plain['accuracy']:.4f}")
    print(f"  DBN - best pipeline {ours['accuracy'] - refs[best][0]:+.4f} (>= 0)")
    return ours["accuracy"] >= refs[best][0]


def hopfield() -> bool:
    ok = True
    print("Hopfield N = 100, recall from 10% flipped bits (10 probes per pattern):")
    for storage in ("hebbian", "pseudoinverse", "storkey"):
        row = []
        for p in (1, 5, 10, 14, 20):
            sets = [f"data.patterns={p}", f'storage="{storage}"']
            sets.append(f"batch={p}")  # every pattern in one batch (pseudo-inverse needs it)
            ours, _ = nnlang_run("hopfield.nn", sets)
            row.append(f"P={p}: {ours['recall_accuracy']:.2f}")
            # error-free Hebbian recall holds to about N / (4 ln N) = 5.4 patterns
            if p <= (5 if storage == "hebbian" else 10):
                ok &= ours["recall_accuracy"] == 1.0
        print(f"  {storage:13s} " + "  ".join(row))
    return ok


def main(argv: list[str]) -> int:
    which = argv or ["som", "rbm", "dbn", "hopfield"]
    fns = {"som": som, "rbm": rbm, "dbn": dbn, "hopfield": hopfield}
    results = [fns[w]() for w in which]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
