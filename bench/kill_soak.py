"""Kill soak: `nnlang train` killed with SIGKILL at random moments, then resumed to the end.

    python bench/kill_soak.py                  # 200 trials
    python bench/kill_soak.py --trials 25 --jobs 2 --seed 1

Each trial trains examples/digits_mlp.nn small (`hidden=32`, `--epochs` epochs of 22
steps, a checkpoint every epoch, `keep=2` so old checkpoints are deleted as it goes) in
a fresh process and kills it with SIGKILL:

- in a quarter of the trials while Orbax writes the first checkpoint (the driver polls
  for its temporary folder and kills as soon as it appears);
- in another quarter just after an epoch's line reaches metrics.jsonl (its checkpoint
  is written after it): the driver watches the file grow, at a random epoch;
- in a tenth while it starts (uniformly before the reference run's first checkpoint:
  often before `checkpoints/` exists, and then the run is started again, not resumed);
- otherwise at a moment drawn uniformly over the training time of an uninterrupted
  reference run, counted from the moment `checkpoints/` appears (training begins).

Then it runs `--resume` (or, if the process died before creating `checkpoints/`, the
same command without it, as a person would) until one finishes; each of those is
itself killed again at a random moment with probability `--rekill` (at most 3 kills
per trial). At the end of each trial it checks the run directory:

- unloadable: a step folder in checkpoints/ that Orbax cannot restore (state and
  progress), or a leftover temporary or trash folder;
- duplicated: metrics.jsonl does not list epochs 1..N exactly once, in order;
- lost: settings.json, sources/, metrics.jsonl, result.json or curves.png missing;
- failed: a resume that exited non-zero, or any E999 / traceback;
- differs: final parameters not bitwise equal to the uninterrupted reference run.

All must be 0. A benchmark-style tool, not a test (CI does not run it); the numbers it
prints (trials, kills, seconds) depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MLP = ROOT / "examples" / "digits_mlp.nn"
TMP_MARK = ".orbax-checkpoint-tmp"
MAX_KILLS = 3


@dataclass
class Trial:
    index: int
    mode: str
    kills: int = 0
    restarts: int = 0  # runs started without --resume (killed before checkpoints/ existed)
    problems: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, kind: str, detail: str) -> None:
        self.problems.setdefault(kind, []).append(detail)


def command(run: Path, epochs: int, resume: bool) -> list[str]:
    cmd = [sys.executable, "-m", "nnlang.cli", "train", str(MLP), "--out", str(run), "-q"]
    cmd += ["--set", f"epochs={epochs}", "--set", "hidden=32", "--set", "keep=2"]
    return cmd + (["--resume"] if resume else [])


def start(run: Path, epochs: int, resume: bool) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command(run, epochs, resume),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def reference(run: Path, epochs: int) -> tuple[float, float]:
    """An uninterrupted run: seconds until its first checkpoint folder appears, and to
    its end."""
    t0 = time.perf_counter()
    proc = start(run, epochs, False)
    first = None
    while proc.poll() is None:
        if first is None and (run / "checkpoints").is_dir():
            first = time.perf_counter() - t0
        time.sleep(0.005)
    end = time.perf_counter() - t0
    _, err = proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"the reference run failed:\n{err}")
    return (first if first is not None else end / 2), end


def kill_when(proc: subprocess.Popen[str], ready: Callable[[], bool]) -> bool:
    """SIGKILL ``proc`` as soon as ``ready()`` (polled every 0.5 ms; a file it reads may
    not exist yet); False when the process ended first."""
    while proc.poll() is None:
        try:
            if ready():
                proc.send_signal(signal.SIGKILL)
                return True
        except FileNotFoundError:
            pass
        time.sleep(0.0005)
    return False


def kill_at_first_checkpoint(proc: subprocess.Popen[str], run: Path) -> bool:
    ck = run / "checkpoints"
    return kill_when(proc, lambda: ck.is_dir() and any(TMP_MARK in n for n in os.listdir(ck)))


def kill_after_metrics_line(proc: subprocess.Popen[str], run: Path, lines: int) -> bool:
    metrics = run / "metrics.jsonl"
    return kill_when(proc, lambda: metrics.read_bytes().count(b"\n") >= lines)


def kill_in_training(proc: subprocess.Popen[str], run: Path, seconds: float) -> bool:
    """SIGKILL ``seconds`` after ``checkpoints/`` appears (when training starts)."""
    while proc.poll() is None and not (run / "checkpoints").is_dir():
        time.sleep(0.002)
    return kill_after(proc, seconds)


def kill_after(proc: subprocess.Popen[str], seconds: float) -> bool:
    try:
        proc.wait(timeout=seconds)
        return False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        return True


def run_trial(i: int, args: argparse.Namespace, window: tuple[float, float], work: Path) -> Trial:
    rng = random.Random(args.seed * 100_003 + i)
    draw = rng.random()
    mode = (
        "first-checkpoint"
        if draw < 0.25
        else "metrics-line"
        if draw < 0.5
        else "startup"
        if draw < 0.6
        else "random"
    )
    trial = Trial(i, mode)
    t0 = time.perf_counter()
    run = work / f"trial-{i}"
    hi = window[1]
    proc = start(run, args.epochs, False)
    if mode == "first-checkpoint":
        killed = kill_at_first_checkpoint(proc, run)
    elif mode == "metrics-line":
        killed = kill_after_metrics_line(proc, run, rng.randint(1, args.epochs - 1))
    elif mode == "startup":
        killed = kill_after(proc, rng.uniform(0.0, window[0]))
    else:
        killed = kill_in_training(proc, run, rng.uniform(0.0, window[1] - window[0]))
    _, err = proc.communicate()
    check_output(trial, "first run", proc.returncode, err, killed)
    trial.kills += killed
    while killed:
        resume = (run / "checkpoints").is_dir()
        trial.restarts += not resume
        proc = start(run, args.epochs, resume)
        again = trial.kills < MAX_KILLS and rng.random() < args.rekill
        killed = kill_after(proc, rng.uniform(0.0, hi)) if again else False
        try:
            _, err = proc.communicate(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            trial.add("failed", "a resume hung")
            break
        trial.kills += killed
        check_output(trial, "resume", proc.returncode, err, killed)
    check_run(trial, run, args.epochs, work / "reference")
    trial.seconds = time.perf_counter() - t0
    if not args.keep_runs and not trial.problems:
        shutil.rmtree(run, ignore_errors=True)
    return trial


def check_output(trial: Trial, what: str, rc: int | None, err: str, killed: bool) -> None:
    if "E999" in err or "Traceback" in err:
        trial.add("failed", f"{what}: {err.strip().splitlines()[-1] if err.strip() else rc}")
    elif not killed and rc != 0:
        trial.add("failed", f"{what} exited {rc}: {err.strip()[-300:]}")


def check_run(trial: Trial, run: Path, epochs: int, ref: Path) -> None:
    for name in ("settings.json", "sources", "metrics.jsonl", "result.json", "curves.png"):
        if not (run / name).exists():
            trial.add("lost", name)
    try:
        got = [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    except (OSError, ValueError, KeyError) as e:
        got = [f"unreadable: {e}"]  # type: ignore[list-item]
    if got != list(range(1, epochs + 1)):
        trial.add("duplicated", f"metrics.jsonl epochs {got}")
    ck = run / "checkpoints"
    if not ck.is_dir():
        trial.add("lost", "checkpoints/")
        return
    for p in ck.iterdir():
        if TMP_MARK in p.name or p.name == ".deleted":
            trial.add("unloadable", f"leftover {p.name}")
        elif p.name.isdigit():
            try:
                load(p)
            except Exception as e:  # noqa: BLE001 - any failure to restore counts
                trial.add("unloadable", f"step {p.name}: {type(e).__name__}: {e}"[:300])
    steps = sorted(int(p.name) for p in ck.iterdir() if p.name.isdigit())
    if not steps:
        trial.add("lost", "no checkpoint")
    elif steps[-1] != epochs * 22:
        trial.add("lost", f"last checkpoint is step {steps[-1]}, not {epochs * 22}")
    else:
        import numpy as np

        a, b = load(ck / str(steps[-1]))[0], load(ref / "checkpoints" / str(steps[-1]))[0]
        if a.keys() != b.keys() or any(not np.array_equal(a[k], b[k]) for k in a):
            trial.add("differs", "final parameters differ from the uninterrupted run")


def load(step_dir: Path) -> tuple[dict[str, object], dict[str, object]]:
    """A checkpoint's arrays (flattened by path) and its progress record, as Orbax reads them."""
    import jax
    import numpy as np
    import orbax.checkpoint as ocp

    tree = ocp.StandardCheckpointer().restore((step_dir / "state").absolute())
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    arrays = {jax.tree_util.keystr(k): np.asarray(v) for k, v in flat}
    progress = ocp.Checkpointer(ocp.JsonCheckpointHandler()).restore(
        (step_dir / "progress").absolute()
    )
    return arrays, progress


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=200, help="number of trials (default 200)")
    ap.add_argument("--epochs", type=int, default=6, help="epochs per run (default 6)")
    ap.add_argument("--jobs", type=int, default=1, help="trials run at the same time")
    ap.add_argument("--rekill", type=float, default=0.3, help="chance a resume is killed too")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--timeout", type=float, default=600, help="seconds before a run counts as hung"
    )
    ap.add_argument("--work", type=Path, help="folder for the runs (default: a temporary one)")
    ap.add_argument("--keep-runs", action="store_true", help="keep the runs of clean trials too")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = ap.parse_args(argv)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    work = args.work or Path(tempfile.mkdtemp(prefix="nnlang-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    window = reference(work / "reference", args.epochs)
    print(
        f"reference run: first checkpoint at {window[0]:.1f} s, end at {window[1]:.1f} s; "
        f"{args.trials} trials in {work}",
        file=sys.stderr,
    )
    trials: list[Trial] = []
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(run_trial, i, args, window, work) for i in range(args.trials)]
        for f in futures:
            t = f.result()
            trials.append(t)
            status = "ok" if not t.problems else json.dumps(t.problems)
            print(
                f"trial {t.index:3d} {t.mode:16s} kills={t.kills} restarts={t.restarts} "
                f"{t.seconds:5.1f}s {status}",
                file=sys.stderr,
                flush=True,
            )
    kinds = ("unloadable", "duplicated", "lost", "failed", "differs")
    summary = {
        "trials": len(trials),
        "kills": sum(t.kills for t in trials),
        "first_checkpoint_trials": sum(t.mode == "first-checkpoint" for t in trials),
        "metrics_line_trials": sum(t.mode == "metrics-line" for t in trials),
        "restarts_without_checkpoints": sum(t.restarts for t in trials),
        **{k: sum(len(t.problems.get(k, [])) for t in trials) for k in kinds},
        "seconds": round(time.perf_counter() - t0, 1),
        "work": str(work),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(" ".join(f"{k}={v}" for k, v in summary.items()))
    bad = any(summary[k] for k in kinds)
    if not bad and not args.work and not args.keep_runs:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
