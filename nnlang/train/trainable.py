"""What a run trains: the `freeze` and `lr_groups` settings applied to a lowered model.

Frozen parameters are left out of the optimizer and of differentiation altogether
(``nnx.Optimizer(wrt=...)`` and ``nnx.DiffState``): no gradient is computed for them, no
optimizer state is kept, and they stay bitwise as they were. A frozen ``batch_norm``
also keeps its running averages: it normalises with them in training too. ``lr_groups``
multipliers scale the optimizer's update for the parameters each pattern selects (the
first pattern that selects a parameter gives its multiplier), after the optimizer, so
they follow any schedule.

Imports: Flax, Optax, and :mod:`nnlang.train.parts` and :mod:`nnlang.train.spec`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import optax
from flax import nnx

from nnlang.train.parts import node_of, select
from nnlang.train.spec import TrainSpec


def param_path(keys: tuple[Any, ...]) -> str:
    """``backbone/dense.kernel`` for a state path (nnx keys or JAX key entries):
    the leading ``layers`` and a trailing ``value`` are not part of it."""
    names = [str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in keys]
    if names and names[0] == "layers":
        names = names[1:]
    if names and names[-1] == "value":
        names = names[:-1]
    return ".".join(names)


@dataclass(frozen=True)
class Parts:
    wrt: Any  # the nnx filter of trained parameters
    frozen: frozenset[str]  # parameter paths left as they are
    frozen_norms: tuple[str, ...]  # batch_norm node ids that keep their running averages
    scale: optax.GradientTransformation | None  # lr_groups, chained after the optimizer


def param_paths(model: nnx.Module) -> list[str]:
    return [param_path(p) for p, _ in nnx.to_flat_state(nnx.state(model, nnx.Param))]


def parts_of(spec: TrainSpec, model: nnx.Module) -> Parts:
    """The trained parameters and learning-rate multipliers of ``spec`` for ``model``."""
    paths = param_paths(model)
    frozen = select(paths, spec.freeze).selected if spec.freeze else frozenset()
    wrt: Any = nnx.Param
    if frozen:
        wrt = nnx.All(nnx.Param, lambda path, _: param_path(path) not in frozen)
    nodes = {node_of(p) for p in frozen}
    layers = getattr(model, "layers", {})
    norms = tuple(n for n in sorted(nodes) if n in layers and isinstance(layers[n], nnx.BatchNorm))
    scale = None
    if spec.lr_groups:
        found = select(paths, [p for p, _ in spec.lr_groups])
        mult: dict[str, float] = {}
        for (_, m), group in zip(spec.lr_groups, found.by_pattern, strict=True):
            for p in group:
                mult.setdefault(p, m)
        scale = _scale_by_path(mult)
    return Parts(wrt, frozen, norms, scale)


def _scale_by_path(mult: dict[str, float]) -> optax.GradientTransformation:
    """Multiply each update by its path's multiplier (1 where none is given)."""

    def update(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        def one(path: Any, u: Any) -> Any:
            m = mult.get(param_path(tuple(path)), 1.0)
            return u if m == 1.0 else u * m

        return jax.tree_util.tree_map_with_path(one, updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)
