"""The house rules of the code itself: layout, import direction, size, format, types.

These are the guardrails of ``docs/design.md``: each stage imports only itself and the
stages before it, no import circle, no module over 500 lines without a written reason,
``ruff format`` clean, and the shared modules type-check under ``mypy --strict``.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest
from _util import ROOT

PKG = ROOT / "nnlang"

#: Pipeline order: a module may import modules of its own rank or lower ranks only.
#: Longest prefix wins; the shared modules sit just above what they need.
RANKS: dict[str, int] = {
    "nnlang.diagnostics": 0,
    "nnlang.shapes": 0,
    "nnlang.fsio": 0,
    "nnlang.environment": 0,
    "nnlang.signature": 1,
    "nnlang.syntax": 2,
    "nnlang.overrides": 3,
    "nnlang.layers": 3,
    "nnlang.graph": 4,
    "nnlang.fitting": 4,
    "nnlang.lower": 5,
    "nnlang.train": 6,
    "nnlang.export": 7,
    "nnlang.api": 8,
    "nnlang.lsp": 8,  # answers from api's check
    "nnlang": 8,  # the package's public door (__init__)
    "nnlang.cli": 9,
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _rank(module: str) -> int:
    best, best_len = None, -1
    for prefix, rank in RANKS.items():
        if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
            best, best_len = rank, len(prefix)
    assert best is not None, f"{module} has no place in RANKS: add it to the pipeline order"
    return best


def _imports(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("nnlang"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            if base.startswith("nnlang"):
                for a in node.names:
                    full = f"{base}.{a.name}"
                    out.add(full if _is_module(full) else base)
    return out


def _is_module(name: str) -> bool:
    p = ROOT.joinpath(*name.split("."))
    return p.with_suffix(".py").exists() or (p / "__init__.py").exists()


def _import_graph() -> nx.DiGraph:
    g = nx.DiGraph()
    for path in sorted(PKG.rglob("*.py")):
        mod = _module_name(path)
        g.add_node(mod)
        for target in _imports(path, mod):
            if target != mod:
                g.add_edge(mod, target)
    return g


def test_no_import_runs_back_up_the_pipeline() -> None:
    g = _import_graph()
    back = [
        f"{a} (rank {_rank(a)}) imports {b} (rank {_rank(b)})"
        for a, b in g.edges
        if _rank(b) > _rank(a) and not (a == "nnlang" or b == "nnlang")
    ]
    assert not back, "imports running back up the pipeline:\n" + "\n".join(back)


def test_no_import_circle_between_rooms() -> None:
    g = _import_graph()
    # a package's __init__ re-exporting its own modules is not a circle between rooms
    rooms = nx.DiGraph()
    for a, b in g.edges:
        if a == "nnlang" or b == "nnlang":
            continue
        if b.startswith(a + ".") or a.startswith(b + "."):
            continue
        rooms.add_edge(a, b)
    cycles = list(nx.simple_cycles(rooms))
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join(c + [c[0]]) for c in cycles[:10])


MAX_LINES = 500
REASON = "Over 500 lines because"
#: Rooms still being cut (issue 7); each may shrink but not grow past its line count.
STILL_TO_CUT = {}


def test_no_module_over_500_lines_without_a_reason() -> None:
    long = []
    for path in sorted(PKG.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        n = text.count("\n")
        doc = ast.get_docstring(ast.parse(text)) or ""
        rel = str(path.relative_to(ROOT))
        if rel in STILL_TO_CUT:
            if n > STILL_TO_CUT[rel]:
                long.append(f"{rel}: {n} lines (it is being cut; it must not grow)")
            continue
        if n > MAX_LINES and REASON not in doc:
            long.append(f"{path.relative_to(ROOT)}: {n} lines")
    assert not long, (
        f"modules over {MAX_LINES} lines; split them, or say why in the module docstring "
        f"({REASON} ...):\n" + "\n".join(long)
    )


def _tool(name: str) -> str | None:
    beside = Path(sys.executable).parent / name  # the test environment's own copy
    return str(beside) if beside.exists() else shutil.which(name)


def test_ruff_format_is_clean() -> None:
    ruff = _tool("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (it comes with the test extras)")
    r = subprocess.run(
        [ruff, "format", "--check", "nnlang", "tests", "bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr


#: The shared modules every room leans on type-check strictly.
STRICT = [
    "nnlang/diagnostics.py",
    "nnlang/signature.py",
    "nnlang/graph/evaluate.py",
    "nnlang/graph/overrides.py",
    "nnlang/graph/graph.py",
    "nnlang/graph/apply.py",
    "nnlang/graph/tensorops.py",
    "nnlang/layers/stochastic.py",
    "nnlang/graph/build.py",
    "nnlang/fitting.py",
    "nnlang/fsio.py",
    "nnlang/cli/report.py",
    "nnlang/train/parts.py",
    "nnlang/train/parts_setting.py",
]


def test_shared_modules_type_check_strictly() -> None:
    mypy = _tool("mypy")
    if mypy is None:
        pytest.skip("mypy is not installed (it comes with the test extras)")
    r = subprocess.run(
        [mypy, "--strict", "--follow-imports=silent", "--ignore-missing-imports", *STRICT],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_error_code_is_declared_and_raised() -> None:
    """Error codes are written as literals (``"E101"``: the code users see and grep for)
    and checked here over every path, not only the paths a test happens to run: each
    literal in nnlang/ is declared in ``diagnostics.CODES``, and each declared code is
    raised somewhere."""
    import re

    from nnlang.diagnostics import CODES

    used: dict[str, list[str]] = {}
    for path in sorted(PKG.rglob("*.py")):
        if path.name == "diagnostics.py" and path.parent == PKG:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and re.fullmatch(r"[EW]\d{3}", node.value)
            ):
                used.setdefault(node.value, []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
    undeclared = {c: where for c, where in used.items() if c not in CODES}
    assert not undeclared, f"codes not declared in diagnostics.CODES: {undeclared}"
    never = [c for c in CODES if c not in used and c != "E999"]  # E999: cli.main's bug report
    assert not never, f"declared codes nothing raises (remove them or raise them): {never}"
