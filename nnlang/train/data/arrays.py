"""Array-file sources: NumPy ``.npz`` archives, ``.npy`` files (memory-mapped: rows read
when used, :mod:`nnlang.train.data.rows`) and IDX files (the MNIST format).
Nothing is unpickled: ``np.load(..., allow_pickle=False)``."""

from __future__ import annotations

import gzip
import math
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from nnlang.diagnostics import ArgError, did_you_mean
from nnlang.train.catalog import Param, declare
from nnlang.train.data.dataset import SOURCES, Dataset
from nnlang.train.data.rows import Rows
from nnlang.train.data.sources import _existing, _unreadable
from nnlang.train.data.splits import (
    _SEED,
    _TEST,
    _TEST_AUTO,
    _VAL,
    _class_meta,
    _make,
    _test_fraction,
)


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
    "is carved. Feature arrays keep their per-sample shape. A file with features and no "
    "`label` array is unlabelled data, split at random, for models that learn without "
    "targets (`loss = rule(...)`, an autoencoder's `mse(recon, x)`); a loss that compares "
    "with `label` is then E404.",
    Param("path", "str", doc=".npz file, relative to the .nn file"),
    Param(
        "x",
        "any",
        "x",
        "name of the feature array, or a list of names for a model with "
        "several inputs (each array feeds the model input of the same name)",
    ),
    Param(
        "label",
        "any",
        "label",
        "name of the label array, or a list of names for several targets (each a "
        "tensor of that name that losses and metrics compare with, e.g. "
        "`cross_entropy(parity_logits, parity)`)",
    ),
    _TEST_AUTO,
    _VAL,
    _SEED,
)
def _npz_source(
    root: Path,
    path: str,
    x: str | list[str],
    label: str | list[str],
    test: float | None,
    val: float,
    seed: int,
) -> Dataset:
    if isinstance(label, list):
        if not label or not all(isinstance(k, str) for k in label):
            raise ArgError("E201", "`label` must be an array name or a list of names", arg="label")
        if len(set(label)) != len(label):
            raise ArgError("E201", "`label` names an array twice", arg="label")
    elif not isinstance(label, str):
        raise ArgError("E201", "`label` must be an array name or a list of names", arg="label")
    if isinstance(x, list) and x and all(isinstance(k, str) for k in x) or isinstance(label, list):
        return _npz_multi(root, path, [x] if isinstance(x, str) else x, label, test, val, seed)
    if not isinstance(x, str):
        raise ArgError("E201", "`x` must be an array name or a list of names", arg="x")
    file = _existing(root, path, "path")
    try:
        with np.load(file, allow_pickle=False) as z:
            keys = list(z.files)
            wanted = ["x_train", "y_train", "x_test", "y_test"] if "x_train" in keys else [x, label]
            # features alone (no `label` array and none asked for): unlabelled data, for
            # the models that learn without targets (som, rbm, autoencoders)
            unlabelled = "x_train" not in keys and label == "label" and label not in keys
            if unlabelled:
                wanted = [x]
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
    elif unlabelled:
        return _unlabelled(_as_features(arrays[x]), path, test, val, seed)
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


def _unlabelled(x: np.ndarray, path: str, test: float | None, val: float, seed: int) -> Dataset:
    """Features without labels, split at random (nothing to stratify by)."""
    meta = {"source": "npz", "path": path, "task": "none"}
    return _make({"x": x}, None, _test_fraction(test, False), val, seed, meta)


def _npz_multi(
    root: Path,
    path: str,
    xs: list[str],
    label: str | list[str],
    test: float | None,
    val: float,
    seed: int,
) -> Dataset:
    """Named feature arrays (one per model input) and one or several label arrays: with
    a list of labels, each is a target of its own name."""
    labels = label if isinstance(label, list) else [label]
    overlap = sorted(set(xs) & set(labels))
    if overlap:
        raise ArgError("E201", f"`{overlap[0]}` is both a feature and a label", arg="label")
    file = _existing(root, path, "path")
    try:
        with np.load(file, allow_pickle=False) as z:
            keys = list(z.files)
            for k in [*xs, *labels]:
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
            names = labels if isinstance(label, list) else ["label"]
            arrays.update({n: _as_labels(z[k]) for n, k in zip(names, labels, strict=True)})
    except ArgError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise _unreadable(path, e, "path") from None
    n = {k: len(a) for k, a in arrays.items()}
    if len(set(n.values())) > 1:
        raise ArgError("E407", f"`{path}`: arrays have different numbers of rows: {n}", arg="path")
    meta = {"source": "npz", "path": path, **_class_meta(arrays[names[0]])}
    ds = _make(
        arrays, names[0], _test_fraction(test, False), val, seed, meta, feature_keys=tuple(xs)
    )
    return replace(ds, label_keys=tuple(names))


# ---------------------------------------------------------------------------- npy
def _features_dtype(dt: np.dtype) -> np.dtype:
    """As the npz source casts: float64 -> float32, int64 -> int32, bool -> float32."""
    if dt == np.float64 or dt == np.bool_:
        return np.dtype(np.float32)
    if dt == np.int64 or dt == np.uint64:
        return np.dtype(np.int32)
    return dt


def _open(root: Path, path: str, arg: str) -> np.ndarray:
    file = _existing(root, path, arg)
    try:
        a = np.load(file, allow_pickle=False, mmap_mode="r")
    except (OSError, ValueError, EOFError) as e:
        raise _unreadable(path, e, arg) from None
    if not isinstance(a, np.ndarray) or a.ndim == 0:
        raise ArgError("E407", f"`{path}` is not one .npy array with one row per example", arg=arg)
    return a


@declare(
    SOURCES,
    "npy",
    "NumPy `.npy` files, one per array, memory-mapped: features under `x` and, unless "
    "`label` is omitted, labels (read whole: one value per example). The features are read "
    "from disk when used, so a data set larger than memory can be streamed (`stream`); "
    "an in-memory run reads them once.",
    Param("x", "str", doc=".npy file of the features, relative to the .nn file"),
    Param("label", "str", None, ".npy file of the labels (none: unlabelled data)"),
    _TEST,
    _VAL,
    _SEED,
)
def _npy_source(
    root: Path, x: str, label: str | None, test: float, val: float, seed: int
) -> Dataset:
    xs = _open(root, x, "x")
    arrays: dict[str, Any] = {"x": Rows(xs, _features_dtype(xs.dtype))}
    meta: dict[str, Any] = {"source": "npy", "path": x, "task": "none"}
    if label is not None:
        y = np.asarray(_open(root, label, "label"))
        y = y.astype(np.int32 if np.issubdtype(y.dtype, np.integer) else np.float32)
        if len(y) != len(xs):
            raise ArgError(
                "E407", f"`{x}` has {len(xs)} rows but `{label}` has {len(y)} labels", arg="label"
            )
        arrays["label"] = y
        meta.update(_class_meta(y))
    return _make(arrays, "label" if label is not None else None, test, val, seed, meta)


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
