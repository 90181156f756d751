"""scikit-learn and matplotlib are optional: the bundled datasets are arrays in the
package, and the curves are skipped with a one-line notice without matplotlib."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from _util import ROOT

# Train digits_mlp.nn as if neither package were installed (imports of them fail), then
# report which of them were imported.
RUNNER = """
import importlib.abc, json, sys
BLOCKED = ("sklearn", "matplotlib")

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"No module named {name!r} (blocked by the test)")
        return None

sys.meta_path.insert(0, Block())
from nnlang.cli import main
rc = main(["train", sys.argv[1], "--out", sys.argv[2], "-q", "--set", "epochs=2", "--curves"])
loaded = sorted({m.split(".")[0] for m in sys.modules} & set(BLOCKED))
print(json.dumps({"rc": rc, "loaded": loaded}))
"""


def test_digits_trains_without_sklearn_and_matplotlib(tmp_path) -> None:
    run = tmp_path / "run"
    r = subprocess.run(
        [sys.executable, "-c", RUNNER, str(ROOT / "examples" / "digits_mlp.nn"), str(run)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out == {"rc": 0, "loaded": []}, r.stderr
    notices = [line for line in r.stderr.splitlines() if "matplotlib is not installed" in line]
    assert notices == [
        "note: curves.png is not written: matplotlib is not installed (pip install 'nnlang[plots]')"
    ]
    assert not (run / "curves.png").exists()
    assert json.loads((run / "result.json").read_text())["test"]["accuracy"] > 0.5


def test_bundled_arrays_equal_scikit_learns() -> None:
    from sklearn import datasets

    from nnlang.train.data.sources import BUNDLED

    for name in ("digits", "iris", "wine", "breast_cancer", "diabetes"):
        bunch = getattr(datasets, f"load_{name}")()
        with np.load(BUNDLED / f"{name}.npz", allow_pickle=False) as z:
            x = bunch.images[..., None] if name == "digits" else bunch.data
            np.testing.assert_array_equal(z["x"], x.astype(z["x"].dtype))
            np.testing.assert_array_equal(z["label"], bunch.target.astype(z["label"].dtype))
            if "class_names" in z:
                assert list(z["class_names"]) == [str(c) for c in bunch.target_names]


def test_bundled_files_are_package_data() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert '"nnlang.train.data" = ["bundled/*.npz"]' in text
    assert sorted(p.name for p in (ROOT / "nnlang/train/data/bundled").glob("*.npz")) == [
        f"{n}.npz" for n in sorted(("digits", "iris", "wine", "breast_cancer", "diabetes"))
    ]
    assert Path(ROOT / "examples/data/make_bundled.py").is_file()
