"""What a training run shows while it runs: a progress bar on a terminal, one line per
epoch otherwise. Display only: nothing here changes what is trained or written.

May import the standard library and rich (only when stderr is a terminal).
"""

from __future__ import annotations

import sys
from typing import Any


class Progress:
    """A rich progress bar with ETA and live loss on a terminal; one line per epoch
    otherwise (logs, CI)."""

    def __init__(self, total_steps: int, done: int, enabled: bool) -> None:
        self.enabled = enabled
        self.tty = enabled and sys.stderr.isatty()
        self.bar: Any = None
        if self.tty:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RP

            self.bar = RP(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
                transient=False,
            )
            self.bar.start()
            self.task = self.bar.add_task("train", total=total_steps, completed=done, info="")

    def update(
        self, steps: int, info: str, epoch: int, epochs: int, phase: str | None = None
    ) -> None:
        if self.bar is not None:
            where = f"epoch {epoch}/{epochs}" if phase is None else f"{phase} {epoch}/{epochs}"
            self.bar.update(self.task, advance=steps, info=info, description=where)

    def epoch_line(self, line: str) -> None:
        if not self.enabled:
            return
        try:
            if self.bar is not None:
                self.bar.console.print(line, highlight=False)
            else:
                print(line, file=sys.stderr, flush=True)
        except OSError:  # the terminal is gone (a hangup): training goes on without display
            self.silence()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()

    def silence(self) -> None:
        """Show nothing more: the terminal is gone (SIGHUP), and writing to it fails."""
        self.enabled = False
        bar, self.bar = self.bar, None
        if bar is not None:
            try:
                bar.stop()
            except OSError:
                pass


def starting(line: str, enabled: bool = True) -> None:
    """A line on stderr before anything slow (importing JAX, compiling), so a run shows
    what it is doing within a second of its start; nothing with -q or --json."""
    if not enabled:
        return
    try:
        print(line, file=sys.stderr, flush=True)
    except OSError:  # no terminal any more (SIGHUP): nothing to tell
        pass


def fmt_metrics(m: dict[str, float], prefix: str = "") -> str:
    """``loss=0.1234 val_accuracy=0.9000``: the per-epoch line's values."""
    return " ".join(
        f"{prefix}{k}={v}" if isinstance(v, int) else f"{prefix}{k}={v:.4f}" for k, v in m.items()
    )
