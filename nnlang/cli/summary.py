"""`nnlang summary`: the layer table and totals, like Keras's ``model.summary()`` and more.

Per node: its id and the user's names for its value, kind, output types, learned
parameters, non-trainable state (batch-norm running averages), FLOPs, the nodes it reads
("connected to") and its line. Totals as Keras counts them: total = trainable +
non-trainable, where non-trainable is the state plus any parameters the train section
freezes, with the bytes of each. A model with a symbolic axis has its FLOPs and
activations printed as a formula of the axis, or as figures for ``--set T=128``.
When the train section (or ``--set``) asks for several devices (`devices`, `mesh`),
the bytes each device holds: its share of the parameters and optimizer state (split
over the mesh's `model` axis FSDP-style, or whole) and of one step's activations (its
share of `batch`). Front end only: imports no Flax or JAX.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from nnlang.cli.report import EXIT_OK, console
from nnlang.graph.checks import add_budget_flags, budget_of
from nnlang.shapes import ITEMSIZE
from nnlang.signature import format_value


def summary_rows(g: Any, env: dict[str, int] | None = None) -> list[dict[str, Any]]:
    from nnlang.graph.costs import node_flops_at

    rows = []
    for n in g.order():
        owns = n.owner == n.id
        rows.append(
            {
                "name": n.id,
                "values": [v for v in g.value_names.get(n.id, []) if v != n.id],
                "kind": n.kind_name,
                "output": ", ".join(str(t) for t in n.out_types),
                "params": n.params if owns else 0,
                "state": n.state if owns else 0,
                "shares": None if owns else n.owner,
                "flops": node_flops_at(n, env) if env is not None else n.flops,
                "connected_to": [src if port == 0 else f"{src}:{port}" for src, port in n.inputs],
                "line": n.span.line,
            }
        )
    return rows


def train_of(file: str, g: Any) -> Any:
    """The train section of ``g``'s model in ``file`` (None if it has none)."""
    from nnlang.graph.program import load

    return load(file).train_for(g.name)


def frozen_owners(train: Any, g: Any) -> set[str] | None:
    """The nodes whose parameters the train section ``train`` freezes (`freeze = [...]`);
    None when it freezes nothing. Patterns that match nothing are `nnlang check`'s."""
    return _frozen_by(_freeze_expr(train.settings if train else ()), g)


def phase_freezes(train: Any, g: Any) -> list[tuple[str, set[str]]]:
    """Each `phase` of the train section ``train`` with the nodes it freezes: its own
    `freeze`, else the section's (`freeze = []` in a phase freezes nothing)."""
    from nnlang.syntax import ast as A

    if train is None:
        return []
    outer = _freeze_expr(train.settings)
    out = []
    for ph in train.settings:
        if isinstance(ph, A.PhaseDecl):
            own = _freeze_expr(ph.settings)
            out.append((ph.name, _frozen_by(own if own is not None else outer, g) or set()))
    return out


def _freeze_expr(settings: Any) -> Any:
    return next((s.value for s in settings if getattr(s, "key", "") == "freeze"), None)


def _frozen_by(expr: Any, g: Any) -> set[str] | None:
    from nnlang.train.parts import node_of, select
    from nnlang.train.parts_setting import parts_setting

    if expr is None:
        return None
    quiet = parts_setting(lambda *a, **k: None, lambda e: None, "freeze", expr, None, False, None)
    if not quiet:
        return None
    paths = sorted({f"{n.owner}.*" for n in g.order() if n.params > 0})
    return {node_of(p) for p in select(paths, list(quiet)).selected}


#: the train settings `summary` reads for its per-device figures (`--set mesh=...`)
DEVICE_SETTINGS = ("devices", "mesh", "shard", "batch", "optimizer")
#: optimizer state arrays per parameter array (moments), by optimizer; `momentum > 0`
#: adds one to `sgd` and `rmsprop`, `centered` one to `rmsprop`
MOMENTS = {"sgd": 0, "momentum": 1, "nesterov": 1, "rmsprop": 1, "adagrad": 1}
MOMENTS |= {"adam": 2, "adamw": 2, "adabelief": 2, "lamb": 2}


def _split_axes(file: str, sets: list[str]) -> tuple[list[str], dict[str, Any]]:
    """``--set`` items as (model arguments, axis values): a key that names no parameter
    of a model or block in the file may be a symbolic axis (checked after the build).
    The train settings of :data:`DEVICE_SETTINGS` are under the key ``""``."""
    from nnlang.graph.overrides import parse_override, setting_value, split_set
    from nnlang.graph.program import load

    program = load(file)
    params = {p.name for d in program.decls.values() for p in d.params}
    keep, axes = [], {}
    settings: dict[str, Any] = {}
    axes[""] = ("", settings)
    for item in sets:
        key, value = split_set(item)
        if key in DEVICE_SETTINGS and key not in params:
            settings[key] = parse_override(key, value, program.sources)
        elif key in params or not key.isidentifier():
            keep.append(item)
        else:
            axes[key] = (item, setting_value(program, parse_override(key, value)))
    return keep, axes


def _graph_and_axes(a: argparse.Namespace) -> tuple[Any, dict[str, int]]:
    from nnlang.api import build
    from nnlang.diagnostics import Diagnostic, NNError

    keep, axes = _split_axes(a.file, a.set or [])
    a.device_sets = axes.pop("")[1]
    g = build(a.file, a.model, sets=keep, budget=budget_of(a))
    if any(k not in g.symbols for k in axes):  # not an axis: the build's own error
        g = build(a.file, a.model, sets=a.set, budget=budget_of(a))
    env: dict[str, int] = {}
    for k, (item, v) in axes.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise NNError(
                Diagnostic("E406", f"`--set {item}`: an axis takes a positive integer", None)
            )
        env[k] = v
    return g, env


def totals_of(g: Any, rows: list[dict[str, Any]], env: dict[str, int]) -> dict[str, Any]:
    from nnlang.graph.costs import activation_bytes_at, flops_at, formula

    size = ITEMSIZE["f32"]
    params, state = g.total_params(), g.total_state()
    frozen = sum(r["params"] for r in rows if r.get("frozen"))
    out: dict[str, Any] = {
        "total": params + state,
        "trainable": params - frozen,
        "non_trainable": state + frozen,
        "params": params,
        "state": state,
        "frozen": frozen,
    }
    for k in ("total", "trainable", "non_trainable", "params", "state", "frozen"):
        out[f"{k}_bytes"] = out[k] * size
    out["param_bytes"] = out["params_bytes"]
    unbound = [s for s in g.symbols if s not in env]
    out["symbols"] = list(g.symbols)
    out["axes"] = dict(env)
    if unbound:  # a formula of the axis, never the count at 1 as if it were the figure
        out["flops"] = out["activation_bytes"] = None
        out["flops_formula"] = formula(g, flops_at)
        out["activation_bytes_formula"] = formula(g, activation_bytes_at)
    else:
        out["flops"] = flops_at(g, env)
        out["activation_bytes"] = activation_bytes_at(g, env)
    return out


def cmd_summary(a: argparse.Namespace) -> int:
    g, env = _graph_and_axes(a)
    unbound = [s for s in g.symbols if s not in env]
    rows = summary_rows(g, None if unbound else env)
    train = train_of(a.file, g)
    frozen = frozen_owners(train, g)
    if frozen is not None:
        for r in rows:
            r["frozen"] = r["params"] > 0 and r["name"] in frozen
    totals = totals_of(g, rows, env)
    if (dev := per_device(train, g, rows, totals, a.device_sets)) is not None:
        totals["per_device"] = dev
    params_of = {r["name"]: r["params"] for r in rows}
    phases = [
        {"name": n, "frozen": sorted(f), "frozen_params": sum(params_of.get(x, 0) for x in f)}
        for n, f in phase_freezes(train, g)
    ]
    if a.json:
        if unbound:
            for r in rows:
                r["flops"] = None  # per node too: no figure without the axis
        doc = {
            "model": g.name,
            "args": g.args,
            "inputs": [{"name": p.name, "type": str(p.type)} for p in g.inputs],
            "outputs": [{"name": p.name, "type": str(p.type)} for p in g.outputs],
            "nodes": rows,
            "totals": totals,
        }
        if phases:
            doc["phases"] = phases
        print(json.dumps(doc, indent=2))
        return EXIT_OK
    _print_table(g, rows, totals, unbound, frozen is not None)
    if phases:
        console().print(
            "Phases: "
            + "; ".join(
                f"`{p['name']}` freezes {', '.join(p['frozen'])} ({p['frozen_params']:,} params)"
                if p["frozen"]
                else f"`{p['name']}` freezes nothing"
                for p in phases
            )
        )
    return EXIT_OK


def per_device(
    train: Any, g: Any, rows: list[dict[str, Any]], totals: dict[str, Any], sets: dict[str, Any]
) -> dict[str, Any] | None:
    """What each device holds when the train section (with ``sets``, the `--set`
    expressions of :data:`DEVICE_SETTINGS`) asks for several devices: its parameter
    and optimizer-state bytes (a node's parameters split over the mesh's `model` axis
    unless a `shard` rule keeps them whole; an array that no axis of which the `model`
    size divides stays whole in the run, so this is the least it can be) and its share
    of one step's activations. None for one device or `devices = all`."""
    from nnlang.diagnostics import Reporter
    from nnlang.graph.evaluate import word_or_value
    from nnlang.train import devices as D
    from nnlang.train import parts

    written = {s.key: s.value for s in (train.settings if train else ()) if hasattr(s, "key")}
    if "devices" in sets and "mesh" not in sets:
        written.pop("mesh", None)  # as `--devices N` over a written mesh in `train`
    given = {**written, **sets}
    quiet, rep = (lambda *a, **k: None), Reporter()

    def value(key: str, default: Any) -> Any:
        return word_or_value(given[key], rep, None) if key in given else default

    mesh = D.mesh_setting(quiet, given["mesh"], value("mesh", None)) if "mesh" in given else None
    n = D.mesh_devices(mesh) or value("devices", 1)
    batch = value("batch", 32)
    if not isinstance(n, int) or n <= 1 or not isinstance(batch, int) or rep.errors:
        return None
    m = (mesh or {}).get("model", 1)
    rules = D.shard_setting(quiet, given["shard"], None) if "shard" in given else None
    decided: dict[str, str | None] = {}  # node -> its first rule's "model" or None
    for pattern, rule in rules or ():
        for r in rows:
            if r["params"] and parts.matches(pattern, f"{r['name']}.*"):
                decided.setdefault(r["name"], rule)
    whole = {k for k, v in decided.items() if v is None}
    size = totals["params_bytes"] // max(totals["params"], 1) if totals["params"] else 4
    held = sum(r["params"] if r["name"] in whole else -(-r["params"] // m) for r in rows)
    opt = given.get("optimizer")
    name = getattr(opt, "func", getattr(opt, "id", "adam"))
    moments = MOMENTS.get(name)
    kw = {k.name: k.value for k in getattr(opt, "kwargs", ())}
    if moments is not None and name in ("sgd", "rmsprop"):
        moments += _positive(kw.get("momentum")) + (name == "rmsprop" and _true(kw.get("centered")))
    share = batch // (mesh.get("data", 1) if mesh else n)
    act = totals.get("activation_bytes")
    return {
        "devices": n,
        "mesh": mesh or {"data": n},
        "batch_per_device": share,
        "param_bytes": (held + sum(r["state"] for r in rows)) * size,
        "optimizer": name,
        "optimizer_state_bytes": None if moments is None else moments * held * size,
        "activation_bytes": None if act is None else act * share,
    }


def _positive(e: Any) -> bool:
    return bool(getattr(e, "value", 0))


def _true(e: Any) -> bool:
    return getattr(e, "id", "") == "true" or getattr(e, "value", False) is True


def _print_table(
    g: Any, rows: list[dict[str, Any]], totals: dict[str, Any], unbound: list[str], freezes: bool
) -> None:
    from rich.markup import escape
    from rich.table import Table

    title = g.name + (
        f"({', '.join(f'{k}={format_value(v)}' for k, v in g.args.items())})" if g.args else ""
    )
    if totals["axes"]:
        title += "  [" + ", ".join(f"{k}={v}" for k, v in totals["axes"].items()) + "]"
    t = Table(title=escape(title), caption="shapes are per sample; the batch axis is implicit")
    cols = [("node (value)", "left"), ("kind", "left"), ("output", "left")]
    cols += [("params", "right"), ("FLOPs", "right"), ("connected to", "left"), ("line", "right")]
    for col, just in cols:
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in rows:
        params = f"{r['params']:,}" if not r["shares"] else f"shares {r['shares']}"
        if r.get("frozen"):
            params = f"frozen {params}"
        if r["state"]:
            params += f" + {r['state']:,} state"
        name = r["name"] + (f" ({', '.join(r['values'])})" if r["values"] else "")
        flops = "depends" if unbound and r["kind"] != "input" else f"{r['flops']:,}"
        t.add_row(
            escape(name),
            r["kind"],
            escape(r["output"]),
            params,
            flops,
            escape(", ".join(r["connected_to"])),
            str(r["line"]),
        )
    con = console()
    if not con.is_terminal:  # a file or a pipe: the whole table, never wrapped at 80
        from rich.measure import Measurement

        wide = con.options.update(max_width=10_000)
        con.width = max(Measurement.get(con, wide, t).maximum, 40)
    con.print(t)
    b = {k: _bytes(totals[f"{k}_bytes"]) for k in ("total", "trainable", "non_trainable")}
    con.print(f"Total params: {totals['total']:,} ({b['total']})")
    con.print(f"Trainable params: {totals['trainable']:,} ({b['trainable']})")
    why = []
    if totals["state"]:
        why.append(f"{totals['state']:,} state: batch-norm statistics and other running values")
    if freezes:
        why.append(f"{totals['frozen']:,} frozen by `freeze` in the train section")
    more = f"; {'; '.join(why)}" if why else ""
    con.print(f"Non-trainable params: {totals['non_trainable']:,} ({b['non_trainable']}{more})")
    con.print("(bytes as f32)")
    if unbound:
        axes = ", ".join(unbound)
        fl, ab = totals["flops_formula"], totals["activation_bytes_formula"]
        con.print(f"FLOPs per sample: {fl or f'depend on {axes}'}")
        con.print(f"Activations per sample: {ab + ' B' if ab else f'depend on {axes}'}")
        con.print(f"(symbolic axis {axes}: pass `--set {unbound[0]}=128` for figures)")
    else:
        con.print(f"FLOPs per sample: {totals['flops']:,}")
        con.print(f"Activations per sample: {_bytes(totals['activation_bytes'])}")
    if (d := totals.get("per_device")) is not None:
        axes = " × ".join(f"{k} {v}" for k, v in d["mesh"].items())
        opt = d["optimizer_state_bytes"]
        act = d["activation_bytes"]
        con.print(
            f"Per device ({d['devices']} devices, mesh {axes}; {d['batch_per_device']} "
            f"examples of each batch): params {_bytes(d['param_bytes'])}"
            + (f", {d['optimizer']} state {_bytes(opt)}" if opt is not None else "")
            + (f", activations {_bytes(act)}" if act is not None else "")
        )


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n} B"


def summary_args(s: argparse.ArgumentParser) -> None:
    from nnlang.cli.model import model_sets

    s.add_argument("file", metavar="FILE")
    s.add_argument("--model")
    add_budget_flags(s)
    model_sets(s)
    s.add_argument("--json", action="store_true")
