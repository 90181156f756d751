"""Failures of the machine, not of the file: no space, no permission, a path below a
regular file, out of memory. :func:`environment_error` recognises them in an exception
(its chain, and the wording of Orbax's TensorStore and XLA errors) and gives the E7xx
diagnostic naming the path or the size; the CLI exits with 3 for them.

May import the standard library and :mod:`nnlang.diagnostics`.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterable

from nnlang.diagnostics import Diagnostic

_ERRNO_CODE = {
    errno.ENOSPC: "E701",
    errno.EDQUOT: "E701",
    errno.EFBIG: "E701",
    errno.EACCES: "E702",
    errno.EPERM: "E702",
    errno.EROFS: "E702",
    errno.ENOTDIR: "E703",
}
_OS_CODE = re.compile(r"os_error_code='?(\d+)")  # TensorStore's wording (Orbax's writes)
_QUOTED_PATH = re.compile(r'"(/[^"]+)"')
_ALLOC = re.compile(r"allocate ([0-9.]+)\s*(bytes|[KMGT]i?B|B)\b")


def _chain(exc: BaseException) -> Iterable[BaseException]:
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def environment_error(exc: BaseException, path: object = None) -> Diagnostic | None:
    """The E7xx diagnostic for an exception that is the machine's doing (no space, no
    permission, a path below a file, out of memory), found anywhere in its chain and
    also in the text of Orbax's and XLA's errors; None for anything else. ``path``
    names what was being written when the error itself names no file."""
    for e in _chain(exc):
        text = str(e)
        if isinstance(e, MemoryError) or "RESOURCE_EXHAUSTED" in text:
            m = _ALLOC.search(text)
            size = ""
            if m:
                size = (
                    f" allocating {_mib(float(m.group(1)))}"
                    if m.group(2) == "bytes"
                    else f" allocating {m.group(1)} {m.group(2)}"
                )
            first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
            return Diagnostic(
                "E704",
                "out of memory" + size,
                help="lower `batch` (--set batch=N), or use a device with more memory",
                notes=[first[:300]],
            )
        num = e.errno if isinstance(e, OSError) and e.errno else None
        if num is None and (m := _OS_CODE.search(text)):
            num = int(m.group(1))
        if num not in _ERRNO_CODE:
            continue
        file = getattr(e, "filename", None)
        if file is None and (q := _QUOTED_PATH.findall(text)):
            file = q[-1]
        d = _env_diagnostic(_ERRNO_CODE[num], num, str(path or file or "?"))
        if path is not None and file is not None and str(file) != str(path):
            d.notes.append(f"while writing `{file}`")
        return d
    return None


def _mib(n: float) -> str:
    return f"{n / 1024**3:.1f} GiB" if n >= 1024**3 else f"{n / 1024**2:.1f} MiB"


def _env_diagnostic(code: str, num: int, where: str) -> Diagnostic:
    reason = os.strerror(num)
    if code == "E701":
        limit = " (the process's file size limit, `ulimit -f`)" if num == errno.EFBIG else ""
        return Diagnostic(
            code,
            f"cannot write `{where}`: {reason}{limit}",
            help="free space on that disk, or write the run or artifact elsewhere (--out DIR)",
        )
    if code == "E702":
        return Diagnostic(
            code,
            f"cannot write `{where}`: {reason}",
            help="choose a folder you can write (--out DIR), or change its permissions",
        )
    blocker = next((str(p) for p in _parents(where) if os.path.isfile(p)), None)
    return Diagnostic(
        code,
        f"cannot create `{where}`: "
        + (f"`{blocker}` is a regular file, not a directory" if blocker else reason),
        help="choose an --out path whose parent folders are folders",
    )


def _parents(path: str) -> list[str]:
    out = []
    p = os.path.dirname(os.path.normpath(path))
    while p and p not in out and p != os.path.dirname(p):
        out.append(p)
        p = os.path.dirname(p)
    return list(reversed(out))
