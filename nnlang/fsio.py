"""File-system rules shared by the whole package.

- Atomic writes: a file appears complete or not at all (temporary file, fsync, rename),
  so a crash or `kill -9` never leaves a half-written output.
- Path confinement (:func:`confined`): the one rule that keeps the paths a .nn file
  names (its imports, its data files) inside its folder. Its extensions for a folder
  that nnlang reads back (a run directory): :func:`confined_tree` walks it and refuses
  any member that leaves it (a symlink pointing out, a hard link, a FIFO, socket or
  device), and :func:`read_confined` reads one member without following a link or
  blocking on a FIFO.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path


class Escape(ValueError):
    """A path :func:`confined` refuses; ``str(e)`` says why. ``absolute`` is true when it
    was refused for being absolute; ``leaves`` is false when it was refused for being no
    usable path at all (a symlink loop, a NUL byte) rather than for leading outside
    ``root``."""

    def __init__(
        self,
        path: str | Path,
        root: Path,
        reason: str,
        *,
        absolute: bool = False,
        leaves: bool = True,
    ):
        super().__init__(reason)
        self.path = path
        self.root = root
        self.absolute = absolute
        self.leaves = leaves


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
    try:
        target = (p if p.is_absolute() else Path(real_root if base is None else base) / p).resolve()
    except RuntimeError:  # Python 3.11-3.12 raise it for a symlink loop (3.13: OSError ELOOP)
        raise Escape(path, real_root, f"`{path}` is a symlink loop", leaves=False) from None
    except ValueError:  # an embedded NUL byte
        raise Escape(path, real_root, f"`{path}` holds a NUL byte", leaves=False) from None
    if not target.is_relative_to(real_root):
        raise Escape(path, real_root, f"`{path}` leads outside `{real_root}`")
    return target


def _member_problem(st: os.stat_result) -> str | None:
    """Why a member of a confined tree with this (non-link) status is refused, or None."""
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        return None
    if stat.S_ISREG(mode):
        if st.st_nlink > 1:
            return (
                f"is hard-linked ({st.st_nlink} links): the same file may be reached "
                "from outside the folder"
            )
        return None
    kind = (
        "a FIFO"
        if stat.S_ISFIFO(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "a device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "not a regular file"
    )
    return f"is {kind}, not a regular file"


def confined_member(root: str | Path, path: str | Path) -> None:
    """:class:`Escape` unless ``path`` (inside ``root``) stays there: a symlink must point
    inside ``root`` (by :func:`confined`) to a member that itself passes; a regular file
    must have one link; FIFOs, sockets and devices are refused. Only ``lstat``/``stat``
    are used, so a FIFO is never opened. A path that does not exist passes. A relative
    ``path`` is taken from the working directory, as ``root`` is (``runs/x/settings.json``
    inside ``runs/x``), not from ``root`` as :func:`confined` takes it."""
    p = _from_cwd(path)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        try:
            target = confined(root, p)
        except Escape as e:
            dest = os.readlink(p)
            raise Escape(
                path, e.root, f"`{p}` is a symlink to `{dest}`, outside `{e.root}`"
            ) from None
        try:
            st = os.stat(target)
        except FileNotFoundError:
            raise Escape(path, Path(root), f"`{p}` is a dangling symlink") from None
    why = _member_problem(st)
    if why is not None:
        raise Escape(path, Path(root), f"`{p}` {why}")


def _from_cwd(path: str | Path) -> Path:
    p = Path(path)
    return p if p.is_absolute() else Path.cwd() / p


def confined_tree(root: str | Path, top: str | Path | None = None) -> None:
    """Every member of the folder ``top`` (default: ``root``), recursively, passes
    :func:`confined_member` for ``root``; :class:`Escape` naming the first that does
    not. Symlinked folders are not descended into (a link pointing inside is walked
    where it points). Members that vanish during the walk (a writer deleting an old
    checkpoint) are skipped."""
    start = Path(root if top is None else top)
    confined_member(root, start)
    for entry in _walk(start):
        confined_member(root, entry)


def _walk(top: Path) -> Iterator[Path]:
    try:
        with os.scandir(top) as it:
            entries = list(it)
    except (FileNotFoundError, NotADirectoryError):
        return
    for e in entries:
        yield Path(e.path)
        try:
            is_dir = e.is_dir(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if is_dir:
            yield from _walk(Path(e.path))


def read_confined(root: str | Path, path: str | Path) -> bytes:
    """The bytes of the regular file ``path`` inside ``root``: the path is checked by
    :func:`confined` and :func:`confined_member` (a link inside ``root`` is read where it
    points), then its resolved path is opened with ``O_NOFOLLOW`` and ``O_NONBLOCK`` (a
    link or FIFO swapped in meanwhile is refused, never waited on) and checked again on
    the open descriptor. :class:`Escape` if refused, OSError if it cannot be read."""
    path = _from_cwd(path)  # like confined_member: `runs/x/settings.json` inside `runs/x`
    confined_member(root, path)
    target = confined(root, path)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(target, flags | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        if e.errno == getattr(os, "ELOOP", -1):
            raise Escape(path, Path(root), f"`{path}` became a symlink while read") from None
        raise
    try:
        why = _member_problem(os.fstat(fd))
        if why is None and stat.S_ISDIR(os.fstat(fd).st_mode):
            why = "is a folder, not a file"
        if why is not None:
            raise Escape(path, Path(root), f"`{path}` {why}")
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


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
