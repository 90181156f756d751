"""ONNX export with jax2onnx (the optional extra ``nnlang[onnx]``).

The same inference function as the StableHLO export (:mod:`nnlang.export.trace`) is
traced by ``jax2onnx.to_onnx``: weights become initializers, inputs and outputs carry
the model's names, and the batch axis (and any named symbolic axis) is a ``dim_param``. A layer kind declared
``onnx=False``, or one the converter fails on, is E601 at that layer's span.
Running an ONNX artifact (onnxruntime) is :mod:`nnlang.export.artifact`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nnlang.diagnostics import Diagnostic, NNError
from nnlang.export.trace import Fn, first_failing_node, first_line, inference_fn, input_specs
from nnlang.graph.graph import Graph


def install_help() -> str:
    """How to install the ONNX extra: from PyPI, or from the source checkout nnlang runs
    from (where `nnlang[onnx]` would fetch another copy, or nothing, from the index)."""
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and (root / "nnlang" / "__init__.py").is_file():
        try:
            where = os.path.relpath(root)
        except ValueError:  # another drive (Windows)
            where = str(root)
        return f"install the ONNX extra from this source checkout: pip install '{where}[onnx]'"
    return "install the ONNX extra: pip install 'nnlang[onnx]'"


STABLEHLO_HELP = "export to StableHLO instead: `--format stablehlo` (see docs/export.md)"


def require() -> tuple[Any, Any, Any]:
    """``(jax2onnx, onnx, onnxruntime)``, or a diagnostic saying how to install them."""
    try:
        import jax2onnx
        import onnx
        import onnxruntime
    except ImportError as e:
        raise NNError(
            Diagnostic(
                "E601",
                f"ONNX export and ONNX artifacts need jax2onnx, onnx and onnxruntime ({e})",
                help=install_help(),
            )
        ) from None
    return jax2onnx, onnx, onnxruntime


def unsupported(graph: Graph) -> list[Diagnostic]:
    """E601 for every layer whose kind (or this use of it) does not convert."""
    return [
        Diagnostic(
            "E601",
            f"layer `{n.kind_name}` cannot be exported to ONNX",
            n.span,
            label="not convertible",
            help=STABLEHLO_HELP,
        )
        for n in graph.order()
        if n.kind is not None and not n.kind.converts(n.args, n.in_types)
    ]


def _to_onnx(
    fn: Fn,
    specs: list[Any],
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    name: str = "model",
) -> Any:
    jax2onnx, _, _ = require()
    double = any(np.dtype(s.dtype) == np.float64 for s in specs)
    quiet = logging.getLogger("jax2onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        return jax2onnx.to_onnx(
            fn,
            specs,
            input_names=list(input_names) if input_names else None,
            output_names=list(output_names) if output_names else None,
            model_name=name,
            enable_double_precision=double,
        )
    finally:
        quiet.setLevel(level)


def export(graph: Graph, model: Any, meta: dict[str, Any] | None = None) -> bytes:
    """The serialized, checked ONNX model; E601 at the layer that cannot be converted."""
    _, onnx, _ = require()
    bad = unsupported(graph)
    if bad:
        raise NNError(bad)
    ins, outs = [p.name for p in graph.inputs], [p.name for p in graph.outputs]
    try:
        proto = _to_onnx(inference_fn(model, outs), input_specs(graph), ins, outs, graph.name)
    except Exception as e:  # noqa: BLE001 - converter failures of every kind
        raise _conversion_error(graph, model, e) from None
    if meta:
        entry = proto.metadata_props.add()
        entry.key, entry.value = "nnlang", json.dumps(meta)
    # jax2onnx's layout pass (NHWC -> NCHW around conv and batch norm) can leave stale
    # shapes in the optional value_info of intermediate values (jax2onnx 0.17: two
    # conv -> batch_norm -> relu blocks record relu's output as NHWC while it is NCHW).
    # Drop them and let ONNX infer them again; the checker then verifies the result.
    del proto.graph.value_info[:]
    try:
        proto = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
        onnx.checker.check_model(proto, full_check=True)
    except Exception as e:  # noqa: BLE001
        raise NNError(
            Diagnostic(
                "E601",
                f"the ONNX model of `{graph.name}` fails onnx.checker: {first_line(e)}",
                graph.span,
                help=STABLEHLO_HELP,
            )
        ) from None
    got_in = [i.name for i in proto.graph.input]
    got_out = [o.name for o in proto.graph.output]
    if got_in != ins or got_out != outs:  # pragma: no cover - a converter change
        raise NNError(
            Diagnostic(
                "E601",
                f"jax2onnx named the inputs {got_in} and outputs {got_out}, not {ins} and {outs}",
                graph.span,
                help=STABLEHLO_HELP,
            )
        )
    return bytes(proto.SerializeToString())


def _conversion_error(graph: Graph, model: Any, e: Exception) -> NNError:
    found = first_failing_node(graph, model, lambda fn, specs: _to_onnx(fn, specs))
    if found is None:
        return NNError(
            Diagnostic(
                "E601",
                f"jax2onnx cannot convert model `{graph.name}`: {first_line(e)}",
                graph.span,
                help=STABLEHLO_HELP,
            )
        )
    node, err = found
    return NNError(
        Diagnostic(
            "E601",
            f"layer `{node.kind_name}` cannot be exported to ONNX (jax2onnx fails on it)",
            node.span,
            label="not convertible",
            help=STABLEHLO_HELP,
            notes=[first_line(err)],
        )
    )
