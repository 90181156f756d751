"""Training on several devices (`devices`, `--devices`): data parallel with jax.sharding.

The multi-device run needs JAX started with forced host devices, so it runs in a
subprocess (tests/devices_run.py); the rest are checks of the setting and the batch
rule that need no devices.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _util import ROOT

from nnlang.diagnostics import ArgError
from nnlang.train.devices import batch_error, nearest_batches
from nnlang.train.settings import SETTINGS, check_scalar


@pytest.mark.parametrize("mode", ["data", "mesh"])
def test_four_devices_match_one_and_checkpoints_cross(tmp_path: Path, mode: str) -> None:
    """4 devices data parallel, or a 2×2 mesh with the state sharded over `model`."""
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
        "JAX_PLATFORMS": "cpu",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),  # the resumed runs reuse the compiled steps
        "PYTHONPATH": str(ROOT),
    }
    p = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "devices_run.py"), str(tmp_path)]
        + (["mesh"] if mode == "mesh" else []),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert got["partitioned"], got  # the step was split over 4 devices, gradients all-reduced
    for k in ("four", "four_then_one", "one_then_four"):
        assert got[k] < 1e-5, got  # the same parameters as the 1-device run
    assert got["batch_30_all"] == "E424" and got["devices_8"] == "E425", got
    assert got["mesh_8"] == "E425" and got["mesh_batch_30"] == "E424", got


def test_nearest_batches() -> None:
    assert nearest_batches(30, 4) == [28, 32]
    assert nearest_batches(3, 4) == [4]
    assert nearest_batches(33, 8) == [32, 40]


class _Spec:
    spans: dict = {}

    def __init__(self, batch: int) -> None:
        self.batch = batch


def test_batch_rule_by_device_count() -> None:
    assert batch_error(_Spec(30), 1) is None
    assert batch_error(_Spec(32), 4) is None
    d = batch_error(_Spec(30), 4)
    assert d is not None and d.code == "E424"
    assert "`batch = 28` or `batch = 32`" in (d.help or "")


def test_devices_setting_values() -> None:
    s = SETTINGS["devices"]
    assert s.default == 1
    assert check_scalar(s, "all") == "all" and check_scalar(s, 4) == 4
    for bad in (0, "many", 2.5):
        with pytest.raises(ArgError):
            check_scalar(s, bad)
