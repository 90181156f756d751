"""Data sources: path confinement, the bundled datasets, CSV files, and
:func:`load_data`, which runs a source and validates its result. The .npz and IDX
sources are in :mod:`nnlang.train.data.arrays`.

- ``digits``, ``iris``, ``wine``, ``breast_cancer``, ``diabetes``: scikit-learn's toy
  sets, shipped as compressed arrays in ``bundled/`` (no download, no scikit-learn).
  ``digits`` features are float32 ``[N, 8, 8, 1]`` with raw 0..16 values;
  the others ``[N, F]`` float32. Labels are int32 under ``label``.
- ``csv``, ``npz``, ``idx``: files, resolved against the .nn file's directory and
  confined to it (:func:`confine`).
"""

from __future__ import annotations

import csv as _csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nnlang.diagnostics import ArgError, did_you_mean
from nnlang.fsio import Escape, confined
from nnlang.train.catalog import Entry, Param, declare, resolve
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
            f"data path `{path}` leads outside the directory of the .nn file ({e.root})",
            arg=arg,
            help="data files must be inside the directory of the .nn file or below it",
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


# ---------------------------------------------------------------------------- csv
def _column_index(
    spec: int | str, header: list[str] | None, n_cols: int, file: str, arg: str
) -> int:
    if isinstance(spec, int):
        i = spec + n_cols if spec < 0 else spec
        if not 0 <= i < n_cols:
            raise ArgError(
                "E407", f"`{file}` has {n_cols} columns; there is no column {spec}", arg=arg
            )
        return i
    if header is None:
        raise ArgError(
            "E403",
            f"column `{spec}` is named but `{file}` is read without a header",
            arg=arg,
            help="give a column index, or set `header = true`",
        )
    if spec not in header:
        hint = did_you_mean(spec, header) or f"columns: {', '.join(header)}"
        raise ArgError("E407", f"`{file}` has no column `{spec}`", arg=arg, help=hint)
    return header.index(spec)


def _labels_from_text(
    values: list[str], rows: list[int], file: str, col: str, label_type: str
) -> tuple[np.ndarray, dict[str, Any]]:
    """Class indices or float values from a label column (see ``csv``'s doc)."""
    if "" in values:
        bad = values.index("")
        raise ArgError(
            "E407", f"`{file}` row {rows[bad]}, column `{col}`: the label is empty", arg="label"
        )
    nums: list[float] = []
    for v in values:
        try:
            nums.append(float(v))
        except ValueError:
            break
    numeric = len(nums) == len(values) and all(math.isfinite(x) for x in nums)
    if label_type == "value" or (
        label_type == "auto" and numeric and not all(x.is_integer() for x in nums)
    ):
        if not numeric:
            bad = next(i for i, v in enumerate(values) if not _is_finite_number(v))
            raise ArgError(
                "E407",
                f"`{file}` row {rows[bad]}, column `{col}`: label `{values[bad]}` is not a finite number",
                arg="label",
            )
        y = np.asarray(nums, np.float32)
        return y, {"task": "values"}
    if numeric and all(x.is_integer() and x >= 0 for x in nums):
        y = np.asarray(nums, np.int64).astype(np.int32)
        return y, _class_meta(y)
    # class names (or negative / fractional numbers used as names): sorted -> 0..K-1
    names = sorted(
        set(values), key=lambda s: (float(s), s) if _is_finite_number(s) else (math.inf, s)
    )
    lookup = {s: i for i, s in enumerate(names)}
    y = np.asarray([lookup[v] for v in values], np.int32)
    return y, _class_meta(y, names)


def _is_finite_number(s: str) -> bool:
    try:
        return math.isfinite(float(s))
    except ValueError:
        return False


@declare(
    SOURCES,
    "csv",
    "A CSV file of numbers: one row per example, the label in one column and features in "
    "the others (or those listed). Integer labels >= 0 are class indices; other non-numeric "
    "or negative labels are class names, numbered in sorted order; fractional labels are "
    "regression targets. Features become x f32[F].",
    Param("path", "str", doc="CSV file, relative to the .nn file"),
    Param(
        "label",
        "column",
        -1,
        "label column: a name (with a header) or a 0-based index; -1 is the last",
    ),
    Param("features", "columns", None, "feature columns (default: every column but the label)"),
    Param("header", "bool", True, "the first row names the columns"),
    Param("delimiter", "str", ",", "field separator (one character)"),
    Param(
        "label_type",
        "str",
        "auto",
        "`class`, `value` (regression targets) or `auto`",
        choices=("auto", "class", "value"),
    ),
    *_SPLIT_PARAMS,
)
def _csv_source(
    root: Path,
    path: str,
    label: int | str,
    features: list[int | str] | None,
    header: bool,
    delimiter: str,
    label_type: str,
    test: float,
    val: float,
    seed: int,
) -> Dataset:
    if len(delimiter) != 1:
        raise ArgError(
            "E403", f"`delimiter` must be one character, got {delimiter!r}", arg="delimiter"
        )
    file = _existing(root, path, "path")
    try:
        with open(file, newline="", encoding="utf-8-sig") as f:
            reader = _csv.reader(f, delimiter=delimiter)
            rows: list[tuple[int, list[str]]] = [
                (reader.line_num, r) for r in reader if any(c.strip() for c in r)
            ]
    except (OSError, UnicodeDecodeError, _csv.Error) as e:
        raise _unreadable(path, e, "path") from None
    names: list[str] | None = None
    if header and rows:
        names = [c.strip() for c in rows[0][1]]
        rows = rows[1:]
    if not rows:
        raise ArgError("E407", f"`{path}` has no data rows", arg="path")
    n_cols = len(names) if names is not None else len(rows[0][1])
    for line, r in rows:
        if len(r) != n_cols:
            raise ArgError(
                "E407", f"`{path}` row {line} has {len(r)} columns, expected {n_cols}", arg="path"
            )
    li = _column_index(label, names, n_cols, path, "label")
    if features is None:
        fi = [i for i in range(n_cols) if i != li]
    else:
        fi = [_column_index(c, names, n_cols, path, "features") for c in features]
        if li in fi:
            raise ArgError("E403", "the label column is also listed as a feature", arg="features")
    if not fi:
        raise ArgError("E407", f"`{path}` has no feature columns besides the label", arg="features")
    col_name = (lambda i: names[i]) if names is not None else (lambda i: str(i))
    x = np.empty((len(rows), len(fi)), np.float32)
    for r, (line, cells) in enumerate(rows):
        for j, i in enumerate(fi):
            text = cells[i].strip()
            try:
                v = float(text)
            except ValueError:
                what = "is empty" if not text else f"`{text}` is not a number"
                raise ArgError(
                    "E407", f"`{path}` row {line}, column `{col_name(i)}`: {what}", arg="path"
                ) from None
            if not math.isfinite(v):
                raise ArgError(
                    "E407",
                    f"`{path}` row {line}, column `{col_name(i)}`: feature value `{text}` is not finite",
                    arg="path",
                    help="remove or fill in missing values before training",
                )
            x[r, j] = v
    y, meta = _labels_from_text(
        [cells[li].strip() for _, cells in rows],
        [line for line, _ in rows],
        path,
        col_name(li),
        label_type,
    )
    meta.update(
        source="csv", path=path, feature_names=[col_name(i) for i in fi], label_column=col_name(li)
    )
    return _make({"x": x, "label": y}, "label", test, val, seed, meta)


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
