"""Nothing runs from files: no pickle, no eval/exec, and every np.load refuses pickles."""

from __future__ import annotations

import ast

import pytest
from _util import ROOT

SOURCES = sorted((ROOT / "nnlang").rglob("*.py"))
FORBIDDEN_MODULES = {"pickle", "cPickle", "cloudpickle", "dill", "shelve", "marshal"}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_code_from_files(path) -> None:
    tree = ast.parse(path.read_text("utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert not {a.name.split(".")[0] for a in node.names} & FORBIDDEN_MODULES, ast.dump(
                node
            )
        if isinstance(node, ast.ImportFrom):
            assert (node.module or "").split(".")[0] not in FORBIDDEN_MODULES, ast.dump(node)
        if isinstance(node, ast.Call):
            f = node.func
            assert not (
                isinstance(f, ast.Name) and f.id in {"eval", "exec", "compile", "__import__"}
            ), f"{path}:{node.lineno} calls {f.id}"
            if (
                isinstance(f, ast.Attribute)
                and f.attr == "load"
                and isinstance(f.value, ast.Name)
                and f.value.id == "np"
            ):
                kw = {k.arg: k.value for k in node.keywords}
                assert (
                    "allow_pickle" in kw
                    and isinstance(kw["allow_pickle"], ast.Constant)
                    and kw["allow_pickle"].value is False
                ), f"{path}:{node.lineno}: np.load without allow_pickle=False"
