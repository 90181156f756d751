"""Data-parallel scaling: samples/s of the digits MLP on 1, 2, 4 devices (`devices = N`).

    python bench/scaling.py                      # 1, 2, 4 forced CPU devices, batch 64
    python bench/scaling.py --batch 256 --devices 1 2 4
    python bench/scaling.py --real               # the machine's own devices (GPU/TPU)

Each device count runs in its own fresh process. On CPU the process is started with
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` (the same in every process, so
only `devices` differs). Forced CPU devices are one host's cores seen as several
devices: they share the same cores and memory, so on CPU this measures the overhead of
partitioning the step (the split batch, the gradient all-reduce), not a speedup. On
real accelerators (``--real``) the same script measures scaling.

Measured: the trainer behind `nnlang train` (``Engine.run``, the whole epoch as one XLA
program), the MLP 64-256-256-10 of bench/train_speed.py, Adam 1e-3, the global batch
fixed (each device gets batch / N), one warm-up epoch (compile), then the best of 3
timings of 5 epochs. Reported: samples/s, and samples/s per device.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MLP_NN = """
model MLP {
    input image: f32[8, 8, 1]
    output logits = image -> flatten -> dense(256) -> relu -> dense(256) -> relu -> dense(10)
}
train MLP {
    data = digits(test = 0.2, seed = 0)
    normalize = scale(0.0625)
    loss = cross_entropy(logits, label)
    optimizer = adam(lr = 1e-3)
    batch = 64
    epochs = 60
}
"""


def child(devices: int, batch: int) -> None:
    import jax

    from nnlang.lower.network import lower
    from nnlang.train.loop import load, make_engine
    from nnlang.train.run import setup
    from nnlang.train.sharding import place

    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "mlp.nn"
        src.write_text(MLP_NN, "utf-8")
        s = setup(src, sets=[f"devices={devices}", f"batch={batch}"])
        data = load(s.graph, s.spec, s.program.root)
        e = make_engine(s.graph, s.spec, lower(s.graph, 0), data.size("train"), {})
        arrays = place(e.dp, data.splits["train"])
        state = e.state
        steps = e.steps_per_epoch
        state, _ = e.run(state, arrays, 0, 0, steps)  # compile
        best = float("inf")
        for rep in range(3):
            t0 = time.perf_counter()
            for ep in range(5):
                state, _ = e.run(state, arrays, 1 + rep * 5 + ep, 0, steps)
            jax.block_until_ready(state)
            best = min(best, time.perf_counter() - t0)
        sps = 5 * steps * batch / best
        out = {"devices": devices, "batch": batch, "samples_per_s": sps}
        out["per_device"] = sps / devices
        out["platform"] = jax.devices()[0].platform
        print(json.dumps(out))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--real", action="store_true", help="the machine's devices, not forced CPU")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child is not None:
        child(a.child, a.batch)
        return
    env = {**os.environ, "PYTHONPATH": str(HERE.parent), "NNLANG_NO_CACHE": "1"}
    if not a.real:
        env["JAX_PLATFORMS"] = "cpu"
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={max(a.devices)}"
    rows = []
    for n in a.devices:
        cmd = [sys.executable, __file__, "--child", str(n), "--batch", str(a.batch)]
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            print(r.stderr[-2000:], file=sys.stderr)
            continue
        rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
    print("| devices | platform | batch | samples/s | per device | vs 1 |")
    print("| --- | --- | --- | --- | --- | --- |")
    base = rows[0]["samples_per_s"] if rows else 1.0
    for r in rows:
        print(
            f"| {r['devices']} | {r['platform']} | {r['batch']} | {r['samples_per_s']:,.0f} "
            f"| {r['per_device']:,.0f} | {r['samples_per_s'] / base:.2f}× |"
        )


if __name__ == "__main__":
    main()
