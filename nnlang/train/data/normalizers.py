"""Normalizers (``standardize``, ``minmax``, ``scale``, ``none``): fitted on the train
split only, applied to every split, and saved as a plain ``.npz``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from nnlang.diagnostics import ArgError
from nnlang.train.catalog import Entry, Param, declare, resolve
from nnlang.train.data.dataset import NORMALIZERS, Dataset
from nnlang.train.data.rows import extremes, moments


# ---------------------------------------------------------------------- normalizers
@dataclass(frozen=True)
class Normalizer:
    """``apply(x) = (x - shift) * mul`` (float32), with statistics of the train split."""

    kind: str
    shift: np.ndarray
    mul: np.ndarray

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Computed in float32; the result keeps x's float dtype (float32 for ints)."""
        x = np.asarray(x)
        out = (x.astype(np.float32) - self.shift) * self.mul
        return out.astype(x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32)

    def invert(self, y: Any) -> Any:
        """The inverse of :meth:`apply`, ``y / mul + shift`` (NumPy or JAX arrays): a
        prediction of a normalised target back in the target's own units."""
        return y / self.mul + self.shift

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for ``np.savez`` (nothing executable)."""
        return {"kind": np.array(self.kind), "shift": self.shift, "mul": self.mul}

    @staticmethod
    def from_arrays(d: Mapping[str, np.ndarray]) -> Normalizer:
        return Normalizer(
            str(np.asarray(d["kind"])),
            np.asarray(d["shift"], np.float32),
            np.asarray(d["mul"], np.float32),
        )


_PER = Param(
    "per",
    "str",
    "feature",
    "`feature`: statistics per element position; `channel`: per last-axis channel; `global`: one for all",
    choices=("feature", "channel", "global"),
)


def _axes(per: str, ndim: int) -> tuple[int, ...]:
    if per == "feature":
        return (0,)
    if per == "channel":
        return tuple(range(ndim - 1)) if ndim > 1 else (0,)
    return tuple(range(ndim))


#: every normalizer's last parameter: the model inputs it applies to
_INPUTS = Param(
    "inputs",
    "any",
    None,
    "the model inputs it applies to, e.g. `inputs = [image]` (default: every floating input)",
)
#: and the regression targets it applies to as well (none by default)
_TARGETS = Param(
    "targets",
    "any",
    None,
    "regression targets it applies to as well, e.g. `targets = [label]`: trained on in "
    "normalised units, metrics and `predict` in the original ones (default: none)",
)


@declare(
    NORMALIZERS,
    "standardize",
    "Subtract the mean and divide by the standard deviation (std 0 counts as 1).",
    _PER,
    _INPUTS,
    _TARGETS,
)
def _standardize(x: np.ndarray, per: str) -> tuple[np.ndarray, np.ndarray]:
    ax = _axes(per, x.ndim)
    if isinstance(x, np.ndarray):
        mean = x.mean(axis=ax, keepdims=True, dtype=np.float64)
        std = x.std(axis=ax, keepdims=True, dtype=np.float64)
    else:  # rows on disk (data.rows): two passes, a chunk at a time
        mean, std = moments(x, ax)
    std[std == 0] = 1.0  # constant features (digits' corner pixels) stay at 0
    return mean[0], 1.0 / std[0]


@declare(
    NORMALIZERS,
    "minmax",
    "Map the train split's range to [0, 1] (a constant feature maps to 0).",
    _PER,
    _INPUTS,
    _TARGETS,
)
def _minmax(x: np.ndarray, per: str) -> tuple[np.ndarray, np.ndarray]:
    ax = _axes(per, x.ndim)
    if isinstance(x, np.ndarray):
        lo = x.min(axis=ax, keepdims=True).astype(np.float64)
        span = x.max(axis=ax, keepdims=True).astype(np.float64) - lo
    else:  # rows on disk (data.rows): a chunk at a time
        lo, hi = extremes(x, ax)
        span = hi - lo
    span[span == 0] = 1.0
    return lo[0], 1.0 / span[0]


@declare(
    NORMALIZERS,
    "scale",
    "Multiply by a constant factor, e.g. `scale(1 / 255)`.",
    Param("factor", "float", doc="the multiplier", min=0.0, min_open=True),
    _INPUTS,
    _TARGETS,
)
def _scale(x: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((), np.float64), np.asarray(factor, np.float64)


@declare(NORMALIZERS, "none", "Leave the features as they are.", _INPUTS, _TARGETS)
def _none(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((), np.float64), np.ones((), np.float64)


def normalizers_npz(norms: Mapping[str, Normalizer]) -> bytes:
    """Normalizers as the `.npz` kept in run directories and beside exported artifacts:
    one array per `<model input>/<field>` (kind, shift, mul); nothing executable."""
    import io

    buf = io.BytesIO()
    np.savez(buf, **{f"{inp}/{k}": v for inp, n in norms.items() for k, v in n.to_arrays().items()})
    return buf.getvalue()


def read_normalizers_npz(path: Path | BinaryIO) -> dict[str, Normalizer]:
    """Read :func:`normalizers_npz`'s format (OSError/ValueError/KeyError if unreadable)."""
    with np.load(path, allow_pickle=False) as z:
        groups: dict[str, dict[str, np.ndarray]] = {}
        for k in z.files:
            inp, _, field_ = k.partition("/")
            groups.setdefault(inp, {})[field_] = z[k]
    return {inp: Normalizer.from_arrays(d) for inp, d in groups.items()}


def fit_normalizer(
    kind: str,
    train_x: np.ndarray,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
) -> Normalizer:
    """Fit ``kind`` on the training features only (never val/test: no leakage)."""
    entry, bound = resolve(NORMALIZERS, "normalizer", kind, args, kwargs)
    return _fit(entry, bound, train_x)


def _fit(entry: Entry, bound: Mapping[str, Any], train_x: np.ndarray) -> Normalizer:
    x = train_x if hasattr(train_x, "mapped") else np.asarray(train_x)  # data.rows.Rows stay
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ArgError("E403", f"cannot normalize {x.dtype} data")
    if x.shape[0] == 0:
        raise ArgError("E407", "cannot fit a normalizer on an empty training split")
    shift, mul = entry.fn(x, **{k: v for k, v in bound.items() if k not in ("inputs", "targets")})
    return Normalizer(entry.name, np.asarray(shift, np.float32), np.asarray(mul, np.float32))


def normalize(
    ds: Dataset,
    kind: str,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    keys: Sequence[str] | None = None,
) -> dict[str, Normalizer]:
    """Fit ``kind`` on the train split of each floating feature array (or ``keys``) and
    apply it to every split, in place. Returns the normalizers by feature key.

    Call it after :func:`bind_inputs`, so the statistics have the model input's shape
    and the saved normalizer applies directly to inputs at prediction time.
    """
    entry, bound = resolve(NORMALIZERS, "normalizer", kind, args, kwargs)
    return normalize_from(ds, entry, bound, keys)


def normalize_from(
    ds: Dataset, entry: Entry, bound: Mapping[str, Any], keys: Sequence[str] | None = None
) -> dict[str, Normalizer]:
    """:func:`normalize` for a call already bound to ``entry`` (every param in
    ``bound``): nothing is bound again."""
    out: dict[str, Normalizer] = {}
    for key in keys if keys is not None else ds.feature_keys:
        if not np.issubdtype(ds.splits["train"][key].dtype, np.floating):
            continue  # token ids and other integer inputs are not normalised
        norm = _fit(entry, bound, ds.splits["train"][key])
        for arrays in ds.splits.values():
            a = arrays[key]  # rows on disk (data.rows.Rows) are normalised as they are read
            arrays[key] = a.mapped(norm.apply) if hasattr(a, "mapped") else norm.apply(a)
        out[key] = norm
    return out
