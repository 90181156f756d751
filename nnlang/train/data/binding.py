"""Input binding: match the model's inputs to the data's feature arrays, reshaping and
casting the arrays to the declared shapes and dtypes."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nnlang.diagnostics import ArgError, did_you_mean
from nnlang.train.data.dataset import Dataset


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
