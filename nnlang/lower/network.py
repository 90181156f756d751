"""Lower a checked graph to one ``nnx.Module`` that runs its nodes in topological order.

The order, the wiring and the stateless functions are fixed when the module is built
(static data), so tracing it yields exactly the program a person would write by hand:
one call per layer, no graph walk at run time. Each parameter owner is built once from
its layer kind's Flax lowering with the concrete sizes shape inference found; the call
sites of a `shared` instance all use that one module. A layer whose lowering fails
raises :class:`~nnlang.diagnostics.InternalError` naming the node, its kind and its line.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from nnlang.diagnostics import InternalError
from nnlang.graph.graph import Graph
from nnlang.shapes import DTYPES

Ref = tuple[str, int]  # (node id, output port)


class Network(nnx.Module):
    """The lowered model. Call it with the model's inputs (positionally in declaration
    order, or by name) batched along a leading axis; it returns ``{output name: array}``.

    ``model.train()`` and the eval-mode switch of nnx modules set dropout and batch-norm behaviour.
    """

    def __init__(self, graph: Graph, *, rngs: nnx.Rngs) -> None:
        modules: dict[str, nnx.Module] = {}
        functions: dict[str, Any] = {}
        plan: list[tuple[str, str, bool, tuple[Ref, ...], int]] = []
        for node in graph.order():
            if node.kind is None:
                continue
            if node.owner not in modules and node.owner not in functions:
                try:
                    built = node.kind.build(node.args, node.in_types, rngs)
                except Exception as e:  # noqa: BLE001 - any failure here is an nnlang bug
                    raise InternalError(
                        f"lowering layer `{node.id}` ({node.kind.name}) to Flax",
                        node.span,
                        e,
                        graph.program.sources if graph.program is not None else None,
                    ) from e
                if isinstance(built, nnx.Module):
                    modules[node.owner] = built
                else:
                    functions[node.owner] = built
            plan.append(
                (
                    node.id,
                    node.owner,
                    node.owner in modules,
                    tuple(node.inputs),
                    len(node.out_types),
                )
            )
        self.name = graph.name
        self.layers = nnx.Dict(modules)
        self.functions = functions  # static: plain functions of stateless kinds
        self.plan = tuple(plan)
        self.input_names = tuple(p.name for p in graph.inputs)
        self.input_dtypes = tuple(jnp.dtype(DTYPES[p.type.dtype]) for p in graph.inputs)
        self.outputs = tuple((p.name, p.node, p.port) for p in graph.outputs)

    def __call__(self, *args: jax.Array, **kwargs: jax.Array) -> dict[str, jax.Array]:
        env = self.values(*args, **kwargs)
        return {name: env[(node, port)] for name, node, port in self.outputs}

    def values(self, *args: jax.Array, **kwargs: jax.Array) -> dict[Ref, jax.Array]:
        """Every value the network computes, by (node id, port): the trainer reads the
        inputs of layers that learn by a local rule from it."""
        return self.values_given({}, *args, **kwargs)

    def values_given(
        self, given: dict[Ref, jax.Array], *args: jax.Array, **kwargs: jax.Array
    ) -> dict[Ref, jax.Array]:
        """:meth:`values`, except that a node whose first output is in ``given`` is not
        run and that value is used instead (``nnlang sample`` feeds a VAE's decoder from
        the prior this way)."""
        if args and kwargs:
            raise TypeError("pass the model's inputs either positionally or by name")
        if args:
            if len(args) != len(self.input_names):
                raise TypeError(
                    f"{self.name} takes {len(self.input_names)} inputs ({', '.join(self.input_names)}), got {len(args)}"
                )
            kwargs = dict(zip(self.input_names, args, strict=True))
        missing = [n for n in self.input_names if n not in kwargs]
        if missing:
            raise TypeError(f"{self.name} is missing inputs: {', '.join(missing)}")
        env: dict[Ref, jax.Array] = {
            (name, 0): jnp.asarray(kwargs[name], dtype)
            for name, dtype in zip(self.input_names, self.input_dtypes, strict=True)
        }
        first = env[(self.input_names[0], 0)]  # sizes the batch of a layer with no input
        for node_id, owner, is_module, inputs, n_out in self.plan:
            if (node_id, 0) in given:
                env[(node_id, 0)] = given[(node_id, 0)]
                continue
            fn = self.layers[owner] if is_module else self.functions[owner]
            y = fn(*[env[r] for r in inputs]) if inputs else fn(first)
            if n_out == 1:
                env[(node_id, 0)] = y
            else:
                for i, yi in enumerate(y):
                    env[(node_id, i)] = yi
        return env


def lower(graph: Graph, seed: int = 0) -> Network:
    """Build the lowered module with parameters initialised from ``seed``.

    Built inside ``nnx.jit``: one compiled initialiser instead of one small eager
    program per layer (seconds on CPU for a CNN), with the same values."""
    return nnx.jit(lambda: Network(graph, rngs=nnx.Rngs(params=seed, dropout=seed + 1)))()


def count_params(model: nnx.Module) -> int:
    return sum(int(x.size) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
