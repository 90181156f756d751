"""File-system rules shared by the whole package.

- Atomic writes: a file appears complete or not at all (temporary file, fsync, rename),
  so a crash or `kill -9` never leaves a half-written output.
- Path confinement (:func:`confined`): the one rule that keeps the paths a .nn file
  names (its imports, its data files) inside its folder.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


class Escape(ValueError):
    """A path :func:`confined` refuses; ``str(e)`` says why. ``absolute`` is true when it
    was refused for being absolute, false when it leads outside ``root``."""

    def __init__(self, path: str | Path, root: Path, reason: str, *, absolute: bool = False):
        super().__init__(reason)
        self.path = path
        self.root = root
        self.absolute = absolute


def confined(
    root: str | Path, path: str | Path, *, base: str | Path | None = None, absolute: bool = True
) -> Path:
    """``path`` resolved against ``base`` (default: ``root``), following symlinks and
    ``..``; :class:`Escape` unless the result is ``root`` or inside it.

    So ``../x``, an absolute path elsewhere and a symlink pointing out of ``root`` are
    all refused, while a link or ``..`` that stays inside is fine. An absolute ``path``
    is checked like any other, or refused outright when ``absolute`` is false. ``~`` is
    not expanded (a caller that allows it expands it first). The path need not exist.
    """
    if not absolute and os.path.isabs(path):
        raise Escape(path, Path(root), "absolute paths are not allowed", absolute=True)
    real_root = Path(root).resolve()
    p = Path(path)
    target = (p if p.is_absolute() else Path(real_root if base is None else base) / p).resolve()
    if not target.is_relative_to(real_root):
        raise Escape(path, real_root, f"`{path}` leads outside `{real_root}`")
    return target


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
