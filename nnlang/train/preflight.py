"""Checks on a graph and its train section before any step runs: every train section of
a file as `nnlang check` sees it (`check_trains`), one batch's memory (E409) and
batch-norm running statistics that cannot settle in the run (W401).

May import ``diagnostics``, the graph, ``train.parts``, ``train.spec`` and
``train.dataload`` (the data is read and checked as training reads it).
"""

from __future__ import annotations

import math

from nnlang.diagnostics import ArgError, Diagnostic, Label, NNError, Reporter, did_you_mean
from nnlang.graph.checks import Budget, check_batch_memory, memory_of
from nnlang.graph.graph import Graph
from nnlang.graph.program import Program
from nnlang.train import dataload
from nnlang.train.parts import select
from nnlang.train.rule_sites import check_rules, sites
from nnlang.train.spec import TrainSpec, build_spec

#: A running average with momentum m keeps m**n of its starting value after n updates;
#: after SETTLE / (1 - m) updates that is e**-SETTLE (under 1% for SETTLE = 5).
SETTLE = 5


def settle_warnings(graph: Graph, spec: TrainSpec, total_steps: int) -> list[Diagnostic]:
    """W401 for each `batch_norm` whose running statistics will not settle in the run:
    fewer than ``SETTLE / (1 - momentum)`` training steps (500 for the default 0.99), so
    eval mode would normalise with averages still close to their start (mean 0,
    variance 1) and the evaluation can collapse while the training loss looks fine.
    A frozen `batch_norm` keeps its averages and is not warned about."""
    out: list[Diagnostic] = []
    seen: set[str] = set()
    for n in graph.order():
        if n.kind is None or n.kind.name != "batch_norm" or n.owner in seen:
            continue
        if spec.freeze and select([f"{n.owner}.*"], spec.freeze).selected:
            continue  # frozen: it keeps the running averages it has
        seen.add(n.owner)
        m = float(n.args.momentum)
        need = SETTLE / (1 - m) if m < 1 else float("inf")
        if total_steps >= need:
            continue
        fit = math.floor(min(0.9, max(0.0, 1 - SETTLE / max(total_steps, 1))) * 100) / 100
        out.append(
            Diagnostic(
                "W401",
                f"`{n.id}`{'' if n.id == 'batch_norm' else ' (batch_norm)'} with momentum {m:g} "
                f"needs about {need:.0f} training steps "
                f"for its running statistics to settle; this run has {total_steps}",
                n.span,
                help=f"lower its momentum: `batch_norm(momentum = {fit:g})` settles in "
                f"{SETTLE / (1 - fit):.0f} steps; or train longer",
                notes=[
                    "evaluation uses the running averages: before they settle, test accuracy can "
                    "collapse while the training loss looks fine"
                ],
            )
        )
    return out


def check_memory(
    graph: Graph, spec: TrainSpec, rep: Reporter, memory: tuple[int, str] | None
) -> None:
    """E409 when one batch of ``spec`` would not fit ``memory`` (graph.checks)."""
    check_batch_memory(graph, spec.batch, spec.spans.get("batch", spec.span), memory, rep)


def check_trains(
    program: Program,
    graphs: dict[str, Graph],
    budget: Budget | None = None,
    data_root: str | None = None,
) -> list[Diagnostic]:
    """Validate every train section of the main file (for `nnlang check`), one batch's
    memory against the host's (no JAX here) or ``budget.memory_bytes``, and its data as
    `train` loads it (paths inside the data root, cells, shapes, label ranges);
    ``data_root`` is `--data-root`'s folder."""
    rep = Reporter()
    memory = memory_of(budget or Budget())
    for t in program.trains:
        decl = program.decls.get(t.model)
        if decl is None or decl.is_block:
            models = [m.name for m in program.models]
            what = (
                f"`{t.model}` is a block, not a model"
                if decl is not None
                else f"no model named `{t.model}`"
            )
            rep.add(
                Diagnostic(
                    "E108",
                    f"`train {t.model}`: {what}",
                    t.model_span,
                    help=did_you_mean(t.model, models)
                    or f"models in this file: {', '.join(models) or 'none'}",
                )
            )
            continue
        if len(t.args) > len(decl.params):
            n = len(decl.params)
            rep.add(
                Diagnostic(
                    "E107",
                    f"model `{t.model}` takes {n} parameter{'s' if n != 1 else ''} but {len(t.args)} "
                    f"{'was' if len(t.args) == 1 else 'were'} given",
                    t.args[n].span,
                    secondary=[Label(decl.name_span, "declared here")],
                )
            )
        spec = build_spec(program, t, graphs.get(t.model), rep)
        graph = graphs.get(t.model)
        if spec is not None and graph is not None:
            check_memory(graph, spec, rep, memory)
            try:  # `rule(...)` and rule metrics name outputs of rule layers
                check_rules(spec, sites(graph))
            except ArgError as e:
                span = spec.spans.get(e.arg or "loss") or spec.spans.get("loss")
                rep.add(Diagnostic(e.code, e.message, span, help=e.help))
            if not any(d.severity == "error" for d in rep.diagnostics):
                if data_root is not None:
                    spec.data_root = data_root
                try:
                    dataload.load(graph, spec, program.root)
                except NNError as e:
                    rep.add(e)
    return rep.diagnostics
