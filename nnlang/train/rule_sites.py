"""Where a model learns by a local rule: the model outputs computed by a layer with a
``rule`` (:class:`Site`), their statistics' names in the loss environment, and the check
that every `rule(...)` loss and rule metric names one. No JAX: `nnlang check` runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nnlang.diagnostics import ArgError
from nnlang.graph.graph import Graph

Ref = tuple[str, int]  # (node id, output port), as nnlang.lower.network.Ref


@dataclass(frozen=True)
class Site:
    """A model output computed by a layer that learns by a local rule."""

    output: str
    owner: str
    input: Ref
    node: Ref


def sites(graph: Graph) -> tuple[Site, ...]:
    out = []
    for p in graph.outputs:
        node = graph.node(p.node)
        if node.kind is not None and node.kind.rule:
            src, port = node.inputs[0]
            out.append(Site(p.name, node.owner, (src, port), (p.node, p.port)))
    return tuple(out)


def key_of(output: str, name: str) -> str:
    return f"{output}.{name}"


def check_rules(spec: Any, found: tuple[Site, ...]) -> None:
    """Every `rule(...)` names an output made by a rule layer (E404 otherwise)."""
    names = {s.output for s in found}
    for term in spec.loss_terms():
        if term.call.entry.extra.get("rule") and term.call.tensors[0] not in names:
            raise ArgError(
                "E404",
                f"`rule({term.call.tensors[0]})` needs an output computed by a layer that "
                "learns by a local rule (`som`, `rbm`, `hopfield`)",
                help=f"rule outputs here: {', '.join(sorted(names))}"
                if names
                else "this model has none",
            )
    for m in spec.metrics:
        if m.entry.extra.get("rule_stat") and m.tensors[0] not in names:
            raise ArgError(
                "E404",
                f"metric `{m.name}({m.tensors[0]})` needs an output computed by a layer that "
                "learns by a local rule (`som`, `rbm`, `hopfield`)",
                arg="metrics",
            )
