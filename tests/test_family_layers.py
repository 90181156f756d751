"""The paper families' layers compute what their papers write: RBF kernels, the LIF
membrane and its surrogate gradient, spike encoders, squash and routing by agreement,
capsule masking, bidirectional recurrence, position codes and preprocessing."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from nnlang.layers import REGISTRY, Args
from nnlang.shapes import TensorType


def built(name: str, ins: list[str], **kw: Any) -> Any:
    kind = REGISTRY[name]
    values = {a.name: kw.get(a.name, a.default) for a in kind.attrs}
    types = []
    for spec in ins:
        dtype, dims = spec.rstrip("]").split("[")
        types.append(TensorType(dtype, tuple(int(d) for d in dims.split(",") if d.strip())))
    return kind.build(Args(values), types, nnx.Rngs(0))


def test_rbf_kernels_follow_their_formulas() -> None:
    x = jnp.asarray(np.random.default_rng(0).standard_normal((3, 4)), jnp.float32)
    for kernel, f in (
        ("gaussian", lambda r: np.exp(-r)),
        ("multiquadric", lambda r: np.sqrt(1 + r)),
        ("inverse_multiquadric", lambda r: 1 / np.sqrt(1 + r)),
    ):
        m = built("rbf", ["f32[4]"], units=5, kernel=kernel)
        c, beta = np.asarray(m.centres[...]), np.exp(np.asarray(m.log_beta[...]))
        r = beta * ((np.asarray(x)[:, None, :] - c[None]) ** 2).sum(-1)
        np.testing.assert_allclose(np.asarray(m(x)), f(r), rtol=1e-4, atol=1e-6)


def test_lif_membrane_and_subtract_reset() -> None:
    run = built("lif", ["f32[6, 1]"], beta=0.5, threshold=1.0)
    current = jnp.full((1, 6, 1), 0.6)
    # U: 0.6, 0.9, 1.05 (spike), 0.5*1.05+0.6-1 = 0.125, 0.6625, 0.93125
    expected = [0, 0, 1, 0, 0, 0]
    assert np.asarray(run(current))[0, :, 0].tolist() == expected
    zero = built("lif", ["f32[4, 1]"], beta=0.5, reset="zero")
    # U: 0.6, 0.9, 1.05 (spike), reset to 0 then +0.6 = 0.6
    assert np.asarray(zero(current[:, :4]))[0, :, 0].tolist() == [0, 0, 1, 0]


def test_lif_spikes_are_binary_with_a_surrogate_gradient() -> None:
    for surrogate, slope in (("fast_sigmoid", 25.0), ("arctan", 2.0)):
        run = built("lif", ["f32[1, 1]"], surrogate=surrogate, slope=slope, threshold=1.0)
        s, g = jax.value_and_grad(lambda x, run=run: run(x).sum())(jnp.full((1, 1, 1), 0.8))
        u = 0.8 - 1.0
        if surrogate == "fast_sigmoid":
            want = 1 / (slope * abs(u) + 1) ** 2
        else:
            want = (slope / 2) / (1 + (math.pi / 2 * slope * u) ** 2)
        assert float(s) == 0.0
        np.testing.assert_allclose(float(g.sum()), want, rtol=1e-5)


def test_rate_encode_draws_at_the_rate_and_repeats_in_eval() -> None:
    enc = built("rate_encode", ["f32[3]"], steps=400)
    x = jnp.asarray([[0.0, 0.25, 1.0]])
    spikes = np.asarray(enc(x))
    assert spikes.shape == (1, 400, 3) and set(np.unique(spikes)) <= {0.0, 1.0}
    np.testing.assert_allclose(spikes.mean(axis=1)[0], [0.0, 0.25, 1.0], atol=0.06)
    assert not np.array_equal(spikes, np.asarray(enc(x)))  # fresh draws while training
    enc.eval()
    np.testing.assert_array_equal(np.asarray(enc(x)), np.asarray(enc(x)))


def test_latency_encode_fires_once_early_for_bright() -> None:
    enc = built("latency_encode", ["f32[3]"], steps=5)
    spikes = np.asarray(enc(jnp.asarray([[1.0, 0.5, 0.0]])))[0]
    assert spikes[:, 0].tolist() == [1, 0, 0, 0, 0]
    assert spikes[:, 1].tolist() == [0, 0, 1, 0, 0]
    assert spikes[:, 2].sum() == 0  # below the threshold: never


def test_squash_keeps_direction_and_bounds_length() -> None:
    squash = built("squash", ["f32[3]"])
    s = jnp.asarray([[3.0, 0.0, 4.0]])
    v = np.asarray(squash(s))
    np.testing.assert_allclose(v, np.asarray(s) / 5 * 25 / 26, rtol=1e-5)


def test_capsule_one_routing_iteration_is_the_uniform_average() -> None:
    m = built("capsule", ["f32[4, 2]"], capsules=3, dim=5, routing=1)
    u = jnp.asarray(np.random.default_rng(1).standard_normal((2, 4, 2)), jnp.float32)
    w = np.asarray(m.weight[...])  # [N, K, dim, D]
    u_hat = np.einsum("nkod,bnd->bnko", w, np.asarray(u))
    s = u_hat.sum(axis=1) / 3  # c_ij = softmax over the 3 outputs of zeros
    n2 = (s**2).sum(-1, keepdims=True)
    np.testing.assert_allclose(np.asarray(m(u)), s * n2 / (1 + n2) / np.sqrt(n2), rtol=1e-4)
    # more iterations move the coupling towards agreement: the output changes
    m3 = built("capsule", ["f32[4, 2]"], capsules=3, dim=5, routing=3)
    m3.weight[...] = m.weight[...]
    assert not np.allclose(np.asarray(m3(u)), np.asarray(m(u)))


def test_mask_capsules_by_label_in_training_and_by_length_in_eval() -> None:
    mask = built("mask_capsules", ["f32[3, 2]", "f32[3]"])
    caps = jnp.asarray([[[0.1, 0.1], [0.9, 0.0], [0.2, 0.2]]])
    label = jnp.asarray([[0.0, 0.0, 1.0]])
    np.testing.assert_allclose(np.asarray(mask(caps, label))[0], [[0, 0], [0, 0], [0.2, 0.2]])
    mask.eval()
    np.testing.assert_allclose(np.asarray(mask(caps, label))[0], [[0, 0], [0.9, 0], [0, 0]])


def test_bidirectional_backward_is_the_reversed_recurrence() -> None:
    m = built("bidirectional", ["f32[5, 2]"], units=3, cell="gru")
    x = jnp.asarray(np.random.default_rng(2).standard_normal((2, 5, 2)), jnp.float32)
    y = np.asarray(m(x))
    assert y.shape == (2, 5, 6)
    zeros = jnp.zeros((2, 3))
    back = nnx.RNN(m.backward.cell, rngs=False)(x[:, ::-1], initial_carry=zeros)
    np.testing.assert_allclose(y[..., 3:], np.asarray(back)[:, ::-1], rtol=1e-5, atol=1e-6)
    last = built("bidirectional", ["f32[5, 2]"], units=3, cell="gru", return_sequences=False)
    nnx.update(last, nnx.state(m))
    np.testing.assert_allclose(
        np.asarray(last(x)), np.concatenate([y[:, -1, :3], y[:, 0, 3:]], -1), rtol=1e-6
    )


def test_sinusoidal_position_matches_vaswani() -> None:
    add = built("sinusoidal_position", ["f32[3, 4]"])
    pe = np.asarray(add(jnp.zeros((1, 3, 4))))[0]
    t, i = np.arange(3)[:, None], np.arange(2)[None]
    angle = t / 10000 ** (2 * i / 4)
    np.testing.assert_allclose(pe[:, 0::2], np.sin(angle), atol=1e-6)
    np.testing.assert_allclose(pe[:, 1::2], np.cos(angle), atol=1e-6)


def test_rotary_scores_depend_on_relative_position() -> None:
    rot = built("rotary", ["f32[6, 4]"])
    rng = np.random.default_rng(3)
    q, k = (jnp.asarray(np.tile(rng.standard_normal((1, 1, 4)), (1, 6, 1))) for _ in "qk")
    rq, rk = np.asarray(rot(q))[0], np.asarray(rot(k))[0]
    np.testing.assert_allclose(rq[1] @ rk[0], rq[5] @ rk[4], rtol=1e-5)
    np.testing.assert_allclose(
        np.linalg.norm(rq, axis=-1), np.linalg.norm(q[0], axis=-1), rtol=1e-5
    )


def test_rescale_and_normalize() -> None:
    x = jnp.asarray([[0.0, 2.0, 4.0]])
    np.testing.assert_allclose(
        np.asarray(built("rescale", ["f32[3]"], scale=0.5, offset=1)(x)), [[1.0, 2.0, 3.0]]
    )
    norm = built("normalize", ["f32[3]"], mean=[0.0, 1.0, 2.0], variance=4)
    np.testing.assert_allclose(np.asarray(norm(x)), [[0.0, 0.5, 1.0]])


def test_kmeans_matches_scikit_learn_and_sets_rbf_centres_and_widths() -> None:
    from sklearn.cluster import KMeans

    from nnlang.layers.family_modules import kmeans
    from nnlang.train import datainit

    rng = np.random.default_rng(0)
    blobs = rng.standard_normal((8, 5)) * 4
    x = (blobs[rng.integers(8, size=600)] + rng.standard_normal((600, 5))).astype(np.float32)
    centres, assign = kmeans(x.astype(np.float64), 8, np.random.default_rng(1))
    inertia = float(np.sum((x - centres[assign]) ** 2))
    ref = KMeans(8, n_init=10, random_state=0).fit(x).inertia_
    assert inertia <= 1.05 * ref, (inertia, ref)

    import nnlang

    src = 'model M {\n    input x: f32[5]\n    output y = x -> rbf(8, init = "kmeans")\n}'
    net = nnlang.module(nnlang.build("m.nn", text=src))
    graphdef, state = nnx.split(net)
    state = datainit.initialise(graphdef, state, {"x": x}, ("x",), seed=0)
    layer = nnx.merge(graphdef, state).layers["rbf"]
    c = np.asarray(layer.centres[...])
    near = np.argmin(((x[:, None] - c[None]) ** 2).sum(-1), axis=1)
    for j in range(8):  # each centre is the mean of its members: a k-means fixed point
        np.testing.assert_allclose(c[j], x[near == j].mean(0), atol=1e-4)
    spread = ((x - c[near]) ** 2).sum(-1)
    beta = np.exp(np.asarray(layer.log_beta[...]))
    np.testing.assert_allclose(beta[0], 1 / (2 * spread[near == 0].mean()), rtol=1e-4)
    again = datainit.initialise(
        graphdef,
        nnx.split(nnlang.module(nnlang.build("m.nn", text=src)))[1],
        {"x": x},
        ("x",),
        seed=0,
    )
    np.testing.assert_array_equal(nnx.merge(graphdef, again).layers["rbf"].centres[...], c)
