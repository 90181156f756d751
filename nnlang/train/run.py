"""A training run: from a .nn file to a run directory with checkpoints and metrics.

:func:`setup` parses, checks and resolves what a run needs (also for eval, predict and
export, through :mod:`nnlang.train.trained`); :func:`train` is ``nnlang train``. The run
directory's layout (and its lock, held while :func:`train` writes into it) is in
:mod:`nnlang.train.rundir`, the epoch loop and its checkpointed progress in
:mod:`nnlang.train.epochs`, the display in :mod:`nnlang.train.progress`.

May import the stages before ``train`` and the ``train`` modules other than ``trained``.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jax

from nnlang.diagnostics import Diagnostic, NNError, Reporter, did_you_mean, render
from nnlang.environment import environment_error
from nnlang.graph.build import build as build_graph
from nnlang.graph.checks import Budget, check_budget, memory_of
from nnlang.graph.graph import Graph
from nnlang.graph.overrides import model_overrides
from nnlang.graph.program import Program, load
from nnlang.lower.network import Network, lower
from nnlang.train import datainit, finetune, hosts, phaserun, sharding, tblog, trackers
from nnlang.train.checkpoint import Checkpoints, discard_incomplete
from nnlang.train.dataload import unscale_metrics
from nnlang.train.epochs import EpochLoop, TrainProgress, monitor_of
from nnlang.train.loop import Data, Engine, make_engine
from nnlang.train.loop import load as load_data
from nnlang.train.preflight import check_memory, settle_warnings
from nnlang.train.progress import Progress, starting
from nnlang.train.rules import write_maps
from nnlang.train.rundir import (
    RunLock,
    best_epoch,
    confine_run,
    latest_run_dir,
    next_run_dir,
    notice,
    plot_curves,
    write_metrics,
    write_result,
    write_settings,
)
from nnlang.train.settings import apply_overrides
from nnlang.train.spec import TrainSpec, build_spec
from nnlang.train.versions import warn_if_other

CHUNK_STEPS = 500  # at most this many steps between two looks at Ctrl-C / SIGTERM


def enable_compilation_cache(enabled: bool = True) -> None:
    """JAX's persistent compilation cache, in the user's cache folder, so a second run
    of the same model does not compile again (NNLANG_NO_CACHE=1 or --no-cache: off)."""
    if not enabled or os.environ.get("NNLANG_NO_CACHE"):
        return
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "nnlang" / "jax"
    try:
        base.mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(base))
        # every program, however quick to compile: the small ones of a run's start (the
        # initial state, the data order) cost 5-100 ms each to compile again, 3-4 from here
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    except (OSError, AttributeError):  # read-only home: run without the cache
        pass


def device_memory() -> tuple[int, str] | None:
    """An accelerator's memory as XLA reports it (its allocator's limit); None on the
    CPU backend, where the host's memory is the limit (graph.checks.memory_of)."""
    if jax.default_backend() == "cpu":
        return None
    try:
        stats = jax.local_devices()[0].memory_stats() or {}
    except Exception:  # noqa: BLE001 - not every backend reports memory
        return None
    limit = stats.get("bytes_limit")
    return (int(limit), f"the {jax.devices()[0].device_kind} device's memory") if limit else None


@dataclass
class Setup:
    program: Program
    graph: Graph
    spec: TrainSpec
    model_args: dict[str, Any]


def setup(
    file: str | Path,
    model: str | None = None,
    sets: list[str] | None = None,
    budget: Budget | None = None,
) -> Setup:
    """Parse, check and resolve everything a run needs; raises NNError on any mistake."""
    program = load(file)
    decl = program.model(model)
    if decl is None:
        names = [m.name for m in program.models]
        raise NNError(
            Diagnostic(
                "E108",
                f"no model named `{model}`" if model else f"`{file}` defines no model",
                None,
                help=did_you_mean(model or "", names) or f"models: {', '.join(names) or 'none'}",
            )
        )
    train = program.train_for(decl.name)
    if train is None:
        raise NNError(
            Diagnostic(
                "E402",
                f"`{file}` has no `train {decl.name} {{ ... }}` section",
                decl.name_span,
                help="add one with at least `data` and `loss`; see docs/train.md",
            )
        )
    try:
        extra_args, setting_overrides = apply_overrides(program, train, sets or [])
        rep = Reporter()
        graph = build_graph(
            program, decl.name, model_overrides(program, decl.name, extra_args), rep
        )
        check_budget(graph, budget or Budget(), rep)
        spec = build_spec(program, train, graph, rep, setting_overrides)
        if spec is not None and not rep.errors:
            check_memory(graph, spec, rep, memory_of(budget or Budget(), device_memory()))
        if rep.errors or spec is None:
            raise NNError(rep.diagnostics)
    except NNError as e:
        e.sources = program.sources
        raise
    return Setup(program, graph, spec, dict(graph.args))


# ------------------------------------------------------------------ train
@dataclass
class RunResult:
    run_dir: Path
    history: list[dict[str, Any]]
    test: dict[str, float]
    stopped: str  # "finished", "early_stop", "interrupted"
    model: Network
    steps: int
    train_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def train(file: str | Path, **kwargs: Any) -> RunResult:
    """Train a model from a .nn file, like `nnlang train` (options: model, sets, out,
    resume, progress, cache, chunk_steps, max_epochs, budget, curves). Every NNError carries the
    sources, so diagnostics show the offending line."""
    program_sources = None
    try:
        return _train(file, **kwargs)
    except NNError as e:
        if e.sources is None:
            try:
                program_sources = load(file).sources
            except NNError:
                program_sources = None
            e.sources = program_sources
        raise


def _train(
    file: str | Path,
    *,
    model: str | None = None,
    sets: list[str] | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    cache: bool = True,
    chunk_steps: int = CHUNK_STEPS,
    max_epochs: int | None = None,
    budget: Budget | None = None,
    curves: bool = False,
) -> RunResult:
    """Train a model from a .nn file, like `nnlang train`. ``max_epochs`` stops after
    that many epochs in this call (the run can be resumed), for tests and tools."""
    enable_compilation_cache(cache)
    sets = list(sets or [])
    s = setup(file, model, sets, budget)
    spec, graph = s.spec, s.graph
    base = Path(out) if out else Path("runs") / Path(file).stem
    if hosts.current().count > 1 and not out:  # every process must name the same folder
        raise NNError(
            Diagnostic(
                "E706",
                "a run of several processes needs `--out DIR`, one folder all of them reach",
                help="give every process the same --out (a shared file system across machines)",
            )
        )
    if resume:
        run = base if (base / "checkpoints").is_dir() else latest_run_dir(base)
        if run is None:
            raise NNError(
                Diagnostic(
                    "E503",
                    f"nothing to resume: no checkpoints under `{base}`",
                    help="start the run without --resume",
                )
            )
        if (run / "settings.json").is_file():
            warn_if_other(run, json.loads((run / "settings.json").read_text("utf-8")))
    else:
        run = base if out and not (base / "checkpoints").exists() else next_run_dir(base)
    device = device_memory()
    data = load_data(graph, spec, s.program.root, None if device is None else device[0])
    if "train" not in data.splits:  # pragma: no cover - validated by the data layer
        raise NNError(Diagnostic("E407", "the data has no training split", spec.data.span))
    plan = None
    if spec.init_from and not resume:  # the report comes before anything is compiled
        plan = finetune.prepare(spec, s.program.root, graph)
    starting(  # the data is read and checked: what follows is compilation
        f"compiling {graph.name} ({graph.total_params():,} parameters) for {jax.default_backend()} ...",
        progress,
    )
    net = lower(graph, spec.seed)
    shapes = {
        k: tuple(v.shape[1:]) for k, v in data.splits["train"].items() if k in net.input_names
    }
    engine = make_engine(graph, spec, net, data.size("train"), shapes)
    engines = phaserun.engines_for(graph, spec, engine, data.size("train"), shapes)
    for e in engines:  # metrics of a normalised target in its own units
        unscale_metrics(e.metrics, data.normalizers)
    if not resume:
        for w in settle_warnings(graph, spec, engine.steps_per_epoch * spec.epochs):
            print(render(w, s.program.sources), file=sys.stderr)
    has_val = "val" in data.splits
    monitor = [monitor_of(e.spec, e, has_val) for e in engines][-1][0]  # E403 before any run
    for e in engines:
        e.check_traces(train_arrays_shapes(data), e.spec)
    options: dict[str, Any] = {
        "progress": progress,
        "chunk_steps": chunk_steps,
        "max_epochs": max_epochs,
        "curves": curves,
    }
    trackers.require(spec)  # E705 before the run directory is made
    hosts.barrier("nnlang-run-dir")  # each process chose the folder before any made it
    run.mkdir(parents=True, exist_ok=True)
    # E510 while another process trains into it; a distributed run's other processes
    # write no logs (train.hosts) and take no lock
    lock = RunLock.acquire(run) if hosts.primary() else None
    try:
        return _train_locked(s, run, resume, data, engines, monitor, sets, plan, **options)
    finally:
        tblog.close(run)  # however the run ended (paused, interrupted, diverged)
        trackers.close(run)  # still open: it stopped without a result
        if lock is not None:
            lock.release()


def _train_locked(
    s: Setup,
    run: Path,
    resume: bool,
    data: Data,
    engines: list[Engine],
    monitor: str,
    sets: list[str],
    plan: finetune.Plan | None,
    *,
    progress: bool,
    chunk_steps: int,
    max_epochs: int | None,
    curves: bool,
) -> RunResult:
    """The run itself, under the run directory's lock: restore or start, the epoch loop,
    the result."""
    spec, graph = s.spec, s.graph
    has_val = "val" in data.splits
    if resume:
        confine_run(run)  # E511: nothing in it may lead out of it or block a reader
        hosts.barrier("nnlang-confined")  # every process's walk done before any removal
    dropped = discard_incomplete(run / "checkpoints") if hosts.primary() else []
    if dropped:
        notice(f"removed an incomplete checkpoint left by a killed run: {', '.join(dropped)}")
    hosts.barrier("nnlang-checkpoints")
    ckpts = Checkpoints(run / "checkpoints", keep=spec.keep)
    specs, engine = phaserun.specs_of(spec), engines[-1]
    state = engines[0].state
    prog = TrainProgress()
    step = ckpts.latest() if resume else None
    if resume and step is None:
        notice(
            f"`{run}` has no complete checkpoint yet (the first one was interrupted); training from the start"
        )
    if step is not None:
        phase = min(int(ckpts.progress(step).get("phase", 0)), len(engines) - 1)
        state = engines[phase].state  # the state of the phase the checkpoint is in
        state, rec = ckpts.restore(step, state, what=f"model `{graph.name}`")
        prog = TrainProgress.from_record(rec)
    else:
        state = datainit.initialise(
            engines[0].train_def, state, data.splits["train"], engine.input_names, spec.seed
        )
        if spec.init_from and plan is None:  # --resume found no checkpoint to resume
            plan = finetune.prepare(spec, s.program.root, graph)
        if plan is not None:
            state = finetune.init_from(plan, state, engines[0])
        write_settings(run, s.program, graph, spec, s.model_args, data, sets)
    # metrics.jsonl holds exactly the epochs the checkpoint covers (lines a killed run
    # wrote after its last checkpoint are dropped, so no epoch is listed twice)
    write_metrics(run, prog.history)
    if hosts.primary():  # the logs and trackers are process 0's
        tblog.log_graph(run, graph)  # after write_metrics, which starts the event files afresh
        trackers.start(run, spec)
    # a streamed split stays where it is (train.stream reads it batch by batch)
    train_arrays = (
        data.splits["train"] if data.streamed else sharding.place(engine.dp, data.splits["train"])
    )
    if engine.dp is not None and progress:
        print(f"training on {sharding.describe(engine.dp)}", file=sys.stderr, flush=True)
    if data.streamed and progress:
        size = sum(a.nbytes for a in data.splits["train"].values()) / 2**20
        print(
            f"streaming the training split through Grain ({data.size('train'):,} examples, "
            f"{size:.1f} MiB)",
            file=sys.stderr,
            flush=True,
        )
    total = phaserun.offsets(engines, specs)[-1]
    bar = Progress(total, phaserun.position(engines, specs, prog), progress)
    names = phaserun.names_of(spec)

    def make_loop(k: int, left: int | None) -> EpochLoop:
        mon, greater = monitor_of(specs[k], engines[k], has_val)
        loop = EpochLoop(
            engines[k],
            specs[k],
            data,
            train_arrays,
            ckpts,
            run,
            bar,
            mon,
            greater,
            chunk_steps,
            left,
        )
        loop.offset, loop.phase = phaserun.offsets(engines, specs)[k], names[k]
        loop.scored = k == len(engines) - 1
        if data.streamed:
            from nnlang.train.stream import Feed  # Grain: the optional `stream` extra

            loop.feed = Feed(engines[k], train_arrays)
        return loop

    try:
        with out_of_memory_at(spec):
            state, stopped, prog, loop = phaserun.run(
                engines, specs, state, prog, make_loop, max_epochs
            )
    finally:
        bar.close()
    result_state = state
    test: dict[str, float] = {}
    best_info: dict[str, Any] | None = None
    if stopped in ("finished", "early_stop"):
        best = ckpts.best()  # the reported model is the best checkpoint, as `eval` uses
        if best is not None and best != ckpts.latest():
            result_state, _ = ckpts.restore(best, state, what=f"model `{graph.name}`")
        split = "test" if "test" in data.splits else ("val" if has_val else "train")
        with out_of_memory_at(spec):
            test = engine.evaluate(result_state, data.splits[split])
        check_finite_result(test, split, spec, run, ckpts.best() or ckpts.latest())
        test = {"split": split, **test}  # type: ignore[dict-item]
        chosen = ckpts.best() or ckpts.latest()
        latest_is_best = spec.monitor is None and not has_val
        # only the last phase's checkpoints are scored; its epochs count from 0
        start = phaserun.offsets(engines, specs)[len(engines) - 1]
        last = [h for h in prog.history if h.get("phase", names[-1]) == names[-1]]
        best_info = best_epoch(
            last,
            None if chosen is None else (chosen - start) // engine.steps_per_epoch,
            monitor,
            monitor_of(spec, engine, has_val)[1],
            latest_is_best,
        )
        write_result(run, test, stopped, prog.epoch, best_info)
        if curves and hosts.primary():  # asked for: matplotlib's import and drawing ~1-2 s
            plot_curves(prog.history, run / "curves.png")
    ckpts.close()
    nnx_model = _merge_model(engines[prog.phase], result_state)
    if stopped in ("finished", "early_stop") and hosts.primary():
        write_maps(graph, nnx_model, run)
    return RunResult(
        run,
        prog.history,
        test,
        stopped,
        nnx_model,
        phaserun.position(engines, specs, prog),
        prog.train_seconds,
        {
            "signal": loop.signal,
            "monitor": monitor,
            "best": best_info,
            "devices": 1 if engine.dp is None else engine.dp.size,
        },
    )


@contextmanager
def out_of_memory_at(spec: TrainSpec) -> Iterator[None]:
    """XLA's RESOURCE_EXHAUSTED (or a MemoryError) while training or evaluating is
    E704 at the `batch` setting, naming the batch size (exit 3: the machine's limit)."""
    try:
        yield
    except NNError:
        raise
    except Exception as e:  # noqa: BLE001 - XLA raises its own runtime error type
        d = environment_error(e)
        if d is None or d.code != "E704":
            raise
        raise NNError(
            replace(
                d,
                message=f"{d.message} training with `batch = {spec.batch}`",
                span=spec.spans.get("batch"),
                help=f"lower `batch` (--set batch={max(1, spec.batch // 2)}); "
                "`nnlang check` estimates the activation memory of one batch",
            )
        ) from None


def check_finite_result(
    values: dict[str, float], split: str, spec: TrainSpec, run: Path, step: int | None
) -> None:
    """E505: an evaluation that is NaN or infinite is no result. Every applied update
    was finite (the step's guard), so the weights are; what overflowed is the model's
    outputs or the loss on this split."""
    bad = {k: v for k, v in values.items() if not math.isfinite(v)}
    if not bad:
        return
    shown = ", ".join(f"{k}={v}" for k, v in bad.items())
    raise NNError(
        Diagnostic(
            "E505",
            f"the trained model's evaluation on the {split} split is not finite: {shown}",
            spec.spans.get("loss"),
            help="the weights are finite: the outputs overflow on this split. In `f16`, "
            "compute in `f32` or `bf16` (`cast`), or normalise the data (`normalize = standardize`)",
            notes=[
                f"the checkpoints in `{run / 'checkpoints'}` are kept (step {step}); "
                "no result.json was written"
            ],
        )
    )


def train_arrays_shapes(data: Data) -> dict[str, Any]:
    return {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in data.splits["train"].items()}


def _merge_model(engine: Engine, state: Any) -> Network:
    from flax import nnx

    model, _ = nnx.merge(engine.eval_def, state)
    return model
