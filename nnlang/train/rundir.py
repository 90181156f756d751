"""The run directory: where a run lives, what it writes there, and reading it back.

Run directory layout (arrays and plain text only — nothing in it is ever executed):

    settings.json      resolved model arguments, train settings, data binding, versions
    sources/           the .nn source files as they were when the run started
    normalizer.npz     per-input normalisation statistics fitted on the training split
    metrics.jsonl      one JSON object per epoch
    tensorboard/       the same as TensorBoard event files (train/, validation/; tblog.py)
    result.json        the reported split's metrics and how the run stopped
    curves.png         learning curves, at the end with `nnlang train --curves`
    checkpoints/       Orbax checkpoints (last N and the best)
    .lock              held (``flock``) by the one process training into it: pid, host, since

A run directory is read back only when everything in it stays in it
(:func:`confine_run`, the rule of :func:`nnlang.fsio.confined_tree`): no symlink pointing
out, no hard link, no FIFO, socket or device. One process at a time trains into it
(:class:`RunLock`); readers (eval, predict, export) take no lock: they read only
committed checkpoints, which Orbax renames into place complete.

May import the standard library, NumPy, ``diagnostics``, ``fsio``, the graph room and
``train.data``, ``train.spec`` and ``train.loop`` (for ``Data``); matplotlib only when
the curves are drawn.
"""

from __future__ import annotations

import errno
import fcntl
import io
import json
import os
import socket
import stat
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from nnlang.diagnostics import Diagnostic, NNError
from nnlang.fsio import Escape, atomic_write_bytes, atomic_write_text, confined_tree, read_confined
from nnlang.graph.graph import Graph
from nnlang.graph.program import Program
from nnlang.train import hosts, tblog, trackers
from nnlang.train.data import Normalizer, normalizers_npz, read_normalizers_npz
from nnlang.train.loop import Data
from nnlang.train.plots import pyplot
from nnlang.train.spec import TrainSpec


def next_run_dir(base: Path) -> Path:
    """``base`` if it is free, else the first free ``base-2``, ``base-3``, ..."""
    if not base.exists():
        return base
    i = 2
    while Path(f"{base}-{i}").exists():
        i += 1
    return Path(f"{base}-{i}")


def latest_run_dir(base: Path) -> Path | None:
    """The most recently changed of ``base`` and ``base-N`` that has checkpoints."""
    candidates = [
        p for p in [base, *base.parent.glob(base.name + "-*")] if (p / "checkpoints").is_dir()
    ]
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def _versions() -> dict[str, str]:
    from nnlang.train.versions import installed

    return installed()


def write_settings(
    run: Path,
    program: Program,
    graph: Graph,
    spec: TrainSpec,
    model_args: dict[str, Any],
    data: Data,
    sets: list[str],
) -> None:
    """settings.json, sources/ and normalizer.npz, written when a run starts."""
    if not hosts.primary():  # a distributed run's logs: process 0's (train.hosts)
        return
    settings = {
        "model": graph.name,
        "model_args": model_args,
        "file": program.main,
        "overrides": sets,
        "train": {
            "data": {"name": spec.data.name, "args": spec.data.args},
            "loss": spec.loss_text,
            "optimizer": {"name": spec.optimizer.name, "args": spec.optimizer.args},
            "schedule": {"name": spec.schedule.name, "args": spec.schedule.args},
            "normalize": {"name": spec.normalize.name, "args": spec.normalize.args}
            if spec.normalize
            else None,
            "augment": [{"name": c.name, "args": c.args} for c in spec.augment],
            "metrics": [
                {"name": c.name, "args": c.args, "tensors": list(c.tensors)} for c in spec.metrics
            ],
            "batch": spec.batch,
            "epochs": spec.epochs,
            "seed": spec.seed,
            "clip": spec.clip,
            "keep": spec.keep,
            "checkpoint_every": spec.checkpoint_every,
            "checkpoint_seconds": spec.checkpoint_seconds,
            "monitor": spec.monitor,
            "patience": spec.patience,
            "init_from": spec.init_from,
            # `phase` blocks, in order (the settings above are the last phase's)
            "phases": [
                {
                    "name": ph.name,
                    "loss": ph.spec.loss_text,
                    "optimizer": {"name": ph.spec.optimizer.name, "args": ph.spec.optimizer.args},
                    "epochs": ph.spec.epochs,
                    "batch": ph.spec.batch,
                    "freeze": list(ph.spec.freeze),
                }
                for ph in spec.phases
            ],
        },
        "inputs": [
            {"name": p.name, "type": str(p.type), "data": data.mapping.get(p.name)}
            for p in graph.inputs
        ],
        "outputs": [{"name": p.name, "type": str(p.type)} for p in graph.outputs],
        "data": {"sizes": {k: data.size(k) for k in data.splits}, "meta": _jsonable(data.meta)},
        "versions": _versions(),
    }
    atomic_write_text(run / "settings.json", json.dumps(settings, indent=2, default=str) + "\n")
    for name, text in program.sources.texts.items():
        safe = name.replace(os.sep, "__").replace("..", "up")
        atomic_write_text(run / "sources" / safe, text)
    if data.normalizers:
        atomic_write_bytes(run / "normalizer.npz", normalizers_npz(data.normalizers))


def _jsonable(x: Any) -> Any:
    try:
        json.dumps(x)
        return x
    except TypeError:
        if isinstance(x, dict):
            return {str(k): _jsonable(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [_jsonable(v) for v in x]
        if isinstance(x, np.ndarray):
            return x.tolist()
        return str(x)


def notice(message: str) -> None:
    """A line on stderr about something done to the run directory (also with -q)."""
    try:
        print(f"notice: {message}", file=sys.stderr, flush=True)
    except OSError:  # no terminal any more (SIGHUP): nothing to tell
        pass


def _unconfined(run: Path, e: Escape, what: str) -> NNError:
    return NNError(
        Diagnostic(
            "E511",
            f"{what} `{run}` is refused: {e}",
            help="nnlang reads a run directory only when every file in it is a regular "
            "file of its own inside it: replace links with copies (`cp -r --dereference`) "
            "and remove FIFOs, sockets and devices",
        )
    )


def confine_run(run: Path, what: str = "run directory") -> None:
    """E511 unless every member of ``run`` stays inside it (:func:`nnlang.fsio.confined_tree`):
    checked before a run is resumed, opened for eval/predict/export or used by
    ``init_from``, so Orbax is never handed a link out of it or a FIFO to block on."""
    try:
        confined_tree(run)
    except Escape as e:
        raise _unconfined(run, e, what) from None


def read_settings(run: Path, what: str = "run directory") -> dict[str, Any]:
    """settings.json of a run directory, after :func:`confine_run`; E503 if ``run`` is
    not one, E511 if something in it leaves it."""
    if not (run / "settings.json").is_file() or not (run / "checkpoints").is_dir():
        raise NNError(
            Diagnostic(
                "E503",
                f"`{run}` is not a run directory (no settings.json or checkpoints/)",
                help="pass the folder `nnlang train` printed, e.g. --run runs/digits_mlp",
            )
        )
    confine_run(run, what)
    path = run / "settings.json"
    try:
        settings: dict[str, Any] = json.loads(read_confined(run, path).decode("utf-8"))
    except Escape as e:
        raise _unconfined(run, e, what) from None
    except (OSError, ValueError) as e:
        raise NNError(Diagnostic("E503", f"`{path}` cannot be read: {e}")) from None
    return settings


def load_normalizers(run: Path) -> dict[str, Normalizer]:
    """normalizer.npz of a run directory (empty if the run normalises nothing)."""
    path = run / "normalizer.npz"
    if not os.path.lexists(path):
        return {}
    try:
        return read_normalizers_npz(io.BytesIO(read_confined(run, path)))
    except Escape as e:
        raise _unconfined(run, e, "run directory") from None
    except (OSError, ValueError, KeyError) as e:
        raise NNError(Diagnostic("E503", f"`{path}` cannot be read: {e}")) from None


def write_metrics(run: Path, history: list[dict[str, Any]]) -> None:
    """metrics.jsonl rewritten (atomically) to exactly ``history``: one line per epoch
    the restored checkpoint covers. Done whenever a run starts or resumes, so lines
    appended after the last checkpoint by a killed process are dropped, and the epochs
    trained again are written once."""
    if not hosts.primary():  # a distributed run's logs: process 0's (train.hosts)
        return
    atomic_write_text(run / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))
    tblog.rewrite(run, history)


def append_metrics(run: Path, history: list[dict[str, Any]]) -> None:
    """The one place an epoch's record is written: ``history[-1]``, just ended, appended
    to metrics.jsonl and logged to the run's TensorBoard event files (:mod:`tblog`)."""
    if not hosts.primary():  # a distributed run's logs: process 0's (train.hosts)
        return
    with open(run / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(history[-1]) + "\n")
    tblog.log_epoch(run, history, len(history) - 1)
    trackers.log_epoch(run, history[-1])


# ------------------------------------------------------------------ the lock
LOCK = ".lock"


class RunLock:
    """The exclusive lock of a run directory, held while one process trains into it.

    An OS lock (``flock``) on ``.lock``, which also holds the holder's pid, host and
    start time for the message a second trainer gets (E510). The OS drops the lock when
    its process dies, however it dies; a ``.lock`` still naming a holder when the lock
    is free was left by a process that died (``kill -9``, a crash) and is taken over
    with a notice. Released (and emptied) by :meth:`release`."""

    def __init__(self, run: Path, fd: int) -> None:
        self.run = run
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, run: Path) -> RunLock:
        path = run / LOCK
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC
        try:
            fd = os.open(path, flags | getattr(os, "O_NONBLOCK", 0), 0o644)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise _unconfined(
                    run, Escape(path, run, f"`{path}` is a symlink"), "run directory"
                ) from None
            raise
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
                raise _unconfined(
                    run,
                    Escape(path, run, f"`{path}` is not a regular file of its own"),
                    "run directory",
                )
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise _in_use(run, _holder(fd)) from None
            stale = _holder(fd)
            if stale:
                notice(_stale_text(run, stale))
            info = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "since": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        return cls(run, fd)

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # a free lock names nobody: the next trainer sees no stale holder
        except OSError:
            pass
        finally:
            os.close(fd)  # drops the flock

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _holder(fd: int) -> dict[str, Any]:
    """What ``.lock`` says about its holder ({} when it names nobody)."""
    try:
        data = os.pread(fd, 4096, 0)
    except OSError:
        return {}
    if not data.strip():
        return {}
    try:
        info = json.loads(data.decode("utf-8"))
    except ValueError:
        info = None
    return info if isinstance(info, dict) else {"pid": "?", "host": "?", "since": "?"}


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _who(info: dict[str, Any]) -> str:
    return f"pid {info.get('pid', '?')} on host {info.get('host', '?')} (since {info.get('since', '?')})"


def _stale_text(run: Path, info: dict[str, Any]) -> str:
    here = info.get("host") == socket.gethostname()
    state = (
        "which is no longer running"
        if here and not _alive(info.get("pid"))
        else "which no longer holds the lock"
    )
    return f"`{run}` was left locked by {_who(info)}, {state}; taking the lock over"


def _in_use(run: Path, info: dict[str, Any]) -> NNError:
    pid = info.get("pid")
    return NNError(
        Diagnostic(
            "E510",
            f"`{run}` is in use: {_who(info)} is training into it",
            help=(
                f"wait for it to finish, or stop it with `kill -TERM {pid}` (it writes a "
                "checkpoint) and resume; or train into another directory with --out"
            )
            if isinstance(pid, int)
            else "wait for the other run to finish, or train into another directory with --out",
            notes=[
                "two processes writing checkpoints and metrics.jsonl into one run would corrupt it"
            ],
        )
    )


def best_epoch(
    history: list[dict[str, Any]], epoch: int | None, monitor: str, greater: bool, latest: bool
) -> dict[str, Any] | None:
    """Which epoch's weights a run reports (the best checkpoint, ``epoch``) and why: the
    `monitor` value there and whether highest or lowest wins, or that it is the latest
    epoch because nothing selects (no validation split, no `monitor`)."""
    rec = next((h for h in history if h.get("epoch") == epoch), None)
    if rec is None:
        return None
    if latest:
        why = "the latest epoch: no validation split and no `monitor` to select on"
        return {"epoch": epoch, "monitor": None, "value": None, "why": why}
    value = rec.get(monitor)
    mode = "highest" if greater else "lowest"
    why = f"{mode} `{monitor}`" + (f" ({value:.4g})" if isinstance(value, int | float) else "")
    why += f" of {len(history)} epochs"
    return {"epoch": epoch, "monitor": monitor, "value": value, "mode": mode, "why": why}


def write_result(
    run: Path,
    test: dict[str, Any],
    stopped: str,
    epochs: int,
    best: dict[str, Any] | None = None,
) -> None:
    if not hosts.primary():  # a distributed run's logs: process 0's (train.hosts)
        return
    tblog.close(run)
    doc: dict[str, Any] = {"test": test, "stopped": stopped, "epochs": epochs}
    if best is not None:
        doc["best"] = best
    atomic_write_text(run / "result.json", json.dumps(doc, indent=2) + "\n")
    trackers.finish(run, doc)


def plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    """curves.png: one panel per metric, training and validation in fixed colours
    (skipped with a notice without matplotlib)."""
    if not hosts.primary():  # a distributed run's logs: process 0's (train.hosts)
        return
    if not history or pyplot(path.name) is None:
        return
    from nnlang.train.curves import draw

    draw([("", history)], path)
