"""Tensor arithmetic and primitives end to end: a model written with `x * 0.5`, `-x`,
`exp`, `sum(axis = ..., keepdims = true)`, `grad_reverse` and a learned `param` trains
from the CLI, exports to StableHLO through the parity gate, and computes what the
equations say."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _util import write

from nnlang.api import build, check
from nnlang.cli import main
from nnlang.lower.network import lower

PRIMS = """
model Prims(scale: float = 0.5) {
    input  image: f32[8, 8, 1]
    bias = param(32, init = "normal")
    h = (image -> flatten -> dense(32)) + bias + full(32, 0.1) * ones(1)
    total = h -> sum(axis = -1, keepdims = true)
    g = (-h) -> clip(-10, 10) -> exp
    z = h * scale + 0.1 * g - total / 32 + (1 - h ** 2 -> mean(axis = 0, keepdims = true))
    frozen = z -> relu -> grad_reverse(0.0) -> stop_gradient -> dense(10)
    output logits = frozen + (z -> dense(10))
}

train Prims {
    data      = digits(test = 0.2, val = 0.1, seed = 0)
    normalize = scale(1 / 16)
    loss      = cross_entropy(logits, label)
    optimizer = adam(lr = 1e-3)
    batch     = 64
    epochs    = 2
}
"""


def test_model_with_tensor_arithmetic_trains_and_exports(tmp_path: Path, capsys) -> None:
    nn = write(tmp_path, "prims.nn", PRIMS)
    run = tmp_path / "run"
    assert main(["train", str(nn), "--out", str(run), "-q"]) == 0
    capsys.readouterr()
    out = tmp_path / "prims.stablehlo"
    assert (
        main(["export", str(nn), "--run", str(run), "--format", "stablehlo", "--out", str(out)])
        == 0
    )
    assert out.exists()


EQUATIONS = """
model Eq(tau: float = 2.0) {
    input x: f32[3, 4]
    input y: f32[4]
    output a = x * 0.5
    output b = 1 - x
    output c = x / tau
    output d = 2 ** x
    output e = -x + x ** 2
    output f = x / y
    output g = x -> sum(axis = -1, keepdims = true)
    output h = max(x, axis = 0)
    output i = x -> logsumexp
    output j = x -> norm(axis = (0, 1))
    output k = x -> clip(min = 0)
    output l = minimum(x, y) + maximum(x, y)
}
"""


def test_operators_compute_their_equations(tmp_path: Path) -> None:
    graph = build(write(tmp_path, "eq.nn", EQUATIONS))
    model = lower(graph)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    y = (rng.random((2, 4)) + 0.5).astype(np.float32)
    got = {k: np.asarray(v) for k, v in model(x=x, y=y).items()}
    yb = y[:, None, :]
    want = {
        "a": x * 0.5,
        "b": 1 - x,
        "c": x / 2.0,
        "d": 2.0**x,
        "e": -x + x**2,
        "f": x / yb,
        "g": x.sum(axis=-1, keepdims=True),
        "h": x.max(axis=1),
        "i": np.log(np.exp(x).sum(axis=(1, 2))),
        "j": np.sqrt((x**2).sum(axis=(1, 2))),
        "k": np.clip(x, 0, None),
        "l": np.minimum(x, yb) + np.maximum(x, yb),
    }
    for k, w in want.items():
        assert got[k].shape == w.shape, k
        np.testing.assert_allclose(got[k], w, rtol=1e-5, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("dtype", ["bf16", "f16"])
def test_a_number_keeps_a_low_precision_dtype(tmp_path: Path, dtype: str) -> None:
    src = f"model M {{ input x: {dtype}[4]; output y = (x * 0.5 + 1) / 3 - (2 ** x) }}"
    graph = build(write(tmp_path, "m.nn", src))
    assert str(graph.outputs[0].type) == f"{dtype}[4]"
    y = lower(graph)(x=jnp.ones((2, 4), jnp.dtype({"bf16": "bfloat16", "f16": "float16"}[dtype])))
    assert y["y"].dtype == jnp.dtype({"bf16": "bfloat16", "f16": "float16"}[dtype])


def test_grad_reverse_and_stop_gradient_change_only_the_gradient(tmp_path: Path) -> None:
    src = """model M {
        input x: f32[3]
        output r = x -> grad_reverse(0.5)
        output s = x -> stop_gradient
    }"""
    model = lower(build(write(tmp_path, "m.nn", src)))
    x = jnp.arange(6.0).reshape(2, 3)
    out = model(x=x)
    np.testing.assert_array_equal(out["r"], x)
    np.testing.assert_array_equal(out["s"], x)
    gr = jax.grad(lambda v: model(x=v)["r"].sum())(x)
    gs = jax.grad(lambda v: model(x=v)["s"].sum())(x)
    np.testing.assert_allclose(gr, -0.5 * np.ones((2, 3)))
    np.testing.assert_array_equal(gs, np.zeros((2, 3)))


def test_builtins_stay_builtins_on_numbers(tmp_path: Path) -> None:
    src = """model M(n: int = 16) {
        input x: f32[4]
        output y = x -> dense(int(sqrt(n)) + max(1, 2) + min(3, 4) + abs(-1))
        output z = max(x) + abs(x) + sqrt(abs(x)) + min(x, axis = 0)
    }"""
    graph = build(write(tmp_path, "m.nn", src))
    types = {p.name: str(p.type) for p in graph.outputs}
    assert types == {"y": "f32[10]", "z": "f32[4]"}


def test_unary_plus_is_the_tensor_itself(tmp_path: Path) -> None:
    graph = build(write(tmp_path, "m.nn", "model M { input x: f32[4]; output y = +x - -x }"))
    kinds = sorted(n.kind.name for n in graph if n.kind is not None)
    assert kinds == ["neg", "sub"]


def test_train_section_keeps_number_builtins(tmp_path: Path) -> None:
    res = check(write(tmp_path, "m.nn", PRIMS.replace("batch     = 64", "batch = max(32, 64)")))
    assert not [d for d in res.diagnostics if d.severity == "error"], res.diagnostics


INDEXING = """
model Ix {
    input x: f32[4, 6]
    input ids: i32[3]
    output a = x -> slice(0, 1, -1)
    output b = x -> slice(1, 0, 6, 2)
    output c = x -> take(1, -1)
    output d = x -> take(1, (3, 0))
    p1, p2, p3 = x -> split(3)
    output e = (p1, p2, p3) -> stack(axis = -1)
    output f = x -> flip((0, 1))
    output g = x -> pad(((1, 0), (0, 2)), value = -1)
    output h = x -> pad(1, mode = "reflect")
    output i = x -> expand_dims(0) -> squeeze(0)
    output j = ids -> one_hot(4)
}
"""


def test_indexing_computes_what_numpy_does(tmp_path: Path) -> None:
    model = lower(build(write(tmp_path, "ix.nn", INDEXING)))
    x = np.arange(48, dtype=np.float32).reshape(2, 4, 6)
    ids = np.asarray([[0, 3, 5], [1, 1, -1]], np.int32)
    got = {k: np.asarray(v) for k, v in model(x=x, ids=ids).items()}
    parts = np.split(x, 3, axis=-1)
    want = {
        "a": x[:, 1:-1],
        "b": x[:, :, 0:6:2],
        "c": x[:, :, -1],
        "d": x[:, :, [3, 0]],
        "e": np.stack(parts, axis=-1),
        "f": x[:, ::-1, ::-1],
        "g": np.pad(x, ((0, 0), (1, 0), (0, 2)), constant_values=-1),
        "h": np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="reflect"),
        "i": x,
        "j": np.eye(4, dtype=np.float32)[np.where((ids >= 0) & (ids < 4), ids, 0)]
        * ((ids >= 0) & (ids < 4))[..., None],
    }
    for k, w in want.items():
        np.testing.assert_array_equal(got[k], w, err_msg=k)


def test_param_is_learned_and_shared_by_every_sample(tmp_path: Path) -> None:
    src = """model M {
        input x: f32[3]
        w = param((2, 3), init = "ones")
        output y = x * w + zeros(3)
    }"""
    graph = build(write(tmp_path, "m.nn", src))
    assert graph.total_params() == 6
    model = lower(graph)
    x = np.arange(12.0, dtype=np.float32).reshape(4, 3)
    y = np.asarray(model(x=x)["y"])
    assert y.shape == (4, 2, 3)
    np.testing.assert_array_equal(y, np.broadcast_to(x[:, None, :], (4, 2, 3)))


EVERY_NEW_KIND = """
model Every {
    input x: f32[8, 8]
    input ids: i32[8]
    scalars = (x * 0.5 - 1) / 3 + 2 ** x - (1 - x) + x ** 2 + 2 / (x -> abs -> add_scalar(1))
    merges = -x + x / (x -> abs -> add_scalar(1)) + (x -> abs) ** x + maximum(x, -x) + minimum(x, 1 - x)
    funcs = (x -> clip(-1, 1) -> exp -> log) + (x -> abs -> sqrt) + (x -> sign) + (x -> heaviside)
        + (x -> square) + (x -> relu6) + (x -> hard_sigmoid) + (x -> hard_swish)
    reduced = (x -> sum(axis = -1, keepdims = true)) + (x -> mean(axis = 0)) + max(x, axis = 0)
        + min(x, axis = 0) + (x -> prod(axis = 0)) + (x -> logsumexp(axis = 0))
        + (x -> norm(axis = 0)) + (x -> norm(axis = 0, ord = 1))
    p1, p2 = x -> split(2, axis = 0)
    indexed = (x -> slice(0, 1, -1) -> pad(((1, 1), 0), mode = "edge"))
        + (x -> take(1, (0, 2, 4, 6)) -> pad(((0, 0), (2, 2)), value = 0.5))
        + ((p1, p2 -> flip(0)) -> stack(axis = 0) -> sum(axis = 0) -> pad(((2, 2), 0), mode = "reflect"))
        + (x -> take(0, -1) -> expand_dims(0)) + (x -> expand_dims(0) -> squeeze(0))
    made = ones((8, 8)) + param((8, 8), init = "normal") + zeros(8) + full(8, 0.25)
    hot = ids -> clip(0, 3) -> one_hot(4) -> sum(axis = 0) -> pad((0, 4))
    output y = (scalars + merges + funcs + reduced + indexed + made + hot)
        -> stop_gradient -> grad_reverse(0.5)
}
"""


def test_every_new_kind_converts_to_onnx_with_parity(tmp_path: Path) -> None:
    pytest.importorskip("jax2onnx")
    pytest.importorskip("onnxruntime")
    from nnlang.export import onnx as onnx_export
    from nnlang.export.artifact import onnx_call

    graph = build(write(tmp_path, "every.nn", EVERY_NEW_KIND))
    model = lower(graph)
    rng = np.random.default_rng(0)
    x = rng.random((3, 8, 8)).astype(np.float32)
    ids = rng.integers(-1, 5, (3, 8)).astype(np.int32)
    want = np.asarray(model(x=x, ids=ids)["y"])
    blob = onnx_export.export(graph, model)
    got = onnx_call(blob, ["x", "ids"], ["y"])([x, ids])[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
