"""The :class:`Dataset` that every data source returns, the catalogues of sources and
normalizers, and the checks run on loaded data (:func:`validate`,
:func:`check_class_labels`)."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnlang.diagnostics import ArgError
from nnlang.train.catalog import Entry
from nnlang.train.data.rows import first_nonfinite

SOURCES: dict[str, Entry] = {}
NORMALIZERS: dict[str, Entry] = {}

SPLITS = ("train", "val", "test")

#: Set while a file is read for `nnlang predict` with the training source's reader
#: (:func:`nnlang.train.data.predict.read_like`): the training data's ``meta``. Sources
#: then keep the file's row order in one `train` split, encode categories and class
#: names as training did, and take files without labels.
PREDICTING: ContextVar[dict[str, Any] | None] = ContextVar("PREDICTING", default=None)


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
            if not np.issubdtype(a.dtype, np.floating):
                continue
            if not isinstance(a, np.ndarray):  # rows on disk (data.rows): chunk by chunk
                at = first_nonfinite(a)
                bad = None if at is None else np.array(at)
            elif not np.isfinite(a).all():
                bad = np.argwhere(~np.isfinite(a))[0]
            else:
                bad = None
            if bad is not None:
                where = f"example {bad[0]}" + (
                    f", position {list(map(int, bad[1:]))}" if len(bad) > 1 else ""
                )
                raise ArgError(
                    "E407",
                    f"`{key}` in the {split} split has a non-finite value ({np.asarray(a[bad[:1]])[0][tuple(bad[1:])]}) at {where}",
                    help="remove or fill in missing values before training",
                )


def check_class_labels(ds: Dataset, key: str, n_classes: int) -> None:
    """E407 if an integer label is negative or not below ``n_classes`` (the model's
    class count), which cross-entropy would otherwise silently mis-handle."""
    for split, arrays in ds.splits.items():
        y = arrays.get(key)
        if y is None or not np.issubdtype(y.dtype, np.integer) or y.size == 0:
            continue
        bad = np.argwhere((y < 0) | (y >= n_classes))
        if len(bad):
            where = f"example {int(bad[0][0])}" + (
                f", position {list(map(int, bad[0][1:]))}" if y.ndim > 1 else ""
            )
            raise ArgError(
                "E407",
                f"label {int(y[tuple(bad[0])])} at {where} of the {split} split is not a class "
                f"index below {n_classes}, the model's number of classes",
                help=f"the data has {ds.meta['n_classes']} classes: give the model that many outputs"
                if ds.meta.get("n_classes")
                else None,
            )
