"""Loading a train section's data for the loop: the source run, the model inputs bound,
the normalizers fitted, integer class labels checked against the logits, as one
:class:`Data` of named arrays per split. Every problem is a diagnostic naming the
setting, file or model input (:func:`arg_error`), before any compute.

Imports NumPy, the graph and this package's data and spec.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnlang.diagnostics import ArgError, Diagnostic, NNError, Span
from nnlang.graph.graph import Graph
from nnlang.train import data as data_lib
from nnlang.train.catalog import named_inputs
from nnlang.train.spec import TrainSpec


def arg_error(e: ArgError, span: Span | None, what: str = "") -> NNError:
    return NNError(Diagnostic(e.code, f"{what}{e.message}", span, help=e.help))


@dataclass
class Data:
    """Splits as named arrays: model input names and label keys -> numpy arrays."""

    splits: dict[str, dict[str, np.ndarray]]
    mapping: dict[str, str]  # model input -> dataset feature key
    normalizers: dict[str, data_lib.Normalizer]
    meta: dict[str, Any] = field(default_factory=dict)
    #: the training split is streamed (``stream``): its arrays may be rows on disk
    #: (:class:`data_lib.Rows`), read batch by batch by :mod:`nnlang.train.stream`
    streamed: bool = False

    def size(self, split: str) -> int:
        arrays = self.splits.get(split)
        return 0 if not arrays else len(next(iter(arrays.values())))


def data_root(spec: TrainSpec, root: Path) -> Path:
    """The folder data paths resolve in and may not leave: ``data_root`` (``~``
    expanded, relative to ``root``, the .nn file's folder) or ``root`` itself. E408 at
    the setting if it is no folder."""
    if spec.data_root is None:
        return Path(root)
    p = Path(root) / Path(spec.data_root).expanduser()
    if not p.is_dir():
        what = "is not a folder" if p.exists() else "does not exist"
        raise NNError(
            Diagnostic(
                "E408",
                f"data root `{spec.data_root}` {what} (looked for {p.resolve()})",
                spec.spans.get("data_root", spec.data.span),
            )
        )
    return p.resolve()


def _normalized(spec: TrainSpec, mapping: dict[str, str]) -> list[str]:
    """The feature keys of the model inputs `normalize` names (`inputs = [...]`; all by
    default); E403 for a name that is no model input."""
    assert spec.normalize is not None
    named = named_inputs(spec.normalize.args.get("inputs"), list(mapping), "`normalize`")
    return list(mapping.values()) if named is None else [mapping[n] for n in named]


def streams(spec: TrainSpec, nbytes: int, memory: int | None, *, grain: bool = True) -> bool:
    """Whether the run streams its training split (``stream``): always with `on`, with
    `auto` when the data (``nbytes``, every split) is larger than ``stream_memory`` or,
    unset, half of ``memory`` (the device's, or the host's). E705 at the setting when
    streaming needs Grain and it is not installed (``grain``: a run that trains; the
    rows of evaluation and prediction are read from disk without it)."""
    import importlib.util

    from nnlang.graph.checks import host_memory

    if spec.stream == "off":
        return False
    limit = spec.stream_memory
    if limit is None:
        memory = memory or host_memory()
        limit = None if memory is None else memory // 2
    if spec.stream == "auto" and (limit is None or nbytes <= limit):
        return False
    if grain and importlib.util.find_spec("grain") is None:
        why = "`stream = on`" if spec.stream == "on" else f"data of {nbytes:,} bytes"
        raise NNError(
            Diagnostic(
                "E705",
                f"streaming the training data ({why}) needs Grain, which is not installed",
                spec.spans.get("stream", spec.data.span),
                help="pip install 'nnlang[stream]' (from a source checkout: pip install -e "
                "'.[stream]'), or `stream = off` to hold the data in memory",
            )
        )
    return True


def load(
    graph: Graph, spec: TrainSpec, root: Path, memory: int | None = None, *, grain: bool = True
) -> Data:
    """Load, bind and normalise the data; every problem is a diagnostic naming the
    setting, file or model input, before any compute. ``root`` is the .nn file's
    folder (:func:`data_root` gives the folder the data is read in). ``memory`` is what
    the data would be put in (a device's memory; None: the host's), for ``stream = auto``.
    A streamed run keeps rows on disk (the ``npy`` source) there; any other reads them
    into memory once. ``grain=False``: the data is not trained on here (eval, predict,
    `nnlang time`), so a streamed run's Grain is not needed."""
    root = data_root(spec, root)
    try:
        ds = data_lib.dataset_from(spec.data.entry, spec.data.args, root=root)
    except ArgError as e:
        raise arg_error(e, spec.data.span) from None
    model_inputs = {
        p.name: (p.type.dtype, p.type.shape) for p in graph.inputs if p.name not in spec.noise
    }
    try:
        mapping = data_lib.bind_inputs(ds, model_inputs)
        norms: dict[str, data_lib.Normalizer] = {}
        targets: dict[str, data_lib.Normalizer] = {}
        if spec.normalize is not None:
            norms = data_lib.normalize_from(
                ds, spec.normalize.entry, spec.normalize.args, keys=_normalized(spec, mapping)
            )
            keys = _targets(spec, ds)
            if keys:
                targets = data_lib.normalize_from(
                    ds, spec.normalize.entry, spec.normalize.args, keys
                )
    except ArgError as e:
        raise arg_error(
            e, spec.spans.get("normalize") if e.code == "E403" else spec.data.span
        ) from None
    # integer class labels must index the logits of the output they are compared with
    outputs = {p.name: p.type for p in graph.outputs}
    _check_targets(spec, ds, set(outputs) | {p.name for p in graph.inputs})
    for term in spec.loss_terms():
        if term.call.name == "cross_entropy" and len(term.call.tensors) == 2:
            pred, target = term.call.tensors
            if pred in outputs and target in ds.label_keys and outputs[pred].shape:
                n = outputs[pred].shape[-1]
                if isinstance(n, int):
                    try:
                        data_lib.check_class_labels(ds, target, n)
                    except ArgError as e:
                        raise arg_error(e, spec.data.span) from None
    splits: dict[str, dict[str, np.ndarray]] = {}
    for split, arrays in ds.splits.items():
        named = {inp: arrays[key] for inp, key in mapping.items()}
        named.update({k: arrays[k] for k in ds.label_keys if k in arrays})
        splits[split] = named
    nbytes = sum(a.nbytes for arrays in splits.values() for a in arrays.values())
    streamed = streams(spec, nbytes, memory, grain=grain)
    if not streamed:
        splits = {k: data_lib.materialise(v) for k, v in splits.items()}
    return Data(
        splits,
        mapping,
        {inp: norms[key] for inp, key in mapping.items() if key in norms}
        | {TARGET + k: n for k, n in targets.items()},
        dict(ds.meta),
        streamed,
    )


#: the prefix of a target's normalizer among a run's normalizers (normalizer.npz)
TARGET = "target:"


def _targets(spec: TrainSpec, ds: Any) -> list[str]:
    """The label keys `normalize(..., targets = [...])` names; E403 for one the data
    does not have or that holds class labels (integers)."""
    assert spec.normalize is not None
    named = spec.normalize.args.get("targets") or []
    for k in named if isinstance(named, list) else [named]:
        if k not in ds.label_keys:
            have = ", ".join(ds.label_keys) or "none"
            raise ArgError(
                "E403",
                f"`normalize` targets `{k}`, which the data does not have (its targets: {have})",
            )
        if not np.issubdtype(ds.splits["train"][k].dtype, np.floating):
            raise ArgError(
                "E403",
                f"`normalize` targets `{k}`, which holds class labels "
                f"({ds.splits['train'][k].dtype}): only real-valued (regression) targets are normalised",
            )
    return list(named) if isinstance(named, list) else [named]


def target_keys(spec: TrainSpec, norms: Mapping[str, Any]) -> dict[str, str]:
    """Output name -> the key in ``norms`` (``target:<label>``) of the normalised target
    it is trained against (a loss or metric comparing it with that target)."""
    pairs = [t.call.tensors for t in spec.loss_terms()] + [m.tensors for m in spec.metrics]
    out: dict[str, str] = {}
    for tensors in pairs:
        if tensors and len(tensors) == 2 and TARGET + str(tensors[1]) in norms:
            out.setdefault(str(tensors[0]), TARGET + str(tensors[1]))
    return out


def target_outputs(spec: TrainSpec, norms: dict[str, Any]) -> dict[str, Any]:
    """Output name -> the normalizer of the target it is trained against: its
    predictions are in that target's normalised units, and
    :meth:`~nnlang.train.data.Normalizer.invert` gives them back in the target's own."""
    return {o: norms[k] for o, k in target_keys(spec, norms).items()}


def unscale_metrics(metrics: list[Any], norms: dict[str, Any]) -> None:
    """Metrics comparing with a normalised target measure in its original units: the
    prediction and the target both inverted before the statistics (rules.metric_stats).
    Call before the engine's first evaluation or training step (both read it when
    traced)."""
    for m in metrics:
        tensors = getattr(m, "_tensors", ())
        n = norms.get(TARGET + str(tensors[1])) if len(tensors) == 2 else None
        object.__setattr__(m, "_unscale", n)


def _check_targets(spec: TrainSpec, ds: Any, known: set[str]) -> None:
    """E404 for a loss or metric that compares with a target the data does not have
    (`label` of a source without labels: an npz of features alone)."""
    from nnlang.train.steps import is_constant

    have = known | set(ds.label_keys)
    uses = [(t.call.tensors, spec.spans.get("loss")) for t in spec.loss_terms()]
    uses += [(m.tensors, spec.spans.get("metrics")) for m in spec.metrics]
    for tensors, span in uses:
        for name in tensors or ():
            if isinstance(name, str) and not is_constant(name) and name not in have:
                raise NNError(
                    Diagnostic(
                        "E404",
                        f"the data gives no `{name}` to compare with: "
                        + (
                            "it has no labels"
                            if not ds.label_keys
                            else f"its targets are {', '.join(ds.label_keys)}"
                        ),
                        span,
                        help="a model without targets learns by a rule (`loss = rule(output)`) "
                        "or reconstructs its input (`mse(recon, x)`)",
                    )
                )
