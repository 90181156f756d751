"""A training run: from a .nn file to a run directory with checkpoints and metrics.

Run directory layout (arrays and plain text only — nothing in it is ever executed):

    settings.json      resolved model arguments, train settings, data binding, versions
    sources/           the .nn source files as they were when the run started
    normalizer.npz     per-input normalisation statistics fitted on the training split
    metrics.jsonl      one JSON object per epoch
    curves.png         learning curves, written at the end
    checkpoints/       Orbax checkpoints (last N and the best)
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np

from nnlang.diagnostics import Diagnostic, NNError, Reporter, did_you_mean
from nnlang.fsio import atomic_write_bytes, atomic_write_text
from nnlang.graph.build import build as build_graph
from nnlang.graph.checks import Budget, check_budget
from nnlang.graph.graph import Graph
from nnlang.graph.overrides import model_overrides
from nnlang.graph.program import Program, load
from nnlang.lower.network import Network, lower
from nnlang.train.checkpoint import Checkpoints
from nnlang.train.data import normalizers_npz, read_normalizers_npz
from nnlang.train.loop import Data, Engine, StopFlag, current_lr, label, make_engine
from nnlang.train.loop import load as load_data
from nnlang.train.settings import apply_overrides
from nnlang.train.spec import TrainSpec, build_spec

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
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    except (OSError, AttributeError):  # read-only home: run without the cache
        pass


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
        if rep.errors or spec is None:
            raise NNError(rep.diagnostics)
    except NNError as e:
        e.sources = program.sources  # type: ignore[attr-defined]
        raise
    return Setup(program, graph, spec, dict(graph.args))


# ------------------------------------------------------------------ run directory
def next_run_dir(base: Path) -> Path:
    if not base.exists():
        return base
    i = 2
    while Path(f"{base}-{i}").exists():
        i += 1
    return Path(f"{base}-{i}")


def latest_run_dir(base: Path) -> Path | None:
    candidates = [
        p for p in [base, *base.parent.glob(base.name + "-*")] if (p / "checkpoints").is_dir()
    ]
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("nnlang", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def write_settings(run: Path, s: Setup, data: Data, sets: list[str]) -> None:
    spec = s.spec
    settings = {
        "model": s.graph.name,
        "model_args": s.model_args,
        "file": s.program.main,
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
            "monitor": spec.monitor,
            "patience": spec.patience,
            "init_from": spec.init_from,
        },
        "inputs": [
            {"name": p.name, "type": str(p.type), "data": data.mapping.get(p.name)}
            for p in s.graph.inputs
        ],
        "outputs": [{"name": p.name, "type": str(p.type)} for p in s.graph.outputs],
        "data": {"sizes": {k: data.size(k) for k in data.splits}, "meta": _jsonable(data.meta)},
        "versions": _versions(),
    }
    atomic_write_text(run / "settings.json", json.dumps(settings, indent=2, default=str) + "\n")
    for name, text in s.program.sources.texts.items():
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


def load_normalizers(run: Path) -> dict[str, Any]:
    path = run / "normalizer.npz"
    if not path.exists():
        return {}
    try:
        return read_normalizers_npz(path)
    except (OSError, ValueError, KeyError) as e:
        raise NNError(Diagnostic("E503", f"`{path}` cannot be read: {e}")) from None


# ------------------------------------------------------------------ progress
class Progress:
    """A rich progress bar with ETA and live loss on a terminal; one line per epoch
    otherwise (logs, CI)."""

    def __init__(self, total_steps: int, done: int, enabled: bool) -> None:
        self.enabled = enabled
        self.tty = enabled and sys.stderr.isatty()
        self.bar: Any = None
        if self.tty:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RP

            self.bar = RP(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
                transient=False,
            )
            self.bar.start()
            self.task = self.bar.add_task("train", total=total_steps, completed=done, info="")

    def update(self, steps: int, info: str, epoch: int, epochs: int) -> None:
        if self.bar is not None:
            self.bar.update(
                self.task, advance=steps, info=info, description=f"epoch {epoch}/{epochs}"
            )

    def epoch_line(self, line: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.console.print(line, highlight=False)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _fmt_metrics(m: dict[str, float], prefix: str = "") -> str:
    return " ".join(f"{prefix}{k}={v:.4f}" for k, v in m.items())


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


def _score(record: dict[str, Any], monitor: str) -> float | None:
    v = record.get(monitor)
    return float(v) if v is not None else None


def train(file: str | Path, **kwargs: Any) -> RunResult:
    """Train a model from a .nn file, like `nnlang train` (options: model, sets, out,
    resume, progress, cache, chunk_steps, max_epochs, budget). Every NNError carries the
    sources, so diagnostics show the offending line."""
    program_sources = None
    try:
        return _train(file, **kwargs)
    except NNError as e:
        if getattr(e, "sources", None) is None:
            try:
                program_sources = load(file).sources
            except NNError:
                program_sources = None
            e.sources = program_sources  # type: ignore[attr-defined]
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
) -> RunResult:
    """Train a model from a .nn file, like `nnlang train`. ``max_epochs`` stops after
    that many epochs in this call (the run can be resumed), for tests and tools."""
    enable_compilation_cache(cache)
    sets = list(sets or [])
    s = setup(file, model, sets, budget)
    spec, graph = s.spec, s.graph
    base = Path(out) if out else Path("runs") / Path(file).stem
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
    else:
        run = base if out and not (base / "checkpoints").exists() else next_run_dir(base)
    data = load_data(graph, spec, s.program.root)
    if "train" not in data.splits:  # pragma: no cover - validated by the data layer
        raise NNError(Diagnostic("E407", "the data has no training split", spec.data.span))
    net = lower(graph, spec.seed)
    shapes = {
        k: tuple(v.shape[1:]) for k, v in data.splits["train"].items() if k in net.input_names
    }
    engine = make_engine(graph, spec, net, data.size("train"), shapes)
    has_val = "val" in data.splits
    monitor = spec.monitor or ("val_loss" if has_val else "loss")
    # The name was checked with the train section (`spec._check_monitor`); what only the
    # data tells is whether there is a validation split to measure it on.
    if monitor != "loss" and not has_val:
        hint = did_you_mean(monitor, ["loss"]) or "values reported per epoch: loss"
        hint += "; metrics are measured on a validation split: add `val = 0.1` to the data source"
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
    engine.check_traces(train_arrays_shapes(data), spec)
    run.mkdir(parents=True, exist_ok=True)
    # Without a validation split and without an explicit `monitor`, there is nothing to
    # select on (training loss is no model selection): the best checkpoint is the latest.
    latest_is_best = spec.monitor is None and not has_val
    ckpts = Checkpoints(run / "checkpoints", keep=spec.keep)
    state = engine.state
    progress_rec: dict[str, Any] = {
        "epoch": 0,
        "step_in_epoch": 0,
        "loss_sum": 0.0,
        "loss_steps": 0,
        "history": [],
        "best": None,
        "bad_epochs": 0,
        "train_seconds": 0.0,
    }
    if resume:
        step = ckpts.latest()
        assert step is not None
        state, progress_rec = ckpts.restore(step, state, what=f"model `{graph.name}`")
    else:
        if spec.init_from:
            state = _init_from(spec, s, state, engine)
        write_settings(run, s, data, sets)
    train_arrays = {k: jax.device_put(v) for k, v in data.splits["train"].items()}
    spe, epochs = engine.steps_per_epoch, spec.epochs
    epoch, pos = int(progress_rec["epoch"]), int(progress_rec["step_in_epoch"])
    history: list[dict[str, Any]] = list(progress_rec["history"])
    bar = Progress(spe * epochs, epoch * spe + pos, progress)
    stopped = "finished"
    t_train = float(progress_rec["train_seconds"])
    epochs_this_call = 0
    metrics_file = run / "metrics.jsonl"
    try:
        with StopFlag() as flag:
            while epoch < epochs:
                start, end = pos, min(spe, pos + chunk_steps)
                t0 = time.perf_counter()
                state, done, loss_sum, last = engine.run(state, train_arrays, epoch, start, end)
                t_train += time.perf_counter() - t0
                if not np.isfinite(last):
                    bad_step = (
                        epoch * spe + start + done
                    )  # 1-based: checkpoints count completed steps
                    raise NNError(
                        Diagnostic(
                            "E501",
                            f"the loss `{spec.loss_text}` became {last} at step {bad_step} (epoch {epoch + 1})",
                            spec.spans.get("loss"),
                            help="lower the learning rate, add `clip = 1.0`, or normalise the data (`normalize = standardize`)",
                            notes=[
                                f"training stopped there; the last good checkpoint in `{run / 'checkpoints'}` was left untouched"
                                if ckpts.latest() is not None
                                else "training stopped there, before its first checkpoint"
                            ],
                        )
                    )
                progress_rec["loss_sum"] += float(loss_sum)
                progress_rec["loss_steps"] += done
                pos = end
                bar.update(done, f"loss {float(loss_sum) / max(done, 1):.4f}", epoch + 1, epochs)
                if pos >= spe:
                    record = {
                        "epoch": epoch + 1,
                        "step": (epoch + 1) * spe,
                        "loss": progress_rec["loss_sum"] / max(progress_rec["loss_steps"], 1),
                    }
                    lr = current_lr(engine, state)
                    if lr is not None:
                        record["lr"] = lr
                    if has_val:
                        record.update(
                            {
                                f"val_{k}": v
                                for k, v in engine.evaluate(state, data.splits["val"]).items()
                            }
                        )
                    record["seconds"] = round(t_train, 3)
                    history.append(record)
                    with open(metrics_file, "a", encoding="utf-8") as f:
                        f.write(json.dumps(record) + "\n")
                    bar.epoch_line(
                        f"epoch {epoch + 1}/{epochs}  "
                        + _fmt_metrics(
                            {
                                k: v
                                for k, v in record.items()
                                if k not in ("epoch", "step", "seconds")
                            }
                        )
                    )
                    epoch, pos = epoch + 1, 0
                    epochs_this_call += 1
                    progress_rec.update(loss_sum=0.0, loss_steps=0)
                    score = _score(record, monitor)
                    improved = score is not None and (
                        progress_rec["best"] is None
                        or (
                            score > progress_rec["best"]
                            if greater
                            else score < progress_rec["best"]
                        )
                    )
                    if improved:
                        progress_rec["best"], progress_rec["bad_epochs"] = score, 0
                    else:
                        progress_rec["bad_epochs"] += 1
                    progress_rec.update(
                        epoch=epoch, step_in_epoch=0, history=history, train_seconds=t_train
                    )
                    early = (
                        spec.patience is not None and progress_rec["bad_epochs"] >= spec.patience
                    )
                    if (
                        epoch % spec.checkpoint_every == 0
                        or epoch == epochs
                        or early
                        or flag.signal is not None
                    ):
                        if latest_is_best:
                            ckpts.save(
                                epoch * spe,
                                state,
                                progress_rec,
                                float(epoch),
                                greater_is_better=True,
                            )
                        else:
                            ckpts.save(
                                epoch * spe, state, progress_rec, score, greater_is_better=greater
                            )
                    if early:
                        stopped = "early_stop"
                        bar.epoch_line(
                            f"early stop: `{monitor}` did not improve for {spec.patience} epochs"
                        )
                        break
                    if max_epochs is not None and epochs_this_call >= max_epochs:
                        stopped = "paused"
                        break
                if flag.signal is not None:
                    if pos != 0:
                        progress_rec.update(
                            epoch=epoch, step_in_epoch=pos, history=history, train_seconds=t_train
                        )
                        ckpts.save(epoch * spe + pos, state, progress_rec, None)
                    stopped = "interrupted"
                    break
    finally:
        bar.close()
    result_state = state
    test: dict[str, float] = {}
    if stopped in ("finished", "early_stop"):
        best = ckpts.best()  # the reported model is the best checkpoint, as `eval` uses
        if best is not None and best != ckpts.latest():
            result_state, _ = ckpts.restore(best, state, what=f"model `{graph.name}`")
        split = "test" if "test" in data.splits else ("val" if has_val else "train")
        test = engine.evaluate(result_state, data.splits[split])
        test = {"split": split, **test}  # type: ignore[dict-item]
        atomic_write_text(
            run / "result.json",
            json.dumps({"test": test, "stopped": stopped, "epochs": epoch}, indent=2) + "\n",
        )
        _plot(history, run / "curves.png")
    ckpts.close()
    nnx_model = _merge_model(engine, result_state)
    return RunResult(
        run,
        history,
        test,
        stopped,
        nnx_model,
        epoch * spe + pos,
        t_train,
        {"signal": getattr(flag, "signal", None), "monitor": monitor},
    )


def train_arrays_shapes(data: Data) -> dict[str, Any]:
    return {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in data.splits["train"].items()}


def _merge_model(engine: Engine, state: Any) -> Network:
    from flax import nnx

    model, _ = nnx.merge(engine.eval_def, state)
    return model


def _init_from(spec: TrainSpec, s: Setup, state: Any, engine: Engine) -> Any:
    """Fine-tuning: take the parameters and batch statistics of another run's best
    checkpoint; the optimizer (which may differ) starts fresh."""
    from flax import nnx

    given = Path(spec.init_from or "")
    # like --out, a relative path is relative to the working directory; failing that,
    # to the .nn file's folder
    src = (
        given if given.is_absolute() or (given / "checkpoints").is_dir() else s.program.root / given
    )
    if not (src / "checkpoints").is_dir():
        raise NNError(
            Diagnostic(
                "E503",
                f"`init_from`: no checkpoints in `{spec.init_from}`",
                spec.spans.get("init_from"),
            )
        )
    ck = Checkpoints(src / "checkpoints", create=False)
    step = ck.best() or ck.latest()
    if step is None:
        raise NNError(
            Diagnostic(
                "E503",
                f"`init_from`: no checkpoints in `{spec.init_from}`",
                spec.spans.get("init_from"),
            )
        )
    model, opt = nnx.merge(engine.train_def, state)
    restored = ck.restore_model(step, nnx.state(model), what=f"model `{s.graph.name}` (init_from)")
    ck.close()
    nnx.update(model, restored)
    fresh = nnx.Optimizer(model, opt.tx, wrt=nnx.Param)
    return nnx.state((model, fresh))


def _plot(history: list[dict[str, Any]], path: Path) -> None:
    if not history:
        return
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in history[0] if k not in ("epoch", "step", "seconds", "lr")]
    groups: dict[str, list[str]] = {}
    for k in keys:
        groups.setdefault(k.removeprefix("val_"), []).append(k)
    fig, axes = plt.subplots(1, len(groups), figsize=(4.5 * len(groups), 3.5), squeeze=False)
    epochs = [h["epoch"] for h in history]
    for ax, (name, ks) in zip(axes[0], groups.items(), strict=True):
        for k in ks:
            ax.plot(
                epochs,
                [h.get(k, np.nan) for h in history],
                label="validation" if k.startswith("val_") else "train",
            )
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


# ------------------------------------------------------------------ eval / predict
def open_run(
    file: str | Path, run: str | Path, model: str | None = None
) -> tuple[Setup, Engine, Any, Path]:
    run = Path(run)
    if not (run / "settings.json").is_file() or not (run / "checkpoints").is_dir():
        raise NNError(
            Diagnostic(
                "E503",
                f"`{run}` is not a run directory (no settings.json or checkpoints/)",
                help="pass the folder `nnlang train` printed, e.g. --run runs/digits_mlp",
            )
        )
    settings = json.loads((run / "settings.json").read_text("utf-8"))
    s = setup(file, model or settings.get("model"), settings.get("overrides", []))
    net = lower(s.graph, s.spec.seed)
    ck = Checkpoints(run / "checkpoints", create=False)
    step = ck.best() or ck.latest()
    if step is None:
        raise NNError(Diagnostic("E503", f"`{run}` has no checkpoint yet"))
    shapes = {p.name: tuple(p.type.shape) for p in s.graph.inputs}
    engine = make_engine(s.graph, s.spec, net, s.spec.batch, shapes)
    state, _ = ck.restore(step, engine.state, what=f"model `{s.graph.name}`")
    ck.close()
    return s, engine, state, run


def evaluate_run(
    file: str | Path, run: str | Path, model: str | None = None
) -> dict[str, dict[str, float]]:
    s, engine, state, run = open_run(file, run, model)
    data = load_data(s.graph, s.spec, s.program.root)
    return {
        split: engine.evaluate(state, data.splits[split])
        for split in ("val", "test")
        if split in data.splits
    }


def predict_run(
    file: str | Path, run: str | Path, inputs: dict[str, np.ndarray], model: str | None = None
) -> dict[str, np.ndarray]:
    s, engine, state, run = open_run(file, run, model)
    norms = load_normalizers(Path(run))
    fixed = {}
    for p in s.graph.inputs:
        if p.name not in inputs:
            raise NNError(Diagnostic("E504", f"no data for model input `{p.name}` ({p.type})"))
        x = np.asarray(inputs[p.name])
        want = tuple(p.type.shape)
        if (
            x.shape[1:] != want
            and all(isinstance(d, int) for d in want)
            and int(np.prod(x.shape[1:])) == int(np.prod(want))
        ):
            x = x.reshape((x.shape[0], *want))
        if len(x.shape) - 1 != len(want) or any(
            isinstance(d, int) and d != a for d, a in zip(want, x.shape[1:], strict=False)
        ):
            raise NNError(
                Diagnostic(
                    "E504",
                    f"input `{p.name}` has shape {list(x.shape[1:])} per sample but the model declares {p.type}",
                    help="the first axis is the batch; the rest must match the declared shape",
                )
            )
        if p.name in norms:
            x = norms[p.name].apply(x)
        fixed[p.name] = x
    return engine.predict(state, fixed)
