"""Data sources, splits, validation, normalisation and input binding.

A data source returns a :class:`Dataset`: named numpy arrays per split (``train`` and,
when asked for, ``val`` and ``test``), with one row per example in each. Sources:

- ``digits``, ``iris``, ``wine``, ``breast_cancer``: bundled with scikit-learn (no
  download). ``digits`` features are float32 ``[N, 8, 8, 1]`` with raw 0..16 values;
  the others ``[N, F]`` float32. Labels are int32 under ``label``.
- ``csv``, ``npz``, ``idx``: files, resolved against the .nn file's directory and
  confined to it (:func:`confine`).

Splits are carved with numpy's ``Generator`` seeded by ``seed``: deterministic, and
stratified by class for integer labels (each split keeps the class proportions, up to
rounding). Feature arrays are ``x`` (or the file's names); labels ``label``.

Nothing is unpickled: ``np.load(..., allow_pickle=False)``.
"""

from __future__ import annotations

import csv as _csv
import gzip
import math
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnlang.diagnostics import ArgError, did_you_mean
from nnlang.train.catalog import Entry, Param, declare, resolve

SOURCES: dict[str, Entry] = {}
NORMALIZERS: dict[str, Entry] = {}

SPLITS = ("train", "val", "test")


@dataclass
class Dataset:
    """Arrays per split: ``splits[split][key]`` is ``[N, ...]`` (same N within a split)."""

    splits: dict[str, dict[str, np.ndarray]]
    feature_keys: tuple[str, ...] = ("x",)
    label_keys: tuple[str, ...] = ("label",)
    #: source, n_classes, class_names, feature_names, ... (JSON-friendly values)
    meta: dict[str, Any] = field(default_factory=dict)

    def size(self, split: str) -> int:
        arrays = self.splits.get(split)
        return 0 if not arrays else len(next(iter(arrays.values())))

    def sample_shape(self, key: str) -> tuple[int, ...]:
        return tuple(self.splits["train"][key].shape[1:])


# ------------------------------------------------------------------------------ paths
def confine(root: Path, path: str | Path, *, arg: str | None = "path") -> Path:
    """``path`` resolved against ``root``; E408 unless it stays inside ``root``.

    Resolving follows symlinks and ``..``, so ``../x``, an absolute path elsewhere
    and a link pointing out of ``root`` are all refused.
    """
    if not isinstance(path, (str, Path)) or not str(path):
        raise ArgError("E403", "a data path must be a non-empty string", arg=arg)
    base = Path(root).resolve()
    p = Path(path).expanduser() if str(path).startswith("~") else Path(path)
    target = (p if p.is_absolute() else base / p).resolve()
    if not target.is_relative_to(base):
        raise ArgError(
            "E408",
            f"data path `{path}` leads outside the directory of the .nn file ({base})",
            arg=arg,
            help="data files must be inside the directory of the .nn file or below it",
        )
    return target


def _existing(root: Path, path: str, arg: str) -> Path:
    p = confine(root, path, arg=arg)
    if not p.is_file():
        what = "is not a file" if p.exists() else "does not exist"
        raise ArgError("E408", f"data file `{path}` {what} (looked for {p})", arg=arg)
    return p


def _unreadable(path: str, err: Exception, arg: str) -> ArgError:
    return ArgError("E408", f"cannot read data file `{path}`: {err}", arg=arg)


# ----------------------------------------------------------------------------- splits
def _allocate(counts: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` across classes in proportion to ``counts`` (largest remainder),
    never taking more than a class has."""
    if total <= 0 or counts.sum() == 0:
        return np.zeros_like(counts)
    exact = counts * (total / counts.sum())
    out = np.minimum(np.floor(exact).astype(np.int64), counts)
    order = np.argsort(-(exact - out), kind="stable")
    i = 0
    while out.sum() < total:  # at most a few rounds: each adds one per class with room
        c = order[i % len(order)]
        if out[c] < counts[c]:
            out[c] += 1
        i += 1
    return out


def split_indices(
    labels: np.ndarray | None, n: int, test: float, val: float, seed: int
) -> dict[str, np.ndarray]:
    """Row indices per split. Stratified when ``labels`` are 1-D integers.

    Split sizes are ``round(fraction * n)``; ``train`` takes the rest. A requested split
    that rounds to nothing, or an empty train split, is E407.
    """
    sizes = {"test": int(round(test * n)), "val": int(round(val * n))}
    for name, frac in (("test", test), ("val", val)):
        if frac > 0 and sizes[name] == 0:
            raise ArgError(
                "E407",
                f"the {name} split would be empty: {frac} of {n} examples rounds to 0",
                arg=name,
                help=f"use a larger `{name}` fraction, or 0 for no {name} split",
            )
    if n - sizes["test"] - sizes["val"] <= 0:
        raise ArgError(
            "E407",
            f"no examples are left for training: test {test} + val {val} of {n} examples",
            arg="val" if val > 0 else "test",
        )
    rng = np.random.default_rng(seed)
    if labels is not None and labels.ndim == 1 and np.issubdtype(labels.dtype, np.integer):
        classes, inverse = np.unique(labels, return_inverse=True)
        groups = [rng.permutation(np.flatnonzero(inverse == c)) for c in range(len(classes))]
        counts = np.array([len(g) for g in groups])
        n_test = _allocate(counts, sizes["test"])
        n_val = _allocate(counts - n_test, sizes["val"])
        parts: dict[str, list[np.ndarray]] = {"test": [], "val": [], "train": []}
        for g, t, v in zip(groups, n_test, n_val, strict=True):
            parts["test"].append(g[:t])
            parts["val"].append(g[t : t + v])
            parts["train"].append(g[t + v :])
        out = {k: rng.permutation(np.concatenate(v)) for k, v in parts.items()}
    else:
        perm = rng.permutation(n)
        t, v = sizes["test"], sizes["val"]
        out = {"test": perm[:t], "val": perm[t : t + v], "train": perm[t + v :]}
    return {k: out[k] for k in SPLITS if len(out[k]) or k == "train"}


def _make(
    arrays: dict[str, np.ndarray],
    label_key: str,
    test: float,
    val: float,
    seed: int,
    meta: dict[str, Any],
    feature_keys: tuple[str, ...] = ("x",),
    test_arrays: dict[str, np.ndarray] | None = None,
) -> Dataset:
    """Dataset from whole arrays; ``test_arrays`` is a given test split (then only
    ``val`` is carved from ``arrays``)."""
    n = len(arrays[label_key])
    idx = split_indices(arrays[label_key], n, 0.0 if test_arrays is not None else test, val, seed)
    splits = {k: {name: a[i] for name, a in arrays.items()} for k, i in idx.items()}
    if test_arrays is not None:
        splits["test"] = test_arrays
    splits = {k: splits[k] for k in SPLITS if k in splits}
    return Dataset(splits, feature_keys, (label_key,), meta)


def _class_meta(labels: np.ndarray, names: Sequence[Any] | None = None) -> dict[str, Any]:
    if not np.issubdtype(labels.dtype, np.integer) or labels.ndim != 1:
        return {"task": "values"}
    n = int(labels.max()) + 1 if labels.size else 0
    names = [str(x) for x in names] if names is not None else [str(i) for i in range(n)]
    return {"task": "classes", "n_classes": n, "class_names": names}


_TEST = Param(
    "test",
    "float",
    0.2,
    "fraction of the examples held out for testing",
    min=0.0,
    max=1.0,
    max_open=True,
)
_VAL = Param(
    "val", "float", 0.0, "fraction held out for validation", min=0.0, max=1.0, max_open=True
)
_SEED = Param("seed", "int", 0, "seed of the shuffle that splits the data")
_SPLIT_PARAMS = (_TEST, _VAL, _SEED)
#: for sources that may bring their own test split: unset means 0.2 when they do not
_TEST_AUTO = Param(
    "test",
    "float",
    None,
    "fraction held out for testing (default 0.2, or 0 when the data has a test split)",
    min=0.0,
    max=1.0,
    max_open=True,
)


def _test_fraction(test: float | None, has_test: bool) -> float:
    if test is None:
        return 0.0 if has_test else 0.2
    if has_test and test > 0:
        raise ArgError(
            "E403", "the data already has a test split; `test` must be 0 or left out", arg="test"
        )
    return test


# ------------------------------------------------------------------ bundled datasets
def _sklearn(name: str, test: float, val: float, seed: int) -> Dataset:
    from sklearn import datasets  # imported here: it is slow and only these need it

    bunch = getattr(datasets, f"load_{name}")()
    if name == "digits":
        x = bunch.images.astype(np.float32)[..., None]  # [N, 8, 8, 1], values 0..16
    else:
        x = bunch.data.astype(np.float32)
    y = bunch.target.astype(np.int32)
    meta = {"source": name, **_class_meta(y, list(bunch.target_names))}
    if name != "digits":
        meta["feature_names"] = [str(f) for f in bunch.feature_names]
    return _make({"x": x, "label": y}, "label", test, val, seed, meta)


for _name, _doc in (
    (
        "digits",
        "8x8 handwritten digits (1797 images, 10 classes) from scikit-learn: x f32[8, 8, 1] with values 0..16.",
    ),
    ("iris", "Iris flowers (150 examples, 4 features, 3 classes) from scikit-learn: x f32[4]."),
    (
        "wine",
        "Wine recognition (178 examples, 13 features, 3 classes) from scikit-learn: x f32[13].",
    ),
    (
        "breast_cancer",
        "Breast cancer Wisconsin (569 examples, 30 features, 2 classes) from scikit-learn: x f32[30].",
    ),
):
    declare(SOURCES, _name, _doc, *_SPLIT_PARAMS)(lambda root, _n=_name, **kw: _sklearn(_n, **kw))


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


# ---------------------------------------------------------------------------- npz
def _as_features(a: np.ndarray) -> np.ndarray:
    """float64 -> float32 and int64 -> int32 (JAX's defaults); other dtypes unchanged."""
    if a.dtype == np.float64:
        return a.astype(np.float32)
    if a.dtype == np.int64 or a.dtype == np.uint64:
        return a.astype(np.int32)
    if a.dtype == np.bool_:
        return a.astype(np.float32)
    return a


def _as_labels(a: np.ndarray) -> np.ndarray:
    if np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_:
        return a.astype(np.int32)
    return a.astype(np.float32)


@declare(
    SOURCES,
    "npz",
    "A NumPy .npz archive. Either arrays named by `x` and `label`, split here, or "
    "`x_train`, `y_train` (and `x_test`, `y_test`) as given splits, from which only `val` "
    "is carved. Feature arrays keep their per-sample shape.",
    Param("path", "str", doc=".npz file, relative to the .nn file"),
    Param(
        "x",
        "any",
        "x",
        "name of the feature array, or a list of names for a model with "
        "several inputs (each array feeds the model input of the same name)",
    ),
    Param("label", "str", "label", "name of the label array"),
    _TEST_AUTO,
    _VAL,
    _SEED,
)
def _npz_source(
    root: Path, path: str, x: str | list[str], label: str, test: float | None, val: float, seed: int
) -> Dataset:
    if isinstance(x, list) and x and all(isinstance(k, str) for k in x):
        return _npz_multi(root, path, x, label, test, val, seed)
    if not isinstance(x, str):
        raise ArgError("E201", "`x` must be an array name or a list of names", arg="x")
    file = _existing(root, path, "path")
    try:
        with np.load(file, allow_pickle=False) as z:
            keys = list(z.files)
            wanted = ["x_train", "y_train", "x_test", "y_test"] if "x_train" in keys else [x, label]
            for k, a in zip(wanted, ("x", "label") * 2, strict=False):
                if k not in keys and not k.endswith("_test"):
                    hint = (
                        did_you_mean(k, keys) or f"the file holds {', '.join(keys) or 'no arrays'}"
                    )
                    raise ArgError("E407", f"`{path}` has no array `{k}`", arg=a, help=hint)
            arrays = {k: z[k] for k in wanted if k in keys}
    except ArgError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise _unreadable(path, e, "path") from None
    for k, a in arrays.items():
        if a.ndim == 0:
            raise ArgError(
                "E407", f"array `{k}` in `{path}` is a scalar, not one row per example", arg="path"
            )
    if "x_train" in arrays:
        train = {"x": _as_features(arrays["x_train"]), "label": _as_labels(arrays["y_train"])}
        given = None
        if ("x_test" in arrays) != ("y_test" in arrays):
            have, lack = ("x_test", "y_test") if "x_test" in arrays else ("y_test", "x_test")
            raise ArgError("E407", f"`{path}` has `{have}` but no `{lack}`", arg="path")
        if "x_test" in arrays and "y_test" in arrays:
            given = {"x": _as_features(arrays["x_test"]), "label": _as_labels(arrays["y_test"])}
    else:
        train = {"x": _as_features(arrays[x]), "label": _as_labels(arrays[label])}
        given = None
    for part in (train, given):
        if part is not None and len(part["x"]) != len(part["label"]):
            raise ArgError(
                "E407",
                f"`{path}` has {len(part['x'])} feature rows but {len(part['label'])} labels",
                arg="path",
            )
    meta = {"source": "npz", "path": path, **_class_meta(train["label"])}
    return _make(
        train, "label", _test_fraction(test, given is not None), val, seed, meta, test_arrays=given
    )


def _npz_multi(
    root: Path, path: str, xs: list[str], label: str, test: float | None, val: float, seed: int
) -> Dataset:
    """Several named feature arrays (one per model input) and one label array."""
    file = _existing(root, path, "path")
    try:
        with np.load(file, allow_pickle=False) as z:
            keys = list(z.files)
            for k in [*xs, label]:
                if k not in keys:
                    hint = (
                        did_you_mean(k, keys) or f"the file holds {', '.join(keys) or 'no arrays'}"
                    )
                    raise ArgError(
                        "E407",
                        f"`{path}` has no array `{k}`",
                        arg="x" if k in xs else "label",
                        help=hint,
                    )
            arrays = {k: _as_features(z[k]) for k in xs}
            arrays["label"] = _as_labels(z[label])
    except ArgError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise _unreadable(path, e, "path") from None
    n = {k: len(a) for k, a in arrays.items()}
    if len(set(n.values())) > 1:
        raise ArgError("E407", f"`{path}`: arrays have different numbers of rows: {n}", arg="path")
    meta = {"source": "npz", "path": path, **_class_meta(arrays["label"])}
    return _make(
        arrays, "label", _test_fraction(test, False), val, seed, meta, feature_keys=tuple(xs)
    )


# ---------------------------------------------------------------------------- idx
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_MAX_BYTES = 1 << 34  # refuse headers promising more than 16 GiB


def read_idx(file: Path, shown: str, arg: str) -> np.ndarray:
    """An IDX file (the MNIST format; gzip-compressed if it starts with gzip's magic)."""
    try:
        with open(file, "rb") as raw:
            gz = raw.read(2) == b"\x1f\x8b"
        with gzip.open(file, "rb") if gz else open(file, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _IDX_DTYPES:
                raise ArgError(
                    "E408",
                    f"`{shown}` is not an IDX file (bad magic number {head.hex() or 'none'})",
                    arg=arg,
                )
            ndim = head[3]
            dims_raw = f.read(4 * ndim)
            if ndim == 0 or len(dims_raw) != 4 * ndim:
                raise ArgError("E408", f"`{shown}`: truncated IDX header", arg=arg)
            dims = tuple(int(d) for d in np.frombuffer(dims_raw, ">u4"))
            dtype = np.dtype(_IDX_DTYPES[head[2]])
            expected = math.prod(dims) * dtype.itemsize
            if expected > _IDX_MAX_BYTES:
                raise ArgError("E408", f"`{shown}`: IDX header promises {expected} bytes", arg=arg)
            body = f.read(expected + 1)  # one extra byte detects trailing data
    except ArgError:
        raise
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise _unreadable(shown, e, arg) from None
    if len(body) != expected:
        state = "is truncated" if len(body) < expected else "has data after the end"
        raise ArgError(
            "E408",
            f"`{shown}` {state}: header says {list(dims)} ({expected} bytes of data)",
            arg=arg,
        )
    return np.frombuffer(body, dtype).reshape(dims).astype(dtype.newbyteorder("="))


def _idx_pair(
    root: Path, images: str, labels: str, img_arg: str, lab_arg: str
) -> dict[str, np.ndarray]:
    x = read_idx(_existing(root, images, img_arg), images, img_arg)
    y = read_idx(_existing(root, labels, lab_arg), labels, lab_arg)
    if y.ndim != 1:
        raise ArgError(
            "E407",
            f"label file `{labels}` has shape {list(y.shape)}; expected one label per image",
            arg=lab_arg,
        )
    if len(x) != len(y):
        raise ArgError(
            "E407",
            f"`{images}` has {len(x)} images but `{labels}` has {len(y)} labels",
            arg=lab_arg,
        )
    x = x.astype(np.float32)
    if x.ndim == 3:
        x = x[..., None]  # [N, H, W] -> [N, H, W, 1], channels last
    return {"x": x, "label": _as_labels(y)}


@declare(
    SOURCES,
    "idx",
    "Images and labels in the IDX format of MNIST (optionally gzip-compressed). Images "
    "become x f32[H, W, 1] with raw values (0..255 for bytes); labels int32.",
    Param("images", "str", doc="training images file"),
    Param("labels", "str", doc="training labels file"),
    Param("test_images", "str", None, "test images file (then no `test` fraction)"),
    Param("test_labels", "str", None, "test labels file"),
    _TEST_AUTO,
    _VAL,
    _SEED,
)
def _idx_source(
    root: Path,
    images: str,
    labels: str,
    test_images: str | None,
    test_labels: str | None,
    test: float | None,
    val: float,
    seed: int,
) -> Dataset:
    if (test_images is None) != (test_labels is None):
        missing = "test_labels" if test_labels is None else "test_images"
        raise ArgError(
            "E403",
            f"`test_images` and `test_labels` go together; `{missing}` is missing",
            arg="test_images" if missing == "test_labels" else "test_labels",
        )
    train = _idx_pair(root, images, labels, "images", "labels")
    given = None
    if test_images is not None and test_labels is not None:
        given = _idx_pair(root, test_images, test_labels, "test_images", "test_labels")
        if given["x"].shape[1:] != train["x"].shape[1:]:
            raise ArgError(
                "E407",
                f"test images are {list(given['x'].shape[1:])} but training images "
                f"{list(train['x'].shape[1:])}",
                arg="test_images",
            )
    meta = {"source": "idx", "path": images, **_class_meta(train["label"])}
    return _make(
        train, "label", _test_fraction(test, given is not None), val, seed, meta, test_arrays=given
    )


# ------------------------------------------------------------------------- loading
def load_data(
    name: str, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None, *, root: Path
) -> Dataset:
    """Run the ``data = name(...)`` source and :func:`validate` what it returns.

    ``root`` is the .nn file's directory: file paths resolve against it and stay in it.
    """
    entry, bound = resolve(SOURCES, "data source", name, args, kwargs)
    ds = entry.fn(root=Path(root), **bound)
    validate(ds)
    return ds


def validate(ds: Dataset) -> None:
    """E407 for an empty split, rows that disagree in number, or non-finite values."""
    if "train" not in ds.splits:
        raise ArgError("E407", "the data has no training split")
    for split, arrays in ds.splits.items():
        ns = {k: len(a) for k, a in arrays.items()}
        if not ns or min(ns.values()) == 0:
            raise ArgError("E407", f"the {split} split is empty")
        if len(set(ns.values())) > 1:
            raise ArgError("E407", f"the {split} split has arrays of different lengths: {ns}")
        for key in (*ds.feature_keys, *ds.label_keys):
            a = arrays.get(key)
            if a is None:
                raise ArgError("E407", f"the {split} split has no array `{key}`")
            if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
                bad = np.argwhere(~np.isfinite(a))[0]
                where = f"example {bad[0]}" + (
                    f", position {list(map(int, bad[1:]))}" if len(bad) > 1 else ""
                )
                raise ArgError(
                    "E407",
                    f"`{key}` in the {split} split has a non-finite value ({a[tuple(bad)]}) at {where}",
                    help="remove or fill in missing values before training",
                )


def check_class_labels(ds: Dataset, key: str, n_classes: int) -> None:
    """E407 if an integer label is negative or not below ``n_classes`` (the model's
    class count), which cross-entropy would otherwise silently mis-handle."""
    for split, arrays in ds.splits.items():
        y = arrays.get(key)
        if y is None or not np.issubdtype(y.dtype, np.integer) or y.size == 0:
            continue
        bad = np.flatnonzero((y < 0) | (y >= n_classes)) if y.ndim == 1 else np.array([], int)
        if bad.size:
            raise ArgError(
                "E407",
                f"label {int(y[bad[0]])} at example {int(bad[0])} of the {split} split is not a class "
                f"index below {n_classes}, the model's number of classes",
            )


# ---------------------------------------------------------------------- normalizers
@dataclass(frozen=True)
class Normalizer:
    """``apply(x) = (x - shift) * mul`` (float32), with statistics of the train split."""

    kind: str
    shift: np.ndarray
    mul: np.ndarray

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Computed in float32; the result keeps x's float dtype (float32 for ints)."""
        x = np.asarray(x)
        out = (x.astype(np.float32) - self.shift) * self.mul
        return out.astype(x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for ``np.savez`` (nothing executable)."""
        return {"kind": np.array(self.kind), "shift": self.shift, "mul": self.mul}

    @staticmethod
    def from_arrays(d: Mapping[str, np.ndarray]) -> Normalizer:
        return Normalizer(
            str(np.asarray(d["kind"])),
            np.asarray(d["shift"], np.float32),
            np.asarray(d["mul"], np.float32),
        )


_PER = Param(
    "per",
    "str",
    "feature",
    "`feature`: statistics per element position; `channel`: per last-axis channel; `global`: one for all",
    choices=("feature", "channel", "global"),
)


def _axes(per: str, ndim: int) -> tuple[int, ...]:
    if per == "feature":
        return (0,)
    if per == "channel":
        return tuple(range(ndim - 1)) if ndim > 1 else (0,)
    return tuple(range(ndim))


@declare(
    NORMALIZERS,
    "standardize",
    "Subtract the mean and divide by the standard deviation (std 0 counts as 1).",
    _PER,
)
def _standardize(x: np.ndarray, per: str) -> tuple[np.ndarray, np.ndarray]:
    ax = _axes(per, x.ndim)
    mean = x.mean(axis=ax, keepdims=True, dtype=np.float64)
    std = x.std(axis=ax, keepdims=True, dtype=np.float64)
    std[std == 0] = 1.0  # constant features (digits' corner pixels) stay at 0
    return mean[0], 1.0 / std[0]


@declare(
    NORMALIZERS,
    "minmax",
    "Map the train split's range to [0, 1] (a constant feature maps to 0).",
    _PER,
)
def _minmax(x: np.ndarray, per: str) -> tuple[np.ndarray, np.ndarray]:
    ax = _axes(per, x.ndim)
    lo = x.min(axis=ax, keepdims=True).astype(np.float64)
    span = x.max(axis=ax, keepdims=True).astype(np.float64) - lo
    span[span == 0] = 1.0
    return lo[0], 1.0 / span[0]


@declare(
    NORMALIZERS,
    "scale",
    "Multiply by a constant factor, e.g. `scale(1 / 255)`.",
    Param("factor", "float", doc="the multiplier", min=0.0, min_open=True),
)
def _scale(x: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((), np.float64), np.asarray(factor, np.float64)


@declare(NORMALIZERS, "none", "Leave the features as they are.")
def _none(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((), np.float64), np.ones((), np.float64)


def normalizers_npz(norms: Mapping[str, Normalizer]) -> bytes:
    """Normalizers as the `.npz` kept in run directories and beside exported artifacts:
    one array per `<model input>/<field>` (kind, shift, mul); nothing executable."""
    import io

    buf = io.BytesIO()
    np.savez(buf, **{f"{inp}/{k}": v for inp, n in norms.items() for k, v in n.to_arrays().items()})
    return buf.getvalue()


def read_normalizers_npz(path: Path) -> dict[str, Normalizer]:
    """Read :func:`normalizers_npz`'s format (OSError/ValueError/KeyError if unreadable)."""
    with np.load(path, allow_pickle=False) as z:
        groups: dict[str, dict[str, np.ndarray]] = {}
        for k in z.files:
            inp, _, field_ = k.partition("/")
            groups.setdefault(inp, {})[field_] = z[k]
    return {inp: Normalizer.from_arrays(d) for inp, d in groups.items()}


def fit_normalizer(
    kind: str,
    train_x: np.ndarray,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
) -> Normalizer:
    """Fit ``kind`` on the training features only (never val/test: no leakage)."""
    entry, bound = resolve(NORMALIZERS, "normalizer", kind, args, kwargs)
    x = np.asarray(train_x)
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ArgError("E403", f"cannot normalize {x.dtype} data")
    if x.shape[0] == 0:
        raise ArgError("E407", "cannot fit a normalizer on an empty training split")
    shift, mul = entry.fn(x, **bound)
    return Normalizer(kind, np.asarray(shift, np.float32), np.asarray(mul, np.float32))


def normalize(
    ds: Dataset,
    kind: str,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    keys: Sequence[str] | None = None,
) -> dict[str, Normalizer]:
    """Fit ``kind`` on the train split of each floating feature array (or ``keys``) and
    apply it to every split, in place. Returns the normalizers by feature key.

    Call it after :func:`bind_inputs`, so the statistics have the model input's shape
    and the saved normalizer applies directly to inputs at prediction time.
    """
    out: dict[str, Normalizer] = {}
    for key in keys if keys is not None else ds.feature_keys:
        if not np.issubdtype(ds.splits["train"][key].dtype, np.floating):
            continue  # token ids and other integer inputs are not normalised
        norm = fit_normalizer(kind, ds.splits["train"][key], args, kwargs)
        for arrays in ds.splits.values():
            arrays[key] = norm.apply(arrays[key])
        out[key] = norm
    return out


# -------------------------------------------------------------------- input binding
def _np_dtype(dtype: str) -> np.dtype:
    from nnlang.shapes import DTYPES

    name = DTYPES.get(dtype, dtype)
    if name == "bfloat16":
        import ml_dtypes  # shipped with jax

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def _fmt_shape(shape: Sequence[Any]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _fits(declared: Sequence[Any], actual: Sequence[int]) -> bool:
    return len(declared) == len(actual) and all(
        isinstance(d, str) or d == a for d, a in zip(declared, actual, strict=True)
    )


def bind_inputs(
    ds: Dataset, model_inputs: Mapping[str, tuple[str, Sequence[Any]]]
) -> dict[str, str]:
    """Map each model input to a feature array and make the arrays fit, in place.

    Binding: one model input and one feature array go together whatever their names;
    otherwise each input takes the feature array of the same name. Fitting, per input
    (shapes are per sample; a str dimension is symbolic and matches any size):

    - equal shapes: kept;
    - otherwise, with a fully concrete declared shape and the same element count, the
      arrays of every split are reshaped row by row (C order) to the declared shape,
      e.g. data [64] for an input f32[8, 8, 1] or [28, 28, 1] for f32[784];
    - otherwise E407 naming the input, its declared shape and the data's shape.

    Arrays are then cast to the declared dtype (integer inputs need integral values).
    Returns ``{model input: feature key}``.
    """
    keys = list(ds.feature_keys)
    names = list(model_inputs)
    if len(names) == 1 and len(keys) == 1:
        mapping = {names[0]: keys[0]}
    else:
        mapping = {}
        for n in names:
            if n not in keys:
                hint = did_you_mean(n, keys) or f"the data's feature arrays are {', '.join(keys)}"
                raise ArgError(
                    "E407", f"model input `{n}` has no data array of that name", help=hint
                )
            mapping[n] = n
    for n, key in mapping.items():
        dtype, declared = model_inputs[n]
        declared = tuple(declared)
        actual = ds.sample_shape(key)
        if not _fits(declared, actual):
            concrete = all(isinstance(d, int) for d in declared)
            if not (concrete and math.prod(declared) == math.prod(actual)):
                raise ArgError(
                    "E407",
                    f"model input `{n}` is declared {dtype}{_fmt_shape(declared)} but the data "
                    f"`{key}` has per-sample shape {_fmt_shape(actual)}",
                    help="change the model's input shape, or choose other feature columns/arrays",
                )
            for arrays in ds.splits.values():
                arrays[key] = arrays[key].reshape((len(arrays[key]), *declared))
        target = _np_dtype(dtype)
        for split, arrays in ds.splits.items():
            a = arrays[key]
            if a.dtype == target:
                continue
            if np.issubdtype(target, np.integer) and np.issubdtype(a.dtype, np.floating):
                if not np.all(np.mod(a, 1) == 0):
                    raise ArgError(
                        "E407",
                        f"model input `{n}` is {dtype} but the data `{key}` ({split} split) has "
                        "fractional values",
                    )
            arrays[key] = a.astype(target)
    return mapping
