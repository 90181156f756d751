"""Generated data for associative memories: random ±1 patterns and noisy probes.

Imports NumPy and the data catalogue only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nnlang.diagnostics import ArgError
from nnlang.train.catalog import Param, declare
from nnlang.train.data.dataset import SOURCES, Dataset


@declare(
    SOURCES,
    "binary_patterns",
    "Random ±1 patterns for an associative memory (Hopfield): the `train` split holds the "
    "`patterns` patterns of `units` values (each ±1 with probability ½) to store; the "
    "`test` split holds `probes` noisy copies of each, with exactly `round(flip · units)` "
    "values negated. Features `x` f32[units]; the clean pattern of each row is the label "
    "`label` (in the training split, `x` itself).",
    Param("units", "int", 100, "values per pattern (the network's units)", min=1),
    Param("patterns", "int", 10, "patterns to store", min=1),
    Param("flip", "float", 0.1, "fraction of a probe's values negated", min=0.0, max=1.0),
    Param("probes", "int", 10, "noisy probes per pattern in the test split", min=1),
    Param("seed", "int", 0, "seeds the patterns and the probes", min=0),
)
def _binary_patterns(
    root: Path, units: int, patterns: int, flip: float, probes: int, seed: int
) -> Dataset:
    if units * patterns > 50_000_000:
        raise ArgError("E202", f"{patterns} patterns of {units} units is too much data")
    rng = np.random.default_rng(seed)
    xs = np.where(rng.random((patterns, units)) < 0.5, -1.0, 1.0).astype(np.float32)
    clean = np.repeat(xs, probes, axis=0)
    noisy = clean.copy()
    n_flip = int(round(flip * units))
    for row in noisy:
        row[rng.choice(units, n_flip, replace=False)] *= -1.0
    meta = {"source": "binary_patterns", "units": units, "patterns": patterns}
    return Dataset(
        {"train": {"x": xs, "label": xs.copy()}, "test": {"x": noisy, "label": clean}},
        ("x",),
        ("label",),
        meta,
    )
