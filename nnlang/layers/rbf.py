"""Radial basis function layers (Broomhead & Lowe 1988): learned centres and widths.

Imports the layer base and shapes only; the build rule imports Flax lazily.
"""

from __future__ import annotations

from typing import Any

from nnlang.layers.base import Args, Attr, expect_float, expect_min_rank, layer
from nnlang.layers.core import concrete_last
from nnlang.shapes import TensorType, concrete_numel

FAMILY = "rbf"


def _rbf_build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
    from nnlang.layers.family_modules import RBF
    from nnlang.layers.modules import dtype_of

    x = ins[0]
    return RBF(int(x.shape[-1]), a.units, a.kernel, a.init, dtype=dtype_of(x), rngs=rngs)


@layer(
    "rbf",
    family=FAMILY,
    doc="Radial basis functions of the last axis (Broomhead & Lowe 1988): unit j has a "
    "learned centre `c_j` and width `β_j > 0` (learned as `log β_j`), and with "
    "`r_j = β_j ‖x − c_j‖²` outputs `exp(−r_j)` (gaussian), `sqrt(1 + r_j)` (multiquadric) "
    'or `1 / sqrt(1 + r_j)` (inverse_multiquadric). With `init = "normal"` centres start '
    "at `N(0, 1)` (the scale of standardized inputs) and widths at `β = 1/(2F)`; with "
    '`init = "kmeans"` `nnlang train` sets them from the training data before the first '
    "step (Moody & Darken 1989): the centres are the k-means centroids (k-means++ seeding, "
    "Lloyd iterations) of the layer's inputs on up to 4096 training examples, and "
    "`β_j = 1/(2σ_j²)` with `σ_j²` the mean squared distance of centre j's members to it.",
    attrs=(
        Attr("units", "int", doc="number of basis functions (output size)", min=1),
        Attr(
            "kernel",
            "str",
            "gaussian",
            doc="the radial function of `r = β‖x − c‖²`",
            choices=("gaussian", "multiquadric", "inverse_multiquadric"),
        ),
        Attr(
            "init",
            "str",
            "normal",
            doc="how centres and widths start: `normal`, or `kmeans` of the training data",
            choices=("normal", "kmeans"),
        ),
    ),
    params=lambda a, ins: a.units * (int(ins[0].shape[-1]) + 1),
    flops=lambda a, ins, outs: concrete_numel(outs[0].shape) * (3 * int(ins[0].shape[-1]) + 4),
    build=_rbf_build,
    example="""model Example {
    input x: f32[64]
    output y = x -> rbf(100) -> dense(10)
}""",
)
def _rbf(a: Args, ins: list[TensorType]) -> list[TensorType]:
    x = ins[0]
    expect_float("rbf", x)
    expect_min_rank("rbf", x, 1, "[..., F]")
    concrete_last("rbf", x)
    return [x.with_shape(x.shape[:-1] + (a.units,))]
