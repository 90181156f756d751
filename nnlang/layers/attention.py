"""Attention over ``[T, F]`` sequences (``nnx.MultiHeadAttention``), learned positional
embeddings and the fixed position codes (sinusoidal, rotary)."""

from __future__ import annotations

from typing import Any

from nnlang.diagnostics import ArgError
from nnlang.layers.base import Args, Attr, expect_float, expect_rank, fail, layer
from nnlang.layers.core import concrete_last
from nnlang.layers.merge import same_dtype
from nnlang.shapes import TensorType, concrete_numel, is_concrete

FAMILY = "attention"


def _split_mask(a: Args, ins: list[TensorType]) -> list[TensorType]:
    """The query / key / value inputs, with the key mask (the last input when
    ``key_mask = true``) checked against the key length and removed."""
    if not a.key_mask:
        if len(ins) == 4:
            raise fail(
                "`attention` takes at most 3 inputs (query, key, value) unless "
                "key_mask = true makes the last one a mask",
                arg="key_mask",
            )
        return ins
    if len(ins) < 2:
        raise fail(
            "`attention` with key_mask = true needs the mask as its last input: "
            "`attention(x, mask, heads = 4, key_mask = true)`",
            arg="key_mask",
        )
    *qkv, mask = ins
    k = qkv[min(1, len(qkv) - 1)]
    if len(mask.shape) != 1 or mask.shape[0] != k.shape[0]:
        raise fail(
            f"`attention` key mask must be [T_key] = [{k.shape[0]}] (one value per key "
            f"position) but got {mask}",
            arg="key_mask",
        )
    return qkv


def _attention_config(a: Args, ins: list[TensorType]) -> dict[str, int]:
    """Check q / k / v and return the feature sizes: fq, fkv, qkv (= heads*key_size)."""
    ins = _split_mask(a, ins)
    for x in ins:
        expect_float("attention", x)
        expect_rank("attention", x, (2,), "[T, F]", what="query, key and value")
    same_dtype("attention", ins)
    q, k = ins[0], ins[min(1, len(ins) - 1)]
    fq, fk = concrete_last("attention", q), concrete_last("attention", k)
    if len(ins) == 3:
        v = ins[2]
        # flax projects key and value from inputs of one size (in_kv_features)
        if v.shape[-1] != fk or v.shape[0] != k.shape[0]:
            raise fail(f"`attention` key and value must have the same shape but got {k} and {v}")
    if a.key_size is None:
        if fq % a.heads:
            raise fail(
                f"`attention` heads = {a.heads} must divide the query features ({fq}) "
                "unless key_size is given",
                arg="heads",
            )
        key_size = fq // a.heads
    else:
        key_size = a.key_size
    return {"fq": fq, "fkv": fk, "qkv": a.heads * key_size}


def _attention_params(a: Args, ins: list[TensorType]) -> int:
    c = _attention_config(a, ins)
    fq, fkv, qkv = c["fq"], c["fkv"], c["qkv"]
    # query, key, value projections (kernel + bias), then the output projection
    return (fq + 1) * qkv + 2 * (fkv + 1) * qkv + qkv * fq + fq


def _attention_flops(a: Args, ins: list[TensorType], outs: list[TensorType]) -> int:
    c = _attention_config(a, ins)
    ins = _split_mask(a, ins)
    tq = concrete_numel(ins[0].shape[:1])
    tk = concrete_numel(ins[min(1, len(ins) - 1)].shape[:1])
    proj = tq * c["fq"] * c["qkv"] + 2 * tk * c["fkv"] * c["qkv"] + tq * c["qkv"] * c["fq"]
    scores = 2 * tq * tk * c["qkv"]  # q.k and weights.v
    return 2 * (proj + scores)


def _attention_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    from flax import nnx

    from nnlang.layers.modules import Attention, dtype_of

    c = _attention_config(a, ins)
    mha = nnx.MultiHeadAttention(
        num_heads=a.heads,
        in_features=c["fq"],
        qkv_features=c["qkv"],
        out_features=c["fq"],
        in_kv_features=c["fkv"],
        dropout_rate=a.dropout,
        # training mode by default, like nnx.Dropout; eval mode flips it
        deterministic=False,
        decode=False,
        dtype=dtype_of(ins[0]),
        rngs=rngs,
    )
    return Attention(mha, causal=a.causal, key_mask=a.key_mask)


@layer(
    "attention",
    family=FAMILY,
    doc="Multi-head dot-product attention (`nnx.MultiHeadAttention`): self-attention with "
    "one input, `(query, key_value)` with two, `(query, key, value)` with three; each "
    "`[T, F]`, output `[T_query, F_query]`. With `key_mask = true` the last input is a "
    "`[T_key]` mask (any dtype; nonzero = attend): padded key positions get no weight, "
    "e.g. `attention(h, ids -> padding_mask, heads = 4, key_mask = true)`.",
    attrs=(
        Attr("heads", "int", doc="number of attention heads", min=1),
        Attr(
            "key_size",
            "int",
            None,
            doc="query/key/value size per head (default: query features / heads)",
            min=1,
        ),
        Attr(
            "dropout",
            "float",
            0.0,
            doc="dropout rate on the attention weights while training",
            min=0.0,
            max=1.0,
        ),
        Attr("causal", "bool", False, doc="query position i attends only to key positions <= i"),
        Attr(
            "key_mask",
            "bool",
            False,
            doc="the last input is a [T_key] mask: key positions where it is 0 are not attended",
        ),
    ),
    params=_attention_params,
    flops=_attention_flops,
    build=_attention_build,
    n_inputs=(1, 4),
    has_train_mode=True,
    example="""model Example {
    input x: f32[T, 64]
    h = x -> positional_embedding(512)
    output y = attention(h, heads = 4, causal = true) -> layer_norm
}""",
)
def _attention(a: Args, ins: list[TensorType]) -> list[TensorType]:
    _attention_config(a, ins)
    return [ins[0]]


def _positional_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    from nnlang.layers.modules import PositionalEmbedding, dtype_of

    x = ins[0]
    return PositionalEmbedding(a.max_len, int(x.shape[-1]), dtype=dtype_of(x), rngs=rngs)


@layer(
    "positional_embedding",
    family=FAMILY,
    doc="Add a learned vector per position to a `[T, F]` sequence (an `nnx.Embed` table of "
    "`max_len` rows; row t is added at step t). T may not exceed `max_len`: checked when T "
    "is fixed; a longer symbolic T gives NaN rows at run time (`jnp.take` fill mode).",
    attrs=(Attr("max_len", "int", doc="longest sequence supported (table rows)", min=1),),
    params=lambda a, ins: a.max_len * int(ins[0].shape[-1]),
    flops=lambda a, ins, outs: concrete_numel(ins[0].shape),
    build=_positional_build,
    example="""model Example {
    input tokens: i32[T]
    output y = tokens -> embedding(1000, 32) -> positional_embedding(128) -> dense(4)
}""",
)
def _positional(a: Args, ins: list[TensorType]) -> list[TensorType]:
    x = ins[0]
    expect_float("positional_embedding", x)
    expect_rank("positional_embedding", x, (2,), "[T, F]")
    concrete_last("positional_embedding", x)
    t = x.shape[0]
    if is_concrete(t) and int(t) > a.max_len:
        raise ArgError(
            "E302",
            f"`positional_embedding` has {a.max_len} positions but the input {x} has {t} steps",
            arg="max_len",
            help=f"use max_len >= {t}",
        )
    return [x]


# ------------------------------------------------------- fixed position codes
_BASE = Attr("base", "float", 10000.0, doc="the wavelength base (10000 in both papers)", min=1.0)


def _sinusoidal_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    from nnlang.layers.family_modules import sinusoidal_position

    return sinusoidal_position(a.base)


@layer(
    "sinusoidal_position",
    family=FAMILY,
    doc="Add the fixed sinusoidal position code to a `[T, F]` sequence (Vaswani et al. "
    "2017): `PE[t, 2i] = sin(t / base^(2i/F))`, `PE[t, 2i+1] = cos(t / base^(2i/F))`. "
    "No parameters; T may be symbolic (ONNX export needs a fixed T).",
    attrs=(_BASE,),
    flops=lambda a, ins, outs: concrete_numel(ins[0].shape),
    build=_sinusoidal_build,
    example="""model Example {
    input x: f32[T, 32]
    h = x -> sinusoidal_position
    output y = attention(h, heads = 4) -> layer_norm
}""",
)
def _sinusoidal(a: Args, ins: list[TensorType]) -> list[TensorType]:
    x = ins[0]
    expect_float("sinusoidal_position", x)
    expect_rank("sinusoidal_position", x, (2,), "[T, F]")
    concrete_last("sinusoidal_position", x)
    return [x]


def _rotary_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    from nnlang.layers.family_modules import rotary

    return rotary(a.base)


@layer(
    "rotary",
    family=FAMILY,
    doc="Rotary position embedding (RoPE, Su et al. 2021) of `[T, F]` or `[T, H, F]` "
    "(per head): each feature pair `(x[2i], x[2i+1])` at step t is rotated by the angle "
    "`t / base^(2i/F)`, so dot products of rotated queries and keys depend on their "
    "relative position. F must be even. `attention` projects its inputs, so RoPE "
    "applied before it is only exactly relative where queries and keys are not "
    "projected again: use it on the projected, per-head vectors (`dense`, `reshape`).",
    attrs=(_BASE,),
    flops=lambda a, ins, outs: 3 * concrete_numel(ins[0].shape),
    build=_rotary_build,
    example="""model Example {
    input x: f32[T, 32]
    q = x -> dense(32) -> reshape((-1, 4, 8)) -> rotary
    k = x -> dense(32) -> reshape((-1, 4, 8)) -> rotary
    output scores = q -> mul(k) -> sum(axis = -1)
}""",
)
def _rotary(a: Args, ins: list[TensorType]) -> list[TensorType]:
    x = ins[0]
    expect_float("rotary", x)
    expect_rank("rotary", x, (2, 3), "[T, F] or [T, H, F]")
    f = concrete_last("rotary", x)
    if f % 2:
        raise fail(
            f"`rotary` rotates feature pairs, so the last axis must be even, but got {x}",
            help="use an even number of features per head",
        )
    return [x]
