"""The epoch loop of a run: chunks of steps, per-epoch records, checkpoints, early stop.

:class:`TrainProgress` is what a checkpoint's JSON ``progress`` record holds (position,
running loss, history, best score); :class:`EpochLoop` advances it from wherever it
stands — a fresh run or a resumed checkpoint — to the end, an early stop, a pause
(``max_epochs``) or Ctrl-C / SIGTERM / SIGHUP, and saves checkpoints on the way. Its
line in metrics.jsonl is appended when an epoch ends; a resumed run rewrites the file
from the checkpoint's history first (``rundir.write_metrics``), so an epoch a killed
run listed after its last checkpoint is not listed twice.

A streamed run (``stream``) takes its batches from a :class:`nnlang.train.stream.Feed`,
whose place in the epoch is part of the progress record.

May import NumPy, ``diagnostics``, ``train.checkpoint``, ``train.loop``,
``train.progress`` and ``train.spec``.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np

from nnlang.diagnostics import Diagnostic, NNError, did_you_mean
from nnlang.train import hosts, tblog
from nnlang.train.checkpoint import Checkpoints, held
from nnlang.train.guard import BAD, Chunk
from nnlang.train.loop import Data, Engine, current_lr, label
from nnlang.train.progress import Progress, fmt_metrics
from nnlang.train.rundir import append_metrics
from nnlang.train.spec import TrainSpec


@dataclass
class TrainProgress:
    """Where a run stands; saved with every checkpoint (as :meth:`to_record`)."""

    epoch: int = 0  # epochs completed
    step_in_epoch: int = 0  # steps done in the current epoch
    loss_sum: float = 0.0  # training loss summed over the current epoch's steps
    loss_steps: int = 0
    skipped: int = 0  # steps skipped in the current epoch (`nonfinite = skip`)
    history: list[dict[str, Any]] = field(default_factory=list)  # one record per epoch
    best: float | None = None  # the best monitored score so far
    bad_epochs: int = 0  # epochs since it last improved
    train_seconds: float = 0.0
    phase: int = 0  # the phase it is in (`phase` blocks; 0 without them)
    #: a streamed run's place in the epoch's Grain pipeline (train.stream.Feed.place)
    stream: dict[str, Any] | None = None
    #: the training metrics' statistics summed over the current epoch's applied steps
    metric_sums: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "loss_sum": self.loss_sum,
            "loss_steps": self.loss_steps,
            "skipped": self.skipped,
            "history": self.history,
            "best": self.best,
            "bad_epochs": self.bad_epochs,
            "train_seconds": self.train_seconds,
            "phase": self.phase,
            **({"stream": self.stream} if self.stream is not None else {}),
            "metric_sums": {
                k: {s: np.asarray(v).tolist() for s, v in d.items()}
                for k, d in self.metric_sums.items()
            },
        }

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> TrainProgress:
        return cls(
            epoch=int(rec.get("epoch", 0)),
            step_in_epoch=int(rec.get("step_in_epoch", 0)),
            loss_sum=rec.get("loss_sum", 0.0),
            loss_steps=rec.get("loss_steps", 0),
            skipped=int(rec.get("skipped", 0)),
            history=list(rec.get("history", [])),
            best=rec.get("best"),
            bad_epochs=rec.get("bad_epochs", 0),
            train_seconds=float(rec.get("train_seconds", 0.0)),
            phase=int(rec.get("phase", 0)),
            stream=rec.get("stream"),
            metric_sums={
                k: {s: np.asarray(v, np.float64) for s, v in d.items()}
                for k, d in rec.get("metric_sums", {}).items()
            },
        )

    def add_metrics(self, sums: dict[str, dict[str, Any]]) -> None:
        """Add a chunk's training-metric statistics (summed on the host in float64)."""
        for k, d in sums.items():
            mine = self.metric_sums.setdefault(k, {})
            for s, v in d.items():
                mine[s] = mine.get(s, 0.0) + np.asarray(v, np.float64)


def monitor_of(spec: TrainSpec, engine: Engine, has_val: bool) -> tuple[str, bool]:
    """The value that selects the best checkpoint and drives early stopping, and whether
    greater is better; E403 if it needs a validation split the data lacks."""
    monitor = spec.monitor or ("val_loss" if has_val else "loss")
    # The name was checked with the train section (`spec._check_monitor`); what only the
    # data tells is whether there is a validation split to measure it on.
    if monitor.startswith("val_") and not has_val:
        train = ["loss", *(label(m) for m in engine.train_metrics)]
        hint = did_you_mean(monitor, train) or f"values reported per epoch: {', '.join(train)}"
        hint += "; validation values need a validation split: add `val = 0.1` to the data source"
        raise NNError(
            Diagnostic(
                "E403",
                f"`monitor = {monitor}` names no value reported per epoch",
                spec.spans.get("monitor"),
                help=hint,
            )
        )
    bare = monitor.removeprefix("val_")
    greater = bare != "loss" and next(
        m.greater_is_better for m in engine.metrics if label(m) == bare
    )
    return monitor, greater


@dataclass
class EpochLoop:
    """Everything the loop reads and does not change."""

    engine: Engine
    spec: TrainSpec
    data: Data
    train_arrays: dict[str, Any]  # the training split, on the device
    ckpts: Checkpoints
    run: Path
    bar: Progress
    monitor: str
    greater: bool
    chunk_steps: int
    max_epochs: int | None = None
    signal: int | None = None  # the signal that interrupted the run, if one did
    offset: int = 0  # the steps of the phases before this one (checkpoints count all)
    phase: str | None = None  # the phase's name, in the records and on the progress lines
    scored: bool = True  # False in a phase before the last: its checkpoints are no "best"
    epochs_run: int = 0  # epochs completed in this call
    #: the best epoch not yet written (step, host copy, progress record, score): a save by
    #: time writes it first, so the best checkpoint is the best epoch's, as if every
    #: epoch were saved
    pending: tuple[int, Any, dict[str, Any], float] | None = None
    last_save: float = field(default_factory=time.monotonic)
    #: a streamed run's batches (train.stream.Feed; None: the split is on the device)
    feed: Any = None

    def run_until_stop(self, state: Any, p: TrainProgress) -> tuple[Any, str]:
        """Train from ``p`` on, updating it; returns the state and why it stopped:
        "finished", "early_stop", "paused" (``max_epochs``) or "interrupted"."""
        with StopFlag() as flag:
            try:
                return self._loop(state, p, flag)
            finally:
                self.signal = flag.signal

    def _loop(self, state: Any, p: TrainProgress, flag: StopFlag) -> tuple[Any, str]:
        engine, spec, ckpts = self.engine, self.spec, self.ckpts
        spe, epochs = engine.steps_per_epoch, spec.epochs
        has_val = "val" in self.data.splits
        # Without a validation split and without an explicit `monitor`, there is nothing
        # to select on (training loss is no model selection): the best checkpoint is the
        # latest.
        latest_is_best = spec.monitor is None and not has_val
        at = self.offset
        while p.epoch < epochs:
            start, end = p.step_in_epoch, min(spe, p.step_in_epoch + self.chunk_steps)
            t0 = time.perf_counter()
            allowed = spec.max_skipped - p.skipped
            if self.feed is None:
                state, c = engine.run(state, self.train_arrays, p.epoch, start, end, allowed)
            else:
                state, c = self.feed.run(state, p.epoch, start, end, allowed, p.stream)
                p.stream = self.feed.place()
            p.train_seconds += time.perf_counter() - t0
            # one decision for every process of a distributed run (train.hosts)
            stop, timed = hosts.agree(
                flag.signal is not None,
                time.monotonic() - self.last_save >= spec.checkpoint_seconds,
            )
            if flag.signal == signal.SIGHUP:  # the terminal is gone: writing to it would fail
                self.bar.silence()
            if c.why:  # the state is the last good one: the bad update was not applied
                raise self._diverged(c, p.epoch * spe + c.bad + 1, p.epoch)
            applied = c.done - c.skipped
            p.loss_sum += c.loss_sum
            p.loss_steps += applied
            p.skipped += c.skipped
            p.add_metrics(c.metrics)
            p.step_in_epoch = end
            loss = f"loss {c.loss_sum / max(applied, 1):.4f}"
            self.bar.update(c.done, loss, p.epoch + 1, epochs, self.phase)
            if p.step_in_epoch >= spe:
                record = self._record(state, p)
                p.epoch, p.step_in_epoch = p.epoch + 1, 0
                self.epochs_run += 1
                p.loss_sum, p.loss_steps, p.skipped = 0.0, 0, 0
                p.metric_sums = {}
                score = _score(record, self.monitor)
                improved = score is not None and (
                    p.best is None or (score > p.best if self.greater else score < p.best)
                )
                if improved:
                    p.best, p.bad_epochs = score, 0
                else:
                    p.bad_epochs += 1
                early = spec.patience is not None and p.bad_epochs >= spec.patience
                every = spec.checkpoint_every
                due = p.epoch % every == 0 if every is not None else timed
                paused = self.max_epochs is not None and self.epochs_run >= self.max_epochs
                # a pause writes one when saving by time: it is where resume picks up;
                # `checkpoint_every` keeps its own epochs
                pausing = paused and every is None
                step = at + p.epoch * spe
                if not (due or p.epoch == epochs or early or stop or pausing):
                    if improved and self.scored and not latest_is_best:  # written with the next
                        self.pending = (step, held(state), p.to_record(), score)
                else:
                    self._write_pending(step)
                    self.last_save = time.monotonic()
                    if not self.scored:
                        ckpts.save(step, state, p.to_record(), None)
                    elif latest_is_best:
                        ckpts.save(
                            step,
                            state,
                            p.to_record(),
                            float(p.epoch),
                            greater_is_better=True,
                        )
                    else:
                        ckpts.save(
                            step,
                            state,
                            p.to_record(),
                            score,
                            greater_is_better=self.greater,
                        )
                if early:
                    self.bar.epoch_line(
                        f"early stop: `{self.monitor}` did not improve for {spec.patience} epochs"
                    )
                    return state, "early_stop"
                if paused:
                    return state, "paused"
            if stop:
                if p.step_in_epoch != 0:
                    now = at + p.epoch * spe + p.step_in_epoch
                    self._write_pending(now)
                    ckpts.save(now, state, p.to_record(), None)
                return state, "interrupted"
        return state, "finished"

    def _write_pending(self, now: int) -> None:
        if self.pending is not None and self.pending[0] < now:
            step, arrays, record, score = self.pending
            self.ckpts.save(step, arrays, record, score, greater_is_better=self.greater)
        self.pending = None

    def _record(self, state: Any, p: TrainProgress) -> dict[str, Any]:
        """The epoch's line in metrics.jsonl (also appended to the history and shown)."""
        engine, epochs = self.engine, self.spec.epochs
        record: dict[str, Any] = {"phase": self.phase} if self.phase is not None else {}
        record["epoch"] = p.epoch + 1
        record["step"] = self.offset + (p.epoch + 1) * engine.steps_per_epoch
        if p.loss_steps:  # an epoch whose every step was skipped has no training loss
            record["loss"] = p.loss_sum / p.loss_steps
            for m in engine.train_metrics:  # measured on the training batches, as they ran
                if label(m) in p.metric_sums:
                    record[label(m)] = m.finalize(p.metric_sums[label(m)])
        lr = current_lr(engine, state)
        if lr is not None:
            record["lr"] = lr
        if self.spec.nonfinite == "skip":
            record["skipped"] = p.skipped
        if "val" in self.data.splits:
            record.update(
                {f"val_{k}": v for k, v in engine.evaluate(state, self.data.splits["val"]).items()}
            )
        record["seconds"] = round(p.train_seconds, 3)
        p.history.append(record)
        append_metrics(self.run, p.history)
        if self.spec.histograms:
            arrays = param_arrays(engine, state)  # on every process: a gather across hosts
            if hosts.primary():  # a distributed run's logs are process 0's
                tblog.log_histograms(self.run, tblog.x_of(record, len(p.history) - 1), arrays)
        self.bar.epoch_line(
            ("" if self.phase is None else f"phase {self.phase}: ")
            + f"epoch {p.epoch + 1}/{epochs}  "
            + fmt_metrics(
                {k: v for k, v in record.items() if k not in ("phase", "epoch", "step", "seconds")}
            )
        )
        return record

    def _diverged(self, c: Chunk, bad_step: int, epoch: int) -> NNError:
        """E501: the loss, the gradients or the update of step ``bad_step`` (1-based:
        checkpoints count completed steps) was NaN or infinite. That update was not
        applied, and nothing after it was saved."""
        spec = self.spec
        what = BAD[c.why]
        where = f"at step {bad_step} (epoch {epoch + 1})"
        if c.why == 1:
            msg = f"the loss `{spec.loss_text}` became {c.bad_loss} {where}"
        elif c.why == 2:
            msg = f"the gradients became non-finite {where}; the loss `{spec.loss_text}` was {c.bad_loss:.4g}"
        else:
            msg = (
                f"the update {where} made the {what} non-finite, from finite gradients; "
                f"the loss `{spec.loss_text}` was {c.bad_loss:.4g}"
            )
        if spec.nonfinite == "skip" and c.why != 3:
            msg += f", one skipped step more in this epoch than `max_skipped = {spec.max_skipped}` allows"
        hint = "lower the learning rate, add `clip = 1.0`, or normalise the data (`normalize = standardize`)"
        outcome = (
            "nothing after that step was saved"
            if c.why == 3
            else "the update of that step was not applied"
        )
        if spec.nonfinite != "skip":
            hint += "; for reduced precision (`f16`), `nonfinite = skip` skips such steps and counts them"
        return NNError(
            Diagnostic(
                "E501",
                msg,
                spec.spans.get("loss"),
                help=hint,
                notes=[
                    f"{outcome} and training stopped there; the last good checkpoint in "
                    f"`{self.run / 'checkpoints'}` was left untouched"
                    if self.ckpts.latest() is not None
                    else f"{outcome} and training stopped there, before its first checkpoint"
                ],
            )
        )


def _score(record: dict[str, Any], monitor: str) -> float | None:
    v = record.get(monitor)
    return float(v) if v is not None else None


def param_arrays(engine: Engine, state: Any) -> dict[str, np.ndarray]:
    """The model's parameters as host arrays by path (`enc/dense/kernel`): one copy
    from the device(s), for TensorBoard's histograms at an epoch's end. Every process
    of a distributed run calls it (the gather is collective)."""
    from flax import nnx

    model, _ = nnx.merge(engine.train_def, state)
    flat = jax.tree_util.tree_flatten_with_path(nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    named = {"/".join(str(getattr(k, "key", k)) for k in path): v for path, v in flat[0]}
    if jax.process_count() > 1:  # arrays sharded over other hosts' devices too
        from jax.experimental import multihost_utils

        named = multihost_utils.process_allgather(named, tiled=True)
    return {k.removeprefix("layers/"): np.asarray(v) for k, v in jax.device_get(named).items()}


# ------------------------------------------------------------------ interruption
class StopFlag:
    """Ctrl-C / SIGTERM / SIGHUP: finish the running chunk, checkpoint, tell how to resume."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            if s == signal.SIGHUP and signal.getsignal(s) == signal.SIG_IGN:
                continue  # under nohup: the run is meant to outlive its terminal
            try:
                self._old[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread (e.g. called from a worker)
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None and signum == signal.SIGHUP:
            return  # a hangup often comes twice (the terminal, then the shell): not "stop now"
        if self.signal is not None:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc: Any) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
