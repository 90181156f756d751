"""What every verb shares: exit codes and how diagnostics reach the terminal.

May import :mod:`nnlang.diagnostics` only (and rich, lazily).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from nnlang.diagnostics import CODES, Diagnostic, NNError, Sources, render_all

#: 0 success; 1 a mistake in a .nn file, its data or its run (diagnostics were printed);
#: 2 a usage error, or an internal error (an nnlang bug, reported as such); 3 the
#: environment failed (E7xx: no space, no permission, a path below a file, out of
#: memory): nothing is wrong with the file, and retrying elsewhere may work; 130
#: interrupted.
EXIT_OK, EXIT_USER, EXIT_USAGE, EXIT_ENV, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def report(diags: Sequence[Diagnostic], sources: Sources | None, fmt: str = "full") -> None:
    """Render diagnostics: ``json`` on stdout, the others on stderr with a count line."""
    if not diags:
        return
    text = render_all(diags, sources, fmt)
    if fmt == "json":
        print(text)
    else:
        print(text, file=sys.stderr)
        n_err = sum(d.severity == "error" for d in diags)
        n_warn = len(diags) - n_err
        parts = [f"{n_err} error{'s' if n_err != 1 else ''}"] if n_err else []
        if n_warn:
            parts.append(f"{n_warn} warning{'s' if n_warn != 1 else ''}")
        print("\n" + ", ".join(parts), file=sys.stderr)


def exit_code(diags: Sequence[Diagnostic]) -> int:
    """EXIT_ENV when every error is the environment's (E7xx), else EXIT_USER."""
    errors = [d for d in diags if d.severity == "error"]
    if errors and all(CODES[d.code][0] == "environment" for d in errors):
        return EXIT_ENV
    return EXIT_USER


def fail(e: NNError, fmt: str = "full") -> int:
    report(e.diagnostics, e.sources, fmt)
    return exit_code(e.diagnostics)


def add_data_root_flag(p: Any) -> None:
    p.add_argument(
        "--data-root",
        metavar="DIR",
        help="data paths resolve in DIR and may not leave it (the `data_root` setting; "
        "default: the .nn file's folder)",
    )


def data_root_of(a: Any) -> str | None:
    """``--data-root DIR`` as an absolute folder (DIR is relative to the working
    directory), or None."""
    import os

    d = getattr(a, "data_root", None)
    return None if d is None else os.path.abspath(os.path.expanduser(d))
