"""A loss expression evaluated on a batch: the per-example loss vector of a train
section's (or a step's) `loss`, from the model's outputs, the batch's inputs and labels,
and the parameters (for the `l1`/`l2` penalties).

May import JAX and this package's ``spec``, ``steps`` and ``rules`` (a rule loss reads
its layer's surrogate).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from nnlang.diagnostics import ArgError
from nnlang.train import rules as rules_lib
from nnlang.train.spec import LossOp, LossTerm, Penalty
from nnlang.train.steps import CONSTANT


def example_weights(w: jax.Array, batch: int) -> jax.Array:
    """A loss's `weights = name`: one number per example, as a [B] float vector."""
    if w.size != batch:
        raise ArgError(
            "E407",
            f"loss `weights` need one number per example, got {list(w.shape[1:])} per sample",
        )
    return w.reshape(batch).astype(jnp.float32)


def evaluate_loss(expr: Any, env: dict[str, jax.Array], params: Any, batch: int) -> jax.Array:
    """The loss expression as a per-example vector [B] (penalties broadcast; a constant
    target is the prediction's shape, filled)."""
    if isinstance(expr, float):
        return jnp.full((batch,), expr, jnp.float32)
    if isinstance(expr, LossTerm):
        c = expr.call
        first = env[c.tensors[0]]
        args = [
            jnp.full_like(first, float(n[1:])) if n.startswith(CONSTANT) else env[n]
            for n in rules_lib.loss_inputs(c)
        ]
        v = c.entry.fn(*args, **c.args)
        v = jnp.broadcast_to(jnp.asarray(v, jnp.float32), (batch,))
        return v if c.weights is None else v * example_weights(env[c.weights], batch)
    if isinstance(expr, Penalty):
        return jnp.broadcast_to(expr.fn(params).astype(jnp.float32), (batch,))
    assert isinstance(expr, LossOp)
    a = evaluate_loss(expr.left, env, params, batch)
    if expr.op == "neg":
        return -a
    b = evaluate_loss(expr.right, env, params, batch)
    return {"+": a + b, "-": a - b, "*": a * b, "/": a / b}[expr.op]
