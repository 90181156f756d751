"""Library versions: recorded in a run's settings.json when it starts, compared when the
run is opened again (eval, predict, export, --resume, init_from).

A run written by other versions of nnlang, JAX, Flax, Optax or Orbax still loads (the
checkpoint's tree is compared with the model anyway, E502), but numbers may differ
and a format may have moved: :func:`notice` says which versions differ, as a warning
printed on stderr, never an error.

May import the standard library only.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

#: The distributions whose versions a run records.
PACKAGES = ("nnlang", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy")


def installed() -> dict[str, str]:
    """The installed version of each of :data:`PACKAGES` that is installed."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in PACKAGES:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def differences(recorded: dict[str, Any]) -> list[str]:
    """``jax 0.4.30 (installed: 0.5.0)`` for each recorded version that differs."""
    now = installed()
    return [
        f"{pkg} {was} (installed: {now.get(pkg, 'none')})"
        for pkg, was in recorded.items()
        if pkg in PACKAGES and now.get(pkg) != was
    ]


def notice(run: Path, settings: dict[str, Any]) -> str | None:
    """The warning for a run written by other library versions, or None."""
    diff = differences(settings.get("versions") or {})
    if not diff:
        return None
    return (
        f"warning: `{run}` was written by other library versions: {', '.join(diff)}; "
        "it loads, but results may differ from those it recorded"
    )


def warn_if_other(run: Path, settings: dict[str, Any]) -> None:
    """Print :func:`notice` on stderr, if there is one."""
    text = notice(run, settings)
    if text:
        print(text, file=sys.stderr)
