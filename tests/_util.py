"""Test helpers shared by several test modules (tests/ is on sys.path under pytest)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.nn"))


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def train_cmd(file: Path, run: Path, sets: dict[str, object], *extra: str) -> list[str]:
    """`nnlang train FILE --out RUN -q --set K=V ...` as a subprocess argument list, for
    tests that kill, signal or lock real training processes (with `checkpoint_every = 1`
    unless ``sets`` says otherwise)."""
    cmd = [sys.executable, "-m", "nnlang.cli", "train", str(file), "--out", str(run), "-q"]
    # a checkpoint every epoch (not every 30 s): the tests kill runs between checkpoints
    sets = {"checkpoint_every": 1, **sets}
    for k, v in sets.items():
        cmd += ["--set", f"{k}={v}"]
    return [*cmd, *extra]
