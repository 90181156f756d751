"""Core kinds: dense, embedding, dropout and the shape/dtype plumbing."""

from __future__ import annotations

import math
from typing import Any

from nnlang.diagnostics import ArgError
from nnlang.layers.base import (
    Args,
    Attr,
    expect_float,
    expect_min_rank,
    fail,
    layer,
    norm_axis,
)
from nnlang.shapes import (
    DTYPES,
    Dim,
    TensorType,
    concrete_numel,
    dim_mul,
    is_concrete,
    numel,
)

FAMILY = "core"


def concrete_last(kind: str, x: TensorType, what: str = "feature") -> int:
    """The last axis of ``x``, which must have a fixed size (it sizes parameters)."""
    last = x.shape[-1]
    if not is_concrete(last):
        raise ArgError(
            "E305",
            f"`{kind}` needs a fixed {what} size on the last axis but got {x}",
            help="only leading axes (such as time) may be symbolic",
        )
    return int(last)


def _elements(args: Args, ins: list[TensorType], outs: list[TensorType]) -> int:
    return concrete_numel(outs[0].shape)


# ------------------------------------------------------------------------ dense
def _dense_params(a: Args, ins: list[TensorType]) -> int:
    f = int(ins[0].shape[-1])
    return f * a.units + (a.units if a.use_bias else 0)


def _dense_flops(a: Args, ins: list[TensorType], outs: list[TensorType]) -> int:
    return 2 * concrete_numel(ins[0].shape) * a.units


def _dense_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    from flax import nnx

    from nnlang.layers.modules import dtype_of

    x = ins[0]
    return nnx.Linear(int(x.shape[-1]), a.units, use_bias=a.use_bias, dtype=dtype_of(x), rngs=rngs)


@layer(
    "dense",
    family=FAMILY,
    doc="Fully connected layer on the last axis (`nnx.Linear`): `[..., F] -> [..., units]`; "
    "leading axes are mapped over.",
    attrs=(
        Attr("units", "int", doc="number of output features", min=1),
        Attr("use_bias", "bool", True, doc="add a learned bias"),
    ),
    params=_dense_params,
    flops=_dense_flops,
    build=_dense_build,
    example="""model Example {
    input x: f32[16]
    output y = x -> dense(32) -> relu -> dense(10)
}""",
)
def _dense(a: Args, ins: list[TensorType]) -> list[TensorType]:
    x = ins[0]
    expect_float("dense", x)
    expect_min_rank("dense", x, 1, "[..., F]")
    concrete_last("dense", x)
    return [x.with_shape(x.shape[:-1] + (a.units,))]


# ------------------------------------------------------------------ reshaping
def _flatten_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    def flatten(x: Any) -> Any:
        return x.reshape((x.shape[0], math.prod(x.shape[1:])))

    return flatten


@layer(
    "flatten",
    family=FAMILY,
    doc="Flatten all per-sample axes into one (row-major, like `jnp.reshape`); the batch "
    "axis is kept.",
    build=_flatten_build,
    example="""model Example {
    input x: f32[8, 8, 3]
    output y = x -> flatten -> dense(10)
}""",
)
def _flatten(a: Args, ins: list[TensorType]) -> list[TensorType]:
    x = ins[0]
    return [x.with_shape((numel(x.shape),))]


def _reshape_target(a: Args, x: TensorType) -> tuple[Dim, ...]:
    target = tuple(a.shape) if isinstance(a.shape, (tuple, list)) else (a.shape,)
    if any(not isinstance(d, int) or (d < 1 and d != -1) for d in target):
        raise fail(
            f"`reshape` sizes must be positive or -1 but got {target}", arg="shape", code="E202"
        )
    if target.count(-1) > 1:
        raise fail("`reshape` allows at most one -1 entry", arg="shape", code="E202")
    known = math.prod(d for d in target if d != -1)
    sym = [d for d in x.shape if not is_concrete(d)]
    fixed = concrete_numel(x.shape)
    if sym and -1 not in target:
        raise ArgError(
            "E305",
            f"`reshape` cannot check {target} against {x} with a symbolic axis",
            arg="shape",
            help="use -1 for the entry that holds the symbolic axis",
        )
    if fixed % known != 0 or (-1 not in target and known != fixed):
        raise fail(
            f"`reshape` cannot turn {x} ({numel(x.shape)} elements) into {target}",
            arg="shape",
            help="the element count must stay the same",
        )
    # The -1 entry takes the rest; any symbolic axes go into it as a factor.
    rest = dim_mul(numel(tuple(sym)), fixed // known) if sym else fixed // known
    return tuple(rest if d == -1 else d for d in target)


def _reshape_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    target = tuple(a.shape) if isinstance(a.shape, (tuple, list)) else (a.shape,)

    def reshape(x: Any) -> Any:
        return x.reshape((x.shape[0], *target))

    return reshape


@layer(
    "reshape",
    family=FAMILY,
    doc="Reshape each sample to `shape` (row-major, like `jnp.reshape`); the batch axis "
    "is kept and not written.",
    attrs=(
        Attr(
            "shape",
            "shape",
            doc="per-sample target shape; one entry may be -1 to take the remaining size",
        ),
    ),
    build=_reshape_build,
    example="""model Example {
    input x: f32[64]
    output y = x -> reshape((8, 8, 1)) -> conv(4, 3)
}""",
)
def _reshape(a: Args, ins: list[TensorType]) -> list[TensorType]:
    return [ins[0].with_shape(_reshape_target(a, ins[0]))]


def _perm(a: Args, x: TensorType) -> tuple[int, ...]:
    perm = tuple(a.perm) if isinstance(a.perm, (tuple, list)) else (a.perm,)
    if len(perm) != x.rank:
        raise ArgError(
            "E301",
            f"`transpose` got a permutation of {len(perm)} axes for {x} "
            f"with {x.rank} per-sample axes",
            arg="perm",
            help="the batch axis is not counted",
        )
    axes = tuple(norm_axis("transpose", p, x.rank, arg="perm") for p in perm)
    if sorted(axes) != list(range(x.rank)):
        raise fail(f"`transpose` perm {perm} is not a permutation", arg="perm", code="E202")
    return axes


def _transpose_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    axes = (0, *(p + 1 for p in _perm(a, ins[0])))

    def transpose(x: Any) -> Any:
        return x.transpose(axes)

    return transpose


@layer(
    "transpose",
    family=FAMILY,
    doc="Permute the per-sample axes (like `jnp.transpose`); the batch axis stays first.",
    attrs=(
        Attr(
            "perm",
            "ints",
            doc="new order of the per-sample axes (batch not counted; negative axes count "
            "from the end)",
        ),
    ),
    build=_transpose_build,
    example="""model Example {
    input x: f32[10, 4]
    output y = x -> transpose((1, 0)) -> dense(3)
}""",
)
def _transpose(a: Args, ins: list[TensorType]) -> list[TensorType]:
    x = ins[0]
    return [x.with_shape(tuple(x.shape[p] for p in _perm(a, x)))]


@layer(
    "identity",
    family=FAMILY,
    doc="Return the input unchanged (any dtype and shape).",
    build=lambda a, ins, rngs: _identity_fn,
    example="""model Example {
    input x: f32[4]
    output y = x -> identity
}""",
)
def _identity(a: Args, ins: list[TensorType]) -> list[TensorType]:
    return [ins[0]]


def _identity_fn(x: Any) -> Any:
    return x


def _cast_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    from nnlang.layers.modules import dtype_of

    dtype = dtype_of(ins[0].with_dtype(a.dtype))

    def cast(x: Any) -> Any:
        return x.astype(dtype)

    return cast


@layer(
    "cast",
    family=FAMILY,
    doc="Convert the element type (`x.astype`); float to int truncates toward zero.",
    attrs=(Attr("dtype", "str", doc="target dtype name", choices=tuple(DTYPES)),),
    flops=_elements,
    build=_cast_build,
    example="""model Example {
    input x: i32[4]
    output y = x -> cast("f32") -> dense(2)
}""",
)
def _cast(a: Args, ins: list[TensorType]) -> list[TensorType]:
    return [ins[0].with_dtype(a.dtype)]


# ---------------------------------------------------------------- embedding
def _embedding_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    from nnlang.layers.modules import Embedding

    return Embedding(a.vocab, a.features, rngs=rngs)


@layer(
    "embedding",
    family=FAMILY,
    doc="Look up a learned `features`-vector per integer id (`nnx.Embed`): "
    "`i32[...] -> f32[..., features]`. Ids outside `0..vocab-1` give NaN rows "
    "(`jnp.take` fill mode). Applied to a float `[..., features]` tensor it gives the "
    "logits against its own table, `x Eᵀ` (`nnx.Embed.attend`): `f32[..., features] -> "
    "f32[..., vocab]`; with a `shared` instance used both ways the output projection is "
    "tied to the embedding (Press and Wolf 2017).",
    attrs=(
        Attr("vocab", "int", doc="number of distinct ids (table rows)", min=1),
        Attr("features", "int", doc="size of each embedding vector", min=1),
    ),
    params=lambda a, ins: a.vocab * a.features,
    flops=lambda a, ins, outs: (
        2 * concrete_numel(outs[0].shape) * a.features if ins[0].dtype[0] in "fb" else 0
    ),
    build=_embedding_build,
    weights_fit_any_input=True,
    example="""model Example {
    input tokens: i32[T]
    shared embed = embedding(1000, 64)
    h = tokens -> embed -> lstm(64)
    output logits = h -> embed
}""",
)
def _embedding(a: Args, ins: list[TensorType]) -> list[TensorType]:
    x = ins[0]
    if x.dtype in ("f32", "f16", "bf16", "f64") and x.shape and x.shape[-1] == a.features:
        return [x.with_shape(x.shape[:-1] + (a.vocab,))]  # tied projection: x Eᵀ
    if x.dtype not in ("i32", "i64", "i8", "u8"):
        raise ArgError(
            "E304",
            f"`embedding` expects integer ids (or, as the tied output projection, a float "
            f"tensor whose last axis is features = {a.features}) but got {x}",
            help="embedding looks up rows by id; for float features use `dense`",
        )
    return [TensorType("f32", x.shape + (a.features,))]


# ------------------------------------------------------------------ dropout
def _dropout_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    from flax import nnx

    return nnx.Dropout(a.rate, rngs=rngs)


@layer(
    "dropout",
    family=FAMILY,
    doc="Zero each element with probability `rate` and scale the rest by `1/(1-rate)` "
    "while training (`nnx.Dropout`); identity in eval mode.",
    attrs=(Attr("rate", "float", doc="probability of dropping an element", min=0.0, max=1.0),),
    flops=_elements,
    build=_dropout_build,
    has_train_mode=True,
    example="""model Example {
    input x: f32[32]
    output y = x -> dense(64) -> relu -> dropout(0.5) -> dense(10)
}""",
)
def _dropout(a: Args, ins: list[TensorType]) -> list[TensorType]:
    expect_float("dropout", ins[0])
    return [ins[0]]


# ---------------------------------------------------------------- gradients
def _stop_gradient_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    import jax

    return jax.lax.stop_gradient


@layer(
    "stop_gradient",
    family=FAMILY,
    doc="Identity forward; no gradient flows back through it (`jax.lax.stop_gradient`).",
    build=_stop_gradient_build,
    example="""model Example {
    input x: f32[8]
    h = x -> dense(8)
    output y = h + (h -> stop_gradient -> dense(8))
}""",
)
def _stop_gradient(a: Args, ins: list[TensorType]) -> list[TensorType]:
    return [ins[0]]


def _grad_reverse_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    from nnlang.layers.modules import grad_reverse

    return grad_reverse(a.scale)


@layer(
    "grad_reverse",
    family=FAMILY,
    doc="Gradient reversal: identity forward, the gradient flowing back is multiplied by "
    "`-scale` (`jax.custom_vjp`), as in domain-adversarial training.",
    attrs=(Attr("scale", "float", 1.0, doc="how strongly the gradient is reversed", min=0.0),),
    build=_grad_reverse_build,
    example="""model Example {
    input x: f32[8]
    features = x -> dense(16) -> relu
    output label = features -> dense(3)
    output domain = features -> grad_reverse(0.5) -> dense(2)
}""",
)
def _grad_reverse(a: Args, ins: list[TensorType]) -> list[TensorType]:
    expect_float("grad_reverse", ins[0])
    return [ins[0]]
