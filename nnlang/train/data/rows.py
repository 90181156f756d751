"""Rows read from disk when asked for: :class:`Rows`, a view of a memory-mapped ``.npy``
array (a subset of its rows, a dtype, the normalizers applied on read), as the ``npy``
source (:mod:`nnlang.train.data.arrays`) makes them. A streamed run (``stream``, :mod:`nnlang.train.stream`) reads a
batch of rows at a time and never holds the whole array; an in-memory run materialises
it once (:func:`materialise`). Checks and statistics over a :class:`Rows` run chunk by
chunk (:func:`chunks`).

Imports NumPy and :mod:`nnlang.fitting` only (the data modules import it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from nnlang.fitting import cast, np_dtype

#: rows read at a time by the chunked checks and statistics
CHUNK_ROWS = 4096


@dataclass(frozen=True, repr=False)
class Rows:
    """Rows ``index`` (all when None) of ``base``, cast to ``dtype``, with ``apply``
    (a normalizer's) run on every read. Indexing reads: ``rows[i]``, ``rows[a:b]``,
    ``rows[[i, j]]`` are NumPy arrays of those rows only."""

    base: np.ndarray  # memory-mapped: reading it reads the file
    dtype: np.dtype
    index: np.ndarray | None = None
    apply: Callable[[np.ndarray], np.ndarray] | None = None
    row_shape: tuple[int, ...] | None = None  # each row reshaped to this (input binding)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *(self.row_shape or self.base.shape[1:]))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    def __repr__(self) -> str:
        return f"Rows({list(self.shape)}, {np.dtype(self.dtype).name})"

    def __len__(self) -> int:
        return len(self.base) if self.index is None else len(self.index)

    def take(self, rows: np.ndarray) -> Rows:
        """The view of ``rows`` of this one (nothing is read)."""
        rows = np.asarray(rows, np.int64)
        return replace(self, index=rows if self.index is None else self.index[rows])

    def mapped(self, fn: Callable[[np.ndarray], np.ndarray]) -> Rows:
        """The same rows with ``fn`` applied after what is applied already."""
        prev = self.apply
        return replace(self, apply=fn if prev is None else (lambda x: fn(prev(x))))

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, slice):
            pos = np.arange(len(self))[key]
        else:
            pos = np.asarray(key, np.int64)
        at = pos if self.index is None else self.index[pos]
        if at.ndim == 1 and len(at) > 1:  # read in file order: a memory map reads ahead
            order = np.argsort(at, kind="stable")
            out = np.empty((len(at), *self.base.shape[1:]), self.base.dtype)
            out[order] = self.base[at[order]]
        else:
            out = np.asarray(self.base[at])
        out = out.astype(self.dtype, copy=False)
        if self.row_shape is not None:
            out = out.reshape((*out.shape[: out.ndim - self.base.ndim + 1], *self.row_shape))
        return self.apply(out) if self.apply is not None else out

    def fitted(
        self, row_shape: tuple[int, ...] | None, dtype: str, *, what: str, source: str
    ) -> Rows:
        """Input binding's reshape and cast (:func:`nnlang.fitting.cast`'s rule, its
        checks run chunk by chunk), applied as rows are read."""
        out = self if row_shape is None else replace(self, row_shape=tuple(row_shape))
        target = np_dtype(dtype)
        if out.dtype == target:
            return out
        for part in chunks(out):  # a Misfit (fractional values, out of range) as in memory
            cast(part, dtype, what=what, source=source)
        return replace(out, dtype=target)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        a = self[slice(None)]
        return a if dtype is None else a.astype(dtype)


def chunks(a: Any, size: int = CHUNK_ROWS) -> Iterator[np.ndarray]:
    """``a`` (an array or :class:`Rows`) a few thousand rows at a time."""
    for lo in range(0, len(a), size):
        yield np.asarray(a[lo : lo + size])


def materialise(arrays: dict[str, Any]) -> dict[str, np.ndarray]:
    """The arrays of a split in memory (an in-memory run)."""
    return {k: np.asarray(v) if isinstance(v, Rows) else v for k, v in arrays.items()}


def first_nonfinite(a: Any) -> tuple[int, ...] | None:
    """The position of the first NaN or infinity in ``a``, read chunk by chunk."""
    for n, part in enumerate(chunks(a)):
        bad = np.argwhere(~np.isfinite(part))
        if len(bad):
            return (int(bad[0][0]) + n * CHUNK_ROWS, *map(int, bad[0][1:]))
    return None


def moments(a: Rows, axes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The mean and standard deviation over ``axes`` (0 among them), in float64, in two
    passes over the rows: the statistics `standardize` fits, as a streamed run reads
    them (equal to NumPy's over the whole array up to rounding)."""
    n = int(np.prod([a.shape[i] for i in axes]))
    total: Any = 0.0
    for part in chunks(a):
        total = total + part.sum(axis=axes, keepdims=True, dtype=np.float64)
    mean = total / n
    sq: Any = 0.0
    for part in chunks(a):
        sq = sq + ((part - mean) ** 2).sum(axis=axes, keepdims=True, dtype=np.float64)
    return mean, np.sqrt(sq / n)


def extremes(a: Rows, axes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The minimum and maximum over ``axes``, chunk by chunk (exact)."""
    lo = hi = None
    for part in chunks(a):
        p_lo, p_hi = part.min(axis=axes, keepdims=True), part.max(axis=axes, keepdims=True)
        lo = p_lo if lo is None else np.minimum(lo, p_lo)
        hi = p_hi if hi is None else np.maximum(hi, p_hi)
    return np.asarray(lo, np.float64), np.asarray(hi, np.float64)
