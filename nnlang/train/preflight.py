"""Checks on a graph and its train section before any step runs: batch-norm running
statistics that cannot settle in the run (W401).

May import ``diagnostics``, the graph and ``train.spec``.
"""

from __future__ import annotations

import math

from nnlang.diagnostics import Diagnostic
from nnlang.graph.graph import Graph
from nnlang.train.spec import TrainSpec

#: A running average with momentum m keeps m**n of its starting value after n updates;
#: after SETTLE / (1 - m) updates that is e**-SETTLE (under 1% for SETTLE = 5).
SETTLE = 5


def settle_warnings(graph: Graph, spec: TrainSpec, total_steps: int) -> list[Diagnostic]:
    """W401 for each `batch_norm` whose running statistics will not settle in the run:
    fewer than ``SETTLE / (1 - momentum)`` training steps (500 for the default 0.99), so
    eval mode would normalise with averages still close to their start (mean 0,
    variance 1) and the evaluation can collapse while the training loss looks fine."""
    out: list[Diagnostic] = []
    seen: set[str] = set()
    for n in graph.order():
        if n.kind is None or n.kind.name != "batch_norm" or n.owner in seen:
            continue
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
