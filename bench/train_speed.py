"""Training speed: nnlang against hand-written Flax, a hand-fused JAX loop and PyTorch.

    python bench/train_speed.py                 # MLP and CNN, every runner found
    python bench/train_speed.py --model mlp --runners nnlang flax

Every runner trains the same network on the same split of scikit-learn's digits
(nnlang's `digits(test = 0.2, seed = 0)`, pixels scaled by 1/16), Adam 1e-3, batch 64,
each in its own fresh process (so import and compile costs are counted honestly),
one after the other. Reported per runner:

- steady samples/s: training throughput over 5 epochs after a warm-up epoch;
- time to 97%: seconds from process start until test accuracy first reaches 97%
  (checked after every epoch, at most 60 epochs);
- wall: the whole process, start to exit, as seen by the driver.

Runners: `nnlang` (the trainer behind `nnlang train`), `flax` (idiomatic `nnx.jit`
step in a Python loop), `jax-fused` (a hand-written whole-epoch `lax.scan`; MLP only,
since XLA's CPU convolutions are slow inside loops), `torch` (eager PyTorch, if
installed). A benchmark, not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

T0 = time.perf_counter()
HERE = os.path.dirname(os.path.abspath(__file__))
EPOCHS_STEADY, MAX_EPOCHS, TARGET, BATCH = 5, 60, 0.97, 64

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
    metrics = [accuracy]
}
"""
CNN_NN = (
    MLP_NN.replace("model MLP", "model CNN")
    .replace("train MLP", "train CNN")
    .replace(
        "image -> flatten -> dense(256) -> relu -> dense(256) -> relu -> dense(10)",
        "image -> conv(32, 3) -> relu -> conv(32, 3) -> relu -> max_pool(2) -> conv(64, 3) -> relu "
        "-> global_avg_pool -> dense(10)",
    )
)


def digits_split() -> tuple:
    import numpy as np

    from nnlang.train.data import load_data

    ds = load_data("digits", (), {"test": 0.2, "seed": 0}, root=__import__("pathlib").Path("."))
    tr, te = ds.splits["train"], ds.splits["test"]
    f = np.float32(1 / 16)
    return tr["x"] * f, tr["label"], te["x"] * f, te["label"]


BEST = [0.0]


def seen(acc: float) -> bool:
    """Record a test accuracy; True once it reaches the target."""
    BEST[0] = max(BEST[0], float(acc))
    return float(acc) >= TARGET


def report(steady: float, t97: float | None, epochs97: int | None) -> None:
    print(json.dumps({"steady": steady, "t97": t97, "epochs97": epochs97, "best": BEST[0]}))


def fixed(epochs: int) -> None:
    """A runner's whole-process mode: exactly ``epochs`` epochs (the target is never
    reached), no steady-state epochs after them."""
    global MAX_EPOCHS, TARGET, EPOCHS_STEADY
    MAX_EPOCHS, TARGET, EPOCHS_STEADY = epochs, 2.0, 0


# ------------------------------------------------------------------ runners
def run_nnlang(model: str) -> None:
    import tempfile
    from pathlib import Path

    import jax
    import numpy as np

    from nnlang.lower.network import lower
    from nnlang.train.loop import load, make_engine
    from nnlang.train.run import enable_compilation_cache, setup

    enable_compilation_cache(False)
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / f"{model}.nn"
        f.write_text(MLP_NN if model == "mlp" else CNN_NN)
        s = setup(f)
        data = load(s.graph, s.spec, s.program.root)
    net = lower(s.graph, 0)
    shapes = {
        k: tuple(v.shape[1:]) for k, v in data.splits["train"].items() if k in net.input_names
    }
    eng = make_engine(s.graph, s.spec, net, data.size("train"), shapes)
    arrays = {k: jax.device_put(v) for k, v in data.splits["train"].items()}
    test = data.splits["test"]
    state, spe = eng.state, eng.steps_per_epoch
    t97 = e97 = None
    for epoch in range(MAX_EPOCHS):
        state, *_ = eng.run(state, arrays, epoch, 0, spe)
        if seen(eng.evaluate(state, test)["accuracy"]):
            t97, e97 = time.perf_counter() - T0, epoch + 1
            break
    jax.block_until_ready(state)
    t = time.perf_counter()
    for epoch in range(EPOCHS_STEADY):
        state, *_ = eng.run(state, arrays, 100 + epoch, 0, spe)
    jax.block_until_ready(state)
    report(EPOCHS_STEADY * spe * BATCH / max(time.perf_counter() - t, 1e-9), t97, e97)
    _ = np


def _flax_model(model: str):  # noqa: ANN202
    import jax
    from flax import nnx

    class MLP(nnx.Module):
        def __init__(self, rngs: nnx.Rngs) -> None:
            self.l1, self.l2, self.l3 = (
                nnx.Linear(64, 256, rngs=rngs),
                nnx.Linear(256, 256, rngs=rngs),
                nnx.Linear(256, 10, rngs=rngs),
            )

        def __call__(self, x):  # noqa: ANN001, ANN204
            x = x.reshape(x.shape[0], -1)
            return self.l3(jax.nn.relu(self.l2(jax.nn.relu(self.l1(x)))))

    class CNN(nnx.Module):
        def __init__(self, rngs: nnx.Rngs) -> None:
            self.c1, self.c2 = (
                nnx.Conv(1, 32, (3, 3), rngs=rngs),
                nnx.Conv(32, 32, (3, 3), rngs=rngs),
            )
            self.c3, self.out = nnx.Conv(32, 64, (3, 3), rngs=rngs), nnx.Linear(64, 10, rngs=rngs)

        def __call__(self, x):  # noqa: ANN001, ANN204
            x = jax.nn.relu(self.c2(jax.nn.relu(self.c1(x))))
            x = jax.nn.relu(self.c3(nnx.max_pool(x, (2, 2), (2, 2))))
            return self.out(x.mean(axis=(1, 2)))

    return (MLP if model == "mlp" else CNN)(nnx.Rngs(0))


def run_flax(model: str) -> None:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from flax import nnx

    xtr, ytr, xte, yte = digits_split()
    m = _flax_model(model)
    opt = nnx.Optimizer(m, optax.adam(1e-3), wrt=nnx.Param)

    @nnx.jit
    def step(m, opt, x, y):  # noqa: ANN001, ANN202
        def lf(m):  # noqa: ANN001, ANN202
            return optax.softmax_cross_entropy_with_integer_labels(m(x), y).mean()

        loss, g = nnx.value_and_grad(lf)(m)
        opt.update(m, g)
        return loss

    @nnx.jit
    def acc(m, x, y):  # noqa: ANN001, ANN202
        return (m(x).argmax(-1) == y).mean()

    xd, yd = jnp.asarray(xtr), jnp.asarray(ytr)
    spe = len(xtr) // BATCH
    rng = np.random.default_rng(0)

    def epoch() -> None:
        perm = rng.permutation(len(xtr))
        for i in range(spe):
            idx = perm[i * BATCH : (i + 1) * BATCH]
            loss = step(m, opt, xd[idx], yd[idx])
        jax.block_until_ready(loss)

    t97 = e97 = None
    for e in range(MAX_EPOCHS):
        epoch()
        if seen(acc(m, xte, yte)):
            t97, e97 = time.perf_counter() - T0, e + 1
            break
    t = time.perf_counter()
    for _ in range(EPOCHS_STEADY):
        epoch()
    report(EPOCHS_STEADY * spe * BATCH / max(time.perf_counter() - t, 1e-9), t97, e97)


def run_jax_fused(model: str) -> None:
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    xtr, ytr, xte, yte = digits_split()
    m = _flax_model(model)
    tx = optax.adam(1e-3)
    graphdef, params = nnx.split(m)
    opt_state = tx.init(params)
    xd, yd, n = jnp.asarray(xtr), jnp.asarray(ytr), len(xtr)
    spe = n // BATCH

    @jax.jit
    def epoch(params, opt_state, key):  # noqa: ANN001, ANN202
        perm = jax.random.permutation(key, n)[: spe * BATCH].reshape(spe, BATCH)

        def body(carry, idx):  # noqa: ANN001, ANN202
            p, o = carry

            def lf(p):  # noqa: ANN001, ANN202
                return optax.softmax_cross_entropy_with_integer_labels(
                    nnx.merge(graphdef, p)(xd[idx]), yd[idx]
                ).mean()

            loss, g = jax.value_and_grad(lf)(p)
            u, o = tx.update(g, o, p)
            return (optax.apply_updates(p, u), o), loss

        (params, opt_state), _ = jax.lax.scan(body, (params, opt_state), perm)
        return params, opt_state

    @jax.jit
    def acc(p):  # noqa: ANN001, ANN202
        return (nnx.merge(graphdef, p)(xte).argmax(-1) == yte).mean()

    key = jax.random.key(0)
    t97 = e97 = None
    for e in range(MAX_EPOCHS):
        params, opt_state = epoch(params, opt_state, jax.random.fold_in(key, e))
        if seen(acc(params)):
            t97, e97 = time.perf_counter() - T0, e + 1
            break
    jax.block_until_ready(params)
    t = time.perf_counter()
    for e in range(EPOCHS_STEADY):
        params, opt_state = epoch(params, opt_state, jax.random.fold_in(key, 100 + e))
    jax.block_until_ready(params)
    report(EPOCHS_STEADY * spe * BATCH / max(time.perf_counter() - t, 1e-9), t97, e97)


def run_torch(model: str) -> None:
    import numpy as np
    import torch
    from torch import nn

    torch.manual_seed(0)
    xtr, ytr, xte, yte = digits_split()
    if model == "mlp":
        net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64, 256),
            nn.ReLU(),
            nn.Linear(256, 256),
            nn.ReLU(),
            nn.Linear(256, 10),
        )
        to = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    else:
        net = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(64, 10),
        )
        to = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))  # noqa: E731
    xd, yd, xt, yt = (
        to(xtr),
        torch.from_numpy(ytr.astype(np.int64)),
        to(xte),
        torch.from_numpy(yte.astype(np.int64)),
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    lossf = nn.CrossEntropyLoss()
    spe = len(xtr) // BATCH
    g = torch.Generator().manual_seed(0)

    def epoch() -> None:
        perm = torch.randperm(len(xtr), generator=g)
        for i in range(spe):
            idx = perm[i * BATCH : (i + 1) * BATCH]
            opt.zero_grad()
            lossf(net(xd[idx]), yd[idx]).backward()
            opt.step()

    t97 = e97 = None
    for e in range(MAX_EPOCHS):
        epoch()
        with torch.no_grad():
            if seen((net(xt).argmax(-1) == yt).float().mean()):
                t97, e97 = time.perf_counter() - T0, e + 1
                break
    t = time.perf_counter()
    for _ in range(EPOCHS_STEADY):
        epoch()
    report(EPOCHS_STEADY * spe * BATCH / max(time.perf_counter() - t, 1e-9), t97, e97)


RUNNERS = {"nnlang": run_nnlang, "flax": run_flax, "jax-fused": run_jax_fused, "torch": run_torch}


def available(name: str, model: str) -> bool:
    if name == "torch":
        try:
            import importlib.util

            return importlib.util.find_spec("torch") is not None
        except ImportError:
            return False
    return not (name == "jax-fused" and model == "cnn")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", choices=["mlp", "cnn"], nargs="*", default=["mlp", "cnn"])
    ap.add_argument("--runners", nargs="*", default=list(RUNNERS))
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--fixed", type=int, help=argparse.SUPPRESS)
    ap.add_argument(
        "--whole",
        type=int,
        metavar="N",
        help="instead: the whole process of a 30-epoch MLP run, N rounds taken alternately "
        "(nnlang train from the command line with a warm compilation cache, against the "
        "scripts), with ratios pair by pair",
    )
    a = ap.parse_args()
    if a.one:
        if a.fixed:
            fixed(a.fixed)
        RUNNERS[a.one](a.model[0])
        return
    if a.whole:
        whole(a.whole, [r for r in a.runners if r != "nnlang" and available(r, "mlp")])
        return
    import platform

    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, python {platform.python_version()}"
    )
    print(
        f"{'model':<5} {'runner':<10} {'samples/s':>10} {'time to 97%':>15} {'epochs':>7} {'wall s':>7}"
    )
    for model in a.model:
        for name in a.runners:
            if not available(name, model):
                continue
            t = time.perf_counter()
            r = subprocess.run(
                [sys.executable, __file__, "--one", name, "--model", model],
                capture_output=True,
                text=True,
                env={**os.environ, "JAX_PLATFORMS": "cpu"},
            )
            wall = time.perf_counter() - t
            if r.returncode != 0:
                print(
                    f"{model:<5} {name:<10} failed: {r.stderr.strip().splitlines()[-1] if r.stderr else r.returncode}"
                )
                continue
            res = json.loads(r.stdout.strip().splitlines()[-1])
            t97 = f"{res['t97']:.2f}s" if res["t97"] else f"never ({res['best']:.1%})"
            print(
                f"{model:<5} {name:<10} {res['steady']:>10,.0f} {t97:>15} {res['epochs97'] or '-':>7} {wall:>7.1f}",
                flush=True,
            )


def whole(rounds: int, scripts: list[str], epochs: int = 30) -> None:
    """Whole-process seconds of ``nnlang train`` (the CLI, its run directory, TensorBoard
    files, checkpoints and the final evaluation; one warm-up run fills the compilation
    cache) and of each script runner training the MLP for ``epochs`` epochs, taken in
    turn A B C A B C ..., and the ratio nnlang / script of each round."""
    import statistics
    import tempfile
    from pathlib import Path

    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    with tempfile.TemporaryDirectory() as d:
        nn = Path(d) / "mlp.nn"
        nn.write_text(MLP_NN)

        def timed(name: str, k: int) -> float:
            if name == "nnlang":
                out = Path(d) / f"run{k}"
                cmd = ["nnlang", "train", str(nn), "--set", f"epochs={epochs}", "-q"]
                cmd += ["--out", str(out)]
            else:
                cmd = [sys.executable, __file__, "--one", name, "--model", "mlp"]
                cmd += ["--fixed", str(epochs)]
            t = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, env=env)
            return time.perf_counter() - t

        timed("nnlang", -1)  # the compilation cache, as a user's second run has it
        order = ["nnlang", *scripts]
        secs: dict[str, list[float]] = {n: [] for n in order}
        for k in range(rounds):
            for name in order[k % len(order) :] + order[: k % len(order)]:
                secs[name].append(timed(name, k))
    print(f"whole process, MLP, {epochs} epochs, {rounds} rounds taken in turn (median s):")
    for name in order:
        print(
            f"  {name:<10} {statistics.median(secs[name]):6.2f}  {[round(x, 2) for x in secs[name]]}"
        )
    for name in scripts:
        ratios = [a / b for a, b in zip(secs["nnlang"], secs[name], strict=True)]
        print(
            f"  nnlang / {name:<10} median {statistics.median(ratios):.2f}  {[round(x, 2) for x in ratios]}"
        )


if __name__ == "__main__":
    main()
