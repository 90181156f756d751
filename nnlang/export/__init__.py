"""`nnlang export`: a trained run as a StableHLO or ONNX file, checked before it is written.

    export(file, run, fmt="stablehlo", out="model.stablehlo")

writes three files, each atomically, and only after the parity gate passed:

    <out>                   the artifact (serialized jax.export.Exported, or an ONNX model)
    <out>.json              format version, model, inputs and outputs (names, per-sample
                            shapes with symbolic axes, dtypes), normalisation, gate result
    <out>.normalizer.npz    per-input normalisation statistics, if the run has any

The run directory is only read (JSON, arrays, Orbax checkpoints). See docs/export.md.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnlang.diagnostics import Diagnostic, NNError
from nnlang.environment import environment_error
from nnlang.export import gate
from nnlang.export import stablehlo as hlo
from nnlang.export.artifact import (
    FORMAT_VERSION,
    onnx_call,
    sidecar_json,
    sidecar_npz,
    stablehlo_call,
)
from nnlang.export.trace import batch_symbol, jax_dtype
from nnlang.graph.graph import Graph
from nnlang.train.data import normalizers_npz

FORMATS = ("stablehlo", "onnx")


@dataclass
class ExportResult:
    format: str
    model: str
    path: Path
    size: int
    gate: gate.GateReport
    files: list[Path] = field(default_factory=list)  # every file written, the artifact first

    def summary(self) -> str:
        extra = ", ".join(p.name for p in self.files[1:])
        return (
            f"exported {self.model} to {self.path} ({self.format}, {_human(self.size)}"
            f"{'; with ' + extra if extra else ''}); {self.gate.text}"
        )


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1024 or unit == "MB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n:.1f} GB"  # pragma: no cover


def _refuse_existing(paths: list[Path], force: bool) -> None:
    for p in paths:
        if p.is_dir():
            raise NNError(
                Diagnostic(
                    "E603",
                    f"`{p}` is a directory; nothing was written",
                    help="give --out a file path, e.g. --out model.stablehlo",
                )
            )
    if force:
        return
    for p in paths:
        if p.exists():
            raise NNError(
                Diagnostic(
                    "E603",
                    f"`{p}` already exists; nothing was written",
                    help="pass --force to overwrite it, or choose another --out",
                )
            )


def describe(
    graph: Graph,
    fmt: str,
    out: Path,
    norms: Mapping[str, Any],
    targets: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The sidecar JSON (without the gate result). ``targets``: output name -> the
    sidecar key of the normalised target it was trained against."""
    targets = dict(targets or {})
    inputs = sorted(k for k in norms if k not in targets.values())
    from importlib.metadata import PackageNotFoundError, version

    def tensor(p: Any) -> dict[str, Any]:
        return {
            "name": p.name,
            "dtype": str(np.dtype(jax_dtype(p.type.dtype))),
            "shape": list(p.type.shape),
            "type": str(p.type),
        }

    versions = {}
    for pkg in (
        ("nnlang", "jax", "jax2onnx", "onnx") if fmt == "onnx" else ("nnlang", "jax", "jaxlib")
    ):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return {
        "format": fmt,
        "version": FORMAT_VERSION,
        "model": graph.name,
        "artifact": out.name,
        "batch_axis": batch_symbol(graph),
        "symbolic_axes": list(graph.symbols),
        "inputs": [{**tensor(p), "normalized": p.name in norms} for p in graph.inputs],
        "outputs": [tensor(p) for p in graph.outputs],
        "normalization": {
            "required": bool(norms),
            "inputs": inputs,
            "file": sidecar_npz(out).name if norms else None,
            "formula": "x = (x.astype(float32) - npz['<input>/shift']) * npz['<input>/mul']",
            "outputs": targets,
            "output_formula": "y = out / npz['<target>/mul'] + npz['<target>/shift']",
        },
        "versions": versions,
    }


def export(
    file: str | Path,
    run: str | Path,
    *,
    fmt: str,
    out: str | Path,
    force: bool = False,
    model: str | None = None,
) -> ExportResult:
    """Export the run's best checkpoint of ``file``'s model; see the module docstring."""
    from nnlang.export import onnx as onnx_export
    from nnlang.fsio import atomic_write_bytes, atomic_write_text
    from nnlang.train.dataload import target_keys
    from nnlang.train.rundir import load_normalizers
    from nnlang.train.trained import TrainedRun

    if fmt not in FORMATS:
        raise NNError(
            Diagnostic("E601", f"unknown export format `{fmt}`", help="choose stablehlo or onnx")
        )
    out = Path(out)
    side_json, side_npz = sidecar_json(out), sidecar_npz(out)
    _refuse_existing([out, side_json, side_npz], force)
    if fmt == "onnx":
        onnx_export.require()
    trained = TrainedRun.open(file, run, model)
    graph = trained.graph
    live = trained.model()
    # the inputs' statistics, and those of the regression targets an output learned
    every = load_normalizers(trained.run_dir)
    targets = target_keys(trained.spec, every)
    wanted = set(trained.input_names) | set(targets.values())
    norms = {k: v for k, v in every.items() if k in wanted}  # normalizer.npz read once
    meta = describe(graph, fmt, out, norms, targets)
    ins, outs = trained.input_names, trained.output_names
    try:
        if fmt == "stablehlo":
            blob, platforms = hlo.export(graph, live)
            meta["platforms"] = platforms
            call = stablehlo_call(blob)
        else:
            blob = onnx_export.export(
                graph, live, {k: meta[k] for k in ("model", "inputs", "outputs", "normalization")}
            )
            meta["opset"] = _opset(blob)
            call = onnx_call(blob, ins, outs)
    except NNError as e:  # E601 points into the .nn file: let the CLI show the line
        e.sources = trained.sources
        raise

    samples, source = gate.sample_inputs(trained)

    def run_artifact(inputs: gate.Inputs) -> dict[str, Any]:
        return dict(zip(outs, call([inputs[n] for n in ins]), strict=True))

    report = gate.check(fmt, run_artifact, trained, samples, source)
    meta["gate"] = report.to_json()
    _refuse_existing([out, side_json, side_npz], force)
    written = [out]
    wrote_out = False
    try:
        if norms:
            atomic_write_bytes(side_npz, normalizers_npz(norms))
        elif side_npz.exists():  # --force over an export that had one: it would be stale
            side_npz.unlink()
        atomic_write_bytes(out, blob)
        wrote_out = True
        atomic_write_text(side_json, json.dumps(meta, indent=2) + "\n")
    except OSError as e:  # a full disk, a read-only folder, --out below a file: E7xx
        env = environment_error(e, out)
        if env is None:
            raise
        env.notes.append(f"the artifact is {len(blob):,} bytes; nothing was left half-written")
        if wrote_out:  # an artifact without its .json beside it cannot be loaded
            out.unlink(missing_ok=True)
        raise NNError(env) from None
    written.append(side_json)
    if norms:
        written.append(side_npz)
    return ExportResult(fmt, graph.name, out, len(blob), report, written)


def _opset(blob: bytes) -> int | None:
    import onnx

    model = onnx.load_from_string(blob)
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
