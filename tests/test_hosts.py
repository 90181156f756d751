"""Several processes training one run (`--coordinator`, `--num-processes`,
`--process-id`; jax.distributed): two processes of 2 forced CPU devices each train to
the parameters of one process on 4 devices (tests/hosts_run.py, in a subprocess:
XLA_FLAGS must be set before JAX starts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _util import ROOT

ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}


#: three processes training at once: ~25 s of CPU (~60 s of wall time on 2 busy cores)
slow = pytest.mark.skipif(os.environ.get("NNLANG_FAST_TESTS") == "1", reason="slow: 3 processes")


@slow
def test_two_processes_match_one_process_on_four_devices(tmp_path: Path) -> None:
    env = {
        **ENV,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    p = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "hosts_run.py"), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        cwd=ROOT / "tests",
    )
    assert p.returncode == 0, p.stderr[-3000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert got["codes"] == [0, 0] and got["devices"] == [4, 4], got
    assert got["rel"] < 1e-5, got  # the same parameters as the single process on 4 devices
    # one folder, written once: process 0's logs, both processes' checkpoint shards
    assert {"metrics.jsonl", "result.json", "settings.json", "checkpoints"} <= set(got["files"])
    assert got["metric_lines"] == 2, got  # 2 epochs, written by process 0 alone


def test_bad_process_options_are_e706(tmp_path: Path) -> None:
    src = ROOT / "examples" / "digits_mlp.nn"
    cmd = [sys.executable, "-m", "nnlang.cli", "train", str(src), "--out", str(tmp_path / "r")]
    p = subprocess.run(
        [*cmd, "--coordinator", "localhost:1", "--num-processes", "2", "--process-id", "5"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 3 and "error[E706]" in p.stderr, p.stderr[-2000:]
    assert "--process-id" in p.stderr and not (tmp_path / "r").exists()
