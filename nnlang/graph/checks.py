"""Passes over a built graph: the size budget and the memory of one training batch
(pure arithmetic, nothing allocated, no JAX: `nnlang check` stays a front-end verb).

The training memory of a batch is estimated as

    batch * TRAIN_FACTOR * (activation bytes of one example) + STATE_COPIES * (parameter bytes)

where an example's activation bytes are the output bytes of every node (the shapes
`summary` prints), ``TRAIN_FACTOR = 2`` counts the saved forward activations and their
gradients, and ``STATE_COPIES = 4`` the parameters, their gradients and two optimizer
moments (Adam) in float32. It is compared with :func:`memory_of` the machine: the host's
physical memory (``os.sysconf``) unless a device's is given (``nnlang train`` on an
accelerator asks JAX), or ``--memory-mb``. The data set on the device is not counted.
"""

from __future__ import annotations

import os
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
    memory_bytes: int | None = None  # one training batch's estimate; None: the host's memory


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
    parser.add_argument(
        "--memory-mb",
        type=float,
        default=None,
        help="refuse a train section whose batch needs more memory than this "
        "(default: the host's memory, or the accelerator's when training)",
    )


def budget_of(args: Any) -> Budget:
    """The :class:`Budget` an argparse namespace of :func:`add_budget_flags` asks for."""
    return Budget(
        max_params=args.max_params,
        max_activation_bytes=int(args.max_activation_mb * 1024**2),
        memory_bytes=None if args.memory_mb is None else int(args.memory_mb * 1024**2),
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


TRAIN_FACTOR = 2  # saved forward activations and their gradients
STATE_COPIES = 4  # parameters, gradients, two optimizer moments
HOST_FRACTION = 0.8  # of the host's physical memory, leaving room for the rest


def activation_bytes(graph: Graph) -> int:
    """The output bytes of every node for one example (symbolic axes count as 1)."""
    return sum(
        concrete_numel(t.shape) * ITEMSIZE[t.dtype] for n in graph.order() for t in n.out_types
    )


def batch_memory(graph: Graph, batch: int) -> int:
    """The estimate of one training step's memory (see the module docstring)."""
    return batch * TRAIN_FACTOR * activation_bytes(graph) + STATE_COPIES * 4 * graph.total_params()


def host_memory() -> int | None:
    """The host's physical memory in bytes (None where ``os.sysconf`` does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def memory_of(budget: Budget, device: tuple[int, str] | None = None) -> tuple[int, str] | None:
    """What a batch may use, and what that is: ``--memory-mb``, else the device's memory
    when given, else HOST_FRACTION of the host's; None when nothing is known."""
    if budget.memory_bytes is not None:
        return budget.memory_bytes, "--memory-mb"
    if device is not None:
        return device
    host = host_memory()
    return (int(host * HOST_FRACTION), "80% of the host's memory") if host else None


def mib(n: float) -> str:
    return f"{n / 1024**3:.1f} GiB" if n >= 1024**3 else f"{n / 1024**2:.1f} MiB"


def check_batch_memory(
    graph: Graph, batch: int, span: Any, memory: tuple[int, str] | None, rep: Reporter
) -> None:
    """E409 at the `batch` setting when one training batch would not fit ``memory``,
    with the largest batch that would."""
    if memory is None:
        return
    limit, what = memory
    need = batch_memory(graph, batch)
    if need <= limit:
        return
    per = TRAIN_FACTOR * activation_bytes(graph)
    fits = (limit - STATE_COPIES * 4 * graph.total_params()) // per if per else 0
    rep.add(
        Diagnostic(
            "E409",
            f"`batch = {batch}` needs about {mib(need)} to train, more than {what} ({mib(limit)})",
            span,
            label=f"{mib(per)} per example to train",
            help=f"the largest batch that fits is {fits}: `batch = {fits}`"
            if fits >= 1
            else "the model's parameters alone do not fit: make it smaller",
            notes=[
                f"estimate: batch x {TRAIN_FACTOR} x {mib(per // TRAIN_FACTOR)} of activations per "
                f"example + {STATE_COPIES} x {mib(4 * graph.total_params())} of parameters, "
                "gradients and optimizer state; --memory-mb sets the limit"
            ],
        )
    )
