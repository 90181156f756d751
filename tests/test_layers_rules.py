"""Shape rules: the errors users see, and the generated layer reference. No JAX needed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nnlang.diagnostics import ArgError
from nnlang.layers import REGISTRY, Args
from nnlang.layers.base import REQUIRED
from nnlang.layers.doc import render_markdown
from nnlang.shapes import TensorType

ROOT = Path(__file__).resolve().parent.parent


def t(dtype: str, *shape: int | str) -> TensorType:
    return TensorType(dtype, tuple(shape))


def shape_of(name: str, ins: list[TensorType], **kw: Any) -> list[TensorType]:
    kind = REGISTRY[name]
    values = {a.name: kw.get(a.name, a.default) for a in kind.attrs}
    assert REQUIRED not in values.values(), f"{name}: missing required argument"
    return kind.shape(Args(values), ins)


def error_of(name: str, ins: list[TensorType], **kw: Any) -> ArgError:
    with pytest.raises(ArgError) as info:
        shape_of(name, ins, **kw)
    return info.value


# ------------------------------------------------------------------ ranks
def test_fixed_rank_conv_names_its_layout() -> None:
    e = error_of("conv2d", [t("f32", 64)], filters=8, kernel=3)
    assert e.code == "E301"
    assert e.message == "`conv2d` expects a rank-3 input [H, W, C] but got f32[64]"


def test_inferred_conv_lists_layouts() -> None:
    e = error_of("conv", [t("f32", 64)], filters=8, kernel=3)
    assert e.code == "E301" and "[L, C], [H, W, C] or [D, H, W, C]" in e.message


def test_recurrent_and_attention_need_sequences() -> None:
    assert error_of("lstm", [t("f32", 4, 4, 4)], units=3).code == "E301"
    assert error_of("attention", [t("f32", 4)], heads=2).code == "E301"
    assert "[T, F]" in error_of("gru", [t("f32", 8)], units=2).message


# ------------------------------------------------------------- arguments
def test_groups_must_divide_channels() -> None:
    e = error_of("conv", [t("f32", 8, 8, 6)], filters=8, kernel=3, groups=4)
    assert e.arg == "groups" and "6" in e.message
    e = error_of("conv", [t("f32", 8, 8, 6)], filters=9, kernel=3, groups=6)
    assert e.arg == "groups"
    assert error_of("group_norm", [t("f32", 4, 10)], groups=4).arg == "groups"


def test_depthwise_conv() -> None:
    (y,) = shape_of("conv", [t("f32", 8, 8, 6)], filters=12, kernel=3, groups=6)
    assert y == t("f32", 8, 8, 12)
    kind = REGISTRY["conv"]
    args = Args({a.name: a.default for a in kind.attrs} | {"filters": 12, "kernel": 3, "groups": 6})
    assert kind.params(args, [t("f32", 8, 8, 6)]) == 3 * 3 * 1 * 12 + 12


def test_size_reaching_zero_names_the_arg() -> None:
    e = error_of("conv", [t("f32", 4, 4, 1)], filters=2, kernel=5, padding="valid")
    assert e.code == "E303" and e.arg == "kernel"
    e = error_of("conv1d", [t("f32", 5, 1)], filters=2, kernel=3, dilation=3, padding="valid")
    assert e.code == "E303" and e.arg == "kernel" and "spans 7" in e.message
    e = error_of("max_pool", [t("f32", 3, 8, 1)], window=4)
    assert e.code == "E303" and e.arg == "window"


def test_per_axis_ints_need_one_entry_per_axis() -> None:
    e = error_of("conv2d", [t("f32", 8, 8, 1)], filters=2, kernel=(3, 3, 3))
    assert e.code == "E202" and e.arg == "kernel"
    assert error_of("conv", [t("f32", 8, 1)], filters=2, kernel=3, padding="full").arg == "padding"


def test_conv_output_sizes() -> None:
    x = t("f32", 9, 8, 2)
    assert shape_of("conv", [x], filters=4, kernel=3)[0].shape == (9, 8, 4)
    assert shape_of("conv", [x], filters=4, kernel=3, stride=2)[0].shape == (5, 4, 4)
    assert shape_of("conv", [x], filters=4, kernel=3, stride=2, padding="valid")[0].shape == (
        4,
        3,
        4,
    )
    assert shape_of("conv", [x], filters=4, kernel=3, padding=(2, 0))[0].shape == (11, 6, 4)
    assert shape_of("conv_transpose", [x], filters=4, kernel=3, stride=2)[0].shape == (18, 16, 4)
    y = shape_of("conv_transpose", [x], filters=4, kernel=5, stride=2, padding="valid")[0]
    assert y.shape == (21, 19, 4)


def test_symbolic_spatial_axes_give_expressions() -> None:
    (y,) = shape_of("conv1d", [t("f32", "T", 4)], filters=2, kernel=3, stride=2)
    assert y.shape == ("(T + 1)//2", 2)
    (y,) = shape_of("conv1d", [t("f32", "T", 4)], filters=2, kernel=1)
    assert y.shape == ("T", 2)
    (y,) = shape_of("lstm", [t("f32", "T", 4)], units=3)
    assert y.shape == ("T", 3)
    (y,) = shape_of("reshape", [t("f32", "T", 4, 4)], shape=(-1, 8))
    assert y.shape == ("T*2", 8)


def test_reshape_count_mismatch() -> None:
    e = error_of("reshape", [t("f32", 4, 3)], shape=(5, 2))
    assert e.code == "E302" and e.arg == "shape" and "12 elements" in e.message
    assert error_of("reshape", [t("f32", 4, 3)], shape=(5, -1)).code == "E302"
    assert error_of("reshape", [t("f32", 4, 3)], shape=(-1, -1)).code == "E202"
    assert error_of("reshape", [t("f32", "T", 3)], shape=(3, 4)).code == "E305"
    assert shape_of("reshape", [t("f32", 4, 3)], shape=(2, -1, 2))[0].shape == (2, 3, 2)


def test_transpose_needs_a_permutation() -> None:
    assert error_of("transpose", [t("f32", 2, 3)], perm=(0, 0)).arg == "perm"
    assert error_of("transpose", [t("f32", 2, 3)], perm=(0, 1, 2)).code == "E301"
    assert shape_of("transpose", [t("f32", 2, 3, 4)], perm=(-1, 0, 1))[0].shape == (4, 2, 3)


def test_axis_out_of_range() -> None:
    e = error_of("softmax", [t("f32", 3, 4)], axis=2)
    assert e.code == "E202" and e.arg == "axis" and "batch" in (e.help or "")
    assert error_of("concat", [t("f32", 3), t("f32", 3)], axis=-2).arg == "axis"


# ----------------------------------------------------------------- merges
def test_broadcast_failure_shows_both_shapes() -> None:
    e = error_of("add", [t("f32", 4, 3), t("f32", 5)])
    assert e.code == "E302"
    assert "f32[4, 3]" in e.message and "f32[5]" in e.message
    assert error_of("mul", [t("f32", "T", 3), t("f32", 4, 3)]).code == "E302"


def test_broadcasting_follows_numpy() -> None:
    out = shape_of("add", [t("f32", 1, 3), t("f32", 4, 1), t("f32", 4, 3)])
    assert out == [t("f32", 4, 3)]
    assert shape_of("sub", [t("f32", "T", 3), t("f32", 3)]) == [t("f32", "T", 3)]


def test_merge_dtypes_must_match() -> None:
    assert error_of("add", [t("f32", 3), t("i32", 3)]).code == "E304"
    assert error_of("concat", [t("f32", 3), t("bf16", 3)]).code == "E304"


def test_concat_needs_other_axes_equal() -> None:
    e = error_of("concat", [t("f32", 4, 3), t("f32", 5, 2)])
    assert e.code == "E302" and "f32[4, 3]" in e.message and "f32[5, 2]" in e.message
    assert shape_of("concat", [t("f32", "T", 3), t("f32", "T", 2)]) == [t("f32", "T", 5)]


# ------------------------------------------------------------- dtypes etc
def test_embedding_rejects_float() -> None:
    e = error_of("embedding", [t("f32", 5)], vocab=10, features=4)
    assert e.code == "E304"
    assert shape_of("embedding", [t("i32", "T")], vocab=10, features=4) == [t("f32", "T", 4)]


def test_float_layers_reject_integers() -> None:
    for name, kw in [("dense", {"units": 2}), ("relu", {}), ("conv", {"filters": 2, "kernel": 1})]:
        assert error_of(name, [t("i32", 4, 4)], **kw).code == "E304"


def test_dense_needs_a_fixed_last_axis() -> None:
    e = error_of("dense", [t("f32", 4, "F")], units=3)
    assert e.code == "E305"
    assert shape_of("dense", [t("f32", "T", 4)], units=3) == [t("f32", "T", 3)]


def test_attention_heads_and_positions() -> None:
    assert error_of("attention", [t("f32", 5, 10)], heads=3).arg == "heads"
    assert shape_of("attention", [t("f32", 5, 10)], heads=3, key_size=4) == [t("f32", 5, 10)]
    e = error_of("attention", [t("f32", 5, 8), t("f32", 6, 4), t("f32", 6, 5)], heads=2)
    assert e.code == "E302"
    e = error_of("positional_embedding", [t("f32", 20, 4)], max_len=16)
    assert e.arg == "max_len"
    assert shape_of("positional_embedding", [t("f32", "T", 4)], max_len=16) == [t("f32", "T", 4)]


def test_recurrent_outputs() -> None:
    outs = shape_of("lstm", [t("f32", "T", 4)], units=3, return_state=True)
    assert outs == [t("f32", "T", 3), t("f32", 3), t("f32", 3)]
    kind = REGISTRY["lstm"]
    assert kind.outputs_for(Args({"units": 3, "return_sequences": True, "return_state": True})) == 3
    assert REGISTRY["gru"].output_names == ("out", "h")


# ------------------------------------------------------------ catalogue
def test_catalogue_imports_without_jax() -> None:
    code = "import sys, nnlang.layers; sys.exit('jax' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_docs_are_generated_from_the_registry() -> None:
    text = (ROOT / "docs" / "layers.md").read_text()
    assert text == render_markdown(), (
        "docs/layers.md is stale: run `python -m nnlang.layers.doc > docs/layers.md`"
    )
    for name in REGISTRY:
        assert f"### `{name}`" in text


def test_examples_check() -> None:
    """Every example is a complete model that checks cleanly and uses its kind."""
    from nnlang.graph.build import build
    from nnlang.graph.program import load_text

    for kind in REGISTRY.values():
        graph = build(load_text(kind.example, f"<{kind.name} example>"))
        assert not graph.warnings, (kind.name, graph.warnings)
        assert any(n.kind is kind for n in graph.order()), kind.name
