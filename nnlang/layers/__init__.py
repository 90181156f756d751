"""The layer catalogue: importing this package declares every kind into REGISTRY.

Each family module declares its kinds with :func:`~nnlang.layers.base.layer`; nothing
here imports JAX (build rules import Flax lazily), so the parser, shape checker and
docs can read the catalogue cheaply.
"""

from __future__ import annotations

from nnlang.layers import (  # noqa: F401  (imported for their declarations)
    activation,
    attention,
    capsule,
    constant,
    conv,
    core,
    elementwise,
    ids,
    index,
    local,
    merge,
    norm,
    pool,
    preprocess,
    rbf,
    recurrent,
    reduce,
    spiking,
    stochastic,
)
from nnlang.layers.base import REGISTRY, Args, Attr, LayerKind

#: Family order and titles for docs and listings.
FAMILIES: dict[str, str] = {
    core.FAMILY: "Core",
    activation.FAMILY: "Activations",
    elementwise.FAMILY: "Element-wise math",
    reduce.FAMILY: "Reductions",
    conv.FAMILY: "Convolution",
    pool.FAMILY: "Pooling and resampling",
    norm.FAMILY: "Normalization",
    merge.FAMILY: "Merging",
    index.FAMILY: "Indexing",
    recurrent.FAMILY: "Recurrent",
    attention.FAMILY: "Attention",
    preprocess.FAMILY: "Preprocessing",
    rbf.FAMILY: "Radial basis functions",
    capsule.FAMILY: "Capsules",
    spiking.FAMILY: "Spiking",
    constant.FAMILY: "Constants and learned tensors",
    stochastic.FAMILY: "Stochastic",
    local.FAMILY: "Local learning rules",
}

__all__ = ["FAMILIES", "REGISTRY", "Args", "Attr", "LayerKind"]
