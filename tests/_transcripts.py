"""The ```console blocks of the docs, read and replayed for tests/test_transcripts.py.

A block is a list of commands (`$ ...`, continued over lines while a quote is open),
each followed by the output it shows. A block may be marked, on the line before it, by
`<!-- transcript: not run (why) -->`: it is not replayed (too long, not deterministic,
needs a full disk...). Every other block is replayed: `nnlang` commands in this process
through `nnlang.cli.main`, `ls` as a listing of names, anything else in a shell; the
output is compared with the block's after normalising what legitimately varies.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

MARK = re.compile(r"^<!-- transcript: (.*) -->$")


@dataclass
class Command:
    text: str  # without the `$ `; continuation lines joined with newlines
    output: list[str] = field(default_factory=list)


@dataclass
class Block:
    doc: str
    line: int  # 1-based line of the opening fence
    marker: str | None
    commands: list[Command]

    @property
    def where(self) -> str:
        return f"docs/{self.doc}:{self.line}"

    @property
    def has_output(self) -> bool:
        return any(c.output for c in self.commands)


def _complete(text: str) -> bool:
    try:
        shlex.split(text, comments=True)
    except ValueError:  # an open quote: the command goes on on the next line
        return False
    return True


def blocks(path: Path) -> list[Block]:
    lines = path.read_text("utf-8").splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() != "```console":
            i += 1
            continue
        j = i - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        m = MARK.match(lines[j].strip()) if j >= 0 else None
        start, i = i, i + 1
        cmds: list[Command] = []
        while i < len(lines) and lines[i].strip() != "```":
            ln = lines[i]
            if ln.startswith("$ "):
                text = ln[2:]
                while not _complete(text) and lines[i + 1].strip() != "```":
                    i += 1
                    text += "\n" + lines[i]
                cmds.append(Command(text))
            elif cmds:
                cmds[-1].output.append(ln)
            else:
                raise AssertionError(f"docs/{path.name}:{i + 1}: output before any `$ ` command")
            i += 1
        out.append(Block(path.name, start + 1, m.group(1) if m else None, cmds))
        i += 1
    return out


# what legitimately varies from run to run, in the docs' and the actual output alike
NORMALISE = [
    (re.compile(r"\d+\.\ds training"), "Ns training"),
    (re.compile(r'"seconds": [0-9.]+'), '"seconds": N'),
    (re.compile(r"\d+\.\d KB"), "N KB"),
    (re.compile(r"pid \d+ on host \S+ \(since [^)]*\)"), "pid P on host H (since T)"),
    (re.compile(r"kill -TERM \d+"), "kill -TERM P"),
]


def normalise(text: str, home: Path | None = None) -> list[str]:
    if home is not None:  # the temporary folder reads as the docs' /home/me/proj
        text = text.replace(str(home.resolve()), "/home/me/proj").replace(
            str(home), "/home/me/proj"
        )
    for pat, rep in NORMALISE:
        text = pat.sub(rep, text)
    return [ln.rstrip() for ln in text.rstrip("\n").splitlines()]


def matches(shown: list[str], actual: list[str]) -> bool:
    """The block's lines equal the actual ones, a line `...` standing for any number of
    actual lines (the docs elide the middle of a long run)."""
    if not shown:
        return not actual
    if shown[0].strip() == "...":
        return any(matches(shown[1:], actual[k:]) for k in range(len(actual) + 1))
    return bool(actual) and shown[0] == actual[0] and matches(shown[1:], actual[1:])


def run(cmd: str, cwd: Path) -> tuple[int, str]:
    """Run one command of a block in ``cwd``; stdout and stderr together, in order."""
    argv = shlex.split(cmd)
    if argv[0] == "nnlang":
        from nnlang.cli import main

        buf = io.StringIO()
        old = Path.cwd()
        os.chdir(cwd)
        try:
            with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
                rc = main(argv[1:])
        finally:
            os.chdir(old)
        return rc, buf.getvalue()
    if argv[0] == "ls" and len(argv) == 2:  # `ls` on a terminal: names in columns
        names = sorted(n for n in os.listdir(cwd / argv[1]) if not n.startswith("."))
        return 0, "  ".join(names) + "\n"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    r = subprocess.run(
        cmd.replace("python ", f"{sys.executable} ", 1) if argv[0] == "python" else cmd,
        shell=True,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return r.returncode, r.stdout + r.stderr


UPDATE = bool(os.environ.get("NNLANG_UPDATE_TRANSCRIPTS"))
PENDING: list[tuple[Block, list[list[str]]]] = []


def _elided(shown: list[str], actual: list[str]) -> list[str]:
    """The actual lines, elided as the docs elide them (the lines before the first `...`
    and after the last kept)."""
    if "..." not in shown:
        return actual
    head, tail = shown.index("..."), len(shown) - 1 - shown[::-1].index("...")
    tail = len(shown) - 1 - tail
    return actual[:head] + ["..."] + (actual[len(actual) - tail :] if tail else [])


def update_docs() -> None:
    """NNLANG_UPDATE_TRANSCRIPTS=1: write what the commands printed into the docs."""
    for block, outputs in sorted(PENDING, key=lambda p: -p[0].line):
        path = Path(__file__).resolve().parent.parent / "docs" / block.doc
        lines = path.read_text("utf-8").splitlines()
        end = block.line
        while lines[end].strip() != "```":
            end += 1
        body = []
        for c, out in zip(block.commands, outputs, strict=True):
            body += ["$ " + c.text, *out]
        lines[block.line : end] = "\n".join(body).splitlines()
        path.write_text("\n".join(lines) + "\n", "utf-8")
    PENDING.clear()


def check(block: Block, cwd: Path, home: Path | None = None) -> None:
    """Replay every command of ``block`` in ``cwd`` and compare what it prints."""
    outputs = []
    for c in block.commands:
        _, out = run(c.text, cwd)
        shown, actual = normalise("\n".join(c.output), home), normalise(out, home)
        if UPDATE and matches(shown, actual):  # up to date: keep the docs' times and pids
            outputs.append(c.output)
            continue
        if UPDATE:
            raw = out
            if home is not None:
                raw = raw.replace(str(home.resolve()), "/home/me/proj").replace(
                    str(home), "/home/me/proj"
                )
            outputs.append(_elided([ln.rstrip() for ln in c.output], raw.rstrip("\n").splitlines()))
            continue
        assert matches(shown, actual), (
            f"{block.where}: `$ {c.text}` printed\n"
            + "\n".join(actual)
            + "\n\nthe docs show\n"
            + "\n".join(shown)
        )
    if UPDATE:
        PENDING.append((block, outputs))
