"""The layout of nnlang.export: no import circle, and the two format writers independent.

Every import counts, at module level or inside a function. ``nnlang/export/__init__.py``
may import its submodules; a submodule never imports the package (``from nnlang.export
import X`` for a name defined in ``__init__``) back.
"""

from __future__ import annotations

import ast
from pathlib import Path

import nnlang.export

PKG = "nnlang.export"
DIR = Path(nnlang.export.__file__).parent
SUBMODULES = {p.stem for p in DIR.glob("*.py")} - {"__init__"}


def _imports(path: Path) -> set[str]:
    """The nnlang.export modules (``nnlang.export`` itself included) ``path`` imports."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == PKG:
                names = [f"{PKG}.{a.name}" if a.name in SUBMODULES else PKG for a in node.names]
            else:
                names = [node.module]
        else:
            assert not isinstance(node, ast.ImportFrom), f"{path.name}: relative import"
            continue
        out |= {n for n in names if n == PKG or n.startswith(PKG + ".")}
    return out


GRAPH = {m: _imports(DIR / f"{m}.py") - {f"{PKG}.{m}"} for m in SUBMODULES}


def test_submodules_do_not_import_the_package():
    assert {m: g for m, g in GRAPH.items() if PKG in g} == {}


def test_format_writers_do_not_import_each_other():
    assert f"{PKG}.onnx" not in GRAPH["stablehlo"]
    assert f"{PKG}.stablehlo" not in GRAPH["onnx"]


def test_no_import_circle():
    edges = {m: {d.removeprefix(PKG + ".") for d in g if d != PKG} for m, g in GRAPH.items()}
    done: set[str] = set()

    def visit(m: str, path: list[str]) -> None:
        assert m not in path, f"import circle: {' -> '.join([*path, m])}"
        if m in done:
            return
        for d in sorted(edges.get(m, ())):
            visit(d, [*path, m])
        done.add(m)

    for m in sorted(edges):
        visit(m, [])


def test_layout():
    assert {"trace", "artifact", "stablehlo", "onnx", "gate"} <= SUBMODULES
    # the shared tracing helpers and the artifact reader left the StableHLO writer
    assert {f"{PKG}.trace"} == GRAPH["stablehlo"]
    assert GRAPH["gate"] == {f"{PKG}.trace"}
