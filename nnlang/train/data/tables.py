"""Table sources: CSV and Parquet files read through pyarrow, with typed columns.

- Numeric and boolean columns are features as they are (float32).
- String columns (and those listed in ``categorical``) are categories, one-hot encoded
  in place; the categories of each column (sorted) are in the data's ``meta`` as
  ``categories``, stored with the run's settings (``settings.json``), as the ``text``
  source's vocabulary is. A column mixing numbers and words is refused at its first
  word (a bad cell), unless it is listed in ``categorical``.
- Missing cells (empty, ``NA``, ``NaN``, ``null``, ...) follow ``missing``: ``refuse``
  (the default: E407 naming the row and column), ``drop`` (rows with a missing value in
  a used column are left out) or ``mean`` (numeric features take their column's mean,
  categories a category of their own, ``<missing>``; labels are never filled).
- ``label`` is one column, or a list of columns: each a target of the column's name.

CSV rows are named by their line in the file (the header is line 1); a located message
is found by re-reading the file with Python's ``csv`` module only when a mistake was
found, so the fast path stays pyarrow's. Parquet rows are numbered from 1.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from nnlang.diagnostics import ArgError, did_you_mean
from nnlang.train.catalog import Param, declare
from nnlang.train.data.csvread import _read_csv, _Rows
from nnlang.train.data.dataset import PREDICTING, SOURCES, Dataset
from nnlang.train.data.sources import _existing, _unreadable
from nnlang.train.data.splits import _SPLIT_PARAMS, _class_meta, _make

MISSING_CATEGORY = "<missing>"


def _column(spec: Any, names: list[str], file: str, arg: str, header: bool) -> str:
    """A column name from a name or 0-based index (negative from the end)."""
    if isinstance(spec, bool) or not isinstance(spec, (int, str)):
        raise ArgError("E201", f"`{arg}` must name columns or give their indices", arg=arg)
    if isinstance(spec, int):
        i = spec + len(names) if spec < 0 else spec
        if not 0 <= i < len(names):
            raise ArgError(
                "E407", f"`{file}` has {len(names)} columns; there is no column {spec}", arg=arg
            )
        return names[i]
    if not header:
        raise ArgError(
            "E403",
            f"column `{spec}` is named but `{file}` is read without a header",
            arg=arg,
            help="give a column index, or set `header = true`",
        )
    if spec not in names:
        hint = did_you_mean(spec, names) or f"columns: {', '.join(names)}"
        raise ArgError("E407", f"`{file}` has no column `{spec}`", arg=arg, help=hint)
    return spec


def _as_list(v: Any) -> list[Any]:
    return list(v) if isinstance(v, (list, tuple)) else [v]


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _number_key(s: str) -> tuple[float, str]:
    try:
        v = float(s)
        return (v, s) if math.isfinite(v) else (math.inf, s)
    except ValueError:
        return (math.inf, s)


def _strings(col: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(col.cast(pa.string()).to_numpy(zero_copy_only=False), dtype=object)


def _is_text(col: pa.ChunkedArray) -> bool:
    return pa.types.is_string(col.type) or pa.types.is_large_string(col.type)


def _numeric(
    col: pa.ChunkedArray, name: str, file: str, rows: _Rows, dtype: Any = None
) -> np.ndarray:
    """A numeric/boolean column as float64 or ``dtype`` (nulls as NaN); a word in it is
    a bad cell."""
    t = col.type
    if pa.types.is_boolean(t) or pa.types.is_integer(t) or pa.types.is_floating(t):
        a = col.cast(dtype or pa.float64(), safe=False).to_numpy(zero_copy_only=False)
        bad = np.flatnonzero(np.isinf(a))
        if len(bad):
            raise ArgError(
                "E407",
                f"`{file}` {rows(int(bad[0]))}, column `{name}`: value `{a[bad[0]]}` is not finite",
                arg="path",
                help="remove or fill in such values before training",
            )
        return a
    if _is_text(col):
        s = _strings(col)
        ok = np.array([v is None or _is_number(v) for v in s])
        if ok.all():  # numbers read as text (a forced string type)
            return _numeric(col.cast(pa.float64()), name, file, rows, dtype)
        i = int(np.flatnonzero(~ok)[0])
        raise ArgError(
            "E407",
            f"`{file}` {rows(i)}, column `{name}`: `{s[i]}` is not a number",
            arg="path",
            help="list the column in `categorical = [...]` if its values are categories",
        )
    raise ArgError(
        "E407",
        f"`{file}` column `{name}` holds {t} values, neither numbers nor categories",
        arg="features",
        help="leave it out with `features = [...]`, or list it in `categorical = [...]`",
    )


def _check_missing(
    table: pa.Table, used: list[str], missing: str, file: str, rows: _Rows
) -> pa.Table:
    nulls = [c for c in used if table.column(c).null_count]
    if not nulls:
        return table
    if missing == "drop":
        keep = None
        for c in nulls:
            ok = pc.is_valid(table.column(c))
            keep = ok if keep is None else pc.and_(keep, ok)
        out = table.filter(keep)
        rows.kept = np.flatnonzero(keep.to_numpy(zero_copy_only=False))
        if out.num_rows == 0:
            raise ArgError("E407", f"`{file}`: every row has a missing value", arg="missing")
        return out
    first = min(nulls, key=lambda c: pc.index(pc.is_null(table.column(c)), True).as_py())
    i = pc.index(pc.is_null(table.column(first)), True).as_py()
    raise ArgError(
        "E407",
        f"`{file}` {rows(i)}, column `{first}`: the value is missing",
        arg="path",
        help='fill it in, or declare `missing = "drop"` (leave such rows out) or '
        '`missing = "mean"` (features only)',
    )


def _labels(
    col: pa.ChunkedArray, name: str, label_type: str, file: str, rows: _Rows
) -> tuple[np.ndarray, dict[str, Any]]:
    """Class indices, class names (sorted) or float targets from a label column."""
    if not _is_text(col):
        a = _numeric(col, name, file, rows)
        whole = bool(np.all(a == np.round(a)))
        if label_type == "value" or (label_type == "auto" and not whole):
            return a.astype(np.float32), {"task": "values"}
        if not whole:
            i = int(np.flatnonzero(a != np.round(a))[0])
            raise ArgError(
                "E407",
                f"`{file}` {rows(i)}, column `{name}`: class label `{a[i]}` is not a whole number",
                arg="label",
            )
        if a.min() >= 0:
            y = a.astype(np.int64).astype(np.int32)
            return y, _class_meta(y)
        values, y = np.unique(a.astype(np.int64), return_inverse=True)
        return y.astype(np.int32), _class_meta(y.astype(np.int32), [str(v) for v in values])
    s = _strings(col)
    if label_type == "value":
        bad = next((i for i, v in enumerate(s) if not _is_number(v)), None)
        if bad is not None:
            raise ArgError(
                "E407",
                f"`{file}` {rows(bad)}, column `{name}`: label `{s[bad]}` is not a finite number",
                arg="label",
            )
    trained = (PREDICTING.get() or {}).get("class_names")
    names = trained or sorted(set(s.tolist()), key=_number_key)
    lookup = {v: i for i, v in enumerate(names)}
    unknown = next((i for i, v in enumerate(s) if v not in lookup), None)
    if unknown is not None:
        raise ArgError(
            "E407",
            f"`{file}` {rows(unknown)}, column `{name}`: class `{s[unknown]}` is not one the "
            "model was trained with",
            arg="label",
            help=f"classes: {', '.join(names)}",
        )
    y = np.fromiter((lookup[v] for v in s), np.int32, len(s))
    return y, _class_meta(y, names)


def _features(
    table: pa.Table,
    cols: list[str],
    categorical: set[str],
    missing: str,
    file: str,
    rows: _Rows,
    fixed: dict[str, list[str]],
) -> tuple[np.ndarray, list[str], dict[str, list[str]]]:
    """x f32[N, F]: numeric columns as they are, categories one-hot in their place
    (``fixed``: the categories training used, when predicting)."""
    blocks: list[tuple[str, Any]] = []
    categories: dict[str, list[str]] = {}
    for c in cols:
        col = table.column(c)
        # a column of words is categories; words among numbers are bad cells (_numeric)
        text_values = _is_text(col) and not any(
            v is not None and _is_number(v) for v in pc.unique(col).to_pylist()
        )
        if c in categorical or text_values or c in fixed:
            col = pc.fill_null(col.cast(pa.string()), MISSING_CATEGORY)
            cats = fixed.get(c) or sorted(pc.unique(col).to_pylist(), key=_number_key)
            codes = pc.index_in(col, value_set=pa.array(cats, pa.string()))
            if codes.null_count:  # predicting: a category training never saw
                i = pc.index(pc.is_null(codes), True).as_py()
                raise ArgError(
                    "E407",
                    f"`{file}` {rows(i)}, column `{c}`: category `{col[i]}` is not one the "
                    "model was trained with",
                    arg="path",
                    help=f"the categories of `{c}`: {', '.join(cats)}",
                )
            blocks.append((c, (cats, codes.to_numpy(zero_copy_only=False))))
            categories[c] = cats
            continue
        a = _numeric(col, c, file, rows, pa.float32())
        if missing == "mean" and col.null_count:
            a = np.where(np.isnan(a), np.nanmean(a), a)
        blocks.append((c, a))
    width = sum(len(b[0]) if isinstance(b, tuple) else 1 for _, b in blocks)
    x = np.zeros((table.num_rows, width), np.float32)
    names: list[str] = []
    j = 0
    for c, b in blocks:
        if isinstance(b, tuple):
            cats, codes = b
            x[np.arange(len(codes)), j + codes] = 1.0
            names += [f"{c}={v}" for v in cats]
            j += len(cats)
        else:
            x[:, j] = b
            names.append(c)
            j += 1
    return x, names, categories


def _table_dataset(
    table: pa.Table,
    path: str,
    rows: _Rows,
    label: Any,
    features: list[Any] | None,
    categorical: list[Any] | None,
    missing: str,
    label_type: str,
    header: bool,
    test: float,
    val: float,
    seed: int,
    source: str,
) -> Dataset:
    names = table.column_names
    if table.num_rows == 0:
        raise ArgError("E407", f"`{path}` has no data rows", arg="path")
    several = isinstance(label, (list, tuple))
    if several and not label:
        raise ArgError("E201", "`label` must name at least one column", arg="label")
    trained = PREDICTING.get()
    wanted = _as_list(label)
    if trained is not None:  # predicting: a file without the label columns is unlabelled
        wanted = [c for c in wanted if not isinstance(c, str) or c in names]
        cats_seen = trained.get("categories", {})
        raw = len(trained["feature_names"]) - sum(map(len, cats_seen.values())) + len(cats_seen)
        if len(names) == raw:  # only the feature columns: no label
            wanted = []
    labels = [_column(c, names, path, "label", header) for c in wanted]
    if len(set(labels)) != len(labels):
        raise ArgError("E201", "`label` names a column twice", arg="label")
    if features is None:
        feats = [c for c in names if c not in labels]
    else:
        feats = [_column(c, names, path, "features", header) for c in _as_list(features)]
        if set(feats) & set(labels):
            raise ArgError("E403", "the label column is also listed as a feature", arg="features")
    if not feats:
        raise ArgError("E407", f"`{path}` has no feature columns besides the label", arg="features")
    cats = {_column(c, names, path, "categorical", header) for c in categorical or []}
    if missing == "mean":
        table = _check_missing(table, labels, "refuse", path, rows)
    else:
        table = _check_missing(table, [*feats, *labels], missing, path, rows)
    fixed = (trained or {}).get("categories", {})
    x, feature_names, categories = _features(table, feats, cats, missing, path, rows, fixed)
    if trained is not None and feature_names != trained.get("feature_names", feature_names):
        raise ArgError(
            "E407",
            f"`{path}` has the features {', '.join(feature_names)}; the model was trained on "
            f"{', '.join(trained['feature_names'])}",
            arg="path",
        )
    arrays: dict[str, np.ndarray] = {"x": x}
    metas = []
    for c in labels:
        y, m = _labels(table.column(c), c, label_type, path, rows)
        arrays[c if several else "label"] = y
        metas.append(m)
    keys = tuple(labels) if several else ("label",)
    if not labels:  # predicting on a file without labels
        return Dataset({"train": arrays}, ("x",), (), {"feature_names": feature_names})
    meta: dict[str, Any] = {
        "source": source,
        "path": path,
        **metas[0],
        "feature_names": feature_names,
        "label_column": labels[0] if not several else labels,
    }
    if categories:
        meta["categories"] = categories
    ds = _make(arrays, keys[0], test, val, seed, meta)
    return replace(ds, label_keys=keys)


_LABEL = Param(
    "label",
    "any",
    -1,
    "label column: a name (with a header) or a 0-based index, -1 the last; or a list of "
    "columns, each a target of the column's name",
)
_FEATURES = Param(
    "features", "columns", None, "feature columns (default: every column but the labels)"
)
_CATEGORICAL = Param(
    "categorical",
    "columns",
    None,
    "columns read as categories (one-hot) even where their values are numbers; columns of "
    "words are categories anyway",
)
_MISSING = Param(
    "missing",
    "str",
    "refuse",
    "missing cells: `refuse` (an error naming the row and column), `drop` the rows, or "
    "`mean` (numeric features take the column's mean, categories `<missing>`)",
    choices=("refuse", "drop", "mean"),
)
_LABEL_TYPE = Param(
    "label_type",
    "str",
    "auto",
    "`class`, `value` (regression targets) or `auto`",
    choices=("auto", "class", "value"),
)


@declare(
    SOURCES,
    "csv",
    "A CSV file read with pyarrow: one row per example, the label in one column (or several) "
    "and features in the others (or those listed). Numeric columns are features as they are; "
    "columns of words are categories, one-hot encoded (their categories stored with the run). "
    "Integer labels >= 0 are class indices; other non-numeric or negative labels are class "
    "names, numbered in sorted order; fractional labels are regression targets. Features "
    "become x f32[F].",
    Param("path", "str", doc="CSV file, relative to the .nn file"),
    _LABEL,
    _FEATURES,
    Param("header", "bool", True, "the first row names the columns"),
    Param("delimiter", "str", ",", "field separator (one character)"),
    _CATEGORICAL,
    _MISSING,
    _LABEL_TYPE,
    *_SPLIT_PARAMS,
)
def _csv_source(
    root: Path,
    path: str,
    label: Any,
    features: list[Any] | None,
    header: bool,
    delimiter: str,
    categorical: list[Any] | None,
    missing: str,
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
    forced = [c for c in categorical or [] if isinstance(c, str)] if header else []
    table = _read_csv(file, path, header, delimiter, forced)
    rows = _Rows(file, delimiter, header)
    return _table_dataset(
        table, path, rows, label, features, categorical, missing, label_type, header,
        test, val, seed, "csv",
    )  # fmt: skip


@declare(
    SOURCES,
    "parquet",
    "A Parquet file read with pyarrow, with the columns as `csv` reads them (typed columns, "
    "categories one-hot, a declared missing-value policy, one or several label columns).",
    Param("path", "str", doc="Parquet file, relative to the .nn file"),
    _LABEL,
    _FEATURES,
    _CATEGORICAL,
    _MISSING,
    _LABEL_TYPE,
    *_SPLIT_PARAMS,
)
def _parquet_source(
    root: Path,
    path: str,
    label: Any,
    features: list[Any] | None,
    categorical: list[Any] | None,
    missing: str,
    label_type: str,
    test: float,
    val: float,
    seed: int,
) -> Dataset:
    file = _existing(root, path, "path")
    try:
        table = pq.read_table(file)
        for i, f in enumerate(table.schema):  # pandas categoricals: dictionary-encoded
            if pa.types.is_dictionary(f.type):
                table = table.set_column(i, f.name, table.column(i).cast(f.type.value_type))
    except (OSError, pa.ArrowException) as e:
        raise _unreadable(path, e, "path") from None
    return _table_dataset(
        table, path, _Rows(None, ",", True), label, features, categorical, missing,
        label_type, True, test, val, seed, "parquet",
    )  # fmt: skip
