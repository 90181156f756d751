"""`nnlang train` shows something at once (issue 15.2): a line before JAX is imported and
`compiling M (N parameters) for BACKEND ...` once the graph is checked, both on stderr;
nothing of it with -q or --json (stdout stays JSON)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _util import ROOT, write
from test_transcripts import MODEL_NN


def _train(tmp_path: Path, *flags: str) -> tuple[int, str, str]:
    from nnlang.cli import main

    write(tmp_path, "model.nn", MODEL_NN)
    write(tmp_path, "notes.txt", "a file where --out wants a folder\n")
    out, err = io.StringIO(), io.StringIO()
    old = Path.cwd()
    os.chdir(tmp_path)
    try:  # E703 just before the first step: the start lines come, no training is paid for
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(["train", "model.nn", "--out", "notes.txt/run", *flags])
    finally:
        os.chdir(old)
    return rc, out.getvalue(), err.getvalue()


def test_the_start_lines_come_first_on_stderr(tmp_path: Path) -> None:
    rc, out, err = _train(tmp_path)
    assert rc == 3 and out == ""
    lines = err.splitlines()
    assert lines[0] == "model.nn: starting JAX ..."
    assert lines[1].startswith("compiling Net (650 parameters) for ")
    assert "error[E703]" in lines[2]


def test_quiet_and_json_show_no_start_lines(tmp_path: Path) -> None:
    for flag in ("-q", "--json"):
        rc, out, err = _train(tmp_path, flag)
        assert rc == 3
        assert "starting JAX" not in err + out and "compiling" not in err + out
        if flag == "--json":
            assert json.loads(out)["ok"] is False


def test_the_first_line_comes_within_a_second(tmp_path: Path) -> None:
    """Measured in a fresh process, where importing JAX alone takes 1-2 s."""
    write(tmp_path, "model.nn", MODEL_NN)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t = time.perf_counter()
    p = subprocess.Popen(
        [sys.executable, "-m", "nnlang.cli", "train", "model.nn", "--set", "btach=3"],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert p.stderr is not None
    first = p.stderr.readline()
    elapsed = time.perf_counter() - t
    p.kill()  # what comes after (the E406 once JAX is imported) is not this test's
    p.communicate(timeout=60)
    assert first == "model.nn: starting JAX ...\n"
    assert elapsed < 3.0, elapsed  # about 0.4 s here; slack for a loaded 2-core CI machine
