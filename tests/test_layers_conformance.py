"""Every layer kind against its own Flax lowering.

For each kind, sample calls (the CASES table) must agree with the built module: output
shapes and dtypes from the shape rule equal ``jax.eval_shape`` at two batch sizes,
``params`` equals the module's ``nnx.Param`` scalar count, and the module runs under
``nnx.jit``. A kind missing from CASES fails, so a new kind cannot skip conformance.
"""

from __future__ import annotations

import ast
import operator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from nnlang.layers import REGISTRY, Args, LayerKind
from nnlang.layers.base import REQUIRED
from nnlang.shapes import DTYPES, Dim, TensorType


def T(spec: str) -> TensorType:
    """``"f32[8, T]"`` -> TensorType (test shorthand)."""
    dtype, dims = spec.rstrip("]").split("[")
    shape = tuple(
        int(d) if d.strip().isdigit() else d.strip() for d in dims.split(",") if d.strip()
    )
    return TensorType(dtype, shape)


def bind(kind: LayerKind, kw: dict[str, Any]) -> Args:
    """Defaults filled in, as the graph builder's binder would."""
    unknown = set(kw) - {a.name for a in kind.attrs}
    assert not unknown, f"{kind.name}: unknown attrs {unknown}"
    values = {a.name: kw.get(a.name, a.default) for a in kind.attrs}
    missing = [k for k, v in values.items() if v is REQUIRED]
    assert not missing, f"{kind.name}: case misses required {missing}"
    return Args(values)


Case = tuple[dict[str, Any], list[str]]

_ACT = [({}, ["f32[3, 5]"])]
CASES: dict[str, list[Case]] = {
    # core
    "dense": [({"units": 7}, ["f32[5]"]), ({"units": 3, "use_bias": False}, ["bf16[4, 6]"])],
    "flatten": [({}, ["f32[4, 3, 2]"]), ({}, ["i32[5]"])],
    "reshape": [({"shape": (3, -1)}, ["f32[4, 3, 2]"]), ({"shape": (6, 4)}, ["f32[24]"])],
    "transpose": [({"perm": (2, 0, 1)}, ["f32[4, 3, 2]"]), ({"perm": (-1, 0)}, ["i32[2, 5]"])],
    "identity": [({}, ["f32[3]"]), ({}, ["u8[2, 2]"])],
    "cast": [({"dtype": "i32"}, ["f32[3]"]), ({"dtype": "bf16"}, ["f32[2, 2]"])],
    "embedding": [
        ({"vocab": 11, "features": 4}, ["i32[6]"]),
        ({"vocab": 5, "features": 3}, ["u8[2, 2]"]),
        ({"vocab": 7, "features": 4}, ["f32[3, 4]"]),  # the tied projection x Eᵀ
    ],
    "dropout": [({"rate": 0.5}, ["f32[10]"]), ({"rate": 0.0}, ["f32[2, 3]"])],
    "stop_gradient": [({}, ["f32[3]"]), ({}, ["i32[2]"])],
    "grad_reverse": [({}, ["f32[3]"]), ({"scale": 0.1}, ["bf16[2, 2]"])],
    # activations
    "relu": _ACT,
    "leaky_relu": _ACT + [({"alpha": 0.2}, ["f32[4]"])],
    "elu": _ACT + [({"alpha": 0.5}, ["f32[4]"])],
    "selu": _ACT,
    "gelu": _ACT + [({"approximate": True}, ["bf16[4]"])],
    "silu": _ACT,
    "swish": _ACT,
    "sigmoid": _ACT,
    "tanh": _ACT,
    "softplus": _ACT,
    "softmax": _ACT + [({"axis": 0}, ["f32[3, 5]"])],
    "log_softmax": _ACT + [({"axis": -2}, ["f32[3, 5]"])],
    "relu6": _ACT + [({}, ["bf16[4]"])],
    "hard_sigmoid": _ACT,
    "hard_swish": _ACT + [({}, ["f16[2, 2]"])],
    # element-wise math: a number takes the tensor's dtype (weak typing)
    "add_scalar": [({"value": 0.5}, ["f32[3, 2]"]), ({"value": 2}, ["i8[4]"])],
    "sub_scalar": [
        ({"value": 1.5}, ["bf16[3]"]),
        ({"value": 1, "reverse": True}, ["f32[2, 2]"]),
        ({"value": 3}, ["u8[2]"]),
    ],
    "mul_scalar": [({"value": 0.5}, ["f16[3]"]), ({"value": -2}, ["i32[2, 3]"])],
    "div_scalar": [({"value": 4.0}, ["bf16[3]"]), ({"value": 2, "reverse": True}, ["f32[5]"])],
    "pow_scalar": [
        ({"value": 2}, ["f32[3]"]),
        ({"value": 2.0, "reverse": True}, ["bf16[2, 2]"]),
        ({"value": 3}, ["i32[4]"]),
    ],
    "neg": [({}, ["f32[3]"]), ({}, ["i32[2, 2]"])],
    "exp": _ACT + [({}, ["bf16[4]"])],
    "log": [({}, ["f32[4]"])],
    "sqrt": [({}, ["f32[2, 3]"])],
    "square": [({}, ["f32[4]"]), ({}, ["i32[3]"])],
    "abs": [({}, ["f32[4]"]), ({}, ["i8[3]"])],
    "sign": [({}, ["f32[4]"]), ({}, ["i32[3]"])],
    "heaviside": [({}, ["f32[4]"]), ({"at_zero": 1.0}, ["bf16[3]"])],
    "clip": [
        ({"min": 0, "max": 1}, ["f32[4]"]),
        ({"max": 0.5}, ["bf16[2, 3]"]),
        ({"min": -1}, ["i32[3]"]),
    ],
    # reductions
    "sum": [
        ({}, ["f32[3, 4]"]),
        ({"axis": -1, "keepdims": True}, ["f32[3, 4]"]),
        ({"axis": 0}, ["i8[3, 2]"]),
    ],
    "mean": [({"axis": (0, 2)}, ["f32[2, 3, 4]"]), ({"keepdims": True}, ["bf16[3, 2]"])],
    "max": [({"axis": 1}, ["f32[2, 3, 4]"]), ({}, ["i32[5]"])],
    "min": [({"axis": (-1, 0), "keepdims": True}, ["f32[2, 3]"])],
    "prod": [({"axis": 0}, ["f32[3, 2]"]), ({}, ["u8[3]"])],
    "logsumexp": [({"axis": -1}, ["f32[3, 5]"]), ({"keepdims": True}, ["f32[4]"])],
    "norm": [({"axis": -1}, ["f32[3, 5]"]), ({"ord": 1, "keepdims": True}, ["f32[2, 2]"])],
    # convolution
    "conv": [
        ({"filters": 4, "kernel": 3}, ["f32[9, 3]"]),
        ({"filters": 4, "kernel": (3, 2), "stride": 2, "padding": "valid"}, ["f32[9, 8, 2]"]),
        (
            {"filters": 6, "kernel": 3, "stride": (2, 1), "dilation": 2, "groups": 3},
            ["f32[7, 6, 3]"],
        ),
        ({"filters": 4, "kernel": 3, "padding": (1, 0, 2), "stride": 2}, ["f32[5, 6, 7, 2]"]),
        ({"filters": 3, "kernel": 3, "groups": 3, "use_bias": False}, ["f32[6, 6, 3]"]),
        ({"filters": 4, "kernel": 3, "padding": 1}, ["bf16[8, 4]"]),
    ],
    "conv1d": [({"filters": 5, "kernel": 4, "stride": 3, "padding": "valid"}, ["f32[11, 2]"])],
    "conv2d": [({"filters": 2, "kernel": 3, "stride": 3}, ["f32[8, 7, 1]"])],
    "conv3d": [({"filters": 2, "kernel": 2, "padding": "valid"}, ["f32[3, 4, 5, 1]"])],
    "conv_transpose": [
        ({"filters": 4, "kernel": 3, "stride": 2}, ["f32[5, 3]"]),
        ({"filters": 2, "kernel": (3, 1), "stride": (2, 3), "padding": "valid"}, ["f32[4, 5, 3]"]),
        ({"filters": 2, "kernel": 2, "stride": 3, "padding": "valid"}, ["f32[3, 3, 2]"]),
        ({"filters": 2, "kernel": 4, "padding": "valid", "use_bias": False}, ["f32[2, 2, 2, 1]"]),
    ],
    # pooling
    "max_pool": [
        ({}, ["f32[8, 7, 3]"]),
        ({"window": 3, "stride": 2, "padding": "same"}, ["f32[9, 2]"]),
        ({"window": (2, 3), "stride": 1, "padding": 1}, ["f32[4, 5, 1]"]),
    ],
    "avg_pool": [
        ({}, ["f32[8, 7, 3]"]),
        ({"window": 3, "stride": 2, "padding": "same"}, ["f32[3, 4, 5, 2]"]),
    ],
    "global_avg_pool": [({}, ["f32[4, 5, 3]"]), ({}, ["f32[6, 2]"])],
    "global_max_pool": [({}, ["f32[4, 5, 3]"])],
    "upsample": [
        ({}, ["f32[3, 4, 2]"]),
        ({"factor": (2, 3), "method": "bilinear"}, ["f32[3, 4, 2]"]),
        ({"factor": 3}, ["f32[4, 1]"]),
    ],
    # normalization
    "batch_norm": [({}, ["f32[4, 4, 6]"]), ({"momentum": 0.9}, ["f32[5]"])],
    "layer_norm": [({}, ["f32[3, 8]"])],
    "group_norm": [({"groups": 4}, ["f32[4, 4, 8]"]), ({"groups": 2}, ["f32[6]"])],
    "rms_norm": [({}, ["f32[3, 8]"])],
    # merge
    "add": [({}, ["f32[4, 3]", "f32[3]"]), ({}, ["f32[1, 3]", "f32[4, 1]", "f32[4, 3]"])],
    "sub": [({}, ["f32[2, 3]", "f32[2, 3]"]), ({}, ["i32[3]", "i32[2, 1]"])],
    "mul": [({}, ["f32[5, 1, 2]", "f32[3, 1]"])],
    "div": [({}, ["f32[4, 3]", "f32[3]"]), ({}, ["bf16[2]", "bf16[2]"])],
    "pow": [({}, ["f32[2, 3]", "f32[1, 3]"]), ({}, ["i32[3]", "i32[3]"])],
    "maximum": [({}, ["f32[4, 3]", "f32[3]"]), ({}, ["i32[2]", "i32[2]"])],
    "minimum": [({}, ["f32[2, 1]", "f32[1, 3]"])],
    "concat": [
        ({}, ["f32[4, 3]", "f32[4, 2]"]),
        ({"axis": 0}, ["f32[1, 3]", "f32[2, 3]", "f32[3, 3]"]),
    ],
    # indexing
    "slice": [
        ({"axis": 0, "start": 1}, ["f32[5, 3]"]),
        ({"axis": -1, "start": -3, "stop": -1}, ["f32[2, 6]"]),
        ({"axis": 1, "start": 0, "stop": 5, "step": 2}, ["i32[2, 6]"]),
    ],
    "take": [
        ({"axis": 0, "index": -1}, ["f32[5, 3]"]),
        ({"axis": -1, "index": (2, 0, 2)}, ["f32[2, 4]"]),
    ],
    "split": [({"parts": 2}, ["f32[3, 4]"]), ({"parts": 3, "axis": 0}, ["f32[6, 2]"])],
    "flip": [({"axis": 0}, ["f32[4, 3]"]), ({"axis": (0, -1)}, ["i32[2, 3]"])],
    "pad": [
        ({"widths": 1}, ["f32[3, 2]"]),
        ({"widths": ((2, 0), 1), "value": -1}, ["f32[3, 2]"]),
        ({"widths": (1, 2)}, ["bf16[4]"]),
        ({"widths": ((1, 1), (0, 2)), "mode": "reflect"}, ["f32[3, 4]"]),
        ({"widths": (0, (1, 0)), "mode": "edge"}, ["i32[2, 3]"]),
    ],
    "stack": [({}, ["f32[3]", "f32[3]"]), ({"axis": -1}, ["f32[2, 3]", "f32[2, 3]", "f32[2, 3]"])],
    "expand_dims": [({}, ["f32[3]"]), ({"axis": 0}, ["f32[2, 3]"]), ({"axis": -2}, ["i32[2, 3]"])],
    "squeeze": [({}, ["f32[3, 1, 2, 1]"]), ({"axis": -1}, ["f32[1, 3, 1]"])],
    "one_hot": [({"classes": 4}, ["i32[3]"]), ({"classes": 3, "dtype": "bf16"}, ["u8[2, 2]"])],
    "padding_mask": [({}, ["i32[5]"]), ({"pad": 3, "dtype": "bf16"}, ["u8[2, 4]"])],
    # constants and learned tensors (no input)
    "zeros": [({"shape": (3, 2)}, []), ({"shape": 4, "dtype": "i32"}, [])],
    "ones": [({"shape": ()}, []), ({"shape": (2,), "dtype": "bf16"}, [])],
    "full": [({"shape": (2, 2), "value": 0.5}, []), ({"shape": 3, "value": 7, "dtype": "u8"}, [])],
    "param": [
        ({"shape": (3, 4)}, []),
        ({"shape": 5, "init": "normal", "stddev": 1.0}, []),
        ({"shape": (2, 3), "init": "glorot_uniform", "dtype": "bf16"}, []),
        ({"shape": 4, "init": "glorot_uniform"}, []),
        ({"shape": (), "init": "ones"}, []),
    ],
    # recurrent
    "lstm": [
        ({"units": 6}, ["f32[5, 3]"]),
        ({"units": 4, "return_sequences": False, "return_state": True}, ["f32[3, 2]"]),
    ],
    "gru": [
        ({"units": 5, "return_state": True}, ["f32[4, 3]"]),
        ({"units": 2, "return_sequences": False}, ["f32[3, 3]"]),
    ],
    "rnn": [({"units": 3, "return_state": True, "return_sequences": False}, ["f32[4, 2]"])],
    # attention
    "attention": [
        ({"heads": 2}, ["f32[5, 8]"]),
        ({"heads": 3, "key_size": 4, "causal": True}, ["f32[5, 7]", "f32[6, 5]"]),
        ({"heads": 2, "dropout": 0.1}, ["f32[4, 6]", "f32[3, 5]", "f32[3, 5]"]),
        ({"heads": 2, "key_mask": True}, ["f32[5, 8]", "f32[5]"]),
        ({"heads": 2, "key_mask": True, "causal": True}, ["f32[4, 6]", "f32[3, 5]", "i32[3]"]),
    ],
    "positional_embedding": [({"max_len": 9}, ["f32[5, 4]"]), ({"max_len": 3}, ["bf16[3, 2]"])],
    # stochastic
    "sample_normal": [
        ({}, ["f32[6]", "f32[6]"]),
        ({"eval": "sample"}, ["bf16[2, 3]", "bf16[2, 3]"]),
    ],
    "bernoulli": [({}, ["f32[5]"]), ({"gradient": "none", "eval": "mean"}, ["f32[2, 3]"])],
    "categorical": [({}, ["f32[5]"]), ({"gradient": "none", "eval": "sample"}, ["f32[2, 3]"])],
    "drop_path": [({"rate": 0.2}, ["f32[4, 3]"]), ({"rate": 0.0}, ["bf16[5]"])],
    "gaussian_noise": [({"stddev": 0.1}, ["f32[4]"]), ({"stddev": 1.0}, ["f16[2, 2]"])],
    "sinusoidal_position": [({}, ["f32[5, 4]"]), ({"base": 100.0}, ["bf16[3, 5]"])],
    "rotary": [({}, ["f32[5, 4]"]), ({"base": 100.0}, ["f32[3, 2, 6]"])],
    "bidirectional": [
        ({"units": 3}, ["f32[5, 2]"]),
        ({"units": 4, "cell": "gru", "merge": "sum", "return_sequences": False}, ["f32[3, 3]"]),
        ({"units": 2, "cell": "rnn", "merge": "ave"}, ["f32[4, 3]"]),
        ({"units": 2, "merge": "mul", "return_sequences": False}, ["f32[4, 3]"]),
    ],
    # radial basis functions
    "rbf": [
        ({"units": 5}, ["f32[4]"]),
        ({"units": 3, "kernel": "multiquadric"}, ["f32[2, 6]"]),
        ({"units": 2, "kernel": "inverse_multiquadric"}, ["bf16[3]"]),
        ({"units": 3, "init": "kmeans"}, ["f32[4]"]),
    ],
    # capsules
    "squash": [({}, ["f32[6, 4]"]), ({}, ["f32[3]"])],
    "primary_caps": [
        ({"capsules": 4, "dim": 3, "kernel": 3, "stride": 2}, ["f32[8, 8, 2]"]),
        ({"capsules": 2, "dim": 5, "kernel": (2, 3)}, ["f32[4, 5, 1]"]),
    ],
    "capsule": [
        ({"capsules": 3, "dim": 4}, ["f32[6, 5]"]),
        ({"capsules": 2, "dim": 3, "routing": 1}, ["f32[4, 2]"]),
    ],
    "mask_capsules": [({}, ["f32[4, 3]"]), ({}, ["f32[3, 2]", "f32[3]"])],
    # local learning rules
    "som": [
        ({"rows": 3, "cols": 4}, ["f32[5]"]),
        ({"rows": 2, "cols": 2, "grid": "hexagonal", "neighbourhood": "bubble"}, ["f32[3, 2]"]),
    ],
    "rbm": [
        ({"hidden": 6}, ["f32[5]"]),
        ({"hidden": 3, "visible": "gaussian", "chains": 4}, ["f32[2, 2]"]),
    ],
    "hopfield": [
        ({}, ["f32[6]"]),
        ({"storage": "storkey", "update": "synchronous", "steps": 3}, ["f32[4]"]),
    ],
    "modern_hopfield": [
        ({"patterns": 5}, ["f32[3]"]),
        ({"patterns": 2, "beta": 4.0, "steps": 2}, ["f32[3, 4]"]),
    ],
    # spiking
    "lif": [
        ({}, ["f32[5, 3]"]),
        ({"beta": 0.5, "reset": "zero", "surrogate": "arctan", "slope": 2.0}, ["f32[4, 2, 3]"]),
    ],
    "rate_encode": [({"steps": 4}, ["f32[3]"]), ({"steps": 2}, ["f32[2, 2]"])],
    "latency_encode": [({"steps": 5}, ["f32[3]"]), ({"steps": 3, "threshold": 0.0}, ["f32[2, 2]"])],
    # preprocessing
    "rescale": [({"scale": 0.5}, ["f32[3, 2]"]), ({"scale": 2.0, "offset": -1.0}, ["bf16[4]"])],
    "normalize": [
        ({"mean": 0.5, "variance": 4.0}, ["f32[3]"]),
        ({"mean": [0.0, 1.0, 2.0], "variance": 2}, ["f32[2, 3]"]),
        ({"mean": 1, "variance": [1.0, 4.0]}, ["bf16[2]"]),
    ],
}

ALL_CASES = [
    pytest.param(name, kw, ins, id=f"{name}-{i}")
    for name in sorted(REGISTRY)
    for i, (kw, ins) in enumerate(CASES.get(name, [({}, [])]))
]


def test_every_kind_has_conformance_cases() -> None:
    missing = sorted(set(REGISTRY) - set(CASES))
    assert not missing, f"add conformance cases for: {missing}"
    assert not set(CASES) - set(REGISTRY), "cases for undeclared kinds"


# ------------------------------------------------------------------ helpers
def sample(t: TensorType, batch: int, rng: np.random.Generator) -> jax.Array:
    # Host-side values (numpy, ml_dtypes for bf16): no XLA program per shape.
    shape = (batch, *t.shape)
    values = rng.standard_normal(shape) if t.is_float else rng.integers(0, 3, shape)
    return jnp.asarray(values.astype(jnp.dtype(DTYPES[t.dtype])))


def struct(t: TensorType, batch: int) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct((batch, *t.shape), jnp.dtype(DTYPES[t.dtype]))


def as_tuple(y: Any) -> tuple[Any, ...]:
    return y if isinstance(y, tuple) else (y,)


def eval_shape(fn: Any, *xs: Any) -> tuple[Any, ...]:
    """Output structs of ``fn(*xs)``; a module goes through split/merge so that its
    state (rng counters, batch stats) is traced rather than mutated from outside."""
    if isinstance(fn, nnx.Module):
        graphdef, state = nnx.split(fn)
        out = jax.eval_shape(lambda s, *a: nnx.merge(graphdef, s)(*a), state, *xs)
    else:
        out = jax.eval_shape(fn, *xs)
    return as_tuple(out)


def build(kind: LayerKind, args: Args, ins: list[TensorType]) -> Any:
    """``kind.build`` traced abstractly, then given cheap host-made values.

    Eager Flax initialisers compile a few XLA programs per new shape (seconds on a small
    CPU); the tests only need the module's structure and some finite values. The real
    initialisers run in the behaviour tests below.
    """
    plain: list[Any] = []

    def make() -> Any:
        fn = kind.build(args, ins, nnx.Rngs(0))
        if isinstance(fn, nnx.Module):
            return fn
        plain.append(fn)  # a stateless function: nothing to initialise
        return None

    abstract = nnx.eval_shape(make)
    if plain:
        return plain[0]
    graphdef, state = nnx.split(abstract)
    rng = np.random.default_rng(0)

    def fill(x: Any) -> Any:
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.key(0)
        if jnp.issubdtype(x.dtype, jnp.integer):
            return jnp.asarray(np.zeros(x.shape, x.dtype))
        return jnp.asarray((0.3 * rng.standard_normal(x.shape)).astype(x.dtype))

    return nnx.merge(graphdef, jax.tree.map(fill, state))


def param_count(fn: Any) -> int:
    if not isinstance(fn, nnx.Module):
        return 0
    return sum(x.size for x in jax.tree.leaves(nnx.state(fn, nnx.Param)))


def state_count(fn: Any) -> int:
    """Scalars of non-trainable state: every variable but parameters and RNG streams."""
    if not isinstance(fn, nnx.Module):
        return 0
    rest = nnx.state(fn, nnx.Not(nnx.Any(nnx.Param, nnx.RngState)))
    return sum(x.size for x in jax.tree.leaves(rest))


@nnx.jit
def _call_module(m: nnx.Module, *xs: Any) -> Any:
    return m(*xs)


def run_jit(fn: Any, *xs: Any) -> tuple[Any, ...]:
    if isinstance(fn, nnx.Module):
        return as_tuple(_call_module(fn, *xs))
    return as_tuple(nnx.jit(fn)(*xs))


def expect(outs: list[TensorType], batch: int) -> list[tuple[tuple[int, ...], Any]]:
    return [((batch, *o.shape), jnp.dtype(DTYPES[o.dtype])) for o in outs]


# --------------------------------------------------------------------- tests
#: Kinds that give NaN for some inputs by definition (ids out of range; log, sqrt and
#: fractional powers of negative numbers).
PARTIAL = frozenset({"embedding", "log", "sqrt", "pow"})


@pytest.mark.parametrize(("name", "kw", "specs"), ALL_CASES)
def test_kind_matches_flax(name: str, kw: dict[str, Any], specs: list[str]) -> None:
    kind = REGISTRY[name]
    assert name in CASES, f"`{name}` has no conformance cases; add it to CASES"
    args, ins = bind(kind, kw), [T(s) for s in specs]
    lo, hi = kind.n_inputs
    assert lo <= len(ins) and (hi is None or len(ins) <= hi)

    outs = kind.shape(args, ins)
    assert len(outs) == kind.outputs_for(args)
    assert kind.output_names == () or len(kind.output_names) >= len(outs)
    fn = build(kind, args, ins)
    assert kind.params(args, ins) == param_count(fn)
    assert kind.state(args, ins) == state_count(fn), "non-trainable state (`state=`)"
    flops = kind.flops(args, ins, outs)
    assert isinstance(flops, int) and flops >= 0

    # a layer with no input is called with one of the model's inputs, for its batch size
    called = ins or [T("f32[1]")]
    for batch in (2, 3):
        got = eval_shape(fn, *(struct(t, batch) for t in called))
        assert [(o.shape, o.dtype) for o in got] == expect(outs, batch)

    rng = np.random.default_rng(0)
    ys = run_jit(fn, *(sample(t, 2, rng) for t in called))
    assert [(y.shape, y.dtype) for y in ys] == expect(outs, 2)
    for y, o in zip(ys, outs, strict=True):
        if o.is_float and name not in PARTIAL:
            assert np.isfinite(np.asarray(y).astype(np.float32)).all(), f"{name}: non-finite"


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_kind_is_documented(name: str) -> None:
    kind = REGISTRY[name]
    assert kind.doc.strip() and kind.family
    assert all(a.doc.strip() for a in kind.attrs), "every attribute needs a doc"
    assert kind.example.startswith("model ") and name in kind.example
    assert kind.example.count("{") == kind.example.count("}")


# -------------------------------------------------------- symbolic axes
def evaluate_dim(d: Dim, env: dict[str, int]) -> int:
    """Value of a Dim expression (ints, names, + - * //, parentheses), no eval()."""
    ops = {
        ast.Add: operator.add,
        ast.Sub: operator.sub,
        ast.Mult: operator.mul,
        ast.FloorDiv: operator.floordiv,
    }

    def walk(node: ast.AST) -> int:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name):
            return env[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in ops:
            return ops[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        raise AssertionError(f"unexpected dim expression {d!r}")

    return d if isinstance(d, int) else walk(ast.parse(d, mode="eval").body)


SYMBOLIC: list[tuple[str, dict[str, Any], list[str]]] = [
    ("lstm", {"units": 4, "return_state": True}, ["f32[T, 3]"]),
    ("lstm", {"units": 4, "return_sequences": False}, ["f32[T, 3]"]),
    ("dense", {"units": 5}, ["f32[T, 3]"]),
    ("conv1d", {"filters": 2, "kernel": 3}, ["f32[T, 4]"]),
    ("conv1d", {"filters": 2, "kernel": 3, "stride": 2}, ["f32[T, 4]"]),
    (
        "conv1d",
        {"filters": 2, "kernel": 3, "stride": 2, "dilation": 2, "padding": "valid"},
        ["f32[T, 4]"],
    ),
    ("conv", {"filters": 2, "kernel": 2, "stride": 3, "padding": 1}, ["f32[T, 5, 1]"]),
    ("conv_transpose", {"filters": 2, "kernel": 5, "stride": 2, "padding": "valid"}, ["f32[T, 1]"]),
    ("max_pool", {"window": 3, "stride": 2}, ["f32[T, 2]"]),
    ("upsample", {"factor": 3}, ["f32[T, 2]"]),
    ("flatten", {}, ["f32[T, 4]"]),
    ("reshape", {"shape": (-1, 4)}, ["f32[T, 2, 6]"]),
    ("concat", {"axis": 0}, ["f32[T, 3]", "f32[2, 3]"]),
    ("attention", {"heads": 2, "causal": True}, ["f32[T, 4]"]),
    ("attention", {"heads": 2, "key_mask": True}, ["f32[T, 4]", "f32[T]"]),
    ("padding_mask", {}, ["i32[T]"]),
    ("add", {}, ["f32[T, 3]", "f32[1, 3]"]),
    ("mul_scalar", {"value": 0.5}, ["f32[T, 3]"]),
    ("slice", {"axis": 0, "start": 1}, ["f32[T, 3]"]),
    ("slice", {"axis": 0, "start": 2, "stop": -1}, ["f32[T, 3]"]),
    ("take", {"axis": 0, "index": -1}, ["f32[T, 3]"]),
    ("pad", {"widths": ((2, 1), 0)}, ["f32[T, 3]"]),
    ("pad", {"widths": ((1, 2), (0, 1)), "mode": "edge"}, ["f32[T, 3]"]),
    ("flip", {"axis": 0}, ["f32[T, 3]"]),
    ("one_hot", {"classes": 5}, ["i32[T]"]),
    ("stack", {"axis": 1}, ["f32[T, 3]", "f32[T, 3]"]),
    ("exp", {}, ["f32[T, 3]"]),
    ("sum", {"axis": -1, "keepdims": True}, ["f32[T, 3]"]),
    ("mean", {"axis": 0}, ["f32[T, 3]"]),
    ("logsumexp", {}, ["f32[T, 3]"]),
]


@pytest.mark.parametrize(
    ("name", "kw", "specs"), SYMBOLIC, ids=[f"{s[0]}-{i}" for i, s in enumerate(SYMBOLIC)]
)
def test_symbolic_axis(name: str, kw: dict[str, Any], specs: list[str]) -> None:
    """The rule's output, with T substituted, equals eval_shape at that concrete T."""
    kind = REGISTRY[name]
    args, ins = bind(kind, kw), [T(s) for s in specs]
    outs = kind.shape(args, ins)
    for t in (7, 10):
        env = {"T": t}
        concrete = [x.with_shape(tuple(evaluate_dim(d, env) for d in x.shape)) for x in ins]
        fn = build(kind, args, concrete)
        got = eval_shape(fn, *(struct(x, 2) for x in concrete))
        want = [(2, *(evaluate_dim(d, env) for d in o.shape)) for o in outs]
        assert [o.shape for o in got] == want
        assert kind.params(args, ins) == param_count(fn)
    # The lowering also traces with jax.export's symbolic shapes (what export uses);
    # the fixed sizes agree, the symbolic ones are checked by substitution above.
    batch, sym_t = jax.export.symbolic_shape("B, T")
    structs = [
        jax.ShapeDtypeStruct(
            (batch, *(sym_t if d == "T" else d for d in x.shape)), jnp.dtype(DTYPES[x.dtype])
        )
        for x in ins
    ]
    got = eval_shape(fn, *structs)
    for o, want_type in zip(got, outs, strict=True):
        assert len(o.shape) == 1 + want_type.rank
        for d, w in zip(o.shape[1:], want_type.shape, strict=True):
            assert isinstance(w, str) or d == w


# ------------------------------------------------- lowering properties
@pytest.mark.parametrize("name", ["lstm", "gru", "rnn"])
def test_recurrent_lowers_to_scan(name: str) -> None:
    kind = REGISTRY[name]
    args, ins = bind(kind, {"units": 3}), [T("f32[50, 2]")]
    graphdef, state = nnx.split(build(kind, args, ins))
    jaxpr = jax.make_jaxpr(lambda s, x: nnx.merge(graphdef, s)(x))(state, struct(ins[0], 2))
    text = str(jaxpr)
    assert "scan[" in text and text.count("dot_general") < 10  # not unrolled over 50 steps


def test_lstm_state_outputs_are_last_step() -> None:
    kind = REGISTRY["lstm"]
    ins = [T("f32[6, 3]")]
    fn = build(kind, bind(kind, {"units": 4, "return_state": True}), ins)
    seq, h, c = _call_module(fn, sample(ins[0], 2, np.random.default_rng(1)))
    np.testing.assert_allclose(seq[:, -1], h, rtol=1e-6)
    assert not np.allclose(h, c)


# Behaviour tests call through nnx.jit, as training does: train()/eval() flip static
# attributes (a retrace), and rng counters and batch stats flow out of the jit.
def test_dropout_follows_train_and_eval() -> None:
    kind = REGISTRY["dropout"]
    ins = [T("f32[1000]")]
    m = kind.build(bind(kind, {"rate": 0.5}), ins, nnx.Rngs(0))
    x = np.ones((2, 1000), np.float32)
    y1, y2 = np.asarray(_call_module(m, x)), np.asarray(_call_module(m, x))  # nnx default: training
    assert 0.3 < np.mean(y1 == 0) < 0.7 and not np.array_equal(y1, y2)
    np.testing.assert_array_equal(y1[y1 != 0], 2.0)
    m.eval()
    np.testing.assert_array_equal(_call_module(m, x), x)
    m.train()
    assert np.any(np.asarray(_call_module(m, x)) == 0)
    # nnx.view gives an eval-mode view without touching the original
    np.testing.assert_array_equal(nnx.view(m, deterministic=True)(x), x)
    assert m.deterministic is False


def test_batch_norm_follows_train_and_eval() -> None:
    kind = REGISTRY["batch_norm"]
    ins = [T("f32[3]")]
    m = kind.build(bind(kind, {"momentum": 0.5}), ins, nnx.Rngs(0))
    x = np.arange(12.0, dtype=np.float32).reshape(4, 3)
    y = _call_module(m, x)  # training: batch statistics, running averages updated
    np.testing.assert_allclose(np.mean(y, axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(m.mean[...], 0.5 * np.mean(x, axis=0), rtol=1e-6)
    m.eval()
    before = np.asarray(m.mean[...])
    _call_module(m, x)
    np.testing.assert_array_equal(m.mean[...], before)
    assert param_count(m) == kind.params(bind(kind, {}), ins)  # BatchStat is not a Param


def test_attention_dropout_follows_eval() -> None:
    kind = REGISTRY["attention"]
    ins = [T("f32[6, 4]")]
    m = build(kind, bind(kind, {"heads": 2, "dropout": 0.5}), ins)
    x = np.random.default_rng(0).standard_normal((2, 6, 4)).astype(np.float32)
    assert not np.allclose(_call_module(m, x), _call_module(m, x))  # fresh dropout masks
    m.eval()
    np.testing.assert_array_equal(_call_module(m, x), _call_module(m, x))


def test_causal_attention_ignores_the_future() -> None:
    kind = REGISTRY["attention"]
    ins = [T("f32[5, 4]")]
    m = build(kind, bind(kind, {"heads": 2, "causal": True}), ins)
    x = np.random.default_rng(0).standard_normal((1, 5, 4)).astype(np.float32)
    changed = x.copy()
    changed[:, 3:] = 0.0
    y1, y2 = _call_module(m, x), _call_module(m, changed)
    np.testing.assert_allclose(y1[:, :3], y2[:, :3], rtol=1e-5)
    assert not np.allclose(y1[:, 3:], y2[:, 3:])


def test_key_mask_attention_ignores_padded_keys() -> None:
    kind = REGISTRY["attention"]
    ins = [T("f32[5, 4]"), T("f32[5]")]
    m = build(kind, bind(kind, {"heads": 2, "key_mask": True}), ins)
    x = np.random.default_rng(0).standard_normal((2, 5, 4)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0]], np.float32)
    changed = x.copy()
    changed[0, 3:] = 9.0
    changed[1, 4:] = -9.0
    y1, y2 = _call_module(m, x, mask), _call_module(m, changed, mask)
    np.testing.assert_allclose(y1[0, :3], y2[0, :3], rtol=1e-5)
    np.testing.assert_allclose(y1[1, :4], y2[1, :4], rtol=1e-5)
    full = _call_module(m, x, np.ones_like(mask))
    assert not np.allclose(full[0, :3], y1[0, :3])  # the mask changes what is attended


def test_shared_embedding_ties_the_output_projection() -> None:
    import nnlang

    src = """model M {
    input tokens: i32[4]
    shared embed = embedding(9, 5)
    output logits = tokens -> embed -> dense(5) -> embed
}"""
    m = nnlang.module(nnlang.build("tied.nn", text=src), seed=0)
    ids = jnp.asarray([[1, 2, 3, 8]])
    table = m.layers["embed"].embedding[...]
    h = m.layers["dense"](table[ids])
    out = m(ids)
    np.testing.assert_allclose(
        out["logits"] if isinstance(out, dict) else out, h @ table.T, rtol=1e-5
    )
    params = nnx.state(m, nnx.Param)
    assert sum(x.size for x in jax.tree.leaves(params)) == 9 * 5 + 5 * 5 + 5


def test_padding_mask_marks_real_ids() -> None:
    kind = REGISTRY["padding_mask"]
    fn = kind.build(bind(kind, {"pad": 2}), [T("i32[4]")], nnx.Rngs(0))
    got = fn(jnp.asarray([[2, 0, 5, 2]]))
    np.testing.assert_array_equal(got, [[0.0, 1.0, 1.0, 0.0]])
    assert got.dtype == jnp.float32


def test_merge_broadcasts_per_sample_shapes() -> None:
    kind = REGISTRY["add"]
    ins = [T("f32[4, 3]"), T("f32[3]")]
    fn = kind.build(bind(kind, {}), ins, nnx.Rngs(0))
    a = jnp.arange(24.0).reshape(2, 4, 3)
    b = jnp.asarray([[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]])
    np.testing.assert_array_equal(fn(a, b), a + b[:, None, :])


def test_stochastic_layers_sample_in_training_and_are_deterministic_in_eval() -> None:
    x = np.full((500, 8), 0.3, np.float32)
    lv = np.full((500, 8), np.log(4.0), np.float32)  # variance 4: stddev 2
    cases: list[tuple[str, dict[str, Any], tuple[Any, ...], Any]] = [
        ("sample_normal", {}, (x, lv), x),
        ("bernoulli", {}, (x,), np.zeros_like(x)),  # eval: p > 0.5
        ("categorical", {}, (np.zeros_like(x),), None),  # uniform over 8 classes
        ("drop_path", {"rate": 0.5}, (x,), x),
        ("gaussian_noise", {"stddev": 2.0}, (x,), x),
    ]
    for name, kw, xs, want in cases:
        kind = REGISTRY[name]
        ins = [T("f32[8]")] * len(xs)
        m = kind.build(bind(kind, kw), ins, nnx.Rngs(0))
        y1, y2 = np.asarray(_call_module(m, *xs)), np.asarray(_call_module(m, *xs))
        assert not np.array_equal(y1, y2), f"{name}: fresh draws each call"
        m.eval()
        e1, e2 = np.asarray(_call_module(m, *xs)), np.asarray(_call_module(m, *xs))
        np.testing.assert_array_equal(e1, e2)
        if want is not None:
            np.testing.assert_array_equal(e1, want)
        if name == "sample_normal":
            assert abs(y1.std() - 2.0) < 0.1 and abs(y1.mean() - 0.3) < 0.1
        if name == "bernoulli":
            assert set(np.unique(y1)) == {0.0, 1.0} and abs(y1.mean() - 0.3) < 0.03
        if name == "drop_path":  # whole rows dropped, kept rows scaled by 2
            assert set(np.unique(y1)) == {0.0, np.float32(0.3) / np.float32(0.5)} and np.all(
                y1.min(1) == y1.max(1)
            )
        if name == "categorical":
            assert np.all(y1.sum(1) == 1.0) and np.all(e1.sum(1) == 1.0)


def test_straight_through_gradients() -> None:
    p = jnp.full((3, 4), 0.5, jnp.float32)
    for name, straight in (("bernoulli", "straight_through"), ("bernoulli", "none")):
        kind = REGISTRY[name]
        m = kind.build(bind(kind, {"gradient": straight}), [T("f32[4]")], nnx.Rngs(0))
        g = nnx.grad(lambda q, mod: mod(q).sum())(p, m)
        np.testing.assert_array_equal(g, 1.0 if straight == "straight_through" else 0.0)


@pytest.mark.parametrize("method", ["nearest", "bilinear"])
@pytest.mark.parametrize(
    ("shape", "factor"),
    [((5, 4, 2), (2, 2)), ((3, 7, 1), (3, 1)), ((1, 2, 3), (4, 5)), ((6, 2), (3,))],
)
def test_upsample_equals_jax_image_resize(method: str, shape: tuple, factor: tuple) -> None:
    """The lowering (a broadcast, or a constant matrix per axis) gives what
    `jax.image.resize` gives for integer factors, values and gradients."""
    kind = REGISTRY["upsample"]
    fn = build(kind, bind(kind, {"factor": factor, "method": method}), [T(f"f32{list(shape)}")])
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, *shape)), jnp.float32)
    out = (2, *(s * f for s, f in zip(shape[:-1], factor, strict=True)), shape[-1])
    resize = "nearest" if method == "nearest" else "linear"

    def ref(x: Any) -> Any:
        return jax.image.resize(x, out, resize)

    w = jnp.asarray(np.random.default_rng(1).normal(size=out), jnp.float32)
    np.testing.assert_allclose(fn(x), ref(x), rtol=1e-6, atol=1e-6)
    g, g_ref = (jax.grad(lambda x, f=f: jnp.sum(f(x) * w))(x) for f in (fn, ref))
    np.testing.assert_allclose(g, g_ref, rtol=1e-5, atol=1e-5)
