"""Convolution lowerings on XLA:CPU, one training step of the benchmark CNN (3x3 convs
32-32-64, a 2x2 max pool, global average pool, dense 10; Adam; batch 64 of 8x8x1):

- ``lax``: ``lax.conv_general_dilated`` NHWC/HWIO, what ``nnx.Conv`` emits;
- ``patches``: explicit im2col (pad, one slice per kernel tap, concatenated on the
  channels) and one matmul, backward by JAX's transposes (pads and a matmul);
- ``torch`` (with ``--torch``): the same network in eager PyTorch, 2 threads.

Rounds taken in turn (10 steps each), so load from elsewhere falls on every variant;
printed: min, 25th percentile and median ms per step, and each variant's ratio to
PyTorch pair by pair. First the two lowerings' outputs and kernel gradients are
compared. XLA flags go in ``XLA_FLAGS`` as usual.

    python bench/conv_lowering.py [--rounds 30] [--torch]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

B = 64


def conv_lax(x, k, b):  # noqa: ANN001, ANN201
    dn = ("NHWC", "HWIO", "NHWC")
    return jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=dn) + b


def conv_patches(x, k, b):  # noqa: ANN001, ANN201
    kh, kw, c, o = k.shape
    n, h, w, _ = x.shape
    ph, pw = (kh - 1) // 2, (kw - 1) // 2
    xp = jnp.pad(x, ((0, 0), (ph, kh - 1 - ph), (pw, kw - 1 - pw), (0, 0)))
    taps = [xp[:, i : i + h, j : j + w, :] for i in range(kh) for j in range(kw)]
    cols = jnp.concatenate(taps, axis=-1).reshape(n * h * w, kh * kw * c)
    return (cols @ k.reshape(kh * kw * c, o)).reshape(n, h, w, o) + b


def init() -> dict:
    ks = jax.random.split(jax.random.key(0), 4)
    shapes = {"c1": (3, 3, 1, 32), "c2": (3, 3, 32, 32), "c3": (3, 3, 32, 64), "d": (64, 10)}
    return {
        n: (jax.random.normal(k, s) * 0.1, jnp.zeros(s[-1]))
        for k, (n, s) in zip(ks, shapes.items(), strict=True)
    }


def model(conv, p, x):  # noqa: ANN001, ANN201
    x = jax.nn.relu(conv(x, *p["c1"]))
    x = jax.nn.relu(conv(x, *p["c2"]))
    n, h, w, c = x.shape
    x = x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))
    x = jax.nn.relu(conv(x, *p["c3"])).mean(axis=(1, 2))
    return x @ p["d"][0] + p["d"][1]


def make_step(conv, tx):  # noqa: ANN001, ANN201
    @jax.jit
    def step(p, o, x, y):  # noqa: ANN001, ANN202
        def lf(p):  # noqa: ANN001, ANN202
            return optax.softmax_cross_entropy_with_integer_labels(model(conv, p, x), y).mean()

        loss, g = jax.value_and_grad(lf)(p)
        u, o = tx.update(g, o, p)
        return optax.apply_updates(p, u), o, loss

    return step


def torch_step(x: np.ndarray, y: np.ndarray):  # noqa: ANN201
    import torch
    from torch import nn

    torch.set_num_threads(2)
    torch.manual_seed(0)
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
    opt, lf = torch.optim.Adam(net.parameters(), 1e-3), nn.CrossEntropyLoss()
    tx_ = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    ty_ = torch.from_numpy(y.astype(np.int64))

    def step() -> None:
        opt.zero_grad()
        lf(net(tx_), ty_).backward()
        opt.step()

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--torch", action="store_true")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    x, y = rng.random((B, 8, 8, 1), np.float32), rng.integers(0, 10, B)
    p0 = init()
    xs = jnp.asarray(rng.random((4, 8, 8, 32), np.float32))
    k, b = p0["c2"]
    fwd = float(jnp.abs(conv_lax(xs, k, b) - conv_patches(xs, k, b)).max())
    ga = jax.grad(lambda k: conv_lax(xs, k, b).sum())(k)
    gb = jax.grad(lambda k: conv_patches(xs, k, b).sum())(k)
    print(
        f"patches vs lax: max |forward| diff {fwd:.2e}, max |kernel grad| diff "
        f"{float(jnp.abs(ga - gb).max()):.2e} (of {float(jnp.abs(ga).max()):.1f})"
    )
    tx = optax.adam(1e-3)
    steps = {"lax": make_step(conv_lax, tx), "patches": make_step(conv_patches, tx)}
    state = {n: (p0, tx.init(p0)) for n in steps}
    xd, yd = jnp.asarray(x), jnp.asarray(y)
    for n, f in steps.items():
        jax.block_until_ready(f(*state[n], xd, yd))
    ts: dict[str, list[float]] = {n: [] for n in steps}
    ref = torch_step(x, y) if a.torch else None
    if ref is not None:
        ts["torch"] = []
    for _ in range(a.rounds):
        for n, f in steps.items():
            p, o = state[n]
            t = time.perf_counter()
            for _ in range(10):
                p, o, loss = f(p, o, xd, yd)
            jax.block_until_ready(loss)
            ts[n].append((time.perf_counter() - t) / 10)
            state[n] = (p, o)
        if ref is not None:
            t = time.perf_counter()
            for _ in range(10):
                ref()
            ts["torch"].append((time.perf_counter() - t) / 10)
    for n, v in ts.items():
        q = np.percentile(v, [0, 25, 50]) * 1e3
        print(
            f"{n:8s} ms/step min {q[0]:.2f}  p25 {q[1]:.2f}  median {q[2]:.2f}"
            f"  ({B / np.median(v):,.0f} samples/s)"
        )
    if ref is not None:
        for n in steps:
            r = [t / s for s, t in zip(ts[n], ts["torch"], strict=True)]
            print(
                f"  {n} / torch speed, pair by pair: median {np.median(r):.2f} "
                f"[{min(r):.2f}-{max(r):.2f}]"
            )


if __name__ == "__main__":
    main()
