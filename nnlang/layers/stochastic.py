"""Stochastic kinds: reparameterised Gaussian samples, Bernoulli and categorical samples,
stochastic depth (``drop_path``) and additive Gaussian noise on one tensor.

Each draws its random numbers from its own fork of the model's ``dropout`` RNG stream
(:class:`~nnlang.layers.modules.Stochastic`), so the draws are part of the model state
that checkpoints hold and a resumed run is bitwise equal to one never stopped. In eval
mode each is deterministic (the mean, the most likely value, the identity) unless its
``eval`` attribute asks for samples. Imports only the layer base and shapes; build rules
import JAX lazily.
"""

from __future__ import annotations

from typing import Any

from nnlang.diagnostics import ArgError
from nnlang.layers.base import Args, Attr, expect_float, layer
from nnlang.shapes import TensorType, concrete_numel

FAMILY = "stochastic"

_GRADIENT = Attr(
    "gradient",
    "str",
    "straight_through",
    doc='"straight_through": the gradient of the sample is that of its probabilities '
    '(`sample + (p - stop_gradient(p))`); "none": no gradient flows back',
    choices=("straight_through", "none"),
)


def _elements(args: Args, ins: list[TensorType], outs: list[TensorType]) -> int:
    return concrete_numel(outs[0].shape)


def _stochastic(train: Any, infer: Any, rngs: Any) -> Any:
    from nnlang.layers.modules import Stochastic

    return Stochastic(train, infer, rngs=rngs)


# --------------------------------------------------------------- sample_normal
def _sample_normal_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    import jax
    import jax.numpy as jnp

    def sample(key: Any, mean: Any, log_var: Any) -> Any:
        eps = jax.random.normal(key, mean.shape, mean.dtype)
        return mean + jnp.exp(0.5 * log_var) * eps

    def infer(stream: Any, mean: Any, log_var: Any) -> Any:
        return sample(stream(), mean, log_var) if a["eval"] == "sample" else mean

    return _stochastic(sample, infer, rngs)


@layer(
    "sample_normal",
    family=FAMILY,
    doc="A sample of N(mean, exp(log_var)) by the reparameterisation trick: "
    "`mean + exp(log_var / 2) * eps`, `eps ~ N(0, 1)` drawn fresh each training step, so "
    "gradients flow to both inputs (as in a VAE's encoder). In eval mode it returns "
    '`mean` (`eval = "sample"` keeps sampling).',
    attrs=(
        Attr(
            "eval",
            "str",
            "mean",
            doc='in eval mode: "mean" returns the mean, "sample" draws a sample',
            choices=("mean", "sample"),
        ),
    ),
    flops=lambda a, ins, outs: 3 * concrete_numel(outs[0].shape),
    build=_sample_normal_build,
    n_inputs=(2, 2),
    has_train_mode=True,
    example="""model Example {
    input x: f32[64]
    h = x -> dense(32) -> relu
    z = sample_normal(h -> dense(8), h -> dense(8))
    output y = z -> dense(64)
}""",
)
def _sample_normal(a: Args, ins: list[TensorType]) -> list[TensorType]:
    mean, log_var = ins
    expect_float("sample_normal", mean)
    if mean != log_var:
        raise ArgError(
            "E302",
            f"`sample_normal` needs `mean` and `log_var` of one type but got {mean} and {log_var}",
            help="compute both from the same features, e.g. two `dense(k)` of `h`",
        )
    return [mean]


# ------------------------------------------------------------------- bernoulli
def _bernoulli_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    import jax

    def draw(key: Any, p: Any) -> Any:
        s = jax.random.uniform(key, p.shape, p.dtype) < p
        s = s.astype(p.dtype)
        if a.gradient == "straight_through":
            return s + (p - jax.lax.stop_gradient(p))  # value s exactly, gradient of p
        return jax.lax.stop_gradient(s)

    def infer(stream: Any, p: Any) -> Any:
        if a["eval"] == "sample":
            return jax.lax.stop_gradient(draw(stream(), p))
        if a["eval"] == "mean":
            return p
        return (p > 0.5).astype(p.dtype)

    return _stochastic(draw, infer, rngs)


@layer(
    "bernoulli",
    family=FAMILY,
    doc="Sample 0/1 with probability `p` (the input, in [0, 1], e.g. after `sigmoid`), "
    "element-wise, in the input's dtype. The straight-through gradient (default) passes "
    "the gradient of the sample on to `p`. In eval mode it returns `p > 0.5` as 0/1 "
    '(`eval = "mean"` returns `p` itself, `eval = "sample"` keeps sampling).',
    attrs=(
        _GRADIENT,
        Attr(
            "eval",
            "str",
            "threshold",
            doc='in eval mode: "threshold" gives `p > 0.5`, "mean" gives `p`, '
            '"sample" draws a sample',
            choices=("threshold", "mean", "sample"),
        ),
    ),
    flops=_elements,
    build=_bernoulli_build,
    has_train_mode=True,
    example="""model Example {
    input x: f32[16]
    output code = x -> dense(8) -> sigmoid -> bernoulli
}""",
)
def _bernoulli(a: Args, ins: list[TensorType]) -> list[TensorType]:
    expect_float("bernoulli", ins[0])
    return [ins[0]]


# ----------------------------------------------------------------- categorical
def _categorical_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    import jax

    def one_hot(i: Any, logits: Any) -> Any:
        return jax.nn.one_hot(i, logits.shape[-1], dtype=logits.dtype)

    def draw(key: Any, logits: Any) -> Any:
        s = one_hot(jax.random.categorical(key, logits, axis=-1), logits)
        if a.gradient == "straight_through":
            p = jax.nn.softmax(logits, axis=-1)
            return s + (p - jax.lax.stop_gradient(p))  # value s exactly, gradient of p
        return jax.lax.stop_gradient(s)

    def infer(stream: Any, logits: Any) -> Any:
        if a["eval"] == "sample":
            return jax.lax.stop_gradient(draw(stream(), logits))
        if a["eval"] == "mean":
            return jax.nn.softmax(logits, axis=-1)
        return one_hot(logits.argmax(axis=-1), logits)

    return _stochastic(draw, infer, rngs)


@layer(
    "categorical",
    family=FAMILY,
    doc="Sample one class per vector from `softmax(logits)` over the last axis, as a "
    "one-hot vector of the logits' shape and dtype. The straight-through gradient "
    "(default) passes the gradient of the one-hot sample on to the softmax "
    "probabilities. In eval mode it returns the one-hot argmax "
    '(`eval = "mean"` returns the probabilities, `eval = "sample"` keeps sampling).',
    attrs=(
        _GRADIENT,
        Attr(
            "eval",
            "str",
            "argmax",
            doc='in eval mode: "argmax" gives the most likely class one-hot, "mean" the '
            'probabilities, "sample" a sample',
            choices=("argmax", "mean", "sample"),
        ),
    ),
    flops=lambda a, ins, outs: 4 * concrete_numel(outs[0].shape),
    build=_categorical_build,
    has_train_mode=True,
    onnx=False,
    example="""model Example {
    input x: f32[16]
    output choice = x -> dense(5) -> categorical
}""",
)
def _categorical(a: Args, ins: list[TensorType]) -> list[TensorType]:
    x = ins[0]
    expect_float("categorical", x)
    if x.rank < 1:
        raise ArgError("E301", f"`categorical` expects logits with a class axis but got {x}")
    return [x]


# ------------------------------------------------------------------ drop_path
def _drop_path_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    import jax
    import jax.numpy as jnp

    keep = 1.0 - a.rate

    def drop(key: Any, x: Any) -> Any:
        if a.rate == 0.0:
            return x
        if a.rate == 1.0:
            return jnp.zeros_like(x)
        mask = jax.random.bernoulli(key, keep, (x.shape[0],) + (1,) * (x.ndim - 1))
        return jnp.where(mask, x / jnp.asarray(keep, x.dtype), jnp.zeros_like(x))

    return _stochastic(drop, lambda stream, x: x, rngs)


@layer(
    "drop_path",
    family=FAMILY,
    doc="Stochastic depth (Huang et al. 2016): while training, zero the whole tensor of "
    "an example with probability `rate` and scale the kept ones by `1/(1-rate)`; "
    "identity in eval mode. Put it at the end of a residual branch: `x + (x -> f -> "
    "drop_path(0.1))` skips the branch for some examples.",
    attrs=(
        Attr("rate", "float", doc="probability of dropping an example's tensor", min=0.0, max=1.0),
    ),
    flops=_elements,
    build=_drop_path_build,
    has_train_mode=True,
    example="""model Example {
    input x: f32[32]
    output y = x + (x -> dense(32) -> relu -> drop_path(0.1))
}""",
)
def _drop_path(a: Args, ins: list[TensorType]) -> list[TensorType]:
    expect_float("drop_path", ins[0])
    return [ins[0]]


# -------------------------------------------------------------- gaussian_noise
def _gaussian_noise_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    import jax

    def add(key: Any, x: Any) -> Any:
        return x + a.stddev * jax.random.normal(key, x.shape, x.dtype)

    def infer(stream: Any, x: Any) -> Any:
        return add(stream(), x) if a["eval"] == "sample" else x

    return _stochastic(add, infer, rngs)


@layer(
    "gaussian_noise",
    family=FAMILY,
    doc="Add N(0, stddev^2) noise to the one tensor it is applied to, fresh each "
    'training step; identity in eval mode (`eval = "sample"` keeps adding noise). '
    "The `noise` augmentation of the train section instead perturbs every "
    "floating-point model input.",
    attrs=(
        Attr("stddev", "float", doc="standard deviation of the noise", min=0.0),
        Attr(
            "eval",
            "str",
            "identity",
            doc='in eval mode: "identity" returns the input, "sample" adds noise',
            choices=("identity", "sample"),
        ),
    ),
    flops=lambda a, ins, outs: 2 * concrete_numel(outs[0].shape),
    build=_gaussian_noise_build,
    has_train_mode=True,
    example="""model Example {
    input x: f32[16]
    output y = x -> dense(16) -> gaussian_noise(0.1) -> relu -> dense(4)
}""",
)
def _gaussian_noise(a: Args, ins: list[TensorType]) -> list[TensorType]:
    expect_float("gaussian_noise", ins[0])
    return [ins[0]]
