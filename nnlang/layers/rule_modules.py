"""Flax-side modules of the kinds that learn by a local rule: the self-organising map
(Kohonen), the restricted Boltzmann machine (contrastive divergence) and the classical
Hopfield network (Hebbian, pseudo-inverse and Storkey storage), plus the modern
(continuous) Hopfield layer, which trains by gradient like any layer.

A rule module's ``__call__`` is its inference function (best-matching unit, hidden
probabilities, recalled pattern). Its ``rule(x, y, ctx)`` returns per-example arrays
``[B]``: ``"rule"``, a surrogate whose plain SGD gradient *is* the textbook update
(the rule's quantities, such as the best-matching unit or the Gibbs chain's end, are
under ``stop_gradient``), and the statistics its metrics average. ``ctx`` holds
``scale`` (the train section's ``rule_schedule`` at this step, multiplying the rule's
parameter such as the radius), ``key`` (a function giving this step's random key) and ``train``.

Imported lazily inside ``build`` rules, like ``modules.py``. Imports JAX, Flax, NumPy.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

sg = jax.lax.stop_gradient

#: per-example values by name ("rule", "quantization_error", ...)
Values = dict[str, jax.Array]


class RuleState(nnx.Variable[jax.Array]):
    """State a rule keeps between steps (the persistent Gibbs chain): saved in
    checkpoints with the parameters, never touched by the optimizer."""


# ----------------------------------------------------------------------- SOM
def grid_positions(rows: int, cols: int, grid: str) -> np.ndarray:
    """[rows*cols, 2] positions of the units (row-major): integer (row, col) on a
    rectangular grid; on a hexagonal one every other row is shifted by half a unit and
    rows are sqrt(3)/2 apart, so the six neighbours are at distance 1 (MiniSom's)."""
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    r, c = r.astype(np.float64), c.astype(np.float64)
    if grid == "hexagonal":
        c = c - 0.5 * ((rows - 1 - r) % 2 == 0)
        r = r * (math.sqrt(3.0) / 2.0)
    return np.stack([r.ravel(), c.ravel()], axis=1)


#: the most elements of [B, U, F] for which :meth:`SOM.distances2` sums differences
DIRECT_DISTANCES = 1 << 16


class SOM(nnx.Module):
    """A Kohonen map of ``rows * cols`` units with codebook vectors ``w_j`` of the last
    axis. Called, it gives each sample's best-matching unit ``argmin_j ‖x − w_j‖``
    (row-major index, int32)."""

    def __init__(
        self,
        features: int,
        rows: int,
        cols: int,
        grid: str,
        neighbourhood: str,
        sigma: float,
        variant: str,
        *,
        dtype: Any,
        rngs: nnx.Rngs,
    ) -> None:
        self.weights = nnx.Param(jax.random.uniform(rngs.params(), (rows * cols, features), dtype))
        self.shape = (rows, cols)
        self.grid = grid
        self.neighbourhood = neighbourhood
        self.sigma = float(sigma)
        self.variant = variant

    def distances2(self, x: jax.Array) -> jax.Array:
        """[B, U] squared distances ‖x − w_j‖² (differentiable in the weights): summed
        differences for a small batch (one fused kernel: online training takes one sample
        per step, and three kernels cost it 15%), else ‖x‖² − 2 x·w + ‖w‖² (a matmul)."""
        w = self.weights[...]
        x = x.reshape(x.shape[0], -1)
        if isinstance(x.shape[0], int) and x.shape[0] * w.size <= DIRECT_DISTANCES:
            return jnp.sum(jnp.square(x[:, None, :] - w[None, :, :]), axis=-1)
        d2 = jnp.sum(x * x, axis=1, keepdims=True) - 2.0 * x @ w.T + jnp.sum(w * w, axis=1)[None, :]
        return jnp.maximum(d2, 0.0)

    def __call__(self, x: jax.Array) -> jax.Array:
        return jnp.argmin(self.distances2(x), axis=1).astype(jnp.int32)

    def _grid(self) -> tuple[jax.Array, jax.Array]:
        rows, cols = self.shape
        pos = jnp.asarray(grid_positions(rows, cols, self.grid), jnp.float32)
        r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        idx = jnp.asarray(np.stack([r.ravel(), c.ravel()], axis=1), jnp.float32)
        return pos, idx

    def neighbours(self, bmu: jax.Array, sigma: jax.Array) -> jax.Array:
        """[B, U] neighbourhood h_{j, bmu}(σ): gaussian exp(−‖p_j − p_bmu‖² / 2σ²) over
        the grid positions, or bubble 1 where |Δrow| < σ and |Δcol| < σ (MiniSom's)."""
        pos, idx = self._grid()
        if self.neighbourhood == "gaussian":
            d2 = jnp.sum(jnp.square(pos[None, :, :] - pos[bmu][:, None, :]), axis=-1)
            return jnp.exp(-d2 / (2.0 * sigma * sigma))
        d = jnp.abs(idx[None, :, :] - idx[bmu][:, None, :])
        return jnp.all(d < sigma, axis=-1).astype(jnp.float32)

    def rule(self, x: jax.Array, y: jax.Array, ctx: dict[str, Any]) -> Values:
        d2 = self.distances2(x).astype(jnp.float32)
        bmu = jnp.argmin(sg(d2), axis=1)
        h = sg(self.neighbours(bmu, self.sigma * ctx["scale"]))
        energy = 0.5 * h * d2  # [B, U]: ½ h_{j,bmu} ‖x − w_j‖²
        if self.variant == "batch":
            # w_j ← (1 − η) w_j + η Σ_b h_bj x_b / Σ_b h_bj (Kohonen's batch map)
            total = sg(jnp.sum(h, axis=0))
            share = jnp.where(total > 0, x.shape[0] / jnp.where(total > 0, total, 1.0), 0.0)
            surrogate = jnp.sum(energy * share[None, :], axis=1)
        else:  # online: w_j ← w_j + η h_{j,bmu} (x − w_j), averaged over the batch
            surrogate = jnp.sum(energy, axis=1)
        if ctx["train"]:  # the statistics are for evaluation only
            return {"rule": surrogate}
        second = jnp.argmin(jnp.where(jax.nn.one_hot(bmu, d2.shape[1]) > 0, jnp.inf, d2), axis=1)
        pos, _ = self._grid()
        gap = jnp.sqrt(jnp.sum(jnp.square(pos[bmu] - pos[second]), axis=-1))
        limit = 1.0 + 1e-4 if self.grid == "hexagonal" else 1.42
        qe = jnp.sqrt(jnp.take_along_axis(sg(d2), bmu[:, None], axis=1)[:, 0])
        return {
            "rule": surrogate,
            "quantization_error": qe,
            "topographic_error": (gap > limit).astype(jnp.float32),
        }


# ----------------------------------------------------------------------- RBM
class RBM(nnx.Module):
    """A restricted Boltzmann machine with ``hidden`` Bernoulli units over Bernoulli or
    unit-variance Gaussian visible units. Called, it gives ``p(h = 1 | v)``."""

    def __init__(
        self,
        features: int,
        hidden: int,
        visible: str,
        k: int,
        chains: int,
        *,
        dtype: Any,
        rngs: nnx.Rngs,
    ) -> None:
        # scikit-learn's BernoulliRBM initialisation: W ~ N(0, 0.01²), zero biases
        self.weights = nnx.Param(0.01 * jax.random.normal(rngs.params(), (features, hidden), dtype))
        self.visible_bias = nnx.Param(jnp.zeros((features,), dtype))
        self.hidden_bias = nnx.Param(jnp.zeros((hidden,), dtype))
        self.visible = visible
        self.k = int(k)
        self.chains = int(chains)
        if chains:  # persistent CD: the chain's hidden samples live on between steps
            self.chain = RuleState(jnp.zeros((chains, hidden), dtype))

    def hidden_probs(self, v: jax.Array) -> jax.Array:
        return jax.nn.sigmoid(v @ self.weights[...] + self.hidden_bias[...])

    def visible_mean(self, h: jax.Array) -> jax.Array:
        a = h @ self.weights[...].T + self.visible_bias[...]
        return jax.nn.sigmoid(a) if self.visible == "bernoulli" else a

    def free_energy(self, v: jax.Array) -> jax.Array:
        """F(v) = −b·v − Σ_j softplus(c_j + v·W_j) (Bernoulli visible units), or
        ½‖v − b‖² − Σ_j softplus(c_j + v·W_j) (Gaussian, unit variance)."""
        act = jnp.sum(jax.nn.softplus(v @ self.weights[...] + self.hidden_bias[...]), axis=-1)
        b = self.visible_bias[...]
        if self.visible == "bernoulli":
            return -(v @ b) - act
        return 0.5 * jnp.sum(jnp.square(v - b), axis=-1) - act

    def sample_visible(self, key: jax.Array, h: jax.Array) -> jax.Array:
        m = self.visible_mean(h)
        if self.visible == "bernoulli":
            return jax.random.bernoulli(key, m).astype(m.dtype)
        return m + jax.random.normal(key, m.shape, m.dtype)

    def gibbs(self, key: jax.Array, h: jax.Array, steps: int) -> tuple[jax.Array, jax.Array]:
        """``steps`` rounds h → v → h from hidden samples ``h``: the last visible sample
        and the hidden probabilities given it."""
        v = p = h
        for i in range(steps):
            kv, kh = jax.random.split(jax.random.fold_in(key, i))
            v = self.sample_visible(kv, h)
            p = self.hidden_probs(v)
            h = jax.random.bernoulli(kh, p).astype(p.dtype)
        return v, p

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.hidden_probs(x.reshape(x.shape[0], -1))

    def rule(self, x: jax.Array, y: jax.Array, ctx: dict[str, Any]) -> Values:
        v0 = x.reshape(x.shape[0], -1)
        key = ctx["key"]()
        k_start, k_chain, k_pll = jax.random.split(key, 3)
        if self.chains:  # PCD (Tieleman 2008): continue the chain kept in the state
            vk, pk = self.gibbs(k_chain, self.chain[...], self.k)
            if ctx["train"]:
                self.chain[...] = sg(jax.random.bernoulli(k_start, pk).astype(pk.dtype))
            negative = jnp.mean(self.free_energy(sg(vk)))
        else:  # CD-k (Hinton 2002): a chain started at the data
            h0 = jax.random.bernoulli(k_start, self.hidden_probs(v0)).astype(v0.dtype)
            vk, _ = self.gibbs(k_chain, sg(h0), self.k)
            negative = self.free_energy(sg(vk))
        f0 = self.free_energy(v0)
        recon = self.visible_mean(self.hidden_probs(v0))
        # pseudo-log-likelihood as scikit-learn's score_samples: one random bit flipped
        n = v0.shape[1]
        flip = jax.nn.one_hot(jax.random.randint(k_pll, (v0.shape[0],), 0, n), n, dtype=v0.dtype)
        flipped = v0 + flip - 2.0 * v0 * flip
        pll = n * jax.nn.log_sigmoid(self.free_energy(flipped) - f0)
        return {
            "rule": f0 - negative,
            "reconstruction_error": jnp.mean(jnp.square(sg(v0 - recon)), axis=1),
            "pseudo_log_likelihood": sg(pll),
        }


# ------------------------------------------------------------------ Hopfield
def _sign(a: jax.Array, old: jax.Array) -> jax.Array:
    """sign(a), keeping the old state where a = 0."""
    return jnp.where(a > 0, 1.0, jnp.where(a < 0, -1.0, old)).astype(old.dtype)


class Hopfield(nnx.Module):
    """A classical Hopfield network of ±1 units with symmetric weights and no
    self-connections. Called with a probe it returns the state recall reaches."""

    def __init__(
        self, units: int, storage: str, update: str, steps: int, *, dtype: Any, rngs: nnx.Rngs
    ) -> None:
        self.weights = nnx.Param(jnp.zeros((units, units), dtype))
        self.storage = storage
        self.update = update
        self.steps = int(steps)

    def _w(self) -> jax.Array:
        w = self.weights[...]
        return w * (1.0 - jnp.eye(w.shape[0], dtype=w.dtype))

    def energy(self, s: jax.Array) -> jax.Array:
        """E(s) = −½ sᵀ W s, per example."""
        return -0.5 * jnp.einsum("bi,ij,bj->b", s, self._w(), s)

    def sweep(self, s: jax.Array) -> jax.Array:
        """One update of every unit: all at once (synchronous), or one after another in
        index order, each seeing the units updated before it (asynchronous)."""
        w = self._w()
        if self.update == "synchronous":
            return _sign(s @ w, s)

        def unit(i: jax.Array, s: jax.Array) -> jax.Array:
            a = s @ w[i]
            return s.at[:, i].set(_sign(a, s[:, i]))

        return jax.lax.fori_loop(0, w.shape[0], unit, s)

    def __call__(self, x: jax.Array) -> jax.Array:
        s0 = _sign(x.reshape(x.shape[0], -1), jnp.ones_like(x.reshape(x.shape[0], -1)))

        def cond(c: tuple[jax.Array, jax.Array, jax.Array]) -> jax.Array:
            i, _, changed = c
            return (i < self.steps) & changed

        def body(
            c: tuple[jax.Array, jax.Array, jax.Array],
        ) -> tuple[jax.Array, jax.Array, jax.Array]:
            i, s, _ = c
            new = self.sweep(s)
            return i + 1, new, jnp.any(new != s)

        _, s, _ = jax.lax.while_loop(cond, body, (jnp.int32(0), s0, jnp.array(True)))
        return s.reshape(x.shape)

    def stored(self, x: jax.Array) -> jax.Array:
        """The weights after storing the batch's patterns ``x`` [B, N] (±1)."""
        w = self._w()
        n = x.shape[1]
        if self.storage == "hebbian":  # W += (1/N) Σ_μ ξ ξᵀ
            return w + (x.T @ x) / n
        if self.storage == "pseudoinverse":  # W = X⁺ X, the projection onto the patterns
            return jnp.linalg.pinv(x) @ x

        def one(w: jax.Array, xi: jax.Array) -> tuple[jax.Array, None]:
            # Storkey (1997): h_ij = Σ_{k≠i,j} w_ik ξ_k; Δw_ij = (ξ_i ξ_j − ξ_i h_ji − h_ij ξ_j)/N
            h = w @ xi  # diagonal is zero, so h_i excludes k = i
            hij = h[:, None] - w * xi[None, :]
            dw = (jnp.outer(xi, xi) - xi[:, None] * hij.T - hij * xi[None, :]) / n
            return (w + dw) * (1.0 - jnp.eye(n, dtype=w.dtype)), None

        w, _ = jax.lax.scan(one, w, x)
        return w

    def rule(self, x: jax.Array, y: jax.Array, ctx: dict[str, Any]) -> Values:
        s = x.reshape(x.shape[0], -1)
        target = sg(self.stored(s) * (1.0 - jnp.eye(s.shape[1], dtype=s.dtype)))
        w = self.weights[...]
        # the gradient of −⟨W* − W, W⟩ is W − W*: SGD with lr = 1 sets W to W*
        surrogate = -jnp.sum(sg(target - w) * w)
        return {
            "rule": jnp.broadcast_to(surrogate, (s.shape[0],)),
            "energy": sg(self.energy(y.reshape(y.shape[0], -1))),
        }


class ModernHopfield(nnx.Module):
    """Ramsauer et al. (2020): ``patterns`` learned stored patterns X (rows) and the
    update ξ ← Xᵀ softmax(β X ξ), ``steps`` times."""

    def __init__(
        self, features: int, patterns: int, beta: float, steps: int, *, dtype: Any, rngs: nnx.Rngs
    ) -> None:
        self.patterns = nnx.Param(
            jax.random.normal(rngs.params(), (patterns, features), dtype) / math.sqrt(features)
        )
        self.beta = float(beta)
        self.steps = int(steps)

    def __call__(self, x: jax.Array) -> jax.Array:
        p = self.patterns[...]
        for _ in range(self.steps):
            x = jax.nn.softmax(self.beta * (x @ p.T), axis=-1) @ p
        return x
