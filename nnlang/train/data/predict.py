"""Reading a file for `nnlang predict` with the training source's reader: the same
columns, categories, image size and class names as training, every row in the file's
order, labels where the file has them (:data:`~nnlang.train.data.dataset.PREDICTING`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nnlang.train.catalog import Entry
from nnlang.train.data.dataset import PREDICTING, Dataset


def reads_like(entry: Entry, bound: Mapping[str, Any], file: Path) -> bool:
    """Whether ``file`` is in the training source's format: the source reads a path and
    ``file`` has the training file's suffix (or is a folder, for `images`)."""
    trained = bound.get("path")
    if not isinstance(trained, str) or "path" not in {p.name for p in entry.params}:
        return False
    if file.is_dir():
        return entry.name == "images"
    return file.suffix.lower() == Path(trained).suffix.lower()


def read_like(
    entry: Entry, bound: Mapping[str, Any], meta: Mapping[str, Any], file: Path
) -> Dataset:
    """``file`` read by the training source (``entry`` with its ``bound`` arguments but
    the path) as one `train` split in file order; ``meta`` is the training data's. The
    file is named as given on the command line (it need not lie in the data root)."""
    args = dict(bound)
    args["path"] = file.name
    for k in ("test", "val"):
        if k in args and args[k] is not None:
            args[k] = 0.0
    if "cache" in args:
        args["cache"] = False
    token = PREDICTING.set(dict(meta))
    try:
        ds: Dataset = entry.fn(root=file.resolve().parent, **args)
    finally:
        PREDICTING.reset(token)
    return ds


def probabilities(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in float64 for the output file."""
    z = logits.astype(np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)  # type: ignore[no-any-return]
