"""Passes over a built graph: the size budget (pure arithmetic, nothing allocated)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nnlang.diagnostics import Diagnostic, Reporter
from nnlang.graph.graph import Graph
from nnlang.shapes import ITEMSIZE, concrete_numel

MAX_DIM = 2**31 - 1


@dataclass(frozen=True)
class Budget:
    """Refuse models larger than this before anything is allocated (CLI: --max-params,
    --max-activation-mb)."""

    max_params: int = 2_000_000_000
    max_activation_bytes: int = 4 * 1024**3  # one sample's activations, all nodes


def add_budget_flags(parser: Any) -> None:
    """`--max-params` and `--max-activation-mb`, on every verb that builds a model (the
    budget's diagnostics name these flags, so every such verb must take them)."""
    parser.add_argument(
        "--max-params",
        type=int,
        default=Budget.max_params,
        help="refuse models with more parameters",
    )
    parser.add_argument(
        "--max-activation-mb",
        type=float,
        default=Budget.max_activation_bytes / 1024**2,
        help="refuse models whose activations for one sample exceed this",
    )


def budget_of(args: Any) -> Budget:
    """The :class:`Budget` an argparse namespace of :func:`add_budget_flags` asks for."""
    return Budget(
        max_params=args.max_params,
        max_activation_bytes=int(args.max_activation_mb * 1024**2),
    )


def _human(n: float) -> str:
    for unit in ("", "K", "M", "G", "T", "P"):
        if abs(n) < 1000:
            return f"{n:.3g}{unit}"
        n /= 1000
    return f"{n:.3g}E"


def check_budget(graph: Graph, budget: Budget, rep: Reporter) -> None:
    for n in graph.order():
        for t in n.out_types:
            big = [d for d in t.shape if isinstance(d, int) and d > MAX_DIM]
            if big:
                rep.add(
                    Diagnostic(
                        "E306",
                        f"`{n.id}` makes an axis of {big[0]} elements (more than 2^31 - 1)",
                        n.span,
                        label=f"gives {t}",
                    )
                )
        if n.params > budget.max_params:
            rep.add(
                Diagnostic(
                    "E306",
                    f"`{n.id}`{f' ({n.kind_name})' if n.kind_name != n.id else ''} has {_human(n.params)} parameters, "
                    f"over the budget of {_human(budget.max_params)}",
                    n.span,
                    label=f"{n.params:,} parameters",
                    help="check the sizes given to this layer; raise the limit with --max-params if it is meant",
                )
            )
    total = graph.total_params()
    if total > budget.max_params and not rep.errors:
        rep.add(
            Diagnostic(
                "E306",
                f"model `{graph.name}` has {_human(total)} parameters, over the budget of {_human(budget.max_params)}",
                graph.span,
                help="raise the limit with --max-params if it is meant",
            )
        )
    act = 0
    for n in graph.order():
        for t in n.out_types:
            act += concrete_numel(t.shape) * ITEMSIZE[t.dtype]
            if act > budget.max_activation_bytes:
                rep.add(
                    Diagnostic(
                        "E306",
                        f"activations for one sample exceed {budget.max_activation_bytes / 1024**2:.0f} MiB by `{n.id}`",
                        n.span,
                        label=f"gives {t}",
                        help="raise the limit with --max-activation-mb if it is meant",
                    )
                )
                return
