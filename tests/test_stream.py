"""Streaming input through Grain (`stream`): rows read from disk batch by batch, never
the whole data set; exact resume after kill -9 and after an interrupt mid-epoch (the
Grain iterator's place in the checkpoint); the settings' diagnostics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
from _util import train_cmd, write
from test_train import _wait_for_checkpoint, assert_same, final_arrays

from nnlang.cli import main
from nnlang.train.checkpoint import Checkpoints
from nnlang.train.data import Rows
from nnlang.train.data.rows import moments
from nnlang.train.run import train

pytest.importorskip("grain")

MODEL = """
model M {
  input x: f32[%(f)d]
  logits = x -> dense(32) -> relu -> dropout(0.1) -> dense(4)
  output logits
}
train M {
  data = npy(x = "x.npy", label = "y.npy", test = 0.1, val = 0.05)
  loss = cross_entropy(logits, label)
  normalize = standardize
  metrics = [accuracy]
  batch = 32
  epochs = 2
  stream = %(stream)s
  stream_memory = "%(limit)s"
}
"""


def data_set(tmp_path: Path, n: int, f: int = 32, stream: str = "auto", limit: str = "1 MiB"):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, f)).astype(np.float32)
    y = (x @ rng.normal(size=(f, 4))).argmax(1).astype(np.int32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    return write(tmp_path, "m.nn", MODEL % {"f": f, "stream": stream, "limit": limit})


@pytest.fixture(autouse=True)
def _shared_compile_cache(tmp_path_factory, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache"))


def _watch_reads(monkeypatch) -> list[int]:
    """Every read of rows from disk (its size in bytes); reading a whole array fails."""
    reads: list[int] = []
    get = Rows.__getitem__

    def read(self, key):
        out = get(self, key)
        reads.append(out.nbytes)
        return out

    def whole(self, *a, **k):
        raise AssertionError("the whole array was read into memory")

    monkeypatch.setattr(Rows, "__getitem__", read)
    monkeypatch.setattr(Rows, "__array__", whole)
    return reads


def test_data_four_times_the_limit_streams_without_being_loaded(tmp_path, monkeypatch) -> None:
    """4 MiB of features with `stream_memory = "1 MiB"`: `stream = auto` streams it, and
    no read of the file holds more than a fraction of the limit."""
    file = data_set(tmp_path, n=32768, f=32)  # x.npy: 32768 x 32 float32 = 4 MiB
    assert (tmp_path / "x.npy").stat().st_size >= 4 * 2**20
    reads = _watch_reads(monkeypatch)
    r = train(file, out=tmp_path / "run", progress=False, sets=["epochs=1", "batch=256"])
    assert r.stopped == "finished" and r.test["accuracy"] > 0.6, r.test
    steps = int(32768 * 0.85) // 256
    assert sum(1 for b in reads if b == 256 * 32 * 4) >= steps  # one read per batch
    assert max(reads) <= 2**20 // 2, max(reads)  # the largest: one chunk of a check


def test_data_within_the_limit_is_held_in_memory(tmp_path, monkeypatch) -> None:
    file = data_set(tmp_path, n=512, limit="1 GiB")
    loaded = []
    monkeypatch.setattr(Rows, "__array__", lambda self, *a, **k: loaded.append(1) or self[:])
    r = train(file, out=tmp_path / "run", progress=False, sets=["epochs=1"])
    assert r.stopped == "finished" and loaded  # read once, trained by the fused loop


def test_streamed_statistics_match_in_memory(tmp_path) -> None:
    x = np.random.default_rng(1).normal(3.0, 2.0, size=(9000, 5, 2)).astype(np.float32)
    np.save(tmp_path / "a.npy", x)
    rows = Rows(np.load(tmp_path / "a.npy", mmap_mode="r"), np.dtype(np.float32))
    for axes in ((0,), (0, 1)):
        mean, std = moments(rows, axes)
        np.testing.assert_allclose(mean, x.mean(axis=axes, keepdims=True, dtype=np.float64))
        np.testing.assert_allclose(std, x.std(axis=axes, keepdims=True, dtype=np.float64))
    assert np.array_equal(rows.take(np.array([5, 2, 7]))[:], x[[5, 2, 7]])


def _cmd(file: Path, run: Path, *extra: str) -> list[str]:
    return train_cmd(file, run, {"epochs": 6, "batch": 16, "stream": "on"}, *extra)


def test_streamed_run_killed_resumes_bitwise(tmp_path) -> None:
    """kill -9 mid-run; the resumed streamed run equals one never stopped, bitwise."""
    file = data_set(tmp_path, n=1024)
    ref = tmp_path / "ref"
    uninterrupted = subprocess.Popen(
        _cmd(file, ref), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    run = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(file, run), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for_checkpoint(run, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert uninterrupted.wait(timeout=120) == 0, uninterrupted.communicate()
    assert not (run / "result.json").exists(), "the run finished before it was killed"
    subprocess.run(_cmd(file, run, "--resume"), check=True, capture_output=True)
    assert_same(final_arrays(ref), final_arrays(run))
    hist = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in hist] == list(range(1, 7))


def test_interrupt_mid_epoch_resumes_from_the_iterator_state(tmp_path, monkeypatch) -> None:
    """SIGTERM in the middle of an epoch: the checkpoint holds the Grain iterator's
    place, and the resumed run reads on from the next batch, bitwise as if uninterrupted."""
    from nnlang.train import stream

    file = data_set(tmp_path, n=1024, stream="on")
    sets = ["epochs=2", "batch=16"]
    ref = train(file, out=tmp_path / "ref", progress=False, sets=sets, chunk_steps=10)
    calls = []
    run_chunk = stream.Feed.run

    def interrupting(self, *a, **k):
        calls.append(1)
        if len(calls) == 8:  # epoch 2 (51 steps an epoch), mid-way
            os.kill(os.getpid(), signal.SIGTERM)
        return run_chunk(self, *a, **k)

    monkeypatch.setattr(stream.Feed, "run", interrupting)
    r = train(file, out=tmp_path / "run", progress=False, sets=sets, chunk_steps=10)
    assert r.stopped == "interrupted"
    ck = sorted(int(p.name) for p in (r.run_dir / "checkpoints").iterdir() if p.name.isdigit())
    assert ck[-1] % 51 != 0, ck  # a checkpoint mid-epoch
    ckpts = Checkpoints(r.run_dir / "checkpoints", create=False)
    rec = ckpts.progress(ck[-1])
    ckpts.close()
    assert rec["stream"]["epoch"] == 1 and rec["stream"]["iterator"] is not None, rec
    monkeypatch.setattr(stream.Feed, "run", run_chunk)
    built = []
    pipeline = stream.Feed.pipeline
    monkeypatch.setattr(
        stream.Feed,
        "pipeline",
        lambda self, e, first=0: built.append((e, first)) or pipeline(self, e, first),
    )
    again = train(file, out=tmp_path / "run", progress=False, sets=sets, resume=True)
    assert again.stopped == "finished"
    # the epoch's pipeline from its first batch, moved on by the saved iterator state
    # (not a pipeline started at the step the checkpoint was written at)
    assert built == [(1, 0)], built
    assert_same(final_arrays(ref.run_dir), final_arrays(again.run_dir))


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("stream = maybe", 'must be one of "auto", "on", "off"'),
        ('stream_memory = "lots"', '"lots" is not a size'),
        ('stream_memory = "0 MiB"', "not at least one byte"),
    ],
)
def test_bad_stream_setting_is_located(tmp_path, capsys, setting, message) -> None:
    file = data_set(tmp_path, n=64)
    text = file.read_text().replace("  batch = 32\n", f"  batch = 32\n  {setting}\n")
    text = text.replace('  stream = auto\n  stream_memory = "1 MiB"\n', "")
    write(tmp_path, "m.nn", text)
    assert main(["check", str(file)]) == 1
    err = capsys.readouterr().err
    line = text.splitlines().index(f"  {setting}") + 1
    assert "E202" in err and message in err and f"m.nn:{line}:" in err, err


def test_streaming_without_grain_is_e705(tmp_path, capsys, monkeypatch) -> None:
    import importlib.util

    file = data_set(tmp_path, n=64, stream="on")
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "grain" else real(n, *a)
    )
    assert main(["train", str(file), "--out", str(tmp_path / "run"), "-q"]) == 3
    err = capsys.readouterr().err
    assert "E705" in err and "pip install 'nnlang[stream]'" in err and "stream = on" in err


def test_eval_of_a_streamed_run_needs_no_grain(tmp_path, capsys, monkeypatch) -> None:
    """Only training streams through Grain: `eval` reads a streamed run's splits from
    disk without it."""
    import importlib.util

    file = data_set(tmp_path, n=256, stream="on")
    assert (
        main(["train", str(file), "--out", str(tmp_path / "run"), "-q", "--set", "epochs=1"]) == 0
    )
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "grain" else real(n, *a)
    )
    capsys.readouterr()
    assert main(["eval", str(file), "--run", str(tmp_path / "run"), "--json"]) == 0
    assert "accuracy" in json.loads(capsys.readouterr().out)["test"]
