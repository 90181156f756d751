"""Inference latency of exported artifacts against the in-process jitted model.

    python bench/export_latency.py                       # trains examples/digits_cnn.nn for 1 epoch first
    python bench/export_latency.py FILE --run DIR --repeats 200

For batch sizes 1 and 256, the same (normalised) inputs go to: the live model under
``nnx.jit`` (what `nnlang predict --run` runs) and under ``jax.jit`` with its weights as
an argument (no per-call module traversal), the StableHLO artifact under
``jax.jit(exported.call)``, and the ONNX artifact in an onnxruntime CPU session. Each
is warmed up, then timed N times from numpy input to numpy output; the table shows the
median in milliseconds. A benchmark, not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BATCHES = (1, 256)


def median_ms(fn: Callable[[], Any], repeats: int, warmup: int = 5) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("file", nargs="?", default=str(ROOT / "examples" / "digits_cnn.nn"))
    p.add_argument(
        "--run", help="a trained run of FILE (default: train 1 epoch into a temporary folder)"
    )
    p.add_argument("--repeats", type=int, default=100)
    a = p.parse_args(argv)

    from flax import nnx

    from nnlang.export import export, gate
    from nnlang.export.artifact import load_artifact
    from nnlang.train.run import train
    from nnlang.train.trained import TrainedRun

    with tempfile.TemporaryDirectory() as tmp:
        run = (
            Path(a.run)
            if a.run
            else train(a.file, out=Path(tmp) / "run", sets=["epochs=1"], progress=False).run_dir
        )
        trained = TrainedRun.open(a.file, run)
        model = trained.model()
        live = nnx.jit(lambda m, x: m(**x))  # what `nnlang predict --run` runs
        gdef, weights = nnx.split(model)
        pure = jax.jit(
            lambda w, x: nnx.merge(gdef, w)(**x)
        )  # the same without nnx's per-call graph walk
        artifacts = {
            "stablehlo": load_artifact(
                export(a.file, run, fmt="stablehlo", out=Path(tmp) / "m.stablehlo").path
            )
        }
        try:
            artifacts["onnxruntime"] = load_artifact(
                export(a.file, run, fmt="onnx", out=Path(tmp) / "m.onnx").path
            )
        except Exception as e:  # noqa: BLE001 - the ONNX extra is optional
            print(f"(no ONNX column: {e})", file=sys.stderr)
        rows = []
        for b in BATCHES:
            x = gate.random_inputs(trained.graph, b)
            row = {
                "nnx.jit": median_ms(
                    lambda x=x: jax.tree.map(np.asarray, live(model, x)), a.repeats
                ),
                "jax.jit": median_ms(
                    lambda x=x: jax.tree.map(np.asarray, pure(weights, x)), a.repeats
                ),
            }
            for name, art in artifacts.items():
                arrays = art.prepare(x, normalize=False)
                row[name] = median_ms(lambda art=art, arrays=arrays: art.call(arrays), a.repeats)
            rows.append((b, row))

    cols = list(rows[0][1])
    print(
        f"model {trained.graph.name} ({a.file}), {jax.default_backend()}, median of {a.repeats} runs, ms per call"
    )
    print(f"{'batch':>6} " + " ".join(f"{c:>12}" for c in cols))
    for b, row in rows:
        print(f"{b:>6} " + " ".join(f"{row[c]:>12.3f}" for c in cols))
    return 0


if __name__ == "__main__":
    sys.exit(main())
