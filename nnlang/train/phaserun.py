"""Training phases, run: one compiled :class:`~nnlang.train.loop.Engine` per phase, in the
declared order, the model's parameters handed from each phase to the next.

Each phase has its own engine (its loss, optimizer and schedule, trainable parts,
batch and metrics, so one jitted program per phase); the parameters, batch statistics,
RNG and rule states of the model carry over at a phase boundary, while the optimizer
starts afresh (its step count, moments and schedule belong to the phase). Checkpoints
number steps over the whole run (a phase's steps follow those of the phases before it)
and their progress record holds the phase (:attr:`TrainProgress.phase`) and the epoch
within it, so a resumed run restores into the right phase's state; a checkpoint taken
at the end of a phase resumes at the start of the next. Only the last phase's
checkpoints are scored, so the best checkpoint (what eval, predict and export open) is
one of the final model's.

May import JAX/Flax, ``lower``, ``train.epochs``, ``train.loop`` and ``train.spec``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flax import nnx

from nnlang.graph.graph import Graph
from nnlang.lower.network import lower
from nnlang.train.epochs import EpochLoop, TrainProgress
from nnlang.train.loop import Engine, make_engine
from nnlang.train.spec import TrainSpec


def specs_of(spec: TrainSpec) -> list[TrainSpec]:
    """The spec of every phase in order (the spec itself when there are no phases)."""
    return [ph.spec for ph in spec.phases] or [spec]


def names_of(spec: TrainSpec) -> list[str | None]:
    return [ph.name for ph in spec.phases] or [None]


def engines_for(
    graph: Graph, spec: TrainSpec, last: Engine, n_train: int, shapes: dict[str, Any]
) -> list[Engine]:
    """An engine per phase; ``last`` (made from ``spec``, the last phase's) is the last."""
    earlier = specs_of(spec)[:-1]
    return [make_engine(graph, s, lower(graph, s.seed), n_train, shapes) for s in earlier] + [last]


def offsets(engines: list[Engine], specs: list[TrainSpec]) -> list[int]:
    """The run's step count at the start of each phase, and at its end (one more)."""
    out = [0]
    for e, s in zip(engines, specs, strict=True):
        out.append(out[-1] + e.steps_per_epoch * s.epochs)
    return out


def position(engines: list[Engine], specs: list[TrainSpec], p: TrainProgress) -> int:
    """The steps a run at ``p`` has done, counted over all phases."""
    return (
        offsets(engines, specs)[p.phase]
        + p.epoch * engines[p.phase].steps_per_epoch
        + (p.step_in_epoch)
    )


def done(p: TrainProgress, spec: TrainSpec) -> bool:
    """Whether the phase ``p`` is in has ended: all its epochs, or an early stop."""
    return p.epoch >= spec.epochs or (spec.patience is not None and p.bad_epochs >= spec.patience)


def hand_over(src: Engine, state: Any, dst: Engine) -> Any:
    """The next phase's state: the model of ``state`` (``src``'s) with ``dst``'s fresh
    optimizer state."""
    model, _ = nnx.merge(src.train_def, state)
    nnx.update(dst.model, nnx.state(model))
    _, new = nnx.split((dst.model, dst.optimizer))
    return new


def run(
    engines: list[Engine],
    specs: list[TrainSpec],
    state: Any,
    p: TrainProgress,
    make_loop: Callable[[int, int | None], EpochLoop],
    max_epochs: int | None,
) -> tuple[Any, str, TrainProgress, EpochLoop]:
    """Train from ``p`` through the last phase, or until a pause or an interruption;
    returns the state, why it stopped, where it stands and the last phase's loop (its
    ``signal``). ``make_loop(k, max_epochs)`` is phase ``k``'s epoch loop."""
    left = max_epochs
    last = len(engines) - 1
    while True:
        k = p.phase
        if k < last and done(p, specs[k]):
            state = hand_over(engines[k], state, engines[k + 1])
            p = TrainProgress(history=p.history, train_seconds=p.train_seconds, phase=k + 1)
            continue
        loop = make_loop(k, left)
        state, stopped = loop.run_until_stop(state, p)
        if left is not None:
            left -= loop.epochs_run
        if k < last and stopped in ("finished", "early_stop"):
            if left is not None and left <= 0:
                return state, "paused", p, loop
            continue
        return state, stopped, p, loop
