"""nnlang: define, check, train and ship neural networks as plain text.

The pipeline as functions::

    import nnlang
    checked = nnlang.check("model.nn")          # diagnostics or graphs; never raises for a user mistake
    graph = nnlang.build("model.nn")            # one model's checked graph (raises NNError)
    model = nnlang.module(graph)                # an nnx.Module: model(image=x) -> {"logits": ...}
    result = nnlang.fit("model.nn", sets=["epochs=5"])
    nnlang.export_model("model.nn", result.run_dir, fmt="stablehlo", out="model.stablehlo")

The functions are not called `lower`/`train`/`export` because those are the names of
the pipeline's subpackages (``nnlang.train`` is the package holding the trainer).
JAX is imported only by the functions that need it, so checking stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nnlang.api import Checked, build, check
from nnlang.diagnostics import Diagnostic, NNError, Span
from nnlang.graph.graph import Graph
from nnlang.graph.program import load

if TYPE_CHECKING:  # pragma: no cover
    from nnlang.lower.network import Network
    from nnlang.train.run import RunResult

__all__ = [
    "Checked",
    "Diagnostic",
    "Graph",
    "NNError",
    "Span",
    "build",
    "check",
    "export_model",
    "fit",
    "load",
    "module",
]


def module(graph: Graph, seed: int = 0) -> Network:
    """The checked graph as an ``nnx.Module`` (parameters initialised from ``seed``)."""
    from nnlang.lower.network import lower as _lower

    return _lower(graph, seed)


def fit(file: str, **kwargs: Any) -> RunResult:
    """Train like ``nnlang train``; see :func:`nnlang.train.run.train` for options."""
    from nnlang.train.run import train as _train

    return _train(file, **kwargs)


def export_model(file: str, run: str, **kwargs: Any) -> Any:
    """Export a trained run like ``nnlang export``; see :mod:`nnlang.export`."""
    from nnlang.export import export as _export

    return _export(file, run, **kwargs)
