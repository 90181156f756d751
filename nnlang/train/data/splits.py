"""Train/val/test splits, carved with numpy's ``Generator`` seeded by ``seed``:
deterministic, and stratified by class for integer labels (each split keeps the class
proportions, up to rounding). Also the split parameters the sources share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nnlang.diagnostics import ArgError
from nnlang.train.catalog import Param
from nnlang.train.data.dataset import PREDICTING, SPLITS, Dataset


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
    label_key: str | None,
    test: float,
    val: float,
    seed: int,
    meta: dict[str, Any],
    feature_keys: tuple[str, ...] = ("x",),
    test_arrays: dict[str, np.ndarray] | None = None,
) -> Dataset:
    """Dataset from whole arrays; ``test_arrays`` is a given test split (then only
    ``val`` is carved from ``arrays``). When predicting, every row in file order. With
    ``label_key`` None the data is unlabelled and split at random, unstratified."""
    labels = (label_key,) if label_key is not None else ()
    if PREDICTING.get() is not None:
        return Dataset({"train": arrays}, feature_keys, labels, meta)
    y = arrays[label_key] if label_key is not None else None
    n = len(next(iter(arrays.values())))
    idx = split_indices(y, n, 0.0 if test_arrays is not None else test, val, seed)
    # rows read from disk when used (data.rows.Rows) stay so: the split is a view
    splits = {
        k: {name: a[i] if isinstance(a, np.ndarray) else a.take(i) for name, a in arrays.items()}
        for k, i in idx.items()
    }
    if test_arrays is not None:
        splits["test"] = test_arrays
    splits = {k: splits[k] for k in SPLITS if k in splits}
    return Dataset(splits, feature_keys, labels, meta)


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
