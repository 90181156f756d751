"""How long `nnlang check` takes on generated models of 1k to 10k layers.

    python bench/check_scaling.py            # prints a table; aim: 10k layers < 1 s, linear

Two shapes of program: one long pipeline written out (parse-heavy), and a block
repeated (`-> Layer(16) * n`, expansion-heavy). Timed in-process with
time.perf_counter, best of 3, after one warm-up (grammar build and imports excluded).
"""

from __future__ import annotations

import time

from nnlang.api import check


def written_out(n: int) -> str:
    stages = " -> ".join(["dense(16) -> relu"] * (n // 2))
    return f"model Big {{\n    input x: f32[16]\n    output y = x -> {stages}\n}}\n"


def repeated(n: int) -> str:
    return (
        "block Layer(units: int) {\n    input x\n    output y = x -> dense(units) -> relu\n}\n"
        f"model Big {{\n    input x: f32[16]\n    output y = x -> Layer(16) * {n // 2}\n}}\n"
    )


def best_of(text: str, runs: int = 3) -> tuple[float, int]:
    best = float("inf")
    nodes = 0
    for _ in range(runs):
        t = time.perf_counter()
        res = check("big.nn", text=text, with_train=False)
        best = min(best, time.perf_counter() - t)
        assert res.ok, res.diagnostics[:3]
        nodes = len(res.graphs["Big"])
    return best, nodes


def main() -> None:
    check("warm.nn", text=written_out(10), with_train=False)
    print(f"{'program':<12} {'layers':>7} {'nodes':>7} {'seconds':>8} {'us/layer':>9}")
    for kind, make in (("written-out", written_out), ("repeated", repeated)):
        base = None
        for n in (1000, 2000, 5000, 10000):
            secs, nodes = best_of(make(n))
            base = base or secs / n
            print(f"{kind:<12} {n:>7} {nodes:>7} {secs:>8.3f} {secs / n * 1e6:>9.1f}")
        print(f"{'':<12} 1k->10k scaling factor: {secs / (base * 1000):.1f}x for 10x the layers")


if __name__ == "__main__":
    main()
