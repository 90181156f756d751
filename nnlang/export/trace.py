"""Tracing a lowered model for export, shared by the StableHLO and ONNX writers and the gate.

The exported function is the model's inference in eval mode, ``f(*inputs) -> outputs``
(declaration order), with the trained weights closed over as constants. The batch axis
and the model's named symbolic axes stay symbolic (``jax.export.symbolic_shape``), so
one artifact serves every batch size and sequence length. When a converter fails on the
whole model, :func:`first_failing_node` finds the first layer it fails on by itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from nnlang.graph.graph import Graph, Node
from nnlang.shapes import DTYPES

Fn = Callable[..., tuple[jax.Array, ...]]


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
