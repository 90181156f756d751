"""Data sources, splits, validation, normalisation and input binding.

A data source returns a :class:`Dataset`: named numpy arrays per split (``train`` and,
when asked for, ``val`` and ``test``), with one row per example in each. Sources:

- ``digits``, ``iris``, ``wine``, ``breast_cancer``, ``diabetes``: scikit-learn's toy
  sets, shipped as compressed arrays in ``bundled/`` (no download, no scikit-learn).
  ``digits`` features are float32 ``[N, 8, 8, 1]`` with raw 0..16 values;
  the others ``[N, F]`` float32. Labels are int32 under ``label``.
- ``text``: a UTF-8 corpus in windows of token ids for next-token models
  (:mod:`nnlang.train.data.text`).
- ``images``: a folder of class sub-folders (or a CSV list) of image files, decoded
  with Pillow and cached (:mod:`nnlang.train.data.images`).
- ``binary_patterns``: random ±1 patterns and noisy probes (Hopfield memories).
- ``csv``, ``parquet`` (through pyarrow: typed columns, categories, a missing-value
  policy), ``npz``, ``idx``, ``npy`` (memory-mapped, :mod:`nnlang.train.data.rows`): files, resolved against the .nn file's directory and
  confined to it (:func:`confine`).

Splits are carved with numpy's ``Generator`` seeded by ``seed``: deterministic, and
stratified by class for integer labels (each split keeps the class proportions, up to
rounding). Feature arrays are ``x`` (or the file's names); labels ``label``.

Nothing is unpickled: ``np.load(..., allow_pickle=False)``.
"""

# Importing sources, arrays and normalizers (as below) is what fills the SOURCES and
# NORMALIZERS catalogues: their entries register themselves with `@declare`.
from nnlang.train.data.arrays import read_idx
from nnlang.train.data.binding import bind_inputs
from nnlang.train.data.dataset import (
    NORMALIZERS,
    SOURCES,
    SPLITS,
    Dataset,
    check_class_labels,
    validate,
)
from nnlang.train.data.images import _images_source  # noqa: F401  (declares)
from nnlang.train.data.normalizers import (
    Normalizer,
    fit_normalizer,
    normalize,
    normalize_from,
    normalizers_npz,
    read_normalizers_npz,
)
from nnlang.train.data.patterns import _binary_patterns  # noqa: F401  (declares)
from nnlang.train.data.rows import Rows, materialise
from nnlang.train.data.sources import confine, dataset_from, load_data
from nnlang.train.data.splits import split_indices
from nnlang.train.data.tables import _csv_source  # noqa: F401  (declares)
from nnlang.train.data.text import UNKNOWN

__all__ = [
    "NORMALIZERS",
    "UNKNOWN",
    "SOURCES",
    "SPLITS",
    "Dataset",
    "Normalizer",
    "Rows",
    "bind_inputs",
    "check_class_labels",
    "confine",
    "dataset_from",
    "fit_normalizer",
    "load_data",
    "materialise",
    "normalize",
    "normalize_from",
    "normalizers_npz",
    "read_idx",
    "read_normalizers_npz",
    "split_indices",
    "validate",
]
