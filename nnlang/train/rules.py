"""Local learning rules in the trainer: `loss = rule(output)` and the rule metrics.

A layer kind with ``rule`` set (``som``, ``rbm``, ``hopfield``) has a lowered module
with a ``rule(x, y, ctx)`` method (:mod:`nnlang.layers.rule_modules`): from the
layer's input ``x`` and output ``y`` it returns per-example arrays, ``"rule"`` (a
surrogate whose plain SGD gradient is the rule's textbook update) and the statistics
its metrics average. :func:`rule_values` runs them for every model output made by such
a layer and names them ``"<output>.<name>"`` in the loss environment; the `rule` loss
and the rule metrics read them there. Everything else (data, epochs, schedules,
checkpoints, exact resume, progress, export) is the ordinary machinery: the rule's
parameters (the SOM radius) follow the train section's ``rule_schedule`` at the
optimizer's step count, which lives in the checkpointed state.

Imports JAX, Flax and the graph/lower rooms.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from nnlang.diagnostics import ArgError, Diagnostic, NNError
from nnlang.graph.graph import Graph
from nnlang.lower.network import Network
from nnlang.train import optim
from nnlang.train.rule_sites import Site, check_rules, key_of, sites  # noqa: F401

#: folded into a step's key for the random numbers of a local rule (the Gibbs chain)
RULE_KEY = 0x7FFFFFFF


def run(
    model: Network,
    inputs: dict[str, jax.Array],
    found: tuple[Site, ...],
    ctx: dict[str, Any],
) -> dict[str, jax.Array]:
    """The model's outputs, and for each rule site its rule's per-example values."""
    if not found:
        return model(**inputs)
    env = model.values(**inputs)
    outs = {name: env[(node, port)] for name, node, port in model.outputs}
    for s in found:
        mod = model.layers[s.owner]
        for k, v in mod.rule(env[s.input], env[s.node], ctx).items():  # type: ignore[operator]
            outs[key_of(s.output, k)] = v
    return outs


def context_at(
    found: tuple[Site, ...],
    schedule: Callable[[jax.Array], jax.Array] | None,
    opt: Any,
    key: jax.Array,
    *,
    train: bool = False,
) -> dict[str, Any]:
    """What a rule sees: ``scale``, the ``rule_schedule`` at the optimizer's step count
    (checkpointed with the state, so resume is exact); ``key``, a function giving the
    step's random key (called only by rules that draw random numbers, so a
    deterministic rule costs no key derivation per step); ``train``."""
    if not found:
        return {}
    scale = 1.0 if schedule is None else schedule(opt.step[...])
    return {
        "scale": jnp.asarray(scale, jnp.float32),
        "key": lambda: jax.random.fold_in(key, RULE_KEY),
        "train": train,
    }


def loss_inputs(call: Any) -> tuple[str, ...]:
    """The environment keys a loss call reads: `rule(y)` reads ``y.rule``."""
    if call.entry.extra.get("rule"):
        return tuple(key_of(n, "rule") for n in call.tensors)
    return tuple(call.tensors)


def metric_stats(m: Any, env: dict[str, jax.Array], mask: jax.Array) -> Any:
    """A bound metric's statistics of one batch; a rule metric (`quantization_error(bmu)`)
    averages the rule layer's per-example statistic."""
    pred, *rest = m._tensors
    if m._rule_stat:
        value = env[key_of(pred, m._rule_stat)]
        return m.stats(value, value, mask)
    unscale = getattr(m, "_unscale", None)  # a normalised target: in its own units
    if unscale is not None:
        return m.stats(unscale.invert(env[pred]), unscale.invert(env[rest[0]]), mask)
    return m.stats(env[pred], env[rest[0]], mask)


def prepare(graph: Graph, spec: Any, total: int, steps_per_epoch: int) -> Any:
    """The ``rule_schedule`` as a function of the step (None: constant 1), after checking
    that every `rule(...)` and rule metric names an output of a rule layer."""
    try:
        check_rules(spec, sites(graph))
    except ArgError as e:
        span = spec.spans.get(e.arg or "loss") or spec.spans.get("loss")
        raise NNError(Diagnostic(e.code, e.message, span, help=e.help)) from None
    call = spec.rule_schedule
    if call is None:
        return None
    try:
        return optim.schedule_from(call.entry, call.args, 1.0, total, steps_per_epoch)
    except ArgError as e:
        raise NNError(Diagnostic(e.code, e.message, call.span, help=e.help)) from None


def umatrix(weights: Any, rows: int, cols: int, grid: str) -> Any:
    """[rows, cols] U-matrix: each unit's mean distance to the codebook vectors of its
    grid neighbours (the units the topographic error counts as adjacent)."""
    import numpy as np

    from nnlang.layers.rule_modules import grid_positions

    w = np.asarray(weights, np.float64)
    pos = grid_positions(rows, cols, grid)
    gap = np.sqrt(((pos[:, None] - pos[None]) ** 2).sum(-1))
    near = (gap > 0) & (gap <= (1.0 + 1e-4 if grid == "hexagonal" else 1.42))
    dist = np.sqrt(((w[:, None] - w[None]) ** 2).sum(-1))
    return ((dist * near).sum(1) / np.maximum(near.sum(1), 1)).reshape(rows, cols)


def write_maps(graph: Graph, model: Network, run: Any) -> None:
    """umatrix.png in the run directory for each `som` layer (one panel each)."""
    soms = [n for n in graph.order() if n.kind is not None and n.kind.name == "som"]
    if not soms:
        return
    import io

    from nnlang.fsio import atomic_write_bytes
    from nnlang.train.plots import pyplot

    plt = pyplot("umatrix.png")
    if plt is None:
        return

    fig, axes = plt.subplots(1, len(soms), figsize=(4.5 * len(soms), 4), squeeze=False)
    for ax, node in zip(axes[0], soms, strict=True):
        a = node.args
        u = umatrix(model.layers[node.owner].weights[...], a.rows, a.cols, a.grid)  # type: ignore[attr-defined]
        im = ax.imshow(u, cmap="bone_r")
        ax.set_title(f"U-matrix of `{node.id}`")
        fig.colorbar(im, ax=ax)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(run / "umatrix.png", buf.getvalue())
