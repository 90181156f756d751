"""Multi-step training, checked: `step name { loss = ...; update = ...; ... }` blocks of a
train section bound into :class:`StepSpec` s, and the checks `nnlang check` makes on
them against the graph (every name in `update` is a parameter group of the model; each
step's loss depends on what it updates, through no `stop_gradient`).

A parameter group is a parameter owner of the graph or any `/`-prefix of one: a
`shared` instance's name (`gen` for `gen/dense`, `gen/dense_1`), a block use
(`generator`), or one layer (`dense_2`). The loop (:mod:`nnlang.train.multistep`)
differentiates each step's loss with respect to its groups only.

Imports: the diagnostics, the graph, the syntax tree and this package's settings;
no JAX (``nnlang check`` runs without it). The step's bound calls are
:class:`~nnlang.train.spec.CallSpec` values, built by the caller's binder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nnlang.diagnostics import ArgError, Diagnostic, Label, Reporter, Span, did_you_mean
from nnlang.graph.graph import Graph
from nnlang.syntax import ast as A
from nnlang.train.settings import CATALOGS, Setting, check_scalar

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
    graph: Graph,
    steps: list[StepSpec],
    sample: tuple[str | None, Span | None],
    tensors_of: Any,
    penalties_of: Any,
    rep: Reporter,
) -> bool:
    """E420 for an `update` naming no parameter group (or one without parameters), E421
    for a step whose loss depends on none, or not on all, of the groups it updates; E404
    for a `sample` that names no output of the model."""
    ok = True
    outs = {p.name for p in graph.outputs}
    if sample[0] is not None and sample[0] not in outs:
        rep.add(
            Diagnostic(
                "E404",
                f"`sample = {sample[0]}` names no output of `{graph.name}`",
                sample[1],
                help=did_you_mean(sample[0], outs) or f"outputs: {', '.join(sorted(outs))}",
            )
        )
        ok = False
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


# ---------------------------------------------------------------- constant targets
#: how a constant target (`binary_cross_entropy(d_fake, 1)`, `ones_like`) is named among
#: a loss call's tensors: "=" and the number, a name no tensor can have
CONSTANT = "="
CONSTANT_WORDS = {"ones_like": 1.0, "zeros_like": 0.0}


def is_constant(name: str) -> bool:
    return name.startswith(CONSTANT)


def constant(e: A.Expr) -> str | None:
    """A loss target written as a constant: a number, `ones_like`, `zeros_like` (bare or
    called with the prediction), as :data:`CONSTANT` plus the number; else None."""
    if isinstance(e, A.Num) and not isinstance(e.value, bool):
        return f"{CONSTANT}{float(e.value)!r}"
    if isinstance(e, A.UnaryOp) and e.op == "-" and isinstance(e.operand, A.Num):
        return f"{CONSTANT}{-float(e.operand.value)!r}"
    word = e.id if isinstance(e, A.Name) else e.func if isinstance(e, A.Call) else None
    if word in CONSTANT_WORDS:
        return f"{CONSTANT}{CONSTANT_WORDS[word]!r}"
    return None


# ---------------------------------------------------------------- binding
def input_names(err: Any, key: str, e: A.Expr, known: set[str]) -> list[str] | None:
    """`noise = z` or `noise = [z, c]`: model inputs (None after reporting a mistake)."""
    items = e.items if isinstance(e, (A.ListExpr, A.TupleExpr)) else (e,)
    out: list[str] = []
    inputs = known - {"label"}
    for it in items:
        if not isinstance(it, A.Name) or it.id not in inputs:
            err(
                "E404",
                f"`{key}` names model inputs: `{key} = z`",
                it.span,
                help=did_you_mean(getattr(it, "id", ""), inputs)
                or f"known: {', '.join(sorted(inputs))}",
            )
            return None
        out.append(it.id)
    return out


_EVERY = Setting("every", "int", STEP_SETTINGS["every"], 1, min=1)


def check_names(steps: list[StepSpec], err: Any) -> None:
    """E102 for a step name declared twice."""
    seen: dict[str, Span] = {}
    for st in steps:
        if st.name in seen:
            err(
                "E102",
                f"step `{st.name}` is declared twice",
                st.span,
                secondary=[Label(seen[st.name], "first declared here")],
            )
        seen.setdefault(st.name, st.span)


def check_alone(
    steps: list[StepSpec], values: dict[str, Any], spans: dict[str, Span], err: Any
) -> None:
    """E403 for what `step` blocks do not combine with: `freeze` and `lr_groups` (each
    step's `update` says what it trains) and a local-rule loss (`rule(...)`)."""
    if not steps:
        return
    for key in ("freeze", "lr_groups"):
        if key in values:
            err(
                "E403",
                f"`{key}` applies to a train section with one loss; with `step` blocks, "
                "each step's `update` names what it trains",
                spans.get(key),
            )
    for st in steps:
        stack = [st.loss]
        while stack:
            x = stack.pop()
            if hasattr(x, "left"):
                stack += [x.left, x.right]
            elif hasattr(x, "call") and x.call.entry.extra.get("rule"):
                err("E403", "a local-rule loss `rule(...)` cannot be a step's loss", x.call.span)


def bind_step(
    sb: Any, d: A.StepDecl, ev: Callable[[A.Expr], Any], text: Callable[[Span], str], bad: Any
) -> StepSpec | None:
    """One `step name { ... }` block bound with the train section's binder ``sb`` (its
    ``err``, ``loss`` and ``call``) and evaluator ``ev``, whose failure value is ``bad``:
    its loss, `update`, optimizer and `every`."""
    given: dict[str, A.Setting] = {}
    ok = True
    for s in d.settings:
        if isinstance(s, (A.StepDecl, A.PhaseDecl)):
            inner = "another `step`" if isinstance(s, A.StepDecl) else "a `phase`"
            sb.err("E401", f"a `step` cannot hold {inner}", s.name_span)
            ok = False
            continue
        if s.key not in STEP_SETTINGS:
            sb.err(
                "E401",
                f"unknown step setting `{s.key}`",
                s.key_span,
                help=did_you_mean(s.key, STEP_SETTINGS)
                or f"a step takes: {', '.join(STEP_SETTINGS)}",
            )
            ok = False
            continue
        if s.key in given:
            sb.err(
                "E102",
                f"step setting `{s.key}` is given twice",
                s.key_span,
                secondary=[Label(given[s.key].key_span, "first given here")],
            )
            ok = False
            continue
        given[s.key] = s
    for key in ("loss", "update"):
        if key not in given:
            sb.err(
                "E402",
                f"step `{d.name}` needs `{key}`",
                d.name_span,
                help=f"add `{key} = ...`: {STEP_SETTINGS[key]}",
            )
            ok = False
    if not ok:
        return None
    loss = sb.loss(given["loss"].value)
    names, named = update_names(given["update"].value, sb.err)
    optimizer = None
    if "optimizer" in given:
        cat, word = CATALOGS["optimizer"]
        optimizer = sb.call("optimizer", given["optimizer"].value, catalog=cat, word=word)
    every = 1
    if "every" in given:
        v = ev(given["every"].value)
        if v is bad:
            return None
        try:
            every = check_scalar(_EVERY, v)
        except ArgError as ex:
            sb.err(ex.code, ex.message, given["every"].value.span, help=STEP_SETTINGS["every"])
            return None
    if loss is bad or not named or ("optimizer" in given and optimizer is None):
        return None
    spans = {k: s.value.span for k, s in given.items()}
    spans.update({f"update:{n}": sp for n, sp in names})
    return StepSpec(
        d.name,
        d.name_span,
        loss,
        text(spans["loss"]),
        tuple(n for n, _ in names),
        optimizer,
        every,
        spans,
    )
