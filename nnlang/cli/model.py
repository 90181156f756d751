"""The front-end verbs of the `nnlang` command: check, summary, layers, graph.

They import no Flax or JAX of their own (the layer registry and the builder are enough).
May import the pipeline up to ``nnlang.api`` and :mod:`nnlang.cli.report`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from nnlang.cli.report import (
    EXIT_OK,
    EXIT_USAGE,
    EXIT_USER,
    add_data_root_flag,
    console,
    data_root_of,
    report,
)
from nnlang.graph.checks import add_budget_flags, budget_of
from nnlang.signature import format_value


# ------------------------------------------------------------------ verbs
def cmd_check(a: argparse.Namespace) -> int:
    from nnlang.api import check

    budget = budget_of(a)
    status = EXIT_OK
    all_json: list[Any] = []
    for f in a.files:
        res = check(f, model=a.model, budget=budget, data_root=data_root_of(a))
        sources = res.sources
        if a.format == "json":
            all_json.extend(d.to_json() for d in res.diagnostics)
        else:
            report(res.diagnostics, sources, a.format)
        if not res.ok:
            status = EXIT_USER
        elif a.format != "json" and not a.quiet:
            models = ", ".join(
                f"{g.name} ({g.total_params():,} parameters)" for g in res.graphs.values()
            )
            if not res.graphs and res.blocks:  # a library of blocks, checked alone
                n = len(res.blocks)
                shown = ", ".join(res.blocks[:4]) + (", ..." if n > 4 else "")
                models = f"{n} block{'s' if n != 1 else ''} ({shown}), no model"
            print(f"{f}: ok — {models}")
    if a.format == "json":
        print(json.dumps(all_json, indent=2))
    return status


def _graph(a: argparse.Namespace) -> Any:
    from nnlang.api import build

    return build(a.file, a.model, sets=getattr(a, "set", None), budget=budget_of(a))


def summary_rows(g: Any) -> list[dict[str, Any]]:
    rows = []
    for n in g.order():
        rows.append(
            {
                "name": n.id,
                "kind": n.kind_name,
                "output": ", ".join(str(t) for t in n.out_types),
                "params": n.params if n.owner == n.id else 0,
                "shares": n.owner if n.owner != n.id else None,
                "flops": n.flops,
                "line": n.span.line,
            }
        )
    return rows


def frozen_owners(file: str, g: Any) -> set[str] | None:
    """The nodes whose parameters the model's train section freezes (`freeze = [...]`);
    None when it freezes nothing. Patterns that match nothing are `nnlang check`'s."""
    from nnlang.graph.program import load
    from nnlang.train.parts import node_of, select
    from nnlang.train.parts_setting import parts_setting

    train = load(file).train_for(g.name)
    exprs = [
        s.value for s in (train.settings if train else ()) if getattr(s, "key", "") == "freeze"
    ]
    quiet = (
        parts_setting(lambda *a, **k: None, lambda e: None, "freeze", exprs[0], None, False, None)
        if exprs
        else None
    )
    if not quiet:
        return None
    paths = sorted({f"{n.owner}.*" for n in g.order() if n.params > 0})
    return {node_of(p) for p in select(paths, list(quiet)).selected}


def cmd_summary(a: argparse.Namespace) -> int:
    g = _graph(a)
    rows = summary_rows(g)
    frozen = frozen_owners(a.file, g)
    if frozen is not None:
        for r in rows:
            r["frozen"] = r["params"] > 0 and r["name"] in frozen
    totals = {
        "params": g.total_params(),
        "param_bytes": g.param_bytes(),
        "flops": g.total_flops(),
        "activation_bytes": g.activation_bytes(),
    }
    if a.json:
        print(
            json.dumps(
                {
                    "model": g.name,
                    "args": g.args,
                    "inputs": [{"name": p.name, "type": str(p.type)} for p in g.inputs],
                    "outputs": [{"name": p.name, "type": str(p.type)} for p in g.outputs],
                    "nodes": rows,
                    "totals": totals,
                },
                indent=2,
            )
        )
        return EXIT_OK
    from rich.table import Table

    t = Table(
        title=f"{g.name}"
        + (f"({', '.join(f'{k}={format_value(v)}' for k, v in g.args.items())})" if g.args else ""),
        caption="shapes are per sample; the batch axis is implicit",
    )
    for col, just in (
        ("node", "left"),
        ("kind", "left"),
        ("output", "left"),
        ("params", "right"),
        ("FLOPs", "right"),
        ("line", "right"),
    ):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in rows:
        params = f"{r['params']:,}" if not r["shares"] else f"shares {r['shares']}"
        if r.get("frozen"):
            params = f"frozen {params}"
        t.add_row(r["name"], r["kind"], r["output"], params, f"{r['flops']:,}", str(r["line"]))
    con = console()
    con.print(t)
    con.print(f"Total parameters: {totals['params']:,} ({_bytes(totals['param_bytes'])} as f32)")
    if frozen is not None:
        n_frozen = sum(r["params"] for r in rows if r.get("frozen"))
        con.print(f"Frozen parameters: {n_frozen:,} (`freeze` in the train section)")
    con.print(f"FLOPs per sample: {totals['flops']:,}")
    con.print(f"Activations per sample: {_bytes(totals['activation_bytes'])}")
    return EXIT_OK


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n} B"


def cmd_layers(a: argparse.Namespace) -> int:
    from nnlang.layers import REGISTRY

    if a.name:
        kind = REGISTRY.get(a.name)
        if kind is None:
            from nnlang.diagnostics import did_you_mean

            print(
                f"error: no layer kind `{a.name}`"
                + (f"; {did_you_mean(a.name, REGISTRY)}" if did_you_mean(a.name, REGISTRY) else ""),
                file=sys.stderr,
            )
            return EXIT_USAGE
        kinds = [kind]
    else:
        kinds = sorted(REGISTRY.values(), key=lambda k: (k.family, k.name))
    if a.json:
        print(
            json.dumps(
                [
                    {
                        "name": k.name,
                        "family": k.family,
                        "doc": k.doc,
                        "inputs": list(k.n_inputs),
                        "attrs": [
                            {
                                "name": x.name,
                                "type": x.type,
                                "default": None if x.required else x.default,
                                "required": x.required,
                                "doc": x.doc,
                            }
                            for x in k.attrs
                        ],
                    }
                    for k in kinds
                ],
                indent=2,
                default=str,
            )
        )
        return EXIT_OK
    from nnlang.signature import signature_text

    if not a.name:  # the listing: one line per kind, fitted to the terminal
        width = shutil.get_terminal_size((100, 24)).columns
        name_w = max(len(k.name) for k in kinds) + 2
        fam_w = max(len(k.family) for k in kinds) + 2
        room = max(width - name_w - fam_w - 1, 20)
        print(f"{'kind':<{name_w}}{'family':<{fam_w}}summary")
        for k in kinds:
            first = k.doc.split(". ")[0].rstrip(".")
            if len(first) > room:
                first = first[: room - 1] + "…"
            print(f"{k.name:<{name_w}}{k.family:<{fam_w}}{first}")
        print(f"\n{len(kinds)} layer kinds; `nnlang layers NAME` shows one in full")
        return EXIT_OK
    from rich.markup import escape
    from rich.table import Table

    k = kinds[0]
    t = Table(title=f"layer `{k.name}`", show_lines=True)
    t.add_column("argument")
    t.add_column("type")
    t.add_column("default")
    t.add_column("description")
    for x in k.attrs:
        t.add_row(
            escape(x.name),
            x.type,
            "required" if x.required else escape(format_value(x.default)),
            escape(x.doc),
        )
    print(f"{signature_text(k.name, k.attrs)}  ({k.family})\n\n{k.doc}\n")
    if k.attrs:
        console().print(t)
    if k.example:
        print("\nexample:\n" + k.example)
    return EXIT_OK


def cmd_graph(a: argparse.Namespace) -> int:
    from nnlang.fsio import atomic_write_bytes

    g = _graph(a)
    dot = g.to_dot()
    out = Path(a.output)
    if out.suffix == ".dot":
        atomic_write_bytes(out, dot.encode())
    elif out.suffix == ".svg":
        exe = shutil.which("dot")
        if exe is None:
            print(
                "error: writing SVG needs Graphviz's `dot` program, which is not installed.\n"
                "  = help: install Graphviz (e.g. `apt-get install graphviz`), or write `-o graph.dot`",
                file=sys.stderr,
            )
            return EXIT_USAGE
        svg = subprocess.run(
            [exe, "-Tsvg"], input=dot.encode(), capture_output=True, check=True
        ).stdout
        atomic_write_bytes(out, svg)
    else:
        print("error: -o must end in .dot or .svg", file=sys.stderr)
        return EXIT_USAGE
    print(f"wrote {out} ({len(g)} nodes)")
    return EXIT_OK


# ------------------------------------------------------------------ arguments
def check_args(c: argparse.ArgumentParser) -> None:
    c.add_argument("files", nargs="+", metavar="FILE")
    c.add_argument("--model", help="check only this model")
    c.add_argument(
        "--format", choices=["full", "concise", "json"], default="full", help="diagnostic format"
    )
    add_budget_flags(c)
    add_data_root_flag(c)
    c.add_argument("-q", "--quiet", action="store_true", help="print nothing when all is well")


def model_sets(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set",
        action="append",
        metavar="PARAM=VALUE",
        help="a model parameter, its value a .nn expression, e.g. --set hidden=2*64; repeatable",
    )


def summary_args(s: argparse.ArgumentParser) -> None:
    s.add_argument("file", metavar="FILE")
    s.add_argument("--model")
    add_budget_flags(s)
    model_sets(s)
    s.add_argument("--json", action="store_true")


def layers_args(ly: argparse.ArgumentParser) -> None:
    ly.add_argument("name", nargs="?", help="show one kind in full")
    ly.add_argument("--json", action="store_true")


def graph_args(gr: argparse.ArgumentParser) -> None:
    gr.add_argument("file", metavar="FILE")
    gr.add_argument("-o", "--output", required=True, help="out.dot or out.svg")
    gr.add_argument("--model")
    add_budget_flags(gr)
    model_sets(gr)
