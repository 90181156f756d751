"""The one rule for fitting an array to a model's declared input.

Training data (E407), ``nnlang predict --run`` (E504) and exported artifacts (E604) all
fit arrays by this rule; each caller only chooses its error code and names the input.
Shapes are per sample (the batch axis comes first and is not declared); a ``str``
dimension is symbolic and matches any size.

- **Shape.** Equal per-sample shapes are kept. Otherwise, when the declared shape is
  fully fixed and holds as many elements, each sample is reshaped row by row (C order):
  data ``[64]`` fits ``f32[8, 8, 1]``, ``[28, 28, 1]`` fits ``f32[784]``. Anything else
  is a :class:`Misfit`.
- **Symbolic axes.** Inputs fitted with one ``sizes`` dict must agree on each symbolic
  axis (and on the batch, when ``batch`` names it).
- **Dtype.** An array is cast to the declared dtype when no value changes but for
  floating-point precision: to a float from any number; to an integer from integers in
  range or from floats that are whole numbers in range; to ``bool`` from ``bool`` only.

May import :mod:`nnlang.shapes` and NumPy only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from nnlang.shapes import DTYPES, Dim


class Misfit(Exception):
    """An array does not fit; ``message`` and ``help`` are ready for a diagnostic."""

    def __init__(self, message: str, help: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.help = help


def np_dtype(dtype: str) -> np.dtype[Any]:
    """NumPy's dtype for a .nn dtype (``f32``) or a NumPy name (``float32``)."""
    name = DTYPES.get(dtype, dtype)
    if name == "bfloat16":
        import ml_dtypes  # shipped with jax

        bf16: np.dtype[Any] = np.dtype(ml_dtypes.bfloat16)
        return bf16
    return np.dtype(name)


def shape_text(shape: Sequence[Any]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def fit_shape(
    declared: Sequence[Dim],
    actual: Sequence[int],
    *,
    what: str,
    source: str,
    type_text: str,
    whole: Sequence[int] | None = None,
) -> tuple[int, ...] | None:
    """``None`` when per-sample shape ``actual`` fits ``declared`` as it is, the shape to
    reshape each sample to when it fits by reshaping, else :class:`Misfit`."""
    declared, actual = tuple(declared), tuple(actual)
    if len(declared) == len(actual) and all(
        isinstance(d, str) or d == a for d, a in zip(declared, actual, strict=True)
    ):
        return None
    fixed = [d for d in declared if isinstance(d, int)]
    if len(fixed) == len(declared) and math.prod(fixed) == math.prod(actual):
        return tuple(fixed)
    raise Misfit(
        f"{what} is declared {type_text} per sample but {source} has per-sample shape "
        f"{shape_text(actual)}"
        + (f" (the whole array is {shape_text(whole)})" if whole is not None else ""),
        help="the first axis is the batch; the rest must match the declared shape, or hold "
        "as many values when that shape is fully fixed",
    )


def agree(
    declared: Sequence[Dim],
    shape: Sequence[int],
    sizes: dict[str, int],
    *,
    what: str,
    batch: str | None = None,
) -> None:
    """Record each symbolic axis' size in ``sizes``; :class:`Misfit` when an earlier input
    gave the same axis another size. ``shape`` includes the batch axis."""
    for sym, size in zip((batch, *declared), shape, strict=True):
        if isinstance(sym, str):
            seen = sizes.setdefault(sym, size)
            if seen != size:
                axis = "the batch size" if sym == batch else f"symbolic axis `{sym}`"
                raise Misfit(
                    f"{what}: {axis} is {size} here but {seen} in an earlier input; "
                    "inputs must agree"
                )


def cast(x: np.ndarray, dtype: str, *, what: str, source: str) -> np.ndarray:
    """``x`` as ``dtype`` when no value changes but for precision, else :class:`Misfit`."""
    target = np_dtype(dtype)
    if x.dtype == target:
        return x
    shown = DTYPES.get(dtype, dtype)
    if x.dtype.kind not in "biuf":
        raise Misfit(f"{what} is {dtype} but {source} holds {x.dtype} values")
    if target.kind == "f" or target.kind == "V":  # V: bfloat16
        return x.astype(target)
    if target.kind in "iu":
        if x.dtype.kind == "f" and x.size and not np.all(np.mod(x, 1) == 0):
            raise Misfit(
                f"{what} is {dtype} but {source} has fractional values",
                help=f"pass whole numbers (e.g. token ids) as {shown}",
            )
        if x.dtype.kind != "b" and x.size:
            info = np.iinfo(target)
            lo, hi = x.min(), x.max()
            if lo < info.min or hi > info.max:
                raise Misfit(f"{what} is {dtype} but {source} has values from {lo} to {hi}")
        return x.astype(target)
    if x.dtype.kind == "b":
        return x.astype(target)
    raise Misfit(
        f"{what} is {dtype} but {source} holds {x.dtype} values",
        help=f"pass {shown} values",
    )


def fit_array(
    x: Any,
    declared: Sequence[Dim],
    dtype: str,
    *,
    what: str,
    source: str = "the array",
    type_text: str | None = None,
    sizes: dict[str, int] | None = None,
    batch: str | None = None,
) -> np.ndarray:
    """``x`` (batch first) fitted to ``declared`` and ``dtype`` by the rule above."""
    x = np.asarray(x)
    if x.ndim == 0:
        raise Misfit(f"{what}: {source} is a single number; it needs a leading batch axis")
    text = type_text or f"{dtype}{shape_text(declared)}"
    target = fit_shape(
        declared, x.shape[1:], what=what, source=source, type_text=text, whole=x.shape
    )
    if target is not None:
        x = x.reshape((x.shape[0], *target))
    if sizes is not None:
        agree(declared, x.shape, sizes, what=what, batch=batch)
    return cast(x, dtype, what=what, source=source)
