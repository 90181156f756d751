"""StableHLO export with ``jax.export``, and loading any nnlang artifact back.

The exported function is the model's inference in eval mode, ``f(*inputs) -> outputs``
(declaration order), with the trained weights closed over as constants. The batch axis
and the model's named symbolic axes stay symbolic (``jax.export.symbolic_shape``), so
one artifact serves every batch size and sequence length. Normalisation is not inside
the artifact: the sidecar ``<out>.json`` says which inputs need it and
``<out>.normalizer.npz`` holds the statistics (see docs/export.md).

:func:`load_artifact` reads an exported file and its sidecars (arrays and JSON only)
and runs it — StableHLO through ``jax.export.deserialize``, ONNX through onnxruntime —
after checking every input against the recorded signature.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from nnlang.diagnostics import Diagnostic, NNError
from nnlang.graph.graph import Graph, Node
from nnlang.shapes import DTYPES

FORMAT_VERSION = 1
#: Platforms a StableHLO artifact is lowered for (plus the one export runs on), so
#: that an artifact made on a laptop also runs on a GPU machine.
PLATFORMS = ("cpu", "cuda", "tpu")

Fn = Callable[..., tuple[jax.Array, ...]]


# ------------------------------------------------------------------ sidecar paths
def sidecar_json(out: str | Path) -> Path:
    return Path(f"{out}.json")


def sidecar_npz(out: str | Path) -> Path:
    return Path(f"{out}.normalizer.npz")


# ------------------------------------------------------------------ the function
def batch_symbol(graph: Graph) -> str:
    """The name of the symbolic batch axis: ``batch``, unless the model uses it."""
    name = "batch"
    while name in graph.symbols:
        name += "_"
    return name


def jax_dtype(dtype: str) -> Any:
    """A graph dtype (``f32``) as the dtype JAX will use (f64 is f32 without x64)."""
    return jax.dtypes.canonicalize_dtype(jnp.dtype(DTYPES[dtype]))


def specs_for(types: Sequence[Any], batch: str, scope: Any) -> list[jax.ShapeDtypeStruct]:
    """Abstract batched inputs for per-sample tensor types; symbolic axes share ``scope``."""
    out = []
    for t in types:
        dims = ", ".join([batch, *(str(d) for d in t.shape)])
        shape = jax.export.symbolic_shape(dims, scope=scope)
        out.append(jax.ShapeDtypeStruct(shape, jax_dtype(t.dtype)))
    return out


def input_specs(graph: Graph) -> list[jax.ShapeDtypeStruct]:
    return specs_for(
        [p.type for p in graph.inputs], batch_symbol(graph), jax.export.SymbolicScope()
    )


def _fresh(gdef: Any, state: Any) -> Any:
    """The module rebuilt inside the current trace: ``nnx.scan`` (recurrent layers)
    refuses variables created outside it; the arrays stay concrete, hence constants."""
    return nnx.merge(gdef, jax.tree.map(jnp.asarray, state))


def inference_fn(model: nnx.Module, output_names: Sequence[str], *, fold: bool = True) -> Fn:
    """``f(*inputs) -> tuple(outputs)`` with the model's weights as constants. An output
    that is an input, or another output, is copied so every output is its own value
    (ONNX names each value once).

    ``fold=False`` puts the weights behind ``lax.optimization_barrier``: XLA then
    compiles the same arithmetic as for the live model, whose weights are arguments,
    instead of folding constants (e.g. batch norm's ``scale * rsqrt(var + eps)``) a
    rounding step differently, so the artifact matches the live model bit for bit."""
    gdef, state = nnx.split(model)

    def f(*xs: jax.Array) -> tuple[jax.Array, ...]:
        # new Variables inside the trace (nnx.scan refuses ones made outside it, see
        # _fresh); the arrays stay concrete, hence constants of the exported program
        weights = jax.tree.map(jnp.asarray, state)
        if not fold:
            weights = jax.lax.optimization_barrier(weights)
        outs = nnx.merge(gdef, weights)(*xs)
        seen = {id(x) for x in xs}
        res = []
        for name in output_names:
            v = outs[name]
            if id(v) in seen:
                v = jnp.copy(v)
            seen.add(id(v))
            res.append(v)
        return tuple(res)

    return f


def node_fn(model: nnx.Module, node: Node) -> Fn:
    """One layer call of the lowered network, alone (to find which layer a converter
    cannot handle)."""
    functions = model.functions  # type: ignore[attr-defined]
    if node.owner in functions:
        fn = functions[node.owner]
    else:
        gdef, state = nnx.split(model.layers[node.owner])  # type: ignore[attr-defined]

        def fn(*xs: jax.Array) -> Any:
            return _fresh(gdef, state)(*xs)

    def g(*xs: jax.Array) -> tuple[jax.Array, ...]:
        y = fn(*xs)
        return tuple(y) if isinstance(y, tuple | list) else (y,)

    return g


def first_failing_node(
    graph: Graph, model: nnx.Module, convert: Callable[[Fn, list[jax.ShapeDtypeStruct]], Any]
) -> tuple[Node, Exception] | None:
    """The first layer (in topological order) that ``convert`` fails on by itself."""
    batch = batch_symbol(graph)
    for node in graph.order():
        if node.kind is None:
            continue
        try:
            convert(
                node_fn(model, node), specs_for(node.in_types, batch, jax.export.SymbolicScope())
            )
        except Exception as e:  # noqa: BLE001 - any converter failure blames this layer
            return node, e
    return None


def first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:300]


def export(graph: Graph, model: nnx.Module) -> tuple[bytes, list[str]]:
    """Serialized ``jax.export`` artifact of the model's inference and its platforms.
    Raises E601 (at the first layer that fails alone, if any) when lowering fails."""
    f = jax.jit(inference_fn(model, [p.name for p in graph.outputs], fold=False))
    specs = input_specs(graph)
    here = jax.export.default_export_platform()  # "cuda", not jax.default_backend()'s "gpu"
    platforms = list(dict.fromkeys([here, *PLATFORMS]))
    try:
        exp = jax.export.export(f, platforms=platforms)(*specs)
    except Exception:  # noqa: BLE001 - some op has no lowering for another platform
        platforms = [here]
        try:
            exp = jax.export.export(f, platforms=platforms)(*specs)
        except Exception as e:  # noqa: BLE001
            raise _export_error(graph, model, e) from None
    return bytes(exp.serialize()), platforms


def _export_error(graph: Graph, model: nnx.Module, e: Exception) -> NNError:
    def convert(fn: Fn, specs: list[jax.ShapeDtypeStruct]) -> Any:
        return jax.export.export(jax.jit(fn))(*specs)

    found = first_failing_node(graph, model, convert)
    if found is None:
        return NNError(
            Diagnostic(
                "E601",
                f"model `{graph.name}` cannot be exported to StableHLO: {first_line(e)}",
                graph.span,
                help="this is a bug in nnlang; please report it with the .nn file",
            )
        )
    node, err = found
    return NNError(
        Diagnostic(
            "E601",
            f"layer `{node.kind_name}` cannot be exported to StableHLO with symbolic batch and axes",
            node.span,
            label="this layer",
            notes=[first_line(err)],
            help="this is a bug in nnlang's lowering of the layer; please report it with the .nn file",
        )
    )


# ------------------------------------------------------------------ loading
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


def _kind(dt: Any) -> str:
    dt = jnp.dtype(dt)
    if dt == jnp.bool_:
        return "b"
    if jnp.issubdtype(dt, jnp.integer):
        return "i"
    if jnp.issubdtype(dt, jnp.floating):
        return "f"
    return "?"


def _bad(name: str, message: str, help: str | None = None) -> NNError:
    return NNError(Diagnostic("E604", f"input `{name}`: {message}", help=help))


def fit_input(info: TensorInfo, x: Any, sizes: dict[str, int], batch: str) -> np.ndarray:
    """``x`` checked against ``info`` (rank, fixed and symbolic sizes, dtype) and cast
    where that loses nothing but precision; E604 naming the input otherwise."""
    x = np.asarray(x)
    want = info.shape
    expected = f"expected {info.text} per sample (a leading batch axis, then those axes)"
    if (
        x.ndim != len(want) + 1
        and x.ndim >= 1
        and all(isinstance(d, int) for d in want)
        and math.prod(x.shape[1:]) == math.prod(want)
    ):  # type: ignore[arg-type]
        x = x.reshape((x.shape[0], *want))  # like `nnlang predict --run`: [N, 64] for [8, 8, 1]
    if x.ndim != len(want) + 1 or any(
        isinstance(d, int) and d != a for d, a in zip(want, x.shape[1:], strict=False)
    ):
        raise _bad(
            info.name,
            f"{expected}, got an array of shape {list(x.shape)}",
            help="the first axis is the batch; the rest must match the exported shape",
        )
    for sym, actual in zip((batch, *want), x.shape, strict=True):
        if isinstance(sym, str):
            seen = sizes.setdefault(sym, actual)
            if seen != actual:
                what = "the batch size" if sym == batch else f"symbolic axis `{sym}`"
                raise _bad(
                    info.name,
                    f"{what} is {actual} here but {seen} in an earlier input; inputs must agree",
                )
    target = jnp.dtype(info.dtype)
    if x.dtype == target:
        return x
    src, dst = _kind(x.dtype), _kind(target)
    if (src, dst) not in {("f", "f"), ("i", "i"), ("b", "b"), ("b", "i"), ("b", "f"), ("i", "f")}:
        raise _bad(
            info.name,
            f"{expected}; an array of {x.dtype} cannot be cast to {info.dtype} without loss",
            help=f"pass {info.dtype} values"
            + (" (whole numbers, e.g. token ids)" if dst == "i" else ""),
        )
    if src == "i" and dst == "i" and x.size:
        lo, hi = np.iinfo(target).min, np.iinfo(target).max
        if x.min() < lo or x.max() > hi:
            raise _bad(info.name, f"values from {x.min()} to {x.max()} do not fit {info.dtype}")
    return x.astype(target)


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
                raise _bad(info.name, f"missing (expected {info.text} per sample){given}")
            x = fit_input(info, inputs[info.name], sizes, self.batch)
            if normalize and info.name in self.normalizers:
                x = self.normalizers[info.name].apply(x)
            arrays.append(x)
        return arrays

    def call(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The artifact on prepared arrays (see :meth:`prepare`), outputs in order."""
        return [np.asarray(v) for v in self._call(list(arrays))]

    def run(self, inputs: Mapping[str, Any], *, normalize: bool = True) -> dict[str, np.ndarray]:
        """Outputs by name. ``normalize=False``: the inputs are already normalised."""
        outs = self.call(self.prepare(inputs, normalize=normalize))
        return {o.name: np.asarray(v) for o, v in zip(self.outputs, outs, strict=True)}


def stablehlo_call(blob: bytes) -> Callable[[list[np.ndarray]], Sequence[Any]]:
    exported = jax.export.deserialize(bytearray(blob))
    fn = jax.jit(exported.call)
    return lambda arrays: fn(*arrays)


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
        from nnlang.export.onnx import onnx_call

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
