"""The grammar and the bundled datasets ship inside the wheel: build it, install it in a fresh virtual
environment outside the checkout, and parse an example with it."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile

import pytest
from _util import ROOT


def test_wheel_contains_grammar_and_parses(tmp_path) -> None:
    dist = tmp_path / "dist"
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0 and (
        "Could not find a version" in r.stderr or "No matching distribution" in r.stderr
    ):
        pytest.skip("no package index to build the wheel with")
    assert r.returncode == 0, r.stderr
    wheel = next(dist.glob("nnlang-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "nnlang/grammar/nnlang.lark" in names
    assert "nnlang/train/data/bundled/digits.npz" in names  # the bundled datasets
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    py = env / "bin" / "python"
    r = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel), "lark", "networkx"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    code = (
        "import sys, nnlang.syntax.parser as p\n"
        "assert 'site-packages' in p.__file__, p.__file__\n"
        "m = p.parse(open(sys.argv[1]).read(), 'digits_mlp.nn')\n"
        "print(m.models[0].name)\n"
    )
    r = subprocess.run(
        [str(py), "-c", code, str(ROOT / "examples" / "digits_mlp.nn")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "DigitsMLP"
