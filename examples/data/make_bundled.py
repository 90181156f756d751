"""Write the bundled datasets (``digits``, ``iris``, ``wine``, ``breast_cancer``,
``diabetes``) as compressed arrays inside the package, so that training on them needs
no scikit-learn at run time. Run once (needs scikit-learn, the `test` extra):

    python examples/data/make_bundled.py

Each ``nnlang/train/data/bundled/<name>.npz`` holds ``x`` (float32, or uint8 for the
digits' 0..16 pixels), ``label`` (int32 classes, float32 for diabetes's targets),
``feature_names`` and, for classes, ``class_names`` (unicode arrays: nothing pickled).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn import datasets

OUT = Path(__file__).resolve().parents[2] / "nnlang" / "train" / "data" / "bundled"
NAMES = ("digits", "iris", "wine", "breast_cancer", "diabetes")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name in NAMES:
        bunch = getattr(datasets, f"load_{name}")()
        arrays: dict[str, np.ndarray] = {}
        if name == "digits":
            assert (bunch.images == bunch.images.astype(np.uint8)).all()
            arrays["x"] = bunch.images.astype(np.uint8)[..., None]  # [N, 8, 8, 1], 0..16
        else:
            arrays["x"] = bunch.data.astype(np.float32)
            arrays["feature_names"] = np.array([str(f) for f in bunch.feature_names])
        if name == "diabetes":
            arrays["label"] = bunch.target.astype(np.float32)
        else:
            arrays["label"] = bunch.target.astype(np.int32)
            arrays["class_names"] = np.array([str(c) for c in bunch.target_names])
        np.savez_compressed(OUT / f"{name}.npz", **arrays)
        print(f"{name}: {arrays['x'].shape} -> {(OUT / f'{name}.npz').stat().st_size} bytes")


if __name__ == "__main__":
    main()
