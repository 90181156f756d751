"""Train-section components: catalogues, data, losses, schedules, optimizers, metrics,
augmentation. Expected values come from independent numpy computations."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from nnlang.diagnostics import ArgError
from nnlang.train import augment, catalog, data, losses, metrics, optim
from nnlang.train.catalog import Entry, Param

RNG = np.random.default_rng(0)


def _raises(code: str, fn, *args, **kwargs) -> ArgError:
    with pytest.raises(ArgError) as info:
        fn(*args, **kwargs)
    assert info.value.code == code, info.value.message
    return info.value


# ------------------------------------------------------------------------- catalog
_ENTRY = Entry(
    "thing",
    "A test entry.",
    (
        Param("a", "int", doc="required"),
        Param("rate", "float", 0.5, min=0.0, max=1.0, max_open=True),
        Param("mode", "str", "fast", choices=("fast", "slow")),
        Param("flag", "bool", False, kw_only=True),
    ),
    fn=lambda **kw: kw,
)


def test_bind_positional_keyword_defaults_and_int_to_float() -> None:
    assert catalog.bind(_ENTRY, [3], {"rate": 0}) == {
        "a": 3,
        "rate": 0.0,
        "mode": "fast",
        "flag": False,
    }
    assert isinstance(catalog.bind(_ENTRY, [3], {"rate": 0})["rate"], float)
    assert catalog.bind(_ENTRY, [1, 0.25, "slow"], {"flag": True})["flag"] is True


@pytest.mark.parametrize(
    ("args", "kwargs", "code", "arg"),
    [
        ([1], {"rat": 0.1}, "E104", "rat"),
        ([], {}, "E105", "a"),
        ([1], {"a": 2}, "E106", "a"),
        ([1, 0.1, "fast", True], {}, "E107", None),
        (["x"], {}, "E201", "a"),
        ([True], {}, "E201", "a"),  # a bool is not an int here
        ([1], {"flag": 1}, "E201", "flag"),
        ([1], {"rate": 1.0}, "E202", "rate"),
        ([1], {"mode": "slwo"}, "E202", "mode"),
    ],
)
def test_bind_errors_name_the_argument(args, kwargs, code, arg) -> None:
    err = _raises(code, catalog.bind, _ENTRY, args, kwargs)
    assert err.arg == arg
    if code == "E104":
        assert err.help == "did you mean `rate`?"
    if code == "E202" and arg == "mode":
        assert err.help == "did you mean `slow`?"


@pytest.mark.parametrize(
    ("fn", "name", "suggestion"),
    [
        (lambda n: losses.make_loss(n), "cross_entropi", "cross_entropy"),
        (lambda n: optim.bind_optimizer(n), "adamm", "adam"),
        (lambda n: optim.make_schedule(n, {}, 0.1, 100, 10), "warmup_cosin", "warmup_cosine"),
        (lambda n: metrics.bind_metric(n), "acuracy", "accuracy"),
        (lambda n: data.load_data(n, root=Path(".")), "digit", "digits"),
        (lambda n: augment.make_augment([(n, [], {})]), "flipp", "flip"),
        (lambda n: data.fit_normalizer(n, np.zeros((2, 2))), "standardise", "standardize"),
        (lambda n: losses.make_penalty(n), "l22", "l2"),
    ],
)
def test_unknown_names_suggest(fn, name, suggestion) -> None:
    err = _raises("E405", fn, name)
    assert err.help == f"did you mean `{suggestion}`?"


def test_unknown_name_without_a_close_match_lists_the_known_ones() -> None:
    assert _raises("E405", losses.make_penalty, "zz").help == "known penalties: l1, l2"


def test_every_entry_is_documented() -> None:
    cats = [
        data.SOURCES,
        data.NORMALIZERS,
        augment.AUGMENTATIONS,
        losses.LOSSES,
        losses.PENALTIES,
        optim.SCHEDULES,
        optim.OPTIMIZERS,
        metrics.METRICS,
    ]
    for cat in cats:
        for name, entry in cat.items():
            assert entry.name == name and entry.doc
            assert all(p.doc for p in entry.params), name
            for p in entry.params:  # defaults pass their own checks
                if not p.required and p.default is not None:
                    catalog.check_value(name, p, p.default)
    assert optim.OPTIMIZERS["adamw"].signature().startswith("adamw(lr = 0.001, b1 = 0.9")


# -------------------------------------------------------------------------- losses
def _np_log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_cross_entropy_integer_and_one_hot_agree_with_numpy() -> None:
    logits = RNG.normal(size=(6, 4)).astype(np.float32)
    y = RNG.integers(0, 4, 6).astype(np.int32)
    ref = -_np_log_softmax(logits)[np.arange(6), y]
    ce = losses.make_loss("cross_entropy")
    np.testing.assert_allclose(ce(jnp.asarray(logits), jnp.asarray(y)), ref, rtol=1e-5)
    onehot = np.eye(4, dtype=np.float32)[y]
    np.testing.assert_allclose(ce(jnp.asarray(logits), jnp.asarray(onehot)), ref, rtol=1e-5)
    # label smoothing: integer and one-hot paths agree and match the formula
    sm = losses.make_loss("cross_entropy", kwargs={"label_smoothing": 0.1})
    soft = onehot * 0.9 + 0.1 / 4
    ref_s = -(soft * _np_log_softmax(logits)).sum(-1)
    np.testing.assert_allclose(sm(jnp.asarray(logits), jnp.asarray(y)), ref_s, rtol=1e-5)
    np.testing.assert_allclose(sm(jnp.asarray(logits), jnp.asarray(onehot)), ref_s, rtol=1e-5)


def test_cross_entropy_sequence_reduces_by_mean_and_shape_errors() -> None:
    logits = RNG.normal(size=(3, 5, 4)).astype(np.float32)
    y = RNG.integers(0, 4, (3, 5)).astype(np.int32)
    out = losses.make_loss("cross_entropy")(jnp.asarray(logits), jnp.asarray(y))
    ref = -np.take_along_axis(_np_log_softmax(logits), y[..., None], -1)[..., 0].mean(1)
    assert out.shape == (3,)
    np.testing.assert_allclose(out, ref, rtol=1e-5)
    _raises(
        "E407", losses.make_loss("cross_entropy"), jnp.zeros((3, 4)), jnp.zeros((3, 2), jnp.int32)
    )
    _raises(
        "E403", losses.make_loss("cross_entropy"), jnp.zeros((3, 1)), jnp.zeros((3,), jnp.int32)
    )


def test_regression_and_binary_losses_match_numpy() -> None:
    p = RNG.normal(size=(5, 3)).astype(np.float32)
    t = RNG.normal(size=(5, 3)).astype(np.float32)
    P, T = jnp.asarray(p), jnp.asarray(t)
    np.testing.assert_allclose(losses.make_loss("mse")(P, T), ((p - t) ** 2).mean(1), rtol=1e-5)
    np.testing.assert_allclose(losses.make_loss("mae")(P, T), np.abs(p - t).mean(1), rtol=1e-5)
    e = np.abs(p - t)
    hub = np.where(e <= 0.5, 0.5 * e**2, 0.5 * (e - 0.25))
    np.testing.assert_allclose(losses.make_loss("huber", [0.5])(P, T), hub.mean(1), rtol=1e-5)
    cos = 1 - (p * t).sum(1) / np.linalg.norm(p, axis=1) / np.linalg.norm(t, axis=1)
    np.testing.assert_allclose(losses.make_loss("cosine_distance")(P, T), cos, rtol=1e-4, atol=1e-6)
    # binary cross-entropy: [B, 1] logits against [B] 0/1 labels
    z = RNG.normal(size=(5, 1)).astype(np.float32)
    y = np.array([0, 1, 1, 0, 1], np.int32)
    s = 1 / (1 + np.exp(-z[:, 0]))
    bce = -(y * np.log(s) + (1 - y) * np.log(1 - s))
    np.testing.assert_allclose(
        losses.make_loss("binary_cross_entropy")(jnp.asarray(z), jnp.asarray(y)), bce, rtol=1e-5
    )
    # hinge, binary with 0/1 targets and multi-class with integer labels
    hin = np.maximum(0, 1 - z[:, 0] * (2 * y - 1))
    np.testing.assert_allclose(
        losses.make_loss("hinge")(jnp.asarray(z), jnp.asarray(y)), hin, rtol=1e-5
    )
    lab = np.array([0, 2, 1, 1, 0], np.int32)
    mc = (p + 1 - np.eye(3)[lab]).max(1) - p[np.arange(5), lab]
    np.testing.assert_allclose(losses.make_loss("hinge")(P, jnp.asarray(lab)), mc, rtol=1e-5)
    # kl divergence: logits against a probability vector
    q = np.exp(_np_log_softmax(t))
    kl = (q * (np.log(q) - _np_log_softmax(p))).sum(1)
    np.testing.assert_allclose(losses.make_loss("kl_divergence")(P, jnp.asarray(q)), kl, rtol=1e-4)
    _raises("E407", losses.make_loss("mse"), P, jnp.zeros((5, 2)))


def test_penalties_cover_weights_not_biases() -> None:
    params = {
        "dense": {"kernel": jnp.array([[1.0, -2.0], [3.0, 0.5]]), "bias": jnp.array([10.0, -10.0])}
    }
    assert float(losses.make_penalty("l1")(params)) == pytest.approx(6.5)
    assert float(losses.make_penalty("l2")(params)) == pytest.approx(0.5 * (1 + 4 + 9 + 0.25))
    g = jax.grad(losses.l2)(params)  # gradient of l2 is w on kernels, 0 on biases
    np.testing.assert_allclose(g["dense"]["kernel"], params["dense"]["kernel"])
    np.testing.assert_allclose(g["dense"]["bias"], 0.0)


# ----------------------------------------------------------------------- schedules
def test_step_schedule_drops_at_the_epoch_boundary() -> None:
    s = optim.make_schedule("step", {"every_epochs": 2, "factor": 0.5}, 0.1, 100, 10)
    assert float(s(19)) == pytest.approx(0.1)
    assert float(s(20)) == pytest.approx(0.05)
    assert float(s(40)) == pytest.approx(0.025)


def test_warmup_cosine_starts_at_zero_and_peaks_at_lr() -> None:
    s = optim.make_schedule("warmup_cosine", {"warmup": 10}, 0.2, 110, 11)
    assert float(s(0)) == 0.0
    assert float(s(5)) == pytest.approx(0.1)
    assert float(s(10)) == pytest.approx(0.2)
    assert float(s(60)) == pytest.approx(0.1, rel=1e-5)  # half-way down the cosine
    assert float(s(110)) == pytest.approx(0.0, abs=1e-7)
    frac = optim.make_schedule("warmup_cosine", {"warmup": 0.1}, 0.2, 200, 10)
    assert float(frac(20)) == pytest.approx(0.2)
    assert (
        _raises("E202", optim.make_schedule, "warmup_cosine", {"warmup": 500}, 0.2, 100, 10).arg
        == "warmup"
    )
    assert (
        _raises("E202", optim.make_schedule, "warmup_cosine", {"warmup": 1.5}, 0.2, 100, 10).arg
        == "warmup"
    )


def test_other_schedules() -> None:
    lr = 0.1
    assert float(optim.make_schedule("constant", {}, lr, 50, 5)(49)) == pytest.approx(lr)
    c = optim.make_schedule("cosine", {"alpha": 0.1}, lr, 100, 10)
    assert float(c(50)) == pytest.approx(lr * (0.1 + 0.9 * 0.5), rel=1e-5)
    assert float(c(100)) == pytest.approx(lr * 0.1, rel=1e-5)
    e = optim.make_schedule("exponential", {"decay": 0.5, "every_epochs": 1}, lr, 100, 10)
    assert float(e(15)) == pytest.approx(lr * 0.5**1.5, rel=1e-5)
    o = optim.make_schedule("one_cycle", {"max_lr": 1.0}, lr, 100, 10)
    assert float(o(0)) == pytest.approx(1.0 / 25)
    assert float(o(30)) == pytest.approx(1.0)
    assert float(o(100)) < 1e-4
    assert float(optim.make_schedule("linear", {}, lr, 100, 10)(50)) == pytest.approx(0.05)


# ---------------------------------------------------------------------- optimizers
@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_each_optimizer_reduces_a_quadratic(name: str) -> None:
    target = jnp.array([1.0, -2.0, 0.5])
    params = {"w": jnp.zeros((3,)), "k": jnp.ones((2, 2))}

    def f(p):
        return jnp.sum((p["w"] - target) ** 2) + jnp.sum((p["k"] - 0.5) ** 2)

    kwargs = {"lr": 0.05}
    tx, _ = optim.build((name, [], kwargs), None, 1.0, 50, 10)
    state = tx.init(params)

    @jax.jit
    def step(p, s):
        g = jax.grad(f)(p)
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    start = float(f(params))
    for _ in range(50):
        params, state = step(params, state)
    assert float(f(params)) < 0.5 * start, name
    assert float(optim.current_lr(state)) == pytest.approx(0.05)


def test_optimizer_schedule_clip_and_weight_decay() -> None:
    sched = optim.make_schedule("step", {"every_epochs": 1, "factor": 0.5}, 0.1, 20, 2)
    tx = optim.make_optimizer("sgd", {"lr": 0.1, "weight_decay": 0.1}, sched, clip=1.0)
    p = {"k": jnp.ones((2, 2)), "b": jnp.ones((2,))}
    s = tx.init(p)
    g = {"k": jnp.full((2, 2), 100.0), "b": jnp.zeros((2,))}
    u, s = tx.update(g, s, p)
    # clipped to global norm 1 (each kernel entry 0.5), + 0.1 * w on the kernel only
    np.testing.assert_allclose(u["k"], -0.1 * (0.5 + 0.1), rtol=1e-5)
    np.testing.assert_allclose(u["b"], 0.0, atol=1e-7)
    for _ in range(2):
        _, s = tx.update(g, s, p)
    assert float(optim.current_lr(s)) == pytest.approx(0.05)  # third update: step 2, epoch 1
    assert _raises("E202", optim.make_optimizer, "adam", {}, None, clip=-1.0).arg == "clip"
    assert _raises("E201", optim.bind_optimizer, "adam", [], {"lr": "fast"}).arg == "lr"


# ------------------------------------------------------------------------- metrics
def test_streaming_metrics_with_mask_equal_whole_array_metrics() -> None:
    n, c = 37, 5
    logits = RNG.normal(size=(n, c)).astype(np.float32) * 3
    y = RNG.integers(0, c, n).astype(np.int32)
    reg_p = RNG.normal(size=(n, 2)).astype(np.float32)
    reg_t = RNG.normal(size=(n, 2)).astype(np.float32)
    cases = [
        (("accuracy", {}), logits, y),
        (("top_k", {"k": 2}), logits, y),
        (("ece", {"bins": 10}), logits, y),
        (("nll", {}), logits, y),
        (("mse", {}), reg_p, reg_t),
        (("mae", {}), reg_p, reg_t),
    ]
    for (name, kw), p, t in cases:
        m = metrics.bind_metric(name, [], kw)
        stats = jax.jit(m.stats)
        totals = m.init()
        for lo, hi in ((0, 16), (16, 32), (32, n)):  # last batch padded to 16 rows
            bp, bt = p[lo:hi], t[lo:hi]
            pad = 16 - len(bp)
            mask = np.r_[np.ones(len(bp)), np.zeros(pad)].astype(bool)
            bp = np.concatenate([bp, np.zeros((pad, *bp.shape[1:]), bp.dtype)])
            bt = np.concatenate([bt, np.zeros((pad, *bt.shape[1:]), bt.dtype)])
            totals = m.add(totals, stats(bp, bt, mask))
        assert m.finalize(totals) == pytest.approx(metrics.compute(m, p, t), rel=1e-5), name
    assert metrics.compute("accuracy", logits, y) == pytest.approx(np.mean(logits.argmax(1) == y))
    top2 = np.argsort(-logits, 1)[:, :2]
    assert metrics.compute("top_k", logits, y, k=2) == pytest.approx(
        np.mean((top2 == y[:, None]).any(1))
    )
    assert metrics.compute("mse", reg_p, reg_t) == pytest.approx(
        np.mean((reg_p - reg_t) ** 2), rel=1e-5
    )
    assert metrics.bind_metric("top_k", [3]).label == "top_3"
    assert metrics.bind_metric("ece").greater_is_better is False


def test_binary_accuracy_uses_the_sign_of_a_single_logit() -> None:
    z = np.array([[2.0], [-1.0], [0.5], [-3.0]], np.float32)
    assert metrics.compute("accuracy", z, np.array([1, 0, 0, 0])) == pytest.approx(0.75)
    assert metrics.compute("accuracy", z, np.array([1, 0, 0, 0]), threshold=1.0) == pytest.approx(
        1.0
    )


def _logits_for(conf: np.ndarray, pred_class: np.ndarray, c: int) -> np.ndarray:
    """Logits whose softmax puts ``conf`` on ``pred_class`` and spreads the rest."""
    probs = np.tile(((1 - conf) / (c - 1))[:, None], (1, c))
    probs[np.arange(len(conf)), pred_class] = conf
    return np.log(probs).astype(np.float32)


def test_ece_calibrated_versus_overconfident() -> None:
    n, c = 1000, 4
    pred_class = np.zeros(n, np.int64)
    # calibrated: confidence 0.7, right on exactly 70% of the examples
    y = np.where(np.arange(n) < 700, 0, 1)
    calibrated = _logits_for(np.full(n, 0.7), pred_class, c)
    assert metrics.compute("ece", calibrated, y) == pytest.approx(0.0, abs=1e-5)
    # overconfident: confidence 0.99, right on only 70%
    over = _logits_for(np.full(n, 0.99), pred_class, c)
    assert metrics.compute("ece", over, y) == pytest.approx(0.29, abs=1e-4)
    # two bins, each calibrated on its own, stay calibrated
    conf = np.where(np.arange(n) < 500, 0.9, 0.6)
    right = np.r_[np.arange(500) < 450, np.arange(500) < 300]
    two = _logits_for(conf, pred_class, c)
    assert metrics.compute("ece", two, np.where(right, 0, 1)) == pytest.approx(0.0, abs=1e-5)


# ---------------------------------------------------------------------------- data
def test_digits_split_sizes_stratified_and_deterministic() -> None:
    ds = data.load_data("digits", [], {"test": 0.2, "val": 0.1, "seed": 0}, root=Path("."))
    n = 1797
    assert ds.size("test") == round(0.2 * n) and ds.size("val") == round(0.1 * n)
    assert ds.size("train") == n - ds.size("test") - ds.size("val")
    x = ds.splits["train"]["x"]
    assert x.shape[1:] == (8, 8, 1) and x.dtype == np.float32 and x.max() == 16.0
    assert ds.splits["train"]["label"].dtype == np.int32 and ds.meta["n_classes"] == 10
    # stratified: every class near its overall share in each split
    full = np.bincount(np.concatenate([ds.splits[s]["label"] for s in ds.splits])) / n
    for s in ds.splits:
        share = np.bincount(ds.splits[s]["label"], minlength=10) / ds.size(s)
        assert np.abs(share - full).max() < 0.02, s
    again = data.load_data("digits", [], {"test": 0.2, "val": 0.1, "seed": 0}, root=Path("."))
    other = data.load_data("digits", [], {"test": 0.2, "val": 0.1, "seed": 1}, root=Path("."))
    np.testing.assert_array_equal(ds.splits["val"]["x"], again.splits["val"]["x"])
    assert not np.array_equal(ds.splits["val"]["x"], other.splits["val"]["x"])
    # the splits partition the rows
    idx = data.split_indices(np.arange(100) % 3, 100, 0.2, 0.1, seed=0)
    np.testing.assert_array_equal(np.sort(np.concatenate(list(idx.values()))), np.arange(100))


def test_iris_without_val_and_split_errors() -> None:
    ds = data.load_data("iris", [], {"test": 0.2}, root=Path("."))
    assert set(ds.splits) == {"train", "test"} and ds.size("test") == 30
    assert ds.sample_shape("x") == (4,) and ds.meta["class_names"][0] == "setosa"
    assert (
        _raises("E407", data.load_data, "iris", [], {"test": 0.002}, root=Path(".")).arg == "test"
    )
    _raises("E407", data.load_data, "iris", [], {"test": 0.6, "val": 0.4}, root=Path("."))
    assert _raises("E202", data.load_data, "iris", [], {"test": 1.0}, root=Path(".")).arg == "test"


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def test_csv_reading_classes_and_regression(tmp_path: Path) -> None:
    rows = "\n".join(f"{i},{i * 0.5},{['cat', 'dog'][i % 2]}" for i in range(20))
    _write(tmp_path / "d.csv", "a,b,kind\n" + rows + "\n\n")
    ds = data.load_data("csv", ["d.csv"], {"label": "kind", "test": 0.25}, root=tmp_path)
    assert ds.size("train") == 15 and ds.size("test") == 5
    assert ds.meta["class_names"] == ["cat", "dog"] and ds.meta["feature_names"] == ["a", "b"]
    tr = ds.splits["train"]
    np.testing.assert_allclose(tr["x"][:, 1], tr["x"][:, 0] * 0.5)
    np.testing.assert_array_equal(tr["label"], tr["x"][:, 0].astype(int) % 2)
    # fractional labels are regression targets; header-less, index columns
    _write(tmp_path / "r.csv", "\n".join(f"{i};{i / 3}" for i in range(10)))
    ds = data.load_data(
        "csv",
        ["r.csv"],
        {"header": False, "delimiter": ";", "features": [0], "test": 0.0},
        root=tmp_path,
    )
    assert ds.splits["train"]["label"].dtype == np.float32 and ds.meta["task"] == "values"


def test_csv_errors_name_file_row_and_column(tmp_path: Path) -> None:
    _write(tmp_path / "bad.csv", "a,b,y\n1,2,0\n3,oops,1\n")
    err = _raises(
        "E407", data.load_data, "csv", ["bad.csv"], {"label": "y", "test": 0.0}, root=tmp_path
    )
    assert "bad.csv" in err.message and "row 3" in err.message and "column `b`" in err.message
    _write(tmp_path / "nan.csv", "a,b,y\n1,2,0\n3,4,1\nnan,1,0\n")
    err = _raises("E407", data.load_data, "csv", ["nan.csv"], {"test": 0.0}, root=tmp_path)
    assert "row 4" in err.message and "column `a`" in err.message
    _write(tmp_path / "short.csv", "a,b,y\n1,2,0\n3,1\n")
    assert (
        "row 3"
        in _raises(
            "E407", data.load_data, "csv", ["short.csv"], {"test": 0.0}, root=tmp_path
        ).message
    )
    err = _raises("E407", data.load_data, "csv", ["bad.csv"], {"label": "yy"}, root=tmp_path)
    assert err.arg == "label" and err.help == "did you mean `y`?"
    err = _raises("E408", data.load_data, "csv", ["missing.csv"], {}, root=tmp_path)
    assert err.arg == "path" and "missing.csv" in err.message


def _idx_bytes(a: np.ndarray) -> bytes:
    code = {np.uint8: 0x08, np.int32: 0x0C, np.float32: 0x0D}[a.dtype.type]
    head = bytes([0, 0, code, a.ndim]) + np.asarray(a.shape, ">u4").tobytes()
    return head + a.astype(a.dtype.newbyteorder(">")).tobytes()


def test_idx_round_trip_and_bad_files(tmp_path: Path) -> None:
    imgs = RNG.integers(0, 256, (12, 5, 4)).astype(np.uint8)
    labs = (np.arange(12) % 3).astype(np.uint8)
    (tmp_path / "img.idx").write_bytes(_idx_bytes(imgs))
    with gzip.open(tmp_path / "lab.idx.gz", "wb") as f:
        f.write(_idx_bytes(labs))
    np.testing.assert_array_equal(data.read_idx(tmp_path / "img.idx", "img.idx", "images"), imgs)
    ds = data.load_data(
        "idx", [], {"images": "img.idx", "labels": "lab.idx.gz", "test": 0.0}, root=tmp_path
    )
    x, y = ds.splits["train"]["x"], ds.splits["train"]["label"]
    assert x.shape == (12, 5, 4, 1) and x.dtype == np.float32 and y.dtype == np.int32
    order = np.argsort([np.where((imgs == xi[..., 0]).all(axis=(1, 2)))[0][0] for xi in x])
    np.testing.assert_array_equal(x[order][..., 0], imgs)
    np.testing.assert_array_equal(y[order], labs)
    # given test files: no test fraction is carved, and asking for one is refused
    ds = data.load_data(
        "idx", ["img.idx", "lab.idx.gz", "img.idx", "lab.idx.gz"], {"val": 0.25}, root=tmp_path
    )
    assert ds.size("test") == 12 and ds.size("val") == 3 and ds.size("train") == 9
    err = _raises(
        "E403",
        data.load_data,
        "idx",
        ["img.idx", "lab.idx.gz", "img.idx", "lab.idx.gz"],
        {"test": 0.2},
        root=tmp_path,
    )
    assert err.arg == "test"
    (tmp_path / "trunc.idx").write_bytes(_idx_bytes(imgs)[:-7])
    assert (
        "truncated"
        in _raises(
            "E408", data.load_data, "idx", ["trunc.idx", "lab.idx.gz"], root=tmp_path
        ).message
    )
    (tmp_path / "junk.idx").write_bytes(b"\x12\x34\x56\x78rest")
    err = _raises("E408", data.load_data, "idx", ["junk.idx", "lab.idx.gz"], root=tmp_path)
    assert "magic" in err.message and err.arg == "images"
    (tmp_path / "lab5.idx").write_bytes(_idx_bytes(labs[:5]))
    assert (
        _raises("E407", data.load_data, "idx", ["img.idx", "lab5.idx"], root=tmp_path).arg
        == "labels"
    )


def test_npz_plain_and_presplit(tmp_path: Path) -> None:
    x = RNG.normal(size=(20, 3))
    np.savez(tmp_path / "a.npz", feats=x, y=np.arange(20) % 2)
    ds = data.load_data("npz", ["a.npz"], {"x": "feats", "label": "y"}, root=tmp_path)
    assert ds.size("test") == 4 and ds.splits["train"]["x"].dtype == np.float32
    assert (
        _raises("E407", data.load_data, "npz", ["a.npz"], {"x": "feat"}, root=tmp_path).help
        == "did you mean `feats`?"
    )
    np.savez(
        tmp_path / "b.npz",
        x_train=x,
        y_train=np.arange(20) % 2,
        x_test=x[:5],
        y_test=np.arange(5) % 2,
    )
    ds = data.load_data("npz", ["b.npz"], {"val": 0.1}, root=tmp_path)
    assert (ds.size("train"), ds.size("val"), ds.size("test")) == (18, 2, 5)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object))
    os.replace(tmp_path / "obj.npy", tmp_path / "obj.npz")
    _raises("E408", data.load_data, "npz", ["obj.npz"], root=tmp_path)


def test_confine_refuses_escapes(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "secret.csv").write_text("1,2\n")
    assert data.confine(root, "sub/../x.csv") == (root / "x.csv").resolve()
    assert data.confine(root, str(root / "sub" / "y.csv")) == (root / "sub" / "y.csv").resolve()
    for bad in ("../secret.csv", str(tmp_path / "secret.csv"), "sub/../../secret.csv"):
        err = _raises("E408", data.confine, root, bad)
        assert "outside" in err.message and err.arg == "path"
    (root / "link.csv").symlink_to(tmp_path / "secret.csv")
    _raises("E408", data.confine, root, "link.csv")
    _raises("E408", data.load_data, "csv", ["link.csv"], root=root)


def test_validate_reports_non_finite_and_empty() -> None:
    x = np.ones((4, 3), np.float32)
    x[2, 1] = np.inf
    ds = data.Dataset({"train": {"x": x, "label": np.zeros(4, np.int32)}})
    err = _raises("E407", data.validate, ds)
    assert "train" in err.message and "example 2" in err.message and "[1]" in err.message
    empty = data.Dataset({"train": {"x": x[:0], "label": np.zeros(0, np.int32)}})
    assert "empty" in _raises("E407", data.validate, empty).message
    ok = data.Dataset(
        {"train": {"x": np.ones((4, 3), np.float32), "label": np.array([0, 1, 2, 5], np.int32)}}
    )
    _raises("E407", data.check_class_labels, ok, "label", 5)


def test_normalizer_fits_train_only_and_round_trips(tmp_path: Path) -> None:
    train = RNG.normal(3.0, 2.0, (50, 4)).astype(np.float32)
    train[:, 3] = 7.0  # constant feature: std 0 counts as 1
    test = RNG.normal(-5.0, 1.0, (10, 4)).astype(np.float32)
    norm = data.fit_normalizer("standardize", train)
    z = norm.apply(train)
    np.testing.assert_allclose(z[:, :3].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z[:, :3].std(0), 1, atol=1e-5)
    np.testing.assert_allclose(z[:, 3], 0)
    np.testing.assert_allclose(
        norm.apply(test),
        (test - train.mean(0)) / np.where(train.std(0) == 0, 1, train.std(0)),
        rtol=1e-4,
        atol=1e-5,
    )
    np.savez(tmp_path / "n.npz", **norm.to_arrays())
    with np.load(tmp_path / "n.npz", allow_pickle=False) as f:
        back = data.Normalizer.from_arrays(dict(f))
    assert back.kind == "standardize"
    np.testing.assert_array_equal(back.apply(test), norm.apply(test))
    mm = data.fit_normalizer("minmax", train).apply(train)
    assert mm[:, :3].min() == pytest.approx(0) and mm[:, :3].max() == pytest.approx(1)
    sc = data.fit_normalizer("scale", train, [0.5])
    np.testing.assert_allclose(sc.apply(train), train * 0.5)
    img = RNG.normal(size=(8, 4, 4, 3)).astype(np.float32)
    per_c = data.fit_normalizer("standardize", img, [], {"per": "channel"}).apply(img)
    np.testing.assert_allclose(per_c.mean(axis=(0, 1, 2)), 0, atol=1e-5)


def test_bind_inputs_reshape_cast_and_mismatch() -> None:
    def ds() -> data.Dataset:
        return data.Dataset(
            {
                "train": {
                    "x": np.arange(2 * 64, dtype=np.float64).reshape(2, 64),
                    "label": np.zeros(2, np.int32),
                },
                "test": {"x": np.zeros((1, 64)), "label": np.zeros(1, np.int32)},
            }
        )

    d = ds()
    assert data.bind_inputs(d, {"image": ("f32", (8, 8, 1))}) == {"image": "x"}
    assert d.splits["train"]["x"].shape == (2, 8, 8, 1) and d.splits["test"]["x"].shape == (
        1,
        8,
        8,
        1,
    )
    assert d.splits["train"]["x"].dtype == np.float32 and d.splits["train"]["x"][1, 0, 1, 0] == 65
    d = ds()
    data.bind_inputs(d, {"x": ("f32", ("N",))})  # symbolic dimension matches any size
    assert d.sample_shape("x") == (64,)
    err = _raises("E407", data.bind_inputs, ds(), {"image": ("f32", (28, 28, 1))})
    assert "`image`" in err.message and "[28, 28, 1]" in err.message and "[64]" in err.message
    two = data.Dataset(
        {"train": {"a": np.zeros((2, 3)), "b": np.zeros((2, 5))}}, feature_keys=("a", "b")
    )
    assert data.bind_inputs(two, {"b": ("f32", (5,)), "a": ("f32", (3,))}) == {"b": "b", "a": "a"}
    assert (
        _raises("E407", data.bind_inputs, two, {"aa": ("f32", (3,)), "b": ("f32", (5,))}).help
        == "did you mean `a`?"
    )
    frac = data.Dataset({"train": {"x": np.array([[0.5]]), "label": np.zeros(1, np.int32)}})
    _raises("E407", data.bind_inputs, frac, {"tokens": ("i32", (1,))})


# ------------------------------------------------------------------------- augment
def test_augment_shapes_determinism_and_flip_shift_semantics() -> None:
    x = jnp.asarray(RNG.normal(size=(16, 6, 5, 2)).astype(np.float32))
    fn = jax.jit(
        augment.make_augment(
            [("flip", [], {"horizontal": True}), ("shift", [2], {}), ("noise", [0.01], {})],
            sample_shape=(6, 5, 2),
        )
    )
    key = jax.random.key(0)
    a, b = fn(key, x), fn(key, x)
    assert a.shape == x.shape and a.dtype == x.dtype
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, fn(jax.random.key(1), x))
    flip = augment.make_augment([("flip", [], {})])(key, x)
    for i in range(16):  # each sample either untouched or mirrored left-right
        assert np.array_equal(flip[i], x[i]) or np.array_equal(flip[i], x[i, :, ::-1])
    sh = np.asarray(augment.make_augment([("shift", [1], {})])(key, x))
    for i in range(16):  # each sample a zero-filled translation by at most one pixel
        found = False
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                ref = np.zeros_like(sh[i])
                src = np.asarray(x[i])
                ys, xs = slice(max(dy, 0), 6 + min(dy, 0)), slice(max(dx, 0), 5 + min(dx, 0))
                ref[ys, xs] = src[max(-dy, 0) : 6 - max(dy, 0), max(-dx, 0) : 5 - max(dx, 0)]
                found |= np.array_equal(ref, sh[i])
        assert found, i
    assert augment.make_augment([])(key, x) is x
    _raises("E403", augment.make_augment, [("flip", [], {})], sample_shape=(64,))
    _raises("E403", augment.make_augment([("shift", [2], {})]), key, jnp.zeros((4, 64)))
    assert _raises("E202", augment.make_augment, [("shift", [0], {})]).arg == "pixels"


# ------------------------------------------------------------------------- bind once
_ONCE = """
model M { input x: f32[4]  output logits = x -> dense(3) }
train M {
    data      = iris(test = 0.2)
    loss      = cross_entropy(logits, label)
    optimizer = sgd(0.5)
    schedule  = cosine
    normalize = standardize
    augment   = [noise(0.01)]
    metrics   = [top_k(2)]
    batch     = 16
}
"""


def test_the_spec_binds_every_call_once_and_the_loop_runs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Catalogue calls are bound by the train section (with `--set` applied) and the
    loop runs what it bound: no second binding, no restated default."""
    from nnlang.diagnostics import NNError
    from nnlang.lower.network import lower
    from nnlang.train.loop import current_lr, load, make_engine
    from nnlang.train.run import setup

    f = tmp_path / "once.nn"
    f.write_text(_ONCE)
    calls: list[str] = []
    real = catalog.bind_or_raise
    monkeypatch.setattr(
        catalog, "bind_or_raise", lambda owner, *a, **k: calls.append(owner) or real(owner, *a, **k)
    )
    s = setup(f, sets=["optimizer.lr=0.05"])
    assert sorted(calls) == sorted(
        ["`iris`", "`cross_entropy`", "`sgd`", "`cosine`", "`standardize`", "`noise`", "`top_k`"]
    )
    assert s.spec.optimizer.args == {
        "lr": 0.05,
        "momentum": 0.0,
        "nesterov": False,
        "weight_decay": 0.0,
    }
    calls.clear()
    d = load(s.graph, s.spec, s.program.root)
    engine = make_engine(s.graph, s.spec, lower(s.graph, 0), d.size("train"), {"x": (4,)})
    assert calls == [], f"bound again after the spec: {calls}"
    assert current_lr(engine, engine.state) == pytest.approx(0.05)
    assert [m.label for m in engine.metrics] == ["top_2"]
    # a bad override is the spec's error, raised before any data is loaded
    with pytest.raises(NNError) as info:
        setup(f, sets=["optimizer.lr=-1"])
    assert [x.code for x in info.value.diagnostics] == ["E202"]


def test_losses_over_several_tensors_match_their_equations() -> None:
    rng = np.random.default_rng(0)
    m, lv = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    want = -0.5 * np.sum(1 + lv - m**2 - np.exp(lv), axis=1)
    np.testing.assert_allclose(losses.kl_normal(jnp.asarray(m), jnp.asarray(lv)), want, rtol=1e-5)
    a, b = np.zeros((2, 2), np.float32), np.array([[3.0, 4.0], [0.3, 0.4]], np.float32)
    y = np.array([1.0, 0.0], np.float32)  # similar, dissimilar
    # Hadsell et al.: y d^2 / 2 + (1 - y) max(0, m - d)^2 / 2 with d = 5 and 0.5
    np.testing.assert_allclose(losses.contrastive(a, b, y, margin=1.0), [12.5, 0.125], rtol=1e-6)
    np.testing.assert_allclose(
        losses.contrastive(np.array([5.0, 0.5]), y, margin=1.0), [12.5, 0.125], rtol=1e-6
    )
    np.testing.assert_allclose(losses.triplet(a, 0.1 * b, b, margin=1.0), [0.0, 0.7525], rtol=1e-5)
    # capsule margin loss: class 0 present (0.95 >= 0.9: free), class 2 absent at 0.5
    np.testing.assert_allclose(
        losses.margin(jnp.array([[0.95, 0.05, 0.5]]), jnp.array([0])), [0.5 * 0.4**2], rtol=1e-5
    )
    one_hot = jnp.array([[1.0, 0.0, 0.0]])
    np.testing.assert_allclose(
        losses.margin(jnp.array([[0.95, 0.05, 0.5]]), one_hot), [0.5 * 0.4**2], rtol=1e-5
    )
    c = losses.cosine_embedding(
        jnp.array([[1.0, 0.0], [1.0, 0.0]]), jnp.array([[1.0, 1.0], [1.0, 1.0]]), jnp.array([1, -1])
    )
    np.testing.assert_allclose(c, [1 - 2**-0.5, 2**-0.5], rtol=1e-5)
    x = jnp.ones((2, 4, 4))
    np.testing.assert_allclose(losses.mse(x, 0 * x, reduction="sum"), [16.0, 16.0])
    _raises("E407", losses.kl_normal, jnp.ones((2, 3)), jnp.ones((2, 4)))
    _raises("E407", losses.triplet, jnp.ones((2, 3)), jnp.ones((2, 3)), jnp.ones((2, 4)))
    # no NaN gradient where the two embeddings coincide
    g = jax.grad(lambda p: losses.contrastive(p, p, jnp.array([0.0, 0.0])).sum())(jnp.ones((2, 3)))
    assert np.all(np.isfinite(g))


def test_new_metrics() -> None:
    y, p = np.array([1.0, 2, 3, 4]), np.array([1.1, 1.9, 3.2, 3.8])
    r2 = 1 - np.sum((y - p) ** 2) / np.sum((y - y.mean()) ** 2)
    assert metrics.compute("r2", p, y) == pytest.approx(r2, rel=1e-6)
    multi = np.array([[1.0, -1.0], [1.0, 1.0]])
    assert metrics.compute("binary_accuracy", multi, np.array([[1, 0], [0, 1]])) == 0.75
    assert metrics.compute("perplexity", np.zeros((3, 4)), np.array([0, 1, 2])) == pytest.approx(4)
    d = np.array([0.1, 0.9, 0.4, 0.6])
    assert metrics.compute("pair_accuracy", d, np.array([1.0, 0.0, 0.0, 0.0])) == 0.75


_WEIGHTED = """model W {
    input x: f32[4]
    output y = x -> dense(3)
    output w = x -> dense(1)
}
train W {
    data = iris(test = 0.2)
    loss = cross_entropy(y, label, weights = w) + 0.5 * kl_normal(y, y)
}
"""


def test_loss_weights_and_several_tensors_bind_in_the_spec(tmp_path: Path) -> None:
    from nnlang.diagnostics import NNError
    from nnlang.train.loop import evaluate_loss
    from nnlang.train.run import setup

    f = tmp_path / "w.nn"
    f.write_text(_WEIGHTED)
    s = setup(f)
    ce, kl = s.spec.loss_terms()
    assert (ce.call.tensors, ce.call.weights) == (("y", "label"), "w")
    assert (kl.call.tensors, kl.call.weights) == (("y", "y"), None)
    y = jnp.zeros((2, 3))
    env = {"y": y, "label": jnp.array([0, 1]), "w": jnp.array([[0.0], [2.0]])}
    kl_zero = -0.5 * 3 * (1 + 0 - 0 - 1)  # KL of N(0, 1) to itself
    per = evaluate_loss(s.spec.loss, env, {}, 2)
    np.testing.assert_allclose(per, [kl_zero, 2 * np.log(3) + kl_zero], rtol=1e-6)
    for bad, code in (
        ("weights = nothing", "E404"),
        ("weights = 2", "E404"),
    ):
        f.write_text(_WEIGHTED.replace("weights = w", bad))
        with pytest.raises(NNError) as info:
            setup(f)
        assert [x.code for x in info.value.diagnostics] == [code]
    f.write_text(_WEIGHTED.replace("kl_normal(y, y)", "kl_normal(y)"))
    with pytest.raises(NNError) as info:
        setup(f)
    assert "`kl_normal` needs 2 tensors: `kl_normal(mean, log_var)`" in str(
        info.value.diagnostics[0].message
    )
