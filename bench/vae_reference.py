"""examples/vae.nn against a hand-written JAX/Flax VAE of the same architecture.

Both train on the same split of the 8x8 digits (nnlang's `digits(test = 0.2, seed = 0)`,
pixels scaled by 1/16), with Adam(1e-3), batch 64, 30 epochs and seed 0, and report the
test negative ELBO in nats per image with z = mean (what `nnlang eval` reports for the
example): the summed Bernoulli cross-entropy of the pixels plus KL(q(z|x) || N(0, 1)).

    python bench/vae_reference.py            # prints both and their ratio
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "vae.nn"
LATENT, HIDDEN, LR, BATCH, EPOCHS, SEED = 8, 128, 1e-3, 64, 30, 0


def digits() -> tuple[np.ndarray, np.ndarray]:
    """The example's train and test images, flattened and scaled to [0, 1]."""
    from nnlang.train.data import load_data

    ds = load_data("digits", (), {"test": 0.2, "seed": 0}, root=ROOT / "examples")
    key = ds.feature_keys[0]
    train, test = (
        ds.splits[s][key].reshape(-1, 64).astype(np.float32) / 16 for s in ("train", "test")
    )
    return train, test


class VAE(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.enc = nnx.Linear(64, HIDDEN, rngs=rngs)
        self.mean = nnx.Linear(HIDDEN, LATENT, rngs=rngs)
        self.log_var = nnx.Linear(HIDDEN, LATENT, rngs=rngs)
        self.dec1 = nnx.Linear(LATENT, HIDDEN, rngs=rngs)
        self.dec2 = nnx.Linear(HIDDEN, 64, rngs=rngs)

    def __call__(self, x: jax.Array, eps: jax.Array | None) -> tuple[jax.Array, ...]:
        h = jax.nn.relu(self.enc(x))
        mean, log_var = self.mean(h), self.log_var(h)
        z = mean if eps is None else mean + jnp.exp(0.5 * log_var) * eps
        return self.dec2(jax.nn.relu(self.dec1(z))), mean, log_var


def neg_elbo(model: VAE, x: jax.Array, eps: jax.Array | None) -> jax.Array:
    """Per-image negative ELBO: sum of pixel cross-entropies + KL to N(0, 1)."""
    logits, mean, log_var = model(x, eps)
    rec = optax.losses.sigmoid_binary_cross_entropy(logits, x).sum(axis=1)
    kl = -0.5 * jnp.sum(1 + log_var - jnp.square(mean) - jnp.exp(log_var), axis=1)
    return rec + kl


def reference(train: np.ndarray, test: np.ndarray) -> float:
    model = VAE(nnx.Rngs(SEED))
    opt = nnx.Optimizer(model, optax.adam(LR), wrt=nnx.Param)

    @nnx.jit
    def step(model: VAE, opt: nnx.Optimizer, x: jax.Array, key: jax.Array) -> jax.Array:
        eps = jax.random.normal(key, (x.shape[0], LATENT))
        loss, grads = nnx.value_and_grad(lambda m: neg_elbo(m, x, eps).mean())(model)
        opt.update(model, grads)
        return loss

    rng = np.random.default_rng(SEED)
    key = jax.random.key(SEED)
    for _ in range(EPOCHS):
        perm = rng.permutation(len(train))
        for i in range(len(train) // BATCH):
            key, sub = jax.random.split(key)
            step(model, opt, jnp.asarray(train[perm[i * BATCH : (i + 1) * BATCH]]), sub)
    return float(nnx.jit(lambda m, x: neg_elbo(m, x, None).mean())(model, jnp.asarray(test)))


def nnlang_vae() -> float:
    from nnlang.train.run import train

    with tempfile.TemporaryDirectory() as tmp:
        r = train(EXAMPLE, out=Path(tmp) / "run", progress=False)
    return float(r.test["loss"])


def main() -> int:
    train, test = digits()
    t = time.time()
    ref = reference(train, test)
    t_ref = time.time() - t
    t = time.time()
    ours = nnlang_vae()
    t_ours = time.time() - t
    print(f"reference JAX/Flax VAE: test negative ELBO {ref:.3f} nats/image ({t_ref:.1f}s)")
    print(f"nnlang examples/vae.nn: test negative ELBO {ours:.3f} nats/image ({t_ours:.1f}s)")
    print(f"nnlang / reference: {ours / ref:.4f} ({100 * (ours / ref - 1):+.2f}%)")
    return 0 if abs(ours / ref - 1) <= 0.03 else 1


if __name__ == "__main__":
    sys.exit(main())
