"""Data-dependent initialisation: before the first step of a fresh run, the model runs
once, eagerly and in eval mode, on up to :data:`EXAMPLES` training examples (normalised,
as the step sees them), and every module that initialises from data (``rbf(init =
"kmeans")``) sets its parameters from the inputs it receives. Modules run in order, so a
later one sees what the earlier ones became. A resumed run restores its parameters
instead; ``init_from`` loads over the result.

The examples are the first of a permutation drawn from the run's seed, and the module's
own generator is seeded from the run's seed and its position, so the same file and seed
always start from the same parameters.

Imports JAX, Flax, NumPy and the layers' module helpers.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from nnlang.layers.family_modules import DATA_INIT

EXAMPLES = 4096


def initialise(
    graphdef: Any, state: Any, train: dict[str, np.ndarray], inputs: tuple[str, ...], seed: int
) -> Any:
    """``state`` with the data-initialised modules' parameters set (unchanged when the
    model has none)."""
    merged = nnx.merge(graphdef, state)
    model = merged[0] if isinstance(merged, tuple) else merged
    if not any(getattr(m, "init_mode", None) == "kmeans" for _, m in nnx.iter_graph(model)):
        return state
    n = len(next(iter(train.values())))
    rows = np.sort(np.random.default_rng(seed).permutation(n)[:EXAMPLES])
    done: list[int] = []

    def hook(module: Any, x: Any) -> None:
        if id(module) in done:  # a shared instance initialises at its first call
            return
        done.append(id(module))
        module.init_from_data(np.asarray(x), np.random.default_rng([seed, len(done)]))

    model.eval()
    DATA_INIT.append(hook)
    try:
        model(**{k: jnp.asarray(train[k][rows]) for k in inputs})
    finally:
        DATA_INIT.remove(hook)
        model.train()
    return nnx.split(merged)[1]
