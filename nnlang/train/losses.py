"""Loss catalogue and weight penalties.

A loss takes ``(prediction, target)`` batched arrays and returns one value per example,
shape ``[B]``: the caller averages (so a mask for a padded last batch, or per-example
weights, can be applied first). Axes after the batch axis that the loss itself does not
consume (time steps, pixels) are reduced by mean. Predictions are raw model outputs:
logits for the classification losses.

Penalties (``l1``, ``l2``) are functions of the parameter pytree used in loss
expressions such as ``cross_entropy(logits, label) + 1e-4 * l2``. They cover weight
matrices and kernels only (leaves of rank >= 2), not biases or normalisation
scales/offsets, the same leaves that optimizer weight decay touches.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from nnlang.diagnostics import ArgError
from nnlang.train.catalog import Entry, Param, declare, resolve

LossFn = Callable[[jax.Array, jax.Array], jax.Array]

LOSSES: dict[str, Entry] = {}
PENALTIES: dict[str, Entry] = {}

#: the two tensor arguments every loss takes before its settings
INPUTS = ("prediction", "target")


def _per_example(x: jax.Array) -> jax.Array:
    """Mean over every axis after the batch axis: [B, ...] -> [B]."""
    return x.reshape(x.shape[0], -1).mean(axis=1) if x.ndim > 1 else x


#: how element-wise losses reduce the axes after the batch axis
REDUCTION = Param(
    "reduction",
    "str",
    "mean",
    '"mean" or "sum" over the axes after the batch axis (a sum over pixels is the '
    "log-likelihood of an image, as in a VAE)",
    choices=("mean", "sum"),
    kw_only=True,
)


def _reduce(x: jax.Array, reduction: str) -> jax.Array:
    if reduction == "sum" and x.ndim > 1:
        return x.reshape(x.shape[0], -1).sum(axis=1)
    return _per_example(x)


def _shapes(pred: jax.Array, target: jax.Array) -> str:
    return f"prediction {list(pred.shape[1:])}, target {list(target.shape[1:])} (per sample)"


def _align(name: str, pred: jax.Array, target: jax.Array) -> jax.Array:
    """Target reshaped to the prediction's shape for element-wise losses.

    Equal element counts are accepted ([B] labels for a [B, 1] output); anything else
    is a model/data mismatch.
    """
    if target.shape == pred.shape:
        return target
    if target.size == pred.size and target.shape[:1] == pred.shape[:1]:
        return target.reshape(pred.shape)
    raise ArgError(
        "E407", f"`{name}` needs a target shaped like the prediction: {_shapes(pred, target)}"
    )


def _class_labels(name: str, pred: jax.Array, target: jax.Array, per: str) -> jax.Array:
    """Integer class labels ``[..]`` (or ``[.., 1]``) for class scores ``[.., C]``; E407
    naming ``per`` (what one label belongs to) when there is not one label per vector."""
    if target.shape == pred.shape[:-1] + (1,):
        target = target[..., 0]
    if target.shape != pred.shape[:-1]:
        raise ArgError(
            "E407",
            f"`{name}` with integer labels needs one label per {per}: {_shapes(pred, target)}",
        )
    return target


def _float(x: jax.Array, like: jax.Array) -> jax.Array:
    return x.astype(like.dtype)


@declare(
    LOSSES,
    "cross_entropy",
    "Softmax cross-entropy over the last axis of the logits. Integer targets are class "
    "indices (one fewer axis than the logits); float targets of the logits' shape are "
    "one-hot or probability vectors.",
    Param(
        "label_smoothing",
        "float",
        0.0,
        "mix the target with a uniform distribution by this much",
        min=0.0,
        max=1.0,
        max_open=True,
    ),
    inputs=INPUTS,
)
def cross_entropy(pred: jax.Array, target: jax.Array, label_smoothing: float = 0.0) -> jax.Array:
    if pred.ndim < 2 or pred.shape[-1] < 2:
        raise ArgError(
            "E403",
            f"`cross_entropy` needs logits with a class axis of size >= 2, got {list(pred.shape[1:])}",
            help="for a single logit use `binary_cross_entropy`",
        )
    n = pred.shape[-1]
    if jnp.issubdtype(target.dtype, jnp.integer) or target.dtype == jnp.bool_:
        target = _class_labels("cross_entropy", pred, target, "logit vector")
        if label_smoothing == 0.0:
            return _per_example(
                optax.losses.softmax_cross_entropy_with_integer_labels(
                    pred, target.astype(jnp.int32)
                )
            )
        target = jax.nn.one_hot(target, n, dtype=pred.dtype)
    elif target.shape != pred.shape:
        raise ArgError(
            "E407",
            f"`cross_entropy` with float targets needs one probability per logit: {_shapes(pred, target)}",
            help="class indices must be integers",
        )
    target = _float(target, pred)
    if label_smoothing:
        target = optax.losses.smooth_labels(target, label_smoothing)
    return _per_example(optax.losses.softmax_cross_entropy(pred, target))


@declare(
    LOSSES,
    "binary_cross_entropy",
    "Sigmoid cross-entropy on logits, element-wise (one or several independent binary "
    "outputs); targets are 0/1 or probabilities.",
    REDUCTION,
    inputs=INPUTS,
)
def binary_cross_entropy(pred: jax.Array, target: jax.Array, reduction: str = "mean") -> jax.Array:
    target = _float(_align("binary_cross_entropy", pred, target), pred)
    return _reduce(optax.losses.sigmoid_binary_cross_entropy(pred, target), reduction)


@declare(LOSSES, "mse", "Mean squared error.", REDUCTION, inputs=INPUTS)
def mse(pred: jax.Array, target: jax.Array, reduction: str = "mean") -> jax.Array:
    target = _float(_align("mse", pred, target), pred)
    return _reduce(optax.losses.squared_error(pred, target), reduction)


@declare(LOSSES, "mae", "Mean absolute error.", REDUCTION, inputs=INPUTS)
def mae(pred: jax.Array, target: jax.Array, reduction: str = "mean") -> jax.Array:
    target = _float(_align("mae", pred, target), pred)
    return _reduce(jnp.abs(pred - target), reduction)


@declare(
    LOSSES,
    "huber",
    "Huber loss: 0.5 * e^2 where |e| <= delta, delta * (|e| - 0.5 * delta) beyond.",
    Param(
        "delta",
        "float",
        1.0,
        "where the loss turns from quadratic to linear",
        min=0.0,
        min_open=True,
    ),
    inputs=INPUTS,
)
def huber(pred: jax.Array, target: jax.Array, delta: float = 1.0) -> jax.Array:
    target = _float(_align("huber", pred, target), pred)
    return _per_example(optax.losses.huber_loss(pred, target, delta=delta))


@declare(
    LOSSES,
    "kl_divergence",
    "KL(target || softmax(prediction)) over the last axis; the prediction is logits "
    "(log-probabilities work too), the target a probability vector.",
    inputs=INPUTS,
)
def kl_divergence(pred: jax.Array, target: jax.Array) -> jax.Array:
    if target.shape != pred.shape:
        raise ArgError(
            "E407",
            f"`kl_divergence` needs a target shaped like the prediction: {_shapes(pred, target)}",
        )
    log_p = jax.nn.log_softmax(pred, axis=-1)
    return _per_example(optax.losses.kl_divergence(log_p, _float(target, pred)))


@declare(
    LOSSES,
    "hinge",
    "Hinge loss. Multi-class (Crammer-Singer) for [.., C] scores with integer labels; "
    "otherwise binary, element-wise, with targets 0/1 or -1/+1 (> 0 is the positive class).",
    inputs=INPUTS,
)
def hinge(pred: jax.Array, target: jax.Array) -> jax.Array:
    integer = jnp.issubdtype(target.dtype, jnp.integer)
    if integer and pred.ndim >= 2 and pred.shape[-1] > 1 and target.shape == pred.shape[:-1]:
        return _per_example(optax.losses.multiclass_hinge_loss(pred, target))
    target = _align("hinge", pred, target)
    signs = jnp.where(target > 0, 1.0, -1.0).astype(pred.dtype)
    return _per_example(optax.losses.hinge_loss(pred, signs))


@declare(
    LOSSES,
    "cosine_distance",
    "1 - cosine similarity between prediction and target vectors (last axis).",
    inputs=INPUTS,
)
def cosine_distance(pred: jax.Array, target: jax.Array) -> jax.Array:
    target = _float(_align("cosine_distance", pred, target), pred)
    if pred.ndim < 2:  # one number per sample: treat it as a 1-vector
        pred, target = pred[:, None], target[:, None]
    return _per_example(optax.losses.cosine_distance(pred, target, epsilon=1e-8))


# ------------------------------------------------------ losses over several tensors
def _flat(x: jax.Array) -> jax.Array:
    """[B, ...] -> [B, F] (a per-sample scalar becomes a 1-vector)."""
    return x.reshape(x.shape[0], -1)


def _same(name: str, a: jax.Array, b: jax.Array, what: str) -> None:
    if a.shape != b.shape:
        raise ArgError(
            "E407",
            f"`{name}` needs {what} of one shape, got {list(a.shape[1:])} and "
            f"{list(b.shape[1:])} (per sample)",
        )


def _label_vector(name: str, label: jax.Array, batch: int) -> jax.Array:
    """One label per example, as a [B] float vector."""
    if label.size != batch:
        raise ArgError(
            "E407",
            f"`{name}` needs one label per example, got {list(label.shape[1:])} per sample",
        )
    return label.reshape(batch).astype(jnp.float32)


def _squared_distance(a: jax.Array, b: jax.Array) -> jax.Array:
    return jnp.square(_flat(a) - _flat(b)).astype(jnp.float32).sum(axis=1)


def _norm(sq: jax.Array) -> jax.Array:
    """sqrt with a gradient that stays finite at 0."""
    return jnp.sqrt(sq + 1e-12)


@declare(
    LOSSES,
    "kl_normal",
    "KL divergence of N(mean, exp(log_var)) from N(0, 1), the VAE's prior term: "
    "`KL = -1/2 * sum(1 + log_var - mean^2 - exp(log_var))`, summed over the features "
    "of an example (the batch mean is minimised, as for every loss). With a "
    'reconstruction term summed over the features (`reduction = "sum"`), '
    "`reconstruction + kl_normal(mean, log_var)` is the negative ELBO.",
    inputs=("mean", "log_var"),
)
def kl_normal(mean: jax.Array, log_var: jax.Array) -> jax.Array:
    _same("kl_normal", mean, log_var, "`mean` and `log_var`")
    m, lv = _flat(mean).astype(jnp.float32), _flat(log_var).astype(jnp.float32)
    return -0.5 * jnp.sum(1.0 + lv - jnp.square(m) - jnp.exp(lv), axis=1)


@declare(
    LOSSES,
    "contrastive",
    "Contrastive loss of Hadsell, Chopra and LeCun (2006) for pairs: with `d` the "
    "Euclidean distance of the pair's embeddings and `y = 1` for a similar pair, "
    "`y = 0` for a dissimilar one, `L = y * d^2 / 2 + (1 - y) * max(0, margin - d)^2 / 2`. "
    "Written `contrastive(left, right, label)` with the two embeddings, or "
    "`contrastive(distance, label)` with a distance the model computes (one per example).",
    Param("margin", "float", 1.0, "distance beyond which dissimilar pairs cost nothing", min=0.0),
    inputs=("left", "right", "label"),
    min_inputs=2,
)
def contrastive(*tensors: jax.Array, margin: float = 1.0) -> jax.Array:
    *pair, label = tensors
    b = label.shape[0]
    if len(pair) == 2:
        _same("contrastive", pair[0], pair[1], "two embeddings")
        sq = _squared_distance(pair[0], pair[1])
        d = _norm(sq)
    else:
        d = _label_vector("contrastive", pair[0], b)  # one distance per example
        sq = jnp.square(d)
    y = (_label_vector("contrastive", label, b) > 0).astype(jnp.float32)
    return 0.5 * (y * sq + (1.0 - y) * jnp.square(jnp.maximum(0.0, margin - d)))


@declare(
    LOSSES,
    "triplet",
    "Triplet loss (Schroff et al. 2015, FaceNet) on squared Euclidean distances: "
    "`L = max(0, |anchor - positive|^2 - |anchor - negative|^2 + margin)`.",
    Param("margin", "float", 1.0, "how much closer the positive must be", min=0.0),
    inputs=("anchor", "positive", "negative"),
)
def triplet(anchor: jax.Array, pos: jax.Array, neg: jax.Array, margin: float = 1.0) -> jax.Array:
    _same("triplet", anchor, pos, "anchor and positive")
    _same("triplet", anchor, neg, "anchor and negative")
    return jnp.maximum(
        0.0, _squared_distance(anchor, pos) - _squared_distance(anchor, neg) + margin
    )


@declare(
    LOSSES,
    "margin",
    "Capsule margin loss (Sabour, Frosst and Hinton 2017) on per-class lengths `v` "
    "`[.., C]` (e.g. `norm(capsules, axis = -1)`): with `T_k = 1` for the example's "
    "class(es), `L = sum_k T_k max(0, m_plus - v_k)^2 + lambda (1 - T_k) "
    "max(0, v_k - m_minus)^2`. Integer targets are class indices; float targets of the "
    "prediction's shape are one-hot or multi-hot.",
    Param("m_plus", "float", 0.9, "length a present class must reach", min=0.0),
    Param("m_minus", "float", 0.1, "length an absent class must stay below", min=0.0),
    Param("lam", "float", 0.5, "down-weighting of the absent classes", min=0.0),
    inputs=INPUTS,
)
def margin(
    pred: jax.Array,
    target: jax.Array,
    m_plus: float = 0.9,
    m_minus: float = 0.1,
    lam: float = 0.5,
) -> jax.Array:
    if pred.ndim < 2:
        raise ArgError(
            "E407", f"`margin` needs per-class lengths [.., C], got {list(pred.shape[1:])}"
        )
    if jnp.issubdtype(target.dtype, jnp.integer):
        t = jax.nn.one_hot(
            _class_labels("margin", pred, target, "length vector"),
            pred.shape[-1],
            dtype=jnp.float32,
        )
    else:
        t = _align("margin", pred, target).astype(jnp.float32)
    v = pred.astype(jnp.float32)
    per = t * jnp.square(jnp.maximum(0.0, m_plus - v)) + lam * (1.0 - t) * jnp.square(
        jnp.maximum(0.0, v - m_minus)
    )
    return _per_example(per.sum(axis=-1))


@declare(
    LOSSES,
    "cosine_embedding",
    "Cosine embedding loss for pairs: with `c` the cosine similarity of the two vectors "
    "(last axis flattened per example) and `y > 0` for a similar pair (labels 1/0 or "
    "1/-1), `L = 1 - c` for a similar pair and `max(0, c - margin)` for a dissimilar one.",
    Param(
        "margin",
        "float",
        0.0,
        "similarity below which dissimilar pairs cost nothing",
        min=-1.0,
        max=1.0,
    ),
    inputs=("left", "right", "label"),
)
def cosine_embedding(
    left: jax.Array, right: jax.Array, label: jax.Array, margin: float = 0.0
) -> jax.Array:
    _same("cosine_embedding", left, right, "two embeddings")
    a, b = _flat(left).astype(jnp.float32), _flat(right).astype(jnp.float32)
    c = (a * b).sum(1) / (_norm(jnp.square(a).sum(1)) * _norm(jnp.square(b).sum(1)))
    y = _label_vector("cosine_embedding", label, a.shape[0]) > 0
    return jnp.where(y, 1.0 - c, jnp.maximum(0.0, c - margin))


def make_loss(
    name: str, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
) -> LossFn:
    """The per-example loss ``fn(prediction, target) -> [B]`` for a catalogue call.

    ``args``/``kwargs`` are the settings only (``label_smoothing = 0.1``); the two
    tensor arguments are the caller's. Shape problems raise at trace time.
    """
    entry, bound = resolve(LOSSES, "loss", name, args, kwargs)
    fn = entry.fn
    return lambda pred, target: fn(pred, target, **bound)


# ------------------------------------------------------------------------ penalties
def weight_mask(params: Any) -> Any:
    """True for leaves that penalties and weight decay apply to: rank >= 2 floats."""
    return jax.tree.map(
        lambda w: jnp.ndim(w) >= 2 and jnp.issubdtype(jnp.result_type(w), jnp.floating), params
    )


def _weights(params: Any) -> list[jax.Array]:
    return [
        w
        for w, m in zip(jax.tree.leaves(params), jax.tree.leaves(weight_mask(params)), strict=True)
        if m
    ]


@declare(
    PENALTIES,
    "l1",
    "Sum of |w| over weight matrices and kernels (biases and norm parameters excluded).",
)
def l1(params: Any) -> jax.Array:
    return sum((jnp.abs(w).sum() for w in _weights(params)), jnp.zeros((), jnp.float32))


@declare(
    PENALTIES,
    "l2",
    "Sum of w^2 / 2 over weight matrices and kernels (biases and norm parameters "
    "excluded); the 1/2 makes `c * l2` have gradient `c * w`, like weight decay `c`.",
)
def l2(params: Any) -> jax.Array:
    return sum((0.5 * jnp.square(w).sum() for w in _weights(params)), jnp.zeros((), jnp.float32))


def make_penalty(name: str) -> Callable[[Any], jax.Array]:
    """``l1``/``l2`` as ``fn(params) -> scalar``; E405 for other names."""
    entry, _ = resolve(PENALTIES, "penalty", name)
    return entry.fn


# ------------------------------------------------------ local learning rules
@declare(
    LOSSES,
    "rule",
    "The local learning rule of the layer that computes `output` (`som`, `rbm`, "
    "`hopfield`): a surrogate whose plain SGD gradient is the rule's update (Kohonen's "
    "rule, contrastive divergence, the storage rule), computed from the layer's input; "
    "see each layer's doc and docs/families.md. Train it with `sgd` (no momentum).",
    inputs=("output",),
    rule=True,
)
def rule(surrogate: jax.Array) -> jax.Array:
    """The per-example surrogate the trainer computed (nnlang.train.rules)."""
    return surrogate.astype(jnp.float32)
