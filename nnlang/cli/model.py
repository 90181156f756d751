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
    from nnlang.graph.picture import to_dot, to_png, to_svg

    g = _graph(a)
    out = Path(a.output)
    if out.suffix not in (".dot", ".svg", ".png"):
        print("error: -o must end in .dot, .svg or .png", file=sys.stderr)
        return EXIT_USAGE
    how = "Graphviz source"
    if out.suffix == ".dot":
        data = to_dot(g).encode()
    else:
        exe = shutil.which("dot") if a.renderer in ("auto", "graphviz") else None
        if exe is None and a.renderer == "graphviz":
            print(
                "error: `--renderer graphviz` needs Graphviz's `dot` program, which is not installed.\n"
                "  = help: install Graphviz (e.g. `apt-get install graphviz`), or leave out "
                "--renderer to draw without it",
                file=sys.stderr,
            )
            return EXIT_USAGE
        if exe is not None:
            data = subprocess.run(
                [exe, f"-T{out.suffix[1:]}"],
                input=to_dot(g).encode(),
                capture_output=True,
                check=True,
            ).stdout
            how = "drawn by Graphviz"
        else:
            data = to_svg(g).encode() if out.suffix == ".svg" else to_png(g)
            how = "drawn by nnlang's own layout"
            if a.renderer == "auto":
                how += "; install Graphviz's `dot` for a tidier one"
    atomic_write_bytes(out, data)
    print(f"wrote {out} ({len(g)} nodes, {how})")
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


def layers_args(ly: argparse.ArgumentParser) -> None:
    ly.add_argument("name", nargs="?", help="show one kind in full")
    ly.add_argument("--json", action="store_true")


def graph_args(gr: argparse.ArgumentParser) -> None:
    gr.add_argument("file", metavar="FILE")
    gr.add_argument("-o", "--output", required=True, help="out.dot, out.svg or out.png")
    gr.add_argument(
        "--renderer",
        choices=["auto", "graphviz", "python"],
        default="auto",
        help="who draws an .svg or .png: Graphviz's `dot` when installed (auto), or nnlang's own "
        "layout (python, used when `dot` is missing)",
    )
    gr.add_argument("--model")
    add_budget_flags(gr)
    model_sets(gr)


def _nn_files(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        out += sorted(p.rglob("*.nn")) if p.is_dir() else [p]
    return out


def cmd_fmt(a: argparse.Namespace) -> int:
    from nnlang.fsio import atomic_write_text
    from nnlang.graph.program import load
    from nnlang.syntax.fmt import format_text, same_tokens

    changed = []
    for f in _nn_files(a.files):
        load(str(f))  # read (E109 if it cannot be) and parsed: a broken file is reported
        text = f.read_text(encoding="utf-8")
        new = format_text(text)
        if not same_tokens(text, new):  # pragma: no cover - a formatter bug
            raise RuntimeError(f"formatting {f} would change its tokens")
        if new != text:
            changed.append(f)
            if not a.check:
                atomic_write_text(f, new)
    for f in changed:
        print(f"{'would reformat' if a.check else 'reformatted'} {f}")
    if not a.quiet:
        done = "would be reformatted" if a.check else "reformatted"
        print(f"{len(changed)} file{'s' if len(changed) != 1 else ''} {done}")
    return EXIT_USER if a.check and changed else EXIT_OK


def fmt_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE", help=".nn files, or folders of them")
    p.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if a file would change"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="list only the files changed")
