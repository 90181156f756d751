"""Data sources, splits, validation, normalisation and input binding (see
:mod:`nnlang.train.data.sources` for the sources and their rules)."""

from nnlang.train.data.sources import (
    NORMALIZERS,
    SOURCES,
    SPLITS,
    Dataset,
    Normalizer,
    bind_inputs,
    check_class_labels,
    confine,
    fit_normalizer,
    load_data,
    normalize,
    normalizers_npz,
    read_idx,
    read_normalizers_npz,
    split_indices,
    validate,
)

__all__ = [
    "NORMALIZERS",
    "SOURCES",
    "SPLITS",
    "Dataset",
    "Normalizer",
    "bind_inputs",
    "check_class_labels",
    "confine",
    "fit_normalizer",
    "load_data",
    "normalize",
    "normalizers_npz",
    "read_idx",
    "read_normalizers_npz",
    "split_indices",
    "validate",
]
