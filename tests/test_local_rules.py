"""Networks that learn by local rules (issue 11): the SOM, the RBM and the Hopfield
network run their textbook updates, match their reference libraries (MiniSom,
scikit-learn's BernoulliRBM, the Hopfield capacity), and resume exactly after kill -9.

The long side-by-side measurements are in bench/local_rules.py."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _util import ROOT, train_cmd, write
from test_train import _wait_for_checkpoint, assert_same, final_arrays

from nnlang.diagnostics import NNError
from nnlang.train.run import train

EX = ROOT / "examples"
slow = pytest.mark.skipif(os.environ.get("NNLANG_FAST_TESTS") == "1", reason="slow: real processes")


@pytest.fixture(autouse=True)
def _shared_compile_cache(tmp_path_factory, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache"))


def _digits01() -> tuple[np.ndarray, np.ndarray]:
    from nnlang.train.data import load_data

    ds = load_data("digits", (), {"test": 0.2, "seed": 0}, root=EX)
    return tuple(ds.splits[s]["x"].reshape(-1, 64) / 16.0 for s in ("train", "test"))  # type: ignore[return-value]


# ------------------------------------------------------------------ the rules' algebra
def _sgd_step(module, rule_ctx, x, lr):
    """One plain SGD step on the mean of the module's rule surrogate."""
    from flax import nnx

    def loss(m):
        return jnp.mean(m.rule(x, m(x), rule_ctx)["rule"])

    grads = nnx.grad(loss)(module)
    return jax.tree.map(lambda p, g: p - lr * g, nnx.state(module, nnx.Param), grads)


def _ctx(scale: float = 1.0, train: bool = True):
    return {"scale": jnp.float32(scale), "key": lambda: jax.random.key(0), "train": train}


@pytest.mark.parametrize("grid", ["rectangular", "hexagonal"])
def test_som_step_is_kohonens_rule(grid: str) -> None:
    from flax import nnx

    from nnlang.layers.rule_modules import SOM, grid_positions

    som = SOM(5, 3, 4, grid, "gaussian", 1.5, "online", dtype=jnp.float32, rngs=nnx.Rngs(0))
    w = np.asarray(som.weights[...], np.float64)
    x = np.random.default_rng(0).random((1, 5))
    new = np.asarray(_sgd_step(som, _ctx(0.5), jnp.asarray(x, jnp.float32), 0.3)["weights"][...])
    c = np.argmin(((x - w) ** 2).sum(1))
    p = grid_positions(3, 4, grid)
    h = np.exp(-((p - p[c]) ** 2).sum(1) / (2 * (1.5 * 0.5) ** 2))
    np.testing.assert_allclose(new, w + 0.3 * h[:, None] * (x - w), rtol=1e-5, atol=1e-6)


def test_som_batch_variant_is_the_batch_map() -> None:
    from flax import nnx

    from nnlang.layers.rule_modules import SOM

    som = SOM(4, 3, 3, "rectangular", "bubble", 1.0, "batch", dtype=jnp.float32, rngs=nnx.Rngs(1))
    w = np.asarray(som.weights[...], np.float64)
    x = np.random.default_rng(1).random((16, 4))
    new = np.asarray(_sgd_step(som, _ctx(2.0), jnp.asarray(x, jnp.float32), 1.0)["weights"][...])
    c = np.argmin(((x[:, None] - w[None]) ** 2).sum(-1), axis=1)
    idx = np.stack(np.meshgrid(np.arange(3), np.arange(3), indexing="ij"), -1).reshape(9, 2)
    h = (np.abs(idx[None] - idx[c][:, None]) < 2.0).all(-1).astype(float)  # [B, U]
    hit = h.sum(0) > 0
    want = np.where(hit[:, None], (h.T @ x) / np.maximum(h.sum(0), 1)[:, None], w)
    np.testing.assert_allclose(new, want, rtol=1e-5, atol=1e-6)


def test_rbm_gradient_is_the_cd_statistics() -> None:
    """SGD on F(v) - F(sg(v_k)) moves W by lr * (<v h>_data - <v h>_chain) (CD-k)."""
    from flax import nnx

    from nnlang.layers.rule_modules import RBM

    rbm = RBM(6, 4, "bernoulli", 1, 0, dtype=jnp.float32, rngs=nnx.Rngs(0))
    rbm.weights[...] = jax.random.normal(jax.random.key(3), (6, 4)) * 0.5
    v = (np.random.default_rng(2).random((8, 6)) < 0.5).astype(np.float32)
    ctx = _ctx()
    new = _sgd_step(rbm, ctx, jnp.asarray(v), 0.1)
    # the chain the rule ran, rebuilt from the same keys
    k_start, k_chain, _ = jax.random.split(ctx["key"](), 3)
    h0 = jax.random.bernoulli(k_start, rbm.hidden_probs(jnp.asarray(v))).astype(jnp.float32)
    vk, pk = rbm.gibbs(k_chain, h0, 1)
    ph = rbm.hidden_probs(jnp.asarray(v))
    dw = (v.T @ np.asarray(ph) - np.asarray(vk).T @ np.asarray(pk)) / len(v)
    np.testing.assert_allclose(
        np.asarray(new["weights"][...]), np.asarray(rbm.weights[...]) + 0.1 * dw, atol=1e-5
    )


def test_hopfield_energy_never_rises_under_asynchronous_updates() -> None:
    from flax import nnx

    from nnlang.layers.rule_modules import Hopfield

    rng = np.random.default_rng(0)
    net = Hopfield(40, "hebbian", "asynchronous", 1, dtype=jnp.float32, rngs=nnx.Rngs(0))
    a = rng.normal(size=(40, 40))
    net.weights[...] = jnp.asarray(a + a.T, jnp.float32)  # symmetric, any values
    s = jnp.asarray(np.where(rng.random((16, 40)) < 0.5, -1.0, 1.0), jnp.float32)
    w = np.asarray(net._w())
    energy = np.asarray(net.energy(s))
    start = energy.copy()
    state = np.array(s)
    for _ in range(3):  # unit by unit, as the asynchronous sweep does
        for i in range(40):
            a_i = state @ w[i]
            state[:, i] = np.where(a_i > 0, 1.0, np.where(a_i < 0, -1.0, state[:, i]))
            e = np.asarray(net.energy(jnp.asarray(state)))
            assert (e <= energy + 1e-4).all()
            energy = e
    # the layer's sweep is that unit-by-unit update, and its recall only lowers E
    np.testing.assert_array_equal(np.asarray(net.sweep(s)), _one_sweep(w, np.array(s)))
    net.steps = 10
    assert (np.asarray(net.energy(net(s))) <= start + 1e-4).all()


def _one_sweep(w: np.ndarray, s: np.ndarray) -> np.ndarray:
    s = s.copy()
    for i in range(w.shape[0]):
        a = s @ w[i]
        s[:, i] = np.where(a > 0, 1.0, np.where(a < 0, -1.0, s[:, i]))
    return s


@pytest.mark.parametrize(("storage", "patterns"), [("storkey", 10), ("hebbian", 5)])
def test_hopfield_recalls_every_pattern_from_10_percent_flipped(
    storage: str, patterns: int, tmp_path: Path
) -> None:
    sets = [f'storage="{storage}"', f"data.patterns={patterns}", f"batch={patterns}"]
    r = train(EX / "hopfield.nn", out=tmp_path / "run", sets=sets, progress=False)
    assert r.test["recall_accuracy"] == 1.0, r.test


# ------------------------------------------------------------------ against the references
def test_som_matches_minisom(tmp_path: Path) -> None:
    minisom = pytest.importorskip("minisom")
    train_x, test_x = _digits01()
    r = train(EX / "som.nn", out=tmp_path / "run", sets=["epochs=2"], progress=False)
    ref = minisom.MiniSom(10, 10, 64, sigma=1.0, learning_rate=0.5, random_seed=0)
    ref.random_weights_init(train_x)
    ref.train(train_x, 2 * len(train_x), random_order=True)
    qe, te = ref.quantization_error(test_x), ref.topographic_error(test_x)
    assert r.test["quantization_error"] <= 1.05 * qe, (r.test, qe)
    assert r.test["topographic_error"] <= te + 0.02, (r.test, te)
    assert (r.run_dir / "umatrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rbm_reconstructs_as_well_as_bernoulli_rbm(tmp_path: Path) -> None:
    from sklearn.neural_network import BernoulliRBM

    train_x, test_x = _digits01()
    r = train(EX / "rbm.nn", out=tmp_path / "run", sets=["epochs=2"], progress=False)
    ref = BernoulliRBM(n_components=256, learning_rate=0.1, batch_size=10, n_iter=2, random_state=0)
    ref.fit(train_x)
    recon = 1 / (1 + np.exp(-(ref.transform(test_x) @ ref.components_ + ref.intercept_visible_)))
    assert r.test["reconstruction_error"] <= np.mean(np.square(test_x - recon)), r.test


def test_rule_of_an_output_without_a_rule_is_located(tmp_path: Path) -> None:
    src = write(
        tmp_path,
        "m.nn",
        """model M {
    input x: f32[4]
    output y = x -> dense(2)
}
train M {
    data = iris(test = 0.2)
    loss = rule(y)
    optimizer = sgd(lr = 0.1)
    epochs = 1
}
""",
    )
    with pytest.raises(NNError) as e:
        train(src, out=tmp_path / "run", progress=False)
    d = e.value.diagnostics[0]
    assert d.code == "E404" and "learns by a local rule" in d.message and d.span is not None


# ------------------------------------------------------------------ exact resume
@slow
@pytest.mark.parametrize(("example", "sets"), [("som", {"epochs": 12}), ("rbm", {"epochs": 8})])
def test_kill_and_resume_is_exact(example: str, sets: dict[str, object], tmp_path: Path) -> None:
    """kill -9 mid-run; the resumed run ends bitwise where an unbroken one does (the SOM's
    decaying radius follows the checkpointed step count, the RBM's persistent chain is
    saved with the weights)."""
    src = EX / f"{example}.nn"
    ref = tmp_path / "ref"
    subprocess.run(train_cmd(src, ref, sets), check=True, capture_output=True)
    run = tmp_path / "killed"
    proc = subprocess.Popen(
        train_cmd(src, run, sets), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    _wait_for_checkpoint(run, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert not (run / "result.json").exists(), "the run finished before it was killed"
    subprocess.run(train_cmd(src, run, sets, "--resume"), check=True, capture_output=True)
    assert_same(final_arrays(ref), final_arrays(run))
