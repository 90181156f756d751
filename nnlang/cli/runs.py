"""`nnlang runs [DIR]` (a table comparing runs) and `nnlang curves RUN... -o PNG`.

Both read run directories only: settings.json, metrics.jsonl and result.json, each
through the run's confinement (:func:`nnlang.train.rundir.read_settings`,
:func:`nnlang.fsio.read_confined`). The table shows the settings that differ between
the runs, the best value of each validation metric and the epoch it came at, the
reported split's metrics, the epochs trained and the training time.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nnlang.cli.report import EXIT_OK, EXIT_USER, console
from nnlang.diagnostics import Diagnostic, NNError


@dataclass
class RunRecord:
    path: Path
    settings: dict[str, Any]
    history: list[dict[str, Any]]
    result: dict[str, Any] | None


def _member(run: Path, name: str) -> str | None:
    from nnlang.fsio import Escape, read_confined

    p = run / name
    if not p.is_file():
        return None
    try:
        return read_confined(run, p).decode("utf-8")
    except (Escape, OSError, UnicodeDecodeError) as e:
        raise NNError(Diagnostic("E503", f"`{p}` cannot be read: {e}")) from None


def open_run(run: Path) -> RunRecord:
    """A run's settings, epoch records and result (None while it has not ended)."""
    from nnlang.train.rundir import read_settings

    settings = read_settings(run)
    try:
        text = _member(run, "metrics.jsonl") or ""
        history = [json.loads(line) for line in text.splitlines() if line.strip()]
        result_text = _member(run, "result.json")
        result = json.loads(result_text) if result_text else None
    except ValueError as e:
        raise NNError(Diagnostic("E503", f"`{run}` holds a file that is not JSON: {e}")) from None
    return RunRecord(run, settings, history, result)


def compare(runs: list[RunRecord]) -> list[dict[str, Any]]:
    """One row per run: its differing settings, best validation values, test, time."""
    from nnlang.train.curves import best, flat_settings

    flat = [flat_settings(r.settings) for r in runs]
    keys = sorted({k for f in flat for k in f})
    differ = [k for k in keys if len({f.get(k) for f in flat}) > 1]
    rows = []
    for r, f in zip(runs, flat, strict=True):
        metrics = sorted({k for h in r.history for k in h if k.startswith("val_")}) or (
            ["loss"] if any("loss" in h for h in r.history) else []
        )
        bests = {}
        for k in metrics:
            try:
                value, epoch = best(r.settings, r.history, k)
            except KeyError:
                continue
            bests[k] = {"value": value, "epoch": epoch}
        test = (r.result or {}).get("test") or {}
        rows.append(
            {
                "run": str(r.path),
                "settings": {k: f.get(k) for k in differ},
                "best": bests,
                "test": {k: v for k, v in test.items() if isinstance(v, int | float)},
                "epochs": len(r.history),
                "stopped": (r.result or {}).get("stopped", "running or killed"),
                "seconds": r.history[-1].get("seconds") if r.history else None,
            }
        )
    return rows


def run_dirs(folder: Path) -> list[Path]:
    if (folder / "settings.json").is_file():
        return [folder]
    return sorted(p for p in folder.iterdir() if p.is_dir() and (p / "settings.json").is_file())


def cmd_runs(a: argparse.Namespace) -> int:
    folder = Path(a.dir)
    if not folder.is_dir():
        raise NNError(Diagnostic("E503", f"`{folder}` is not a folder of runs"))
    runs = [open_run(p) for p in run_dirs(folder)]
    rows = compare(runs)
    if a.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    if not rows:
        print(f"no runs in {folder}")
        return EXIT_USER
    from rich.markup import escape
    from rich.table import Table

    differ = list(rows[0]["settings"])
    bests = sorted({k for r in rows for k in r["best"]})
    tests = sorted({k for r in rows for k in r["test"] if k != "split"})
    t = Table(title=f"runs in {escape(str(folder))}", caption="best: value @ epoch")
    for col in ["run", *differ, *(f"best {k}" for k in bests), *(f"test {k}" for k in tests)]:
        t.add_column(escape(col))
    t.add_column("epochs", justify="right")
    t.add_column("time", justify="right")
    for r in rows:
        cells = [Path(r["run"]).name, *(str(r["settings"][k]) for k in differ)]
        for k in bests:
            b = r["best"].get(k)
            cells.append(f"{b['value']:.4g} @ {b['epoch']}" if b else "")
        cells += [f"{r['test'][k]:.4g}" if k in r["test"] else "" for k in tests]
        secs = r["seconds"]
        cells += [f"{r['epochs']} ({r['stopped']})", f"{secs:.1f}s" if secs is not None else ""]
        t.add_row(*(escape(c) for c in cells))
    con = console()
    if not con.is_terminal:
        from rich.measure import Measurement

        wide = con.options.update(max_width=10_000)
        con.width = max(Measurement.get(con, wide, t).maximum, 40)
    con.print(t)
    return EXIT_OK


def cmd_curves(a: argparse.Namespace) -> int:
    from nnlang.train.curves import draw

    runs = [open_run(Path(p)) for p in a.runs]
    names = [r.path.name for r in runs]
    if len(set(names)) < len(names):  # two `m-1` in different folders: the whole path
        names = [str(r.path) for r in runs]
    out = Path(a.output)
    if out.suffix != ".png":
        raise NNError(Diagnostic("E504", f"`-o {a.output}`: nnlang curves writes a .png file"))
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        raise NNError(
            Diagnostic(
                "E705",
                f"`nnlang curves` needs matplotlib, which is not installed ({e})",
                help="pip install 'nnlang[plots]' (from a source checkout: pip install -e '.[plots]')",
            )
        ) from None
    draw(list(zip(names, [r.history for r in runs], strict=True)), out)
    print(f"wrote {out} ({len(runs)} run{'s' if len(runs) != 1 else ''})")
    return EXIT_OK


def runs_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", nargs="?", default="runs", metavar="DIR", help="a folder of runs")
    p.add_argument("--json", action="store_true")


def curves_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories")
    p.add_argument("-o", "--output", required=True, help="out.png")
