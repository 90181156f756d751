"""Multi-step training, checked: `step name { loss = ...; update = ...; ... }` blocks of a
train section bound into :class:`StepSpec` s, and the checks `nnlang check` makes on
them against the graph (every name in `update` is a parameter group of the model; each
step's loss depends on what it updates, through no `stop_gradient`).

A parameter group is a parameter owner of the graph or any `/`-prefix of one: a
`shared` instance's name (`gen` for `gen/dense`, `gen/dense_1`), a block use
(`generator`), or one layer (`dense_2`). The loop (:mod:`nnlang.train.multistep`)
differentiates each step's loss with respect to its groups only.

Imports: the diagnostics, the graph, the syntax tree and this package's loss catalogue;
no JAX (``nnlang check`` runs without it). The step's bound calls are
:class:`~nnlang.train.spec.CallSpec` values, built by the caller's binder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nnlang.diagnostics import Diagnostic, Label, Reporter, Span, did_you_mean
from nnlang.graph.graph import Graph
from nnlang.syntax import ast as A

#: the settings a `step` block takes
STEP_SETTINGS = {
    "loss": "the step's loss, written like the train section's `loss`",
    "update": "the parameter groups this step changes: `update = gen` or `update = [enc, dec]`",
    "optimizer": "the step's own optimizer (default: the train section's)",
    "every": "run this step on every k-th iteration only (default 1: every iteration)",
}


@dataclass
class StepSpec:
    """One bound step: its loss, the parameter groups it updates, its optimizer (None:
    the train section's) and how often it runs."""

    name: str
    span: Span
    loss: Any  # a spec.LossExpr
    loss_text: str
    update: tuple[str, ...]
    optimizer: Any = None  # a spec.CallSpec
    every: int = 1
    spans: dict[str, Span] = field(default_factory=dict)


def groups(graph: Graph) -> dict[str, set[str]]:
    """Every parameter group of ``graph``: name -> the owners (with parameters) under it."""
    out: dict[str, set[str]] = {}
    for owner, node in graph.owners().items():
        parts = owner.split("/")
        for i in range(1, len(parts) + 1):
            g = out.setdefault("/".join(parts[:i]), set())
            if node.params:
                g.add(owner)
    return out


def update_names(e: A.Expr, err: Any) -> tuple[list[tuple[str, Span]], bool]:
    """The names an `update = ...` value lists, with their spans; False when it is not
    a name or a list of names (reported through ``err``)."""
    items = e.items if isinstance(e, (A.ListExpr, A.TupleExpr)) else (e,)
    out: list[tuple[str, Span]] = []
    for it in items:
        if not isinstance(it, A.Name):
            err(
                "E403",
                "`update` names parameter groups: `update = gen` or `update = [enc, dec]`",
                it.span,
            )
            return out, False
        out.append((it.id, it.span))
    if not out:
        err("E420", "`update = []` updates nothing", e.span)
        return out, False
    return out, True


def reached_owners(graph: Graph, tensors: set[str]) -> set[str]:
    """The parameter owners the named outputs depend on through something other than a
    `stop_gradient` (a walk back from each output that stops at that layer)."""
    ports = {p.name: p.node for p in graph.outputs}
    todo = [ports[t] for t in tensors if t in ports]
    seen: set[str] = set()
    owners: set[str] = set()
    while todo:
        nid = todo.pop()
        if nid in seen:
            continue
        seen.add(nid)
        node = graph.node(nid)
        if node.kind is not None and node.kind.name == "stop_gradient":
            continue
        if node.params:
            owners.add(node.owner)
        todo.extend(graph.dag.predecessors(nid))
    return owners


def check_steps(
    graph: Graph, steps: list[StepSpec], tensors_of: Any, penalties_of: Any, rep: Reporter
) -> bool:
    """E420 for an `update` naming no parameter group (or one without parameters), E421
    for a step whose loss depends on none, or not on all, of the groups it updates."""
    ok = True
    known = groups(graph)
    for st in steps:
        wanted: dict[str, set[str]] = {}
        for name in st.update:
            span = st.spans.get(f"update:{name}", st.spans.get("update", st.span))
            if name not in known:
                rep.add(
                    Diagnostic(
                        "E420",
                        f"step `{st.name}`: `update = {name}` names no parameter group of `{graph.name}`",
                        span,
                        help=did_you_mean(name, known)
                        or "a group is a shared instance, a block use or a layer, as `nnlang summary` names them",
                    )
                )
                ok = False
            elif not known[name]:
                rep.add(
                    Diagnostic(
                        "E420",
                        f"step `{st.name}`: `{name}` has no parameters to update",
                        span,
                    )
                )
                ok = False
            else:
                wanted[name] = known[name]
        if not wanted:
            continue
        if penalties_of(st.loss):  # l1/l2 depend on every parameter
            continue
        reached = reached_owners(graph, set(tensors_of(st.loss)))
        for name, owners in wanted.items():
            if owners & reached:
                continue
            span = st.spans.get(f"update:{name}", st.span)
            rep.add(
                Diagnostic(
                    "E421",
                    f"step `{st.name}`: its loss does not depend on `{name}`, which it updates",
                    st.spans.get("loss", st.span),
                    help="the loss's outputs reach no parameter of it (a `stop_gradient` "
                    "cuts the path?); update what the loss depends on",
                    secondary=[Label(span, "updated here")],
                )
            )
            ok = False
    return ok
