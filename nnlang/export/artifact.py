"""Loading an exported nnlang artifact (StableHLO or ONNX) back, with its sidecars.

:func:`load_artifact` reads an exported file, its description ``<out>.json`` and its
normalisation statistics ``<out>.normalizer.npz`` (arrays and JSON only) and runs it —
StableHLO through ``jax.export.deserialize``, ONNX through onnxruntime — after checking
every input against the recorded signature. This is what ``nnlang predict --artifact``
uses; the file layout (sidecar names, :data:`FORMAT_VERSION`) is defined here too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np

from nnlang.diagnostics import Diagnostic, NNError
from nnlang.export.onnx import require
from nnlang.export.trace import first_line
from nnlang.fitting import Misfit, fit_array

FORMAT_VERSION = 1


# ------------------------------------------------------------------ sidecar paths
def sidecar_json(out: str | Path) -> Path:
    return Path(f"{out}.json")


def sidecar_npz(out: str | Path) -> Path:
    return Path(f"{out}.normalizer.npz")


# ------------------------------------------------------------------ signature
@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str  # numpy/JAX name: float32, int32, bfloat16, ...
    shape: tuple[int | str, ...]  # per sample; a str is a symbolic axis
    type: str = ""  # as written in the .nn file: f32[T, 64]

    @property
    def text(self) -> str:
        return self.type or f"{self.dtype}[{', '.join(str(d) for d in self.shape)}]"

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> TensorInfo:
        shape = tuple(d["shape"])
        if not all(isinstance(x, int | str) for x in shape):
            raise TypeError(f"bad shape {list(shape)}")
        return TensorInfo(str(d["name"]), str(d["dtype"]), shape, str(d.get("type", "")))


def fit_input(info: TensorInfo, x: Any, sizes: dict[str, int], batch: str) -> np.ndarray:
    """``x`` fitted to ``info`` by the one rule of :mod:`nnlang.fitting` (rank, fixed and
    symbolic sizes, dtype); E604 naming the input otherwise."""
    try:
        return fit_array(
            x,
            info.shape,
            info.dtype,
            what=f"input `{info.name}`",
            type_text=info.text,
            sizes=sizes,
            batch=batch,
        )
    except Misfit as e:
        raise NNError(Diagnostic("E604", e.message, help=e.help)) from None


class Artifact:
    """An exported model with its sidecars: ``run({input: array}) -> {output: array}``."""

    def __init__(
        self,
        path: Path,
        meta: dict[str, Any],
        normalizers: dict[str, Any],
        call: Callable[[list[np.ndarray]], Sequence[Any]],
    ) -> None:
        self.path = path
        self.meta = meta
        self.format = str(meta["format"])
        self.inputs = [TensorInfo.from_json(d) for d in meta["inputs"]]
        self.outputs = [TensorInfo.from_json(d) for d in meta["outputs"]]
        self.batch = str(meta.get("batch_axis", "batch"))
        self.normalizers = normalizers
        self._call = call

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.outputs]

    def prepare(self, inputs: Mapping[str, Any], *, normalize: bool = True) -> list[np.ndarray]:
        """The arrays to call the artifact with, in input order: checked, cast and (for
        raw inputs) normalised with the statistics the model was trained with. Arrays
        of other names are ignored, as `nnlang predict --run` does (labels in an .npz)."""
        sizes: dict[str, int] = {}
        arrays = []
        for info in self.inputs:
            if info.name not in inputs:
                given = f"; got arrays named {', '.join(map(str, inputs))}" if inputs else ""
                raise NNError(
                    Diagnostic(
                        "E604",
                        f"input `{info.name}`: missing (expected {info.text} per sample){given}",
                    )
                )
            x = fit_input(info, inputs[info.name], sizes, self.batch)
            if normalize and info.name in self.normalizers:
                x = self.normalizers[info.name].apply(x)
            arrays.append(x)
        return arrays

    def call(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The artifact on prepared arrays (see :meth:`prepare`), outputs in order."""
        return [np.asarray(v) for v in self._call(list(arrays))]

    def run(self, inputs: Mapping[str, Any], *, normalize: bool = True) -> dict[str, np.ndarray]:
        """Outputs by name, an output trained against a normalised regression target
        in the target's own units (as `nnlang predict --run`). ``normalize=False``: the
        inputs are already normalised and the outputs are left as the artifact gives them."""
        outs = self.call(self.prepare(inputs, normalize=normalize))
        named = {o.name: np.asarray(v) for o, v in zip(self.outputs, outs, strict=True)}
        targets = self.meta.get("normalization", {}).get("outputs") or {}
        for name, key in targets.items() if normalize else ():
            if name in named and key in self.normalizers:
                y = named[name]
                named[name] = np.asarray(self.normalizers[key].invert(y), y.dtype)
        return named


# ------------------------------------------------------------------ loading
def stablehlo_call(blob: bytes) -> Callable[[list[np.ndarray]], Sequence[Any]]:
    exported = jax.export.deserialize(bytearray(blob))
    fn = jax.jit(exported.call)
    return lambda arrays: fn(*arrays)


def session(blob: bytes) -> Any:
    """An onnxruntime CPU session, quiet about its graph optimisations."""
    _, _, ort = require()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(blob, sess_options=opts, providers=["CPUExecutionProvider"])


def onnx_call(
    blob: bytes, input_names: Sequence[str], output_names: Sequence[str]
) -> Callable[[list[np.ndarray]], list[Any]]:
    sess = session(blob)
    return lambda arrays: sess.run(list(output_names), dict(zip(input_names, arrays, strict=True)))


def _unreadable(path: Path, why: str, help: str | None = None) -> NNError:
    return NNError(
        Diagnostic(
            "E504",
            f"`{path}` is not a usable nnlang artifact: {why}",
            help=help
            or "export one with `nnlang export FILE --run DIR --format stablehlo --out PATH`",
        )
    )


def read_meta(path: Path) -> dict[str, Any]:
    side = sidecar_json(path)
    if not path.is_file():
        raise _unreadable(path, "no such file")
    if not side.is_file():
        raise _unreadable(path, f"its description `{side.name}` is missing next to it")
    try:
        meta = json.loads(side.read_text("utf-8"))
        if not isinstance(meta, dict) or meta.get("format") not in ("stablehlo", "onnx"):
            raise ValueError("not an nnlang export description")
        if int(meta.get("version", 0)) > FORMAT_VERSION:
            raise _unreadable(
                path,
                f"written by a newer nnlang (format version {meta['version']})",
                help="upgrade nnlang",
            )
        for d in (*meta["inputs"], *meta["outputs"]):
            TensorInfo.from_json(d)
    except (ValueError, KeyError, TypeError) as e:
        raise _unreadable(path, f"`{side.name}` cannot be read ({e})") from None
    return meta


def read_normalizers(path: Path, meta: Mapping[str, Any]) -> dict[str, Any]:
    from nnlang.train.data import read_normalizers_npz

    norm = meta.get("normalization") or {}
    if not norm.get("file"):
        return {}
    file = path.parent / str(norm["file"])
    try:
        return read_normalizers_npz(file)
    except (OSError, ValueError, KeyError) as e:
        raise _unreadable(path, f"its normalizer `{file.name}` cannot be read ({e})") from None


def load_artifact(path: str | Path) -> Artifact:
    """An exported StableHLO (or ONNX) file and its sidecars, ready to ``run``."""
    path = Path(path)
    meta = read_meta(path)
    normalizers = read_normalizers(path, meta)
    blob = path.read_bytes()
    if meta["format"] == "onnx":
        return Artifact(
            path,
            meta,
            normalizers,
            onnx_call(
                blob, [i["name"] for i in meta["inputs"]], [o["name"] for o in meta["outputs"]]
            ),
        )
    try:
        call = stablehlo_call(blob)
    except Exception as e:  # noqa: BLE001 - a corrupt or foreign file
        raise _unreadable(path, f"jax.export cannot deserialize it ({first_line(e)})") from None
    return Artifact(path, meta, normalizers, call)
