"""StableHLO export with ``jax.export``.

The serialized ``jax.export.Exported`` of the model's inference (see
:mod:`nnlang.export.trace`), lowered for every platform in :data:`PLATFORMS` where it
can be. Normalisation is not inside the artifact: the sidecar ``<out>.json`` says which
inputs need it and ``<out>.normalizer.npz`` holds the statistics (see docs/export.md).
Reading an artifact back is :mod:`nnlang.export.artifact`.
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from nnlang.diagnostics import Diagnostic, NNError
from nnlang.export.trace import Fn, first_failing_node, first_line, inference_fn, input_specs
from nnlang.graph.graph import Graph

#: Platforms a StableHLO artifact is lowered for (plus the one export runs on), so
#: that an artifact made on a laptop also runs on a GPU machine.
PLATFORMS = ("cpu", "cuda", "tpu")


def export(graph: Graph, model: nnx.Module) -> tuple[bytes, list[str]]:
    """Serialized ``jax.export`` artifact of the model's inference and its platforms.
    Raises E601 (at the first layer that fails alone, if any) when lowering fails."""
    f = jax.jit(inference_fn(model, [p.name for p in graph.outputs], fold=False))
    specs = input_specs(graph)
    here = jax.export.default_export_platform()  # "cuda", not jax.default_backend()'s "gpu"
    platforms = list(dict.fromkeys([here, *PLATFORMS]))
    try:
        exp = jax.export.export(f, platforms=platforms)(*specs)
    except Exception:  # noqa: BLE001 - some op has no lowering for another platform
        platforms = [here]
        try:
            exp = jax.export.export(f, platforms=platforms)(*specs)
        except Exception as e:  # noqa: BLE001
            raise _export_error(graph, model, e) from None
    return bytes(exp.serialize()), platforms


def _export_error(graph: Graph, model: nnx.Module, e: Exception) -> NNError:
    def convert(fn: Fn, specs: list[jax.ShapeDtypeStruct]) -> Any:
        return jax.export.export(jax.jit(fn))(*specs)

    found = first_failing_node(graph, model, convert)
    if found is None:
        return NNError(
            Diagnostic(
                "E601",
                f"model `{graph.name}` cannot be exported to StableHLO: {first_line(e)}",
                graph.span,
                help="this is a bug in nnlang; please report it with the .nn file",
            )
        )
    node, err = found
    return NNError(
        Diagnostic(
            "E601",
            f"layer `{node.kind_name}` cannot be exported to StableHLO with symbolic batch and axes",
            node.span,
            label="this layer",
            notes=[first_line(err)],
            help="this is a bug in nnlang's lowering of the layer; please report it with the .nn file",
        )
    )
