"""A two-process ``jax.distributed`` run on localhost, run by tests/test_hosts.py in a
subprocess with 4 forced host devices (XLA_FLAGS must be set before JAX starts):

    XLA_FLAGS=--xla_force_host_platform_device_count=4 python tests/hosts_run.py DIR

Starts two ``nnlang train ... --devices 4 --coordinator localhost:PORT
--num-processes 2 --process-id I`` processes (2 forced CPU devices each, one run
folder), trains the same file on this process's 4 devices meanwhile, and prints one
JSON line: the largest relative difference of the two runs' last checkpoints, both
processes' exit codes, and which files each run folder holds.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
from devices_run import SRC, params, rel

from nnlang import cli
from nnlang.train.checkpoint import Checkpoints


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return int(s.getsockname()[1])


def last_params(src: Path, runs: list[Path]) -> list[dict[str, np.ndarray]]:
    """The parameters of each run's last checkpoint, restored onto this process's 4
    devices (a checkpoint of another topology is restored into a target's shardings)."""
    from flax import nnx

    from nnlang.lower.network import lower
    from nnlang.train.loop import make_engine
    from nnlang.train.run import setup

    s = setup(src, sets=["devices=4"])
    e = make_engine(s.graph, s.spec, lower(s.graph, 0), 1000, {})
    out = []
    for run in runs:
        ck = Checkpoints(run / "checkpoints", create=False)
        state, _ = ck.restore(ck.latest(), e.state)
        ck.close()
        out.append(params(nnx.merge(e.train_def, state)[0]))
    return out


def json_of(out: str) -> dict:
    """The --json result. Gloo prints `[Gloo] Rank ... connected` lines on the same
    stdout, from C++, so they may land anywhere around it: take them out wherever they
    are, then read the one JSON document left."""
    text = re.sub(r"\[Gloo\][^\n]*(\n|$)", "", out)
    start = text.find("{")
    try:
        doc, _ = json.JSONDecoder().raw_decode(text[start:])
    except ValueError:
        raise SystemExit(f"no JSON document in the output: {out!r}") from None
    return doc


def main(tmp: Path) -> None:
    assert len(jax.devices()) == 4, jax.devices()
    src = tmp / "tiny.nn"
    src.write_text(SRC, "utf-8")
    port = free_port()
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    cmd = [sys.executable, "-m", "nnlang.cli", "train", str(src), "--devices", "4", "--json"]
    cmd += ["--out", str(tmp / "two"), "--coordinator", f"localhost:{port}"]
    procs = [
        subprocess.Popen(
            [*cmd, "--num-processes", "2", "--process-id", str(i)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        rc = cli.main(["train", str(src), "--devices", "4", "--out", str(tmp / "one"), "-q"])
    assert rc == 0
    outs = [p.communicate(timeout=240) for p in procs]
    codes = [p.returncode for p in procs]
    if any(codes):
        print(outs[0][1][-2000:], outs[1][1][-2000:], file=sys.stderr)
    result = {
        "codes": codes,
        "rel": None if any(codes) else rel(*last_params(src, [tmp / "two", tmp / "one"])),
        "devices": [
            json_of(o)["devices"] if c == 0 else None for (o, _), c in zip(outs, codes, strict=True)
        ],
        "files": sorted(p.name for p in (tmp / "two").iterdir()),
        "metric_lines": len((tmp / "two" / "metrics.jsonl").read_text("utf-8").splitlines()),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]).absolute())
