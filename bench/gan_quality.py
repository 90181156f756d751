"""GAN sample quality: train examples/gan.nn, draw 1000 digits with `nnlang sample`, and
score them with a logistic regression trained on the real 8x8 digits (issue 10's
done-when: mean top probability >= 0.8, at least 8 of the 10 classes with >= 3% each).

    python bench/gan_quality.py [--epochs N] [--seed S] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def score(samples: np.ndarray) -> dict[str, object]:
    """Mean top probability and class shares of ``samples`` (values in [0, 1], as the
    generator draws them: the digits scaled by 1/16) under a classifier of real digits."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    x, y = load_digits(return_X_y=True)
    clf = LogisticRegression(max_iter=2000).fit(x / 16.0, y)
    p = clf.predict_proba(samples.reshape(len(samples), -1))
    shares = np.bincount(p.argmax(1), minlength=10) / len(samples)
    return {
        "mean_top_prob": float(p.max(1).mean()),
        "classes_3pct": int((shares >= 0.03).sum()),
        "shares": [round(float(s), 3) for s in shares],
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    out = Path(a.out or tempfile.mkdtemp(prefix="gan-"))
    nn = [sys.executable, "-m", "nnlang.cli"]
    sets = [] if a.epochs is None else ["--set", f"epochs={a.epochs}"]
    sets += ["--set", f"seed={a.seed}"]
    subprocess.run(
        [*nn, "train", str(ROOT / "examples/gan.nn"), "--out", str(out / "run"), "-q", *sets],
        check=True,
    )
    npy = out / "samples.npy"
    subprocess.run(
        [
            *nn,
            "sample",
            str(ROOT / "examples/gan.nn"),
            "--run",
            str(out / "run"),
            "-n",
            "1000",
            "-o",
            str(npy),
        ],
        check=True,
    )
    print(json.dumps(score(np.load(npy))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
