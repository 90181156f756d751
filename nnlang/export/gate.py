"""The parity gate: an artifact is written only if it computes what the live model does.

Sample inputs come from the run's data (the normalised test split, else validation,
else train) or, when that cannot be loaded, are random with the right dtypes. The
artifact and the live model (``nnlang predict``'s compiled function) run on them at two
batch sizes; every output element must satisfy ``|got - live| <= atol + rtol * |live|``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from nnlang.diagnostics import Diagnostic, NNError
from nnlang.export.trace import jax_dtype
from nnlang.graph.graph import Graph

if TYPE_CHECKING:  # pragma: no cover
    from nnlang.train.trained import TrainedRun

#: format -> (rtol, atol)
TOLERANCES: dict[str, tuple[float, float]] = {"stablehlo": (1e-6, 1e-6), "onnx": (1e-5, 1e-5)}
BATCHES = (1, 7)
#: sizes of symbolic axes (``T``) in random inputs, per batch size: two different ones
RANDOM_AXIS = {1: 8, 7: 11}

Inputs = dict[str, np.ndarray]


@dataclass
class GateReport:
    format: str
    rtol: float
    atol: float
    batches: tuple[int, ...]
    source: str  # "test split", "random inputs", ...
    max_abs: float = 0.0
    max_rel: float = 0.0

    @property
    def text(self) -> str:
        return (
            f"parity gate passed ({self.source}, batch {' and '.join(map(str, self.batches))}): "
            f"max abs diff {self.max_abs:.2g}, max rel diff {self.max_rel:.2g} "
            f"(allowed {self.atol:g} + {self.rtol:g} x |live|)"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": True,
            "source": self.source,
            "batches": list(self.batches),
            "rtol": self.rtol,
            "atol": self.atol,
            "max_abs_diff": self.max_abs,
            "max_rel_diff": self.max_rel,
        }


# ------------------------------------------------------------------ samples
def random_inputs(graph: Graph, batch: int, seed: int = 0) -> Inputs:
    """Standard-normal floats, 0/1 integers and booleans (valid token ids for any
    embedding); every symbolic axis gets one size."""
    rng = np.random.default_rng(seed + batch)
    out: Inputs = {}
    for p in graph.inputs:
        shape = (
            batch,
            *(RANDOM_AXIS.get(batch, 5) if isinstance(d, str) else d for d in p.type.shape),
        )
        dt = np.dtype(jax_dtype(p.type.dtype))
        if dt == np.bool_:
            out[p.name] = rng.random(shape) < 0.5
        elif np.issubdtype(dt, np.integer):
            out[p.name] = rng.integers(0, 2, shape).astype(dt)
        else:
            out[p.name] = rng.standard_normal(shape).astype(dt)
    return out


def sample_inputs(run: TrainedRun) -> tuple[list[Inputs], str]:
    """Inputs at each of :data:`BATCHES`, and where they came from."""
    graph = run.graph
    try:
        data = run.data()
        split = next(s for s in ("test", "val", "train") if data.size(s) > 0)
        arrays = {p.name: data.splits[split][p.name] for p in graph.inputs}
    except (NNError, OSError, ValueError, KeyError, StopIteration) as e:
        why = e.diagnostics[0].code if isinstance(e, NNError) else type(e).__name__
        return [
            random_inputs(graph, b) for b in BATCHES
        ], f"random inputs; the run's data did not load ({why})"
    n = len(next(iter(arrays.values())))
    samples = []
    for b in BATCHES:
        rows = np.arange(b) % n
        samples.append({k: np.asarray(v[rows], jax_dtype_of(graph, k)) for k, v in arrays.items()})
    return samples, f"{split} split"


def jax_dtype_of(graph: Graph, name: str) -> Any:
    return next(jax_dtype(p.type.dtype) for p in graph.inputs if p.name == name)


# ------------------------------------------------------------------ comparison
def reference(run: TrainedRun, inputs: Inputs) -> dict[str, np.ndarray]:
    """The live model's outputs on normalised inputs (what `nnlang predict --run`
    computes after normalising)."""
    return run.infer(inputs)


def check(
    fmt: str,
    run_artifact: Callable[[Inputs], Mapping[str, Any]],
    run: TrainedRun,
    samples: list[Inputs],
    source: str,
) -> GateReport:
    """Compare the artifact with the live model on every sample; E602 on any element
    outside the tolerance, naming the output, the index and the values."""
    rtol, atol = TOLERANCES[fmt]
    report = GateReport(
        fmt, rtol, atol, tuple(len(next(iter(s.values()))) for s in samples), source
    )
    title = {"stablehlo": "StableHLO", "onnx": "ONNX"}[fmt]
    for inputs in samples:
        live = reference(run, inputs)
        got = run_artifact(inputs)
        for name, want in live.items():
            want = np.asarray(want)
            have = np.asarray(got[name])
            if have.shape != want.shape:
                raise _differs(
                    title,
                    f"output `{name}` has shape {list(have.shape)} in the artifact but "
                    f"{list(want.shape)} in the live model",
                )
            a, b = want.astype(np.float64), have.astype(np.float64)
            with np.errstate(invalid="ignore"):
                diff = np.abs(b - a)
            both_nan = np.isnan(a) & np.isnan(b)
            diff = np.where(both_nan, 0.0, np.where(np.isnan(diff), np.inf, diff))
            with np.errstate(divide="ignore", invalid="ignore"):
                rel = np.where(diff == 0, 0.0, diff / np.abs(a))
            report.max_abs = max(report.max_abs, float(diff.max(initial=0.0)))
            # relative differences of values within atol of zero say nothing: left out
            report.max_rel = max(
                report.max_rel, float(np.where(np.abs(a) > atol, rel, 0.0).max(initial=0.0))
            )
            excess = diff - (atol + rtol * np.abs(a))
            if excess.size and float(excess.max()) > 0:
                idx = np.unravel_index(int(np.argmax(excess)), excess.shape)
                raise _differs(
                    title,
                    f"output `{name}` at index {tuple(int(i) for i in idx)} (batch of {a.shape[0]}) "
                    f"is {b[idx]:.9g} but the live model gives {a[idx]:.9g}: difference "
                    f"{diff[idx]:.3g} (relative {rel[idx]:.3g}), more than atol {atol:g} + "
                    f"rtol {rtol:g} x |live|",
                )
    return report


def _differs(title: str, what: str) -> NNError:
    return NNError(
        Diagnostic(
            "E602",
            f"the exported {title} artifact differs from the live model: {what}",
            help="nothing was written; this is a converter or nnlang bug"
            + ("" if title == "StableHLO" else " — `--format stablehlo` is exact")
            + "; please report it",
        )
    )
