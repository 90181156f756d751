"""`nnlang time`: per-layer forward and backward times, the model's forward, the training
step (and the fused epoch), compile times and XLA's memory figures; and the tiled
pooling lowering whose need it showed (max_pool's gradient was 4.8 of a 6.5 ms CNN step)."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _util import ROOT, write
from flax import nnx

from nnlang.cli import main
from nnlang.layers.pool import _tiled
from nnlang.shapes import TensorType

MLP = ROOT / "examples" / "digits_mlp.nn"


def test_time_reports_layers_model_step_and_epoch(capsys) -> None:
    assert main(["time", str(MLP), "--runs", "2", "--json"]) == 0
    t = json.loads(capsys.readouterr().out)
    assert t["model"] == "DigitsMLP" and t["batch"] > 0 and t["backend"] == "cpu"
    kinds = [x["kind"] for x in t["layers"]]
    assert "dense" in kinds and all(x["forward"] > 0 for x in t["layers"])
    dense = next(x for x in t["layers"] if x["kind"] == "dense")
    assert dense["backward"] > 0 and dense["line"] > 0
    names = [p["name"] for p in t["programs"]]
    assert names == ["model forward", "train step", "train epoch"]  # the MLP loop is fused
    for p in t["programs"]:
        assert p["seconds"] > 0 and p["compile_seconds"] > 0
        assert p["memory"]["argument"] > 0
    assert "ms a step" in t["programs"][2]["note"]


def test_time_of_a_model_without_a_train_section(tmp_path, capsys) -> None:
    src = write(
        tmp_path,
        "m.nn",
        """
model M {
    input ids: i32[6]
    h = ids -> embedding(20, 8) -> flatten
    output y = h -> dense(3) -> cast("i32")
}
""",
    )
    assert main(["time", str(src), "--batch", "4", "--runs", "1"]) == 0
    out = capsys.readouterr().out
    assert "each layer alone, batch 4" in out and "model forward" in out
    assert "train step" not in out
    # cast to i32 has an integer output: nothing to differentiate
    assert main(["time", str(src), "--batch", "4", "--runs", "1", "--json"]) == 0
    rows = {x["kind"]: x for x in json.loads(capsys.readouterr().out)["layers"]}
    assert rows["cast"]["backward"] is None and rows["embedding"]["backward"] > 0
    assert main(["time", str(src), "--runs", "0"]) == 1
    assert "E504" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("shape", "window", "reduce", "flax_fn"),
    [
        ((3, 8, 12, 5), (2, 3), "max", nnx.max_pool),
        ((3, 8, 12, 5), (2, 2), "mean", nnx.avg_pool),
        ((2, 12, 4), (3,), "max", nnx.max_pool),
    ],
)
def test_tiled_pooling_equals_reduce_window(shape, window, reduce, flax_fn) -> None:
    x = jax.random.normal(jax.random.key(0), shape)
    tiles = tuple(d // w for d, w in zip(shape[1:-1], window, strict=True))
    want = flax_fn(x, window_shape=window, strides=window, padding="VALID")
    np.testing.assert_array_equal(_tiled(x, tiles=tiles, reduce=reduce), want)
    # without ties the gradients agree too
    g1 = jax.grad(lambda x: jnp.sum(jnp.sin(_tiled(x, tiles=tiles, reduce=reduce))))(x)
    g2 = jax.grad(lambda x: jnp.sum(jnp.sin(flax_fn(x, window, strides=window))))(x)
    np.testing.assert_allclose(g1, g2, rtol=1e-6, atol=1e-7)


def test_pools_that_do_not_tile_keep_reduce_window() -> None:
    from nnlang.layers.pool import _tiles

    x = TensorType("f32", (9, 8, 3))
    assert _tiles(x, (2, 2), (2, 2), "VALID") is None  # 9 is no multiple of 2
    assert _tiles(x, (3, 2), (1, 2), "VALID") is None  # overlapping windows
    assert _tiles(x, (3, 2), (3, 2), (1, 0)) is None  # padded
    assert _tiles(x, (3, 2), (3, 2), "SAME") == (3, 4)
