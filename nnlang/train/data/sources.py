"""Data sources: path confinement, the bundled datasets, and
:func:`load_data`, which runs a source and validates its result. The .npz and IDX
sources are in :mod:`nnlang.train.data.arrays`, CSV and Parquet in
:mod:`nnlang.train.data.tables`.

- ``digits``, ``iris``, ``wine``, ``breast_cancer``, ``diabetes``: scikit-learn's toy
  sets, shipped as compressed arrays in ``bundled/`` (no download, no scikit-learn).
  ``digits`` features are float32 ``[N, 8, 8, 1]`` with raw 0..16 values;
  the others ``[N, F]`` float32. Labels are int32 under ``label``.
- ``csv``, ``parquet`` (:mod:`nnlang.train.data.tables`), ``npz``, ``idx``: files,
  resolved against the .nn file's directory and confined to it (:func:`confine`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nnlang.diagnostics import ArgError
from nnlang.fsio import Escape, confined
from nnlang.train.catalog import Entry, declare, resolve
from nnlang.train.data.dataset import SOURCES, Dataset, validate
from nnlang.train.data.splits import _SPLIT_PARAMS, _class_meta, _make


# ------------------------------------------------------------------------------ paths
def confine(root: Path, path: str | Path, *, arg: str | None = "path") -> Path:
    """``path`` resolved against ``root``; E408 unless it stays inside ``root``.

    The rule is :func:`nnlang.fsio.confined`'s (symlinks and ``..`` followed, so ``../x``,
    an absolute path elsewhere and a link pointing out of ``root`` are all refused);
    ``~`` is expanded first.
    """
    if not isinstance(path, (str, Path)) or not str(path):
        raise ArgError("E403", "a data path must be a non-empty string", arg=arg)
    p = Path(path).expanduser() if str(path).startswith("~") else Path(path)
    try:
        return confined(root, p)
    except Escape as e:
        if not e.leaves:
            raise ArgError("E408", f"data path {e}", arg=arg) from None
        raise ArgError(
            "E408",
            f"data path `{path}` leads outside the data root ({e.root})",
            arg=arg,
            help="data files must be inside the .nn file's folder, or inside the folder "
            '`data_root = "DIR"` (or `--data-root DIR`) names',
        ) from None


def _existing(root: Path, path: str, arg: str) -> Path:
    p = confine(root, path, arg=arg)
    if not p.is_file():
        what = "is not a file" if p.exists() else "does not exist"
        raise ArgError("E408", f"data file `{path}` {what} (looked for {p})", arg=arg)
    return p


def _unreadable(path: str, err: Exception, arg: str) -> ArgError:
    return ArgError("E408", f"cannot read data file `{path}`: {err}", arg=arg)


# ------------------------------------------------------------------ bundled datasets
#: compressed arrays written once by examples/data/make_bundled.py from scikit-learn's
#: copies (package data: no scikit-learn at run time)
BUNDLED = Path(__file__).parent / "bundled"


def _bundled(name: str, test: float, val: float, seed: int) -> Dataset:
    with np.load(BUNDLED / f"{name}.npz", allow_pickle=False) as z:
        x = z["x"].astype(np.float32)  # digits: [N, 8, 8, 1] stored as uint8 0..16
        y = z["label"]
        meta: dict[str, Any] = {"source": name}
        if "class_names" in z:
            meta.update(_class_meta(y, [str(c) for c in z["class_names"]]))
        else:
            meta["task"] = "values"
        if "feature_names" in z:
            meta["feature_names"] = [str(f) for f in z["feature_names"]]
    return _make({"x": x, "label": y}, "label", test, val, seed, meta)


for _name, _doc in (
    (
        "digits",
        "8x8 handwritten digits (1797 images, 10 classes; scikit-learn's copy, bundled): x f32[8, 8, 1] with values 0..16.",
    ),
    ("iris", "Iris flowers (150 examples, 4 features, 3 classes), bundled: x f32[4]."),
    ("wine", "Wine recognition (178 examples, 13 features, 3 classes), bundled: x f32[13]."),
    (
        "breast_cancer",
        "Breast cancer Wisconsin (569 examples, 30 features, 2 classes), bundled: x f32[30].",
    ),
    (
        "diabetes",
        "Diabetes progression (442 examples, 10 features scaled as scikit-learn ships them; "
        "a regression target under `label`, 25..346), bundled: x f32[10], label f32.",
    ),
):
    declare(SOURCES, _name, _doc, *_SPLIT_PARAMS)(lambda root, _n=_name, **kw: _bundled(_n, **kw))


# ------------------------------------------------------------------------- loading
def load_data(
    name: str, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None, *, root: Path
) -> Dataset:
    """Run the ``data = name(...)`` source and :func:`validate` what it returns.

    ``root`` is the .nn file's directory: file paths resolve against it and stay in it.
    """
    entry, bound = resolve(SOURCES, "data source", name, args, kwargs)
    return dataset_from(entry, bound, root=root)


def dataset_from(entry: Entry, bound: Mapping[str, Any], *, root: Path) -> Dataset:
    """:func:`load_data` for a call already bound to ``entry`` (every param in
    ``bound``): nothing is bound again."""
    ds = entry.fn(root=Path(root), **bound)
    validate(ds)
    return ds
