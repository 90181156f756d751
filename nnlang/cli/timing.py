"""The `nnlang time` verb: per-layer and per-step times of a model
(:mod:`nnlang.train.timing`), as a table or JSON."""

from __future__ import annotations

import argparse
import json

from nnlang.cli.report import EXIT_OK, console
from nnlang.graph.checks import add_budget_flags, budget_of


def time_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE")
    p.add_argument("--model")
    p.add_argument(
        "--batch", type=int, help="examples per call (default: the train section's, else 32)"
    )
    p.add_argument("--runs", type=int, default=10, help="timed calls per program (default 10)")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a model parameter or train setting, as for train; repeatable",
    )
    p.add_argument("--no-layers", action="store_true", help="only the whole programs")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    add_budget_flags(p)


def _ms(s: float | None) -> str:
    return "—" if s is None else f"{s * 1e3:.3f}"


def _mib(n: int) -> str:
    return f"{n / 1024**2:.2f} MiB"


def cmd_time(a: argparse.Namespace) -> int:
    from nnlang.api import build
    from nnlang.diagnostics import Diagnostic, NNError
    from nnlang.graph.program import load
    from nnlang.train.timing import time_model, time_training

    if a.runs < 1 or (a.batch is not None and a.batch < 1):
        raise NNError(Diagnostic("E504", "`--runs` and `--batch` must be at least 1"))
    program = load(a.file)
    decl = program.model(a.model)
    if decl is not None and program.train_for(decl.name) is not None:
        t = time_training(
            a.file, a.model, a.set, a.batch, a.runs, budget_of(a), layers=not a.no_layers
        )
    else:  # build reports a missing model
        g = build(a.file, a.model, sets=a.set, budget=budget_of(a))
        t = time_model(g, a.batch or 32, a.runs, layers=not a.no_layers)
    if a.json:
        print(json.dumps(t.to_json(), indent=2))
        return EXIT_OK
    from rich.table import Table

    con = console()
    if t.layers:
        tab = Table(
            title=f"{t.model}: each layer alone, batch {t.batch}, median of {t.runs} ({t.backend})"
        )
        for col, just in (
            ("node", "left"),
            ("kind", "left"),
            ("output", "left"),
            ("forward ms", "right"),
            ("fwd+bwd ms", "right"),
            ("line", "right"),
        ):
            tab.add_column(col, justify=just)  # type: ignore[arg-type]
        for x in t.layers:
            tab.add_row(x.node, x.kind, x.output, _ms(x.forward), _ms(x.backward), str(x.line))
        fsum = sum(x.forward for x in t.layers)
        bsum = sum(x.backward or 0.0 for x in t.layers)
        tab.add_row("sum", "", "", _ms(fsum), _ms(bsum), "", style="bold")
        con.print(tab)
    for p in t.programs:
        mem = ", ".join(f"{k} {_mib(v)}" for k, v in p.memory.items())
        con.print(
            f"{p.name}: {_ms(p.seconds)} ms (compile {p.compile_seconds:.2f} s)"
            + (f"; {p.note}" if p.note else "")
        )
        if mem:
            con.print(f"  memory (XLA): {mem}")
    return EXIT_OK
