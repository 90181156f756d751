"""The run directory's integrity (issue 8): one trainer at a time (the lock), nothing read
back that leaves the run (links, hard links, FIFOs), each epoch once in metrics.jsonl
after a resume, SIGHUP handled like SIGTERM, a first checkpoint killed mid-write.

Kills and signals use real processes; links and FIFOs real files."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _util import ROOT, train_cmd

from nnlang.cli import main
from nnlang.train.run import train

MLP = ROOT / "examples" / "digits_mlp.nn"
SMALL = ["hidden=32"]
#: real-process tests over ~10 s; NNLANG_FAST_TESTS=1 skips them (as test_train.py's)
slow = pytest.mark.skipif(os.environ.get("NNLANG_FAST_TESTS") == "1", reason="slow: real processes")


@pytest.fixture(autouse=True)
def _shared_compile_cache(tmp_path_factory, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished 2-epoch run with a checkpoint per epoch (copy it before changing it)."""
    run = tmp_path_factory.mktemp("trained") / "run"
    train(MLP, out=run, sets=["epochs=2", "checkpoint_every=1", *SMALL], progress=False)
    return run


def _copy(trained: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    return run


def _cmd(run: Path, *extra: str, epochs: int = 2) -> list[str]:
    return train_cmd(MLP, run, {"epochs": epochs, "hidden": 32}, *extra)


def _epochs(run: Path) -> list[int]:
    return [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()]


def _steps(run: Path) -> list[int]:
    return sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit())


# ------------------------------------------------------------------ 1. the lock
_HOLD = """
import sys, time
from pathlib import Path
from nnlang.train.rundir import RunLock
lock = RunLock.acquire(Path(sys.argv[1]))
print("locked", flush=True)
time.sleep(120)
"""


def test_second_trainer_is_refused_and_a_dead_holder_is_taken_over(
    trained: Path, tmp_path: Path, capsys
) -> None:
    run = _copy(trained, tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(run)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        args = ["train", str(MLP), "--out", str(run), "--resume", "-q", "--set", "epochs=3"]
        args += ["--set", "hidden=32"]
        assert main(args) == 1
        err = capsys.readouterr().err
        assert "E510" in err and f"pid {holder.pid} on host" in err and "is training into it" in err
        assert f"kill -TERM {holder.pid}" in err
        assert _epochs(run) == [1, 2]  # nothing was written
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the holder died without releasing: the lock file still names it, the OS lock is free
    assert str(holder.pid) in (run / ".lock").read_text()
    assert main(args) == 0
    err = capsys.readouterr().err
    assert f"left locked by pid {holder.pid}" in err and "no longer running" in err
    assert _epochs(run) == [1, 2, 3]
    assert (run / ".lock").read_text() == ""  # released: names nobody


def test_lock_is_refused_as_a_symlink(tmp_path: Path) -> None:
    from nnlang.diagnostics import NNError
    from nnlang.train.rundir import RunLock

    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(NNError) as e:
        RunLock.acquire(run)
    assert e.value.diagnostics[0].code == "E511"
    assert not (tmp_path / "elsewhere").exists()


# ------------------------------------------------------------------ 2. links out of a run
def _link_out(run: Path, tmp_path: Path) -> Path:
    meta = run / "checkpoints" / str(_steps(run)[-1]) / "state" / "_METADATA"
    outside = tmp_path / "outside_METADATA"
    shutil.move(meta, outside)
    meta.symlink_to(outside)
    return meta


@pytest.mark.parametrize("verb", ["eval", "resume", "init_from"])
def test_symlink_out_of_the_run_is_refused(
    verb: str, trained: Path, tmp_path: Path, capsys
) -> None:
    run = _copy(trained, tmp_path)
    meta = _link_out(run, tmp_path)
    if verb == "eval":
        args = ["eval", str(MLP), "--run", str(run)]
    elif verb == "resume":
        args = ["train", str(MLP), "--out", str(run), "--resume", "-q", "--set", "epochs=3"]
    else:
        args = ["train", str(MLP), "--out", str(tmp_path / "new"), "-q"]
        args += ["--set", "epochs=1", "--set", f'init_from="{run}"']
    assert main([*args, "--set", "hidden=32"] if verb != "eval" else args) == 1
    err = capsys.readouterr().err
    assert "E511" in err and str(meta) in err and "is a symlink to" in err, err
    assert "outside" in err


def test_hard_link_and_state_folder_link_are_refused(trained: Path, tmp_path: Path, capsys) -> None:
    run = _copy(trained, tmp_path)
    settings = run / "settings.json"
    os.link(settings, tmp_path / "second_name.json")
    assert main(["eval", str(MLP), "--run", str(run)]) == 1
    err = capsys.readouterr().err
    assert "E511" in err and "settings.json" in err and "hard-linked (2 links)" in err
    (tmp_path / "second_name.json").unlink()
    state = run / "checkpoints" / str(_steps(run)[-1]) / "state"
    shutil.move(state, tmp_path / "state")
    state.symlink_to(tmp_path / "state", target_is_directory=True)
    assert main(["eval", str(MLP), "--run", str(run)]) == 1
    err = capsys.readouterr().err
    assert "E511" in err and str(state) in err


def test_a_link_that_stays_inside_is_fine(trained: Path, tmp_path: Path, capsys) -> None:
    run = _copy(trained, tmp_path)
    shutil.move(run / "settings.json", run / "sources" / "settings.json")
    (run / "settings.json").symlink_to(run / "sources" / "settings.json")
    assert main(["eval", str(MLP), "--run", str(run)]) == 0


def test_fifo_metadata_does_not_hang_resume(trained: Path, tmp_path: Path) -> None:
    """A `_METADATA` that is a FIFO made `train --resume` block forever in Orbax."""
    run = _copy(trained, tmp_path)
    meta = run / "checkpoints" / str(_steps(run)[-1]) / "state" / "_METADATA"
    meta.unlink()
    os.mkfifo(meta)
    t = time.time()
    r = subprocess.run(_cmd(run, "--resume", epochs=3), capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr
    assert "E511" in r.stderr and "is a FIFO, not a regular file" in r.stderr
    assert time.time() - t < 120


# ------------------------------------------------------------------ 3. each epoch once
def test_resume_lists_each_epoch_once(tmp_path: Path) -> None:
    """An epoch's line is written before its checkpoint: a run stopped between the two
    (here: paused after epoch 3, checkpointed every 2) resumed from epoch 2 listed epoch
    3 twice (`1, 2, 3, 3, 4`)."""
    run = tmp_path / "run"
    sets = ["epochs=4", "checkpoint_every=2", *SMALL]
    r = train(MLP, out=run, sets=sets, progress=False, max_epochs=3)
    assert r.stopped == "paused" and _epochs(run) == [1, 2, 3] and _steps(run) == [44]
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 4, "loss": 0.')  # and a line cut short by a kill
    train(MLP, out=run, sets=sets, progress=False, resume=True)
    assert _epochs(run) == [1, 2, 3, 4]


# ------------------------------------------------------------------ 4. SIGHUP
@slow
def test_sighup_checkpoints_and_resumes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cmd = _cmd(run, "--set", "batch=16", epochs=10)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t = time.time()
    while not ((run / "checkpoints").is_dir() and _steps(run)):
        assert proc.poll() is None and time.time() - t < 120, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGHUP)
    proc.send_signal(signal.SIGHUP)  # the terminal's hangup, then the shell's
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("training finished before the signal arrived")
    assert proc.returncode == 130, err  # was -1 (killed by SIGHUP, no checkpoint)
    assert "interrupted: checkpoint written at step" in err and "--resume" in err
    step = int(err.split("checkpoint written at step ")[1].split()[0])
    assert step in _steps(run)
    r = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert _epochs(run) == list(range(1, 11))


@slow
def test_sighup_under_nohup_is_still_ignored(tmp_path: Path) -> None:
    """`nohup nnlang train ...` ignores SIGHUP on purpose: the run goes on to the end."""
    run = tmp_path / "run"

    # what nohup does: SIGHUP ignored, then exec (no preexec_fn: forking JAX is unsafe)
    nohup = "import os, signal, sys; signal.signal(signal.SIGHUP, signal.SIG_IGN); "
    nohup += "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
    cmd = _cmd(run, epochs=3)
    proc = subprocess.Popen(
        [cmd[0], "-c", nohup, *cmd[1:]],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    t = time.time()
    while not ((run / "checkpoints").is_dir() and _steps(run)):
        assert proc.poll() is None and time.time() - t < 120, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "interrupted" not in err, err
    assert _epochs(run) == [1, 2, 3]


# ------------------------------------------------------------------ 5. first checkpoint killed
def test_first_checkpoint_left_incomplete_resumes_from_the_start(
    trained: Path, tmp_path: Path, capsys
) -> None:
    """What a `kill -9` during the first save leaves: Orbax's temporary step folder and
    no committed step. `--resume` was an AssertionError (E999)."""
    run = _copy(trained, tmp_path)
    for s in _steps(run):
        if s != 22:
            shutil.rmtree(run / "checkpoints" / str(s))
    tmp = run / "checkpoints" / "22.orbax-checkpoint-tmp"
    (run / "checkpoints" / "22").rename(tmp)
    shutil.rmtree(tmp / "state")
    (run / "result.json").unlink()
    args = ["train", str(MLP), "--out", str(run), "--resume", "-q", "--set", "epochs=2"]
    assert main([*args, "--set", "hidden=32", "--set", "checkpoint_every=1"]) == 0
    err = capsys.readouterr().err
    assert "E999" not in err
    assert "removed an incomplete checkpoint" in err and "22.orbax-checkpoint-tmp" in err
    assert "training from the start" in err
    assert not tmp.exists() and _steps(run) == [22, 44] and _epochs(run) == [1, 2]
    assert (run / "result.json").is_file()


@slow
def test_kill_during_first_checkpoint_resumes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = subprocess.Popen(_cmd(run), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ck = run / "checkpoints"
    caught = False
    while proc.poll() is None:
        if ck.is_dir() and any(".orbax-checkpoint-tmp" in n for n in os.listdir(ck)):
            proc.send_signal(signal.SIGKILL)
            caught = True
            break
        time.sleep(0.0005)
    proc.wait()
    r = subprocess.run(_cmd(run, "--resume"), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "E999" not in r.stderr, r.stderr
    assert _epochs(run) == [1, 2] and (run / "result.json").is_file()
    # the kill may land just after Orbax renamed the folder into place: then the first
    # checkpoint is whole and this is an ordinary resume
    assert caught or proc.returncode == 0
