"""Step time with the backbone of examples/transfer.nn frozen or trained (CPU).

    python bench/frozen_step.py

Frozen parameters are neither differentiated nor in the optimizer, so a frozen step
costs the forward pass and the head's backward pass only.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import numpy as np

from nnlang.lower.network import lower
from nnlang.train.loop import make_engine
from nnlang.train.run import setup

FILE = Path(__file__).resolve().parents[1] / "examples" / "transfer.nn"


def step_ms(sets: list[str], n: int = 2000) -> float:
    s = setup(FILE, "FineTune", sets)
    net = lower(s.graph, 0)
    engine = make_engine(s.graph, s.spec, net, n, {"image": (8, 8, 1)})
    rng = np.random.default_rng(0)
    arrays = {
        "image": jax.device_put(rng.random((n, 8, 8, 1), np.float32)),
        "label": jax.device_put(rng.integers(0, 2, n).astype(np.int32)),
    }
    state = engine.state
    spe = engine.steps_per_epoch
    state, _ = engine.run(state, arrays, 0, 0, spe)  # compile
    best = float("inf")
    for epoch in range(1, 6):
        t = time.perf_counter()
        state, _ = engine.run(state, arrays, epoch, 0, spe)
        jax.block_until_ready(state)
        best = min(best, (time.perf_counter() - t) / spe * 1e3)
    return best


if __name__ == "__main__":
    base = ['init_from=""', "batch=256"]
    for name, sets in (("trained", ["freeze=[]"]), ("frozen", [])):
        print(f"{name:8s} {step_ms(base + sets):.3f} ms/step (batch 256, best of 5 epochs)")
