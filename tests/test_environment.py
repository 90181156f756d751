"""Environmental failures (issue 8): a full disk, a folder that cannot be written, a
path below a regular file and running out of memory are E7xx with exit 3, never
"internal error" (E999, exit 2), and no traceback from any thread."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _util import ROOT

from nnlang.cli import EXIT_ENV, main
from nnlang.environment import environment_error
from nnlang.train.run import train

MLP = ROOT / "examples" / "digits_mlp.nn"


def test_out_below_a_regular_file(tmp_path, capsys) -> None:
    (tmp_path / "afile").write_text("x")
    code = main(["train", str(MLP), "--out", str(tmp_path / "afile" / "run"), "-q"])
    err = capsys.readouterr().err
    assert code == EXIT_ENV == 3
    assert "E703" in err and "is a regular file, not a directory" in err
    assert "E999" not in err and "Traceback" not in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder(tmp_path, capsys) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code = main(["train", str(MLP), "--out", str(ro / "run"), "-q"])
    finally:
        ro.chmod(0o755)
    err = capsys.readouterr().err
    assert code == 3 and "E702" in err and "Permission denied" in err


def test_disk_full_while_checkpointing_is_e701_without_tracebacks(tmp_path) -> None:
    # the process's file size limit (`ulimit -f`): the first checkpoint's arrays do not
    # fit; nnlang ignores SIGXFSZ so the write fails with EFBIG instead of killing it
    run = tmp_path / "run"
    cmd = f"ulimit -f 200 && exec {sys.executable} -m nnlang.cli train {MLP} --out {run}"
    r = subprocess.run(
        ["bash", "-c", cmd + " --set epochs=1 -q --no-cache"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 3, r.stderr
    assert "E701" in r.stderr and str(run / "checkpoints") in r.stderr
    assert "ulimit -f" in r.stderr
    assert "Traceback" not in r.stderr and "E999" not in r.stderr


def test_disk_full_while_exporting(tmp_path, capsys, monkeypatch) -> None:
    run = train(MLP, out=tmp_path / "run", sets=["epochs=1"], progress=False).run_dir
    import nnlang.fsio

    real = nnlang.fsio.atomic_write_bytes

    def full(path: str | Path, data: bytes) -> None:
        if str(path).endswith(".hlo"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data)

    monkeypatch.setattr(nnlang.fsio, "atomic_write_bytes", full)
    out = tmp_path / "m.hlo"
    code = main(["export", str(MLP), "--run", str(run), "--format", "stablehlo", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 3, err
    assert "E701" in err and str(out) in err and "No space left on device" in err
    assert "bytes" in err and not out.exists()


def test_out_of_memory_names_the_batch(tmp_path, capsys, monkeypatch) -> None:
    import jax

    from nnlang.train.loop import Engine

    def oom(*a: object, **k: object) -> None:
        raise jax.errors.JaxRuntimeError(
            "RESOURCE_EXHAUSTED: Out of memory while trying to allocate 17179869184 bytes."
        )

    monkeypatch.setattr(Engine, "run", oom)
    code = main(["train", str(MLP), "--out", str(tmp_path / "run"), "-q"])
    err = capsys.readouterr().err
    assert code == 3
    assert "E704" in err and "16.0 GiB" in err and "batch = 64" in err and "--set batch=32" in err
    assert "E999" not in err


def test_environment_errors_are_recognised_in_orbax_wording() -> None:
    e = ValueError(
        'Error writing in OCDBT database at local file "/x/ck/": Failed writing: "/x/ck/d/a.__lock": '
        "Failed to write 709421 bytes to file 7: No space left on device [os_error_code='28']"
    )
    d = environment_error(e, "/x/ck")
    assert d is not None and d.code == "E701" and "`/x/ck`" in d.message
    assert environment_error(ValueError("shape mismatch")) is None
    assert environment_error(RuntimeError("x")) is None
