"""Checkpoints with Orbax: atomic, the last N and the best kept, exact resume.

A checkpoint holds the whole training state as plain arrays (parameters, optimizer
state, batch statistics, RNG keys and counters) plus a JSON ``progress`` record (epoch,
position in the epoch, history, early-stopping state). Nothing executable: Orbax writes arrays
and JSON, into a temporary directory renamed into place when complete, so a step folder
is a whole checkpoint or absent. Deleting an old one is a rename too (into ``.deleted/``,
emptied after each save), so a ``kill -9`` never leaves half a checkpoint under a step
number; what a killed save leaves behind (a temporary folder, the trash) is removed by
:func:`discard_incomplete` when a run is resumed.

May import JAX, Flax, Orbax, NumPy and ``diagnostics``.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx
from orbax.checkpoint import checkpoint_managers as policies

from nnlang.diagnostics import Diagnostic, NNError
from nnlang.environment import environment_error
from nnlang.train import hosts


def to_arrays(state: Any) -> dict[str, Any]:
    """An nnx State as a nested dict of plain arrays (typed PRNG keys as their data)."""

    def plain(x: Any) -> Any:
        if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.key_data(x)
        return x

    return jax.tree.map(plain, nnx.to_pure_dict(state))


@dataclass(frozen=True)
class Held:
    """A state copied to host memory to be written later (:func:`held`)."""

    arrays: dict[str, Any]


def held(state: Any) -> Held:
    """``state`` as host arrays that later steps cannot change (the device buffers are
    donated to the next step): the best epoch's weights, kept until the next save."""

    def keep(x: Any) -> Any:  # arrays spread over other processes stay on the devices
        addressable = not isinstance(x, jax.Array) or x.is_fully_addressable
        return np.array(x, copy=True) if addressable or x.is_fully_replicated else jnp.copy(x)

    return Held(jax.tree.map(keep, to_arrays(state)))


def from_arrays(state: Any, arrays: dict[str, Any]) -> Any:
    """Put ``arrays`` (as made by :func:`to_arrays`) into the structure of ``state``:
    same Variables, same dtypes, typed PRNG keys re-wrapped."""
    template = nnx.to_pure_dict(state)
    t_leaves, t_def = jax.tree_util.tree_flatten(template)
    a_leaves = t_def.flatten_up_to(arrays)

    def typed(t: Any, x: Any) -> Any:
        if isinstance(t, jax.Array) and jnp.issubdtype(t.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(jnp.asarray(x), impl=jax.random.key_impl(t))
        return jnp.asarray(x, dtype=t.dtype)

    leaves = [typed(t, x) for t, x in zip(t_leaves, a_leaves, strict=True)]
    s_leaves, s_def = jax.tree_util.tree_flatten(state)
    if len(s_leaves) != len(leaves):  # pragma: no cover - a bug in nnlang
        raise AssertionError("state and its pure dict disagree")
    return jax.tree_util.tree_unflatten(s_def, leaves)


def _flat(tree: Any) -> dict[str, tuple[int, ...]]:
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        key = ".".join(str(getattr(p, "key", getattr(p, "idx", p))) for p in path)
        out[key] = tuple(getattr(leaf, "shape", ()))
    return out


def diff(saved: Any, current: Any) -> list[str]:
    """Human-readable differences between two array trees (paths and shapes)."""
    a, b = _flat(saved), _flat(current)
    lines = []
    for k in sorted(set(a) | set(b)):
        if k not in b:
            lines.append(f"- {k} {list(a[k])} (in the checkpoint, not in the model)")
        elif k not in a:
            lines.append(f"+ {k} {list(b[k])} (in the model, not in the checkpoint)")
        elif a[k] != b[k]:
            lines.append(f"~ {k}: checkpoint {list(a[k])}, model {list(b[k])}")
    return lines


@contextmanager
def _quiet_asyncio(*names: str) -> Iterator[None]:
    """Orbax reads arrays in asyncio tasks; when a file is corrupt every failed task is
    also logged with a traceback. The error is reported once, as a diagnostic. Writes
    run in Orbax's threads, which log their failure with a traceback on the ``absl``
    logger (``names``) before the error reaches the caller."""
    logs = [logging.getLogger(n) for n in ("asyncio", *names)]
    levels = [log.level for log in logs]
    for log in logs:
        log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for log, level in zip(logs, levels, strict=True):
            log.setLevel(level)


#: Orbax's temporary step folders end with this (``22.orbax-checkpoint-tmp``, some
#: versions add ``-<timestamp>``): a save that was not committed.
TMP_MARK = ".orbax-checkpoint-tmp"
#: Where deleted checkpoints are renamed before their files are removed.
TRASH = ".deleted"


def discard_incomplete(directory: Path) -> list[str]:
    """Remove what a process killed while saving left in ``directory``: temporary step
    folders (uncommitted checkpoints) and the trash of deleted ones. Returns the names
    of the uncommitted checkpoints removed. Only the holder of the run's lock calls it
    (a reader must not remove the folder a running trainer is writing)."""
    if not directory.is_dir():
        return []
    removed = []
    for p in sorted(directory.iterdir()):
        if TMP_MARK in p.name and p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p.name)
    _empty_trash(directory)
    return removed


def _empty_trash(directory: Path) -> None:
    trash = directory / TRASH
    if trash.is_dir() and not trash.is_symlink():
        shutil.rmtree(trash, ignore_errors=True)


class Checkpoints:
    def __init__(self, directory: Path, *, keep: int = 3, create: bool = True) -> None:
        self.directory = Path(directory).absolute()
        # A checkpoint's stored "score" is always higher-is-better (save() signs it), so
        # any reader agrees on the best one without knowing the run's monitor.
        policy = policies.AnyPreservationPolicy(
            [
                policies.LatestN(n=keep),
                policies.BestN(
                    get_metric_fn=lambda m: float(m["score"]),
                    n=1,
                    keep_checkpoints_without_metrics=False,
                ),  # mid-epoch (interrupt) saves: LatestN only
            ]
        )
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                create=create,
                enable_async_checkpointing=False,
                # deleting an old checkpoint renames it away first (atomic); see _empty_trash
                todelete_subdir=TRASH,
                preservation_policy=policy,
                # best_fn makes Orbax store each checkpoint's metrics, so best_step() and the
                # BestN policy still know them after the manager is reopened (--resume, eval)
                best_fn=lambda m: float(m["score"]),
                best_mode="max",
            ),
            item_handlers={
                "state": ocp.StandardCheckpointHandler(),
                "progress": ocp.JsonCheckpointHandler(),
            },
        )

    def save(
        self,
        step: int,
        state: Any,
        progress: dict[str, Any],
        score: float | None,
        greater_is_better: bool = True,
    ) -> None:
        """Write checkpoint ``step`` of ``state`` (an nnx State, or what :func:`held`
        made of one) and wait for it. A full disk, a folder that cannot be written or a
        file size limit is E701/E702/E703 naming the checkpoint folder (exit 3), with no
        traceback from Orbax's writer threads."""
        ok = score is not None and np.isfinite(score)
        metrics = {"score": float(score if greater_is_better else -score)} if ok else None  # type: ignore[operator]
        try:
            with _quiet_asyncio("absl", "orbax"):
                self.manager.save(
                    step,
                    args=ocp.args.Composite(
                        state=ocp.args.StandardSave(
                            state.arrays if isinstance(state, Held) else to_arrays(state)
                        ),
                        progress=ocp.args.JsonSave(progress),
                    ),
                    metrics=metrics,
                    force=True,
                )
                self.manager.wait_until_finished()
                if hosts.primary():  # one process empties what Orbax renamed away
                    _empty_trash(self.directory)
        except Exception as e:  # noqa: BLE001 - Orbax/TensorStore raise bare ValueError/Exception
            env = environment_error(e, self.directory / str(step))
            if env is None:
                raise
            env.notes.append(
                "the checkpoints written before this one are untouched; "
                "free space and resume with --resume"
            )
            raise NNError(env) from None

    def latest(self) -> int | None:
        return self.manager.latest_step()

    def best(self) -> int | None:
        return self.manager.best_step()

    def steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def restore(
        self, step: int, state: Any, *, what: str = "the model"
    ) -> tuple[Any, dict[str, Any]]:
        """Restore into the structure of ``state``; a mismatch is E502 with the diff."""
        current = to_arrays(state)
        try:
            meta = self.manager.item_metadata(step)
            saved_tree = meta["state"] if meta is not None and "state" in meta else None
        except Exception:  # metadata unreadable: fall through to the restore's own error
            saved_tree = None
        if saved_tree is not None:
            changes = diff(saved_tree, current)
            if changes:
                raise self._mismatch(
                    step,
                    what,
                    changes,
                    "train from scratch into a new run directory, "
                    "or restore the .nn file the run was made with",
                )
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, current)
        with _quiet_asyncio():
            restored = self._restore_all(step, abstract)
        return from_arrays(state, restored["state"]), dict(restored["progress"])

    def _restore_all(self, step: int, abstract: Any) -> Any:
        try:
            return self.manager.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract), progress=ocp.args.JsonRestore()
                ),
            )
        except Exception as e:  # noqa: BLE001 - Orbax/TensorStore raise bare Exception for bad files
            raise self._unreadable(step, e) from None

    def _mismatch(self, step: int, what: str, changes: list[str], help: str) -> NNError:
        """E502: the checkpoint's arrays differ from the model's (the first 20 listed)."""
        notes = changes[:20] + ([f"... and {len(changes) - 20} more"] if len(changes) > 20 else [])
        return NNError(
            Diagnostic(
                "E502",
                f"checkpoint {step} in `{self.directory}` does not match {what}",
                help=help,
                notes=notes,
            )
        )

    def _unreadable(self, step: int, e: BaseException) -> NNError:
        """E503 for a corrupt or truncated checkpoint, offering the one before it."""
        while e.__cause__ is not None:  # TensorStore's own reason is the innermost one
            e = e.__cause__
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        reason = reason if len(reason) < 200 else reason[:200] + "..."
        earlier = sorted(s for s in self.steps() if s < step)
        where = self.directory / str(step)
        help = (
            f"move `{where}` aside and resume again: the previous checkpoint is {earlier[-1]}"
            if earlier
            else "no earlier checkpoint exists; train again into a new run directory"
        )
        return NNError(
            Diagnostic(
                "E503",
                f"checkpoint {step} in `{self.directory}` cannot be read (corrupt or truncated)",
                help=help,
                notes=[reason],
            )
        )

    def progress(self, step: int) -> dict[str, Any]:
        """The JSON progress record of checkpoint ``step`` alone (which phase it is in
        tells what state to restore it into)."""
        try:
            with _quiet_asyncio():
                got = self.manager.restore(
                    step, args=ocp.args.Composite(progress=ocp.args.JsonRestore())
                )
        except Exception as e:  # noqa: BLE001 - see restore()
            raise self._unreadable(step, e) from None
        return dict(got["progress"])

    def restore_raw(self, step: int) -> Any:
        """The model part of a checkpoint as saved (nested dicts of arrays; None if it
        holds none), whatever model reads it: fine-tuning matches it by name."""
        try:
            with _quiet_asyncio():
                raw = self.manager.restore(
                    step, args=ocp.args.Composite(state=ocp.args.StandardRestore(None))
                )["state"]
        except Exception as e:  # noqa: BLE001 - see restore()
            raise self._unreadable(step, e) from None
        return raw.get("0", raw.get(0)) if isinstance(raw, dict) else None

    def close(self) -> None:
        self.manager.close()
