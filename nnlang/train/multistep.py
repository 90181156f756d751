"""Multi-step training at run time: each `step` differentiates its own loss with respect
to its own parameter groups only, and updates them with its own optimizer.

A step's groups become an ``nnx`` filter over the parameters' paths (``layers/<owner>``);
``nnx.value_and_grad`` with ``nnx.DiffState`` of that filter treats every other
parameter as a constant (no gradient is computed for it, nothing is multiplied by zero),
and the step's ``nnx.Optimizer`` is built with the same filter, so its state holds
moments for its groups only. The steps run in their declared order inside the one
jitted iteration; a step with ``every = k`` runs when the iteration number is a
multiple of k (its update is selected away on the other iterations). The model inputs
named by ``noise`` are drawn from a standard normal for each iteration, from a key of
(seed, iteration), so a resumed run draws what an uninterrupted one would.

May import JAX, Flax, NumPy, the graph and this package's ``guard``, ``objective``,
``spec`` and ``steps``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from nnlang.graph.graph import Graph
from nnlang.shapes import DTYPES
from nnlang.train.guard import all_finite, keep_if
from nnlang.train.objective import evaluate_loss
from nnlang.train.spec import TrainSpec
from nnlang.train.steps import groups

#: where the noise keys of an iteration are folded from its key (apart from the
#: augmentation keys, which fold the input's index)
NOISE_FOLD = 1 << 20


def step_filter(graph: Graph, update: tuple[str, ...]) -> Any:
    """The parameters of ``update``'s groups, as an ``nnx`` filter."""
    known = groups(graph)
    owners = frozenset().union(*(known[g] for g in update))

    def in_groups(path: tuple[Any, ...], value: Any) -> bool:
        return len(path) > 1 and path[0] == "layers" and path[1] in owners

    return nnx.All(nnx.Param, in_groups)


def optimizers(model: nnx.Module, spec: TrainSpec, graph: Graph, make_tx: Any) -> tuple[Any, ...]:
    """One ``nnx.Optimizer`` per step, over that step's groups; ``make_tx(call)`` builds
    the Optax transformation of an optimizer call (the step's, else the section's)."""
    return tuple(
        nnx.Optimizer(
            model, make_tx(st.optimizer or spec.optimizer), wrt=step_filter(graph, st.update)
        )
        for st in spec.steps
    )


def noise(graph: Graph, names: tuple[str, ...], key: jax.Array, batch: int) -> dict[str, jax.Array]:
    """Standard normal draws for the ``noise`` inputs, one key per input."""
    out = {}
    for i, p in enumerate(x for x in graph.inputs if x.name in names):
        shape = (batch, *(int(d) for d in p.type.shape))
        k = jax.random.fold_in(key, NOISE_FOLD + i)
        out[p.name] = jax.random.normal(k, shape, jnp.dtype(DTYPES[p.type.dtype]))
    return out


def sample_noise(graph: Graph, names: tuple[str, ...], n: int, seed: int) -> dict[str, np.ndarray]:
    """``n`` draws of the ``noise`` inputs for ``nnlang sample``, from ``seed`` alone."""
    return {k: np.asarray(v) for k, v in noise(graph, names, jax.random.key(seed), n).items()}


def run_steps(
    spec: TrainSpec,
    model: Any,
    opts: tuple[Any, ...],
    inputs: Callable[[dict[str, jax.Array]], dict[str, jax.Array]],
    batch: dict[str, jax.Array],
    filters: tuple[Any, ...],
    it: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """The steps of one iteration, in order, applied to ``model`` and ``opts`` in place.
    Returns (the sum of the steps' losses, whether every loss and gradient was finite)."""
    b = spec.batch
    total = jnp.zeros((), jnp.float32)
    finite = jnp.ones((), bool)
    for st, opt, filt in zip(spec.steps, opts, filters, strict=True):

        def loss_fn(m: Any, loss: Any = st.loss) -> jax.Array:
            outs = m(**inputs(batch))
            params = nnx.state(m, nnx.Param)
            return jnp.mean(evaluate_loss(loss, {**batch, **outs}, params, b))

        before = jax.tree.map(lambda x: x, nnx.state((model, opt))) if st.every > 1 else None
        loss, grads = nnx.value_and_grad(loss_fn, argnums=nnx.DiffState(0, filt))(model)
        opt.update(model, grads)
        if before is not None:  # runs on every `every`-th iteration only
            active = (it % st.every) == 0
            nnx.update((model, opt), keep_if(active, nnx.state((model, opt)), before))
            loss = jnp.where(active, loss, 0.0)
        total = total + loss
        finite = finite & jnp.isfinite(loss) & all_finite(grads)
    return total, finite
