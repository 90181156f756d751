"""The train section's settings: declared once, overridden with `--set`.

:data:`SETTINGS` declares every setting (its kind, doc, default and range); the docs,
`nnlang check` and `--set` all read it. :data:`CATALOGS` names the catalogue each call
setting binds against. :func:`check_scalar` checks a scalar setting's value by the one
binder's value rule, and :func:`apply_overrides` turns `--set` items into model
arguments and setting expressions (``optimizer.lr=...`` editing one argument of a call)
for :func:`nnlang.train.spec.build_spec` to bind like any written setting.

Imports: the diagnostics, the signature binder, the syntax tree, the graph's program
and `--set` parser, and the catalogues of this package.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from nnlang.diagnostics import ArgError, Diagnostic, NNError, did_you_mean
from nnlang.graph.overrides import parse_override, setting_value, split_set
from nnlang.graph.program import Program
from nnlang.signature import Param, check_value, format_value
from nnlang.syntax import ast as A
from nnlang.train import augment, data, metrics, optim
from nnlang.train import rule_metrics as _rule_metrics  # noqa: F401  (declares metrics)
from nnlang.train.catalog import Catalog


@dataclass(frozen=True)
class Setting:
    name: str
    kind: str  # call, calls, loss, names, int, float, bool, str, strs, patterns, groups, devices, mesh, shard, size
    doc: str
    default: Any = None
    required: bool = False
    min: float | None = None
    choices: tuple[str, ...] | None = None


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in [
        Setting(
            "data",
            "call",
            "the data source and its splits, e.g. `digits(test = 0.2, val = 0.1)`",
            required=True,
        ),
        Setting(
            "loss",
            "loss",
            "the loss: loss calls over outputs and labels, penalties (`l1`, `l2`), numbers, `+ - * /`",
            required=True,
        ),
        Setting("optimizer", "call", "the Optax optimizer, e.g. `adam(lr = 1e-3)`", "adam"),
        Setting(
            "schedule", "call", "the learning-rate schedule over the optimizer's `lr`", "constant"
        ),
        Setting(
            "rule_schedule",
            "call",
            "the schedule of a local learning rule's parameter over its value in the layer "
            "(the `som` radius `sigma`), like `schedule` over `lr`: `rule_schedule = asymptotic`",
            "constant",
        ),
        Setting(
            "normalize",
            "call",
            "feature normalisation fitted on the training split: `standardize`, `minmax`, `scale(f)`",
        ),
        Setting(
            "augment",
            "calls",
            "data augmentation applied to training batches on the device, e.g. `[flip, shift(1)]`",
        ),
        Setting(
            "metrics",
            "calls",
            "metrics reported per epoch on the training batches (`train_metrics`) and the "
            "validation split, and on the test split at the end",
            [],
        ),
        Setting("batch", "int", "samples per training step", 32, min=1),
        Setting(
            "devices",
            "devices",
            "how many devices a step runs on (data parallel: the batch split evenly over "
            "them, the model replicated): `all` or a number; `--devices N` sets it",
            1,
            min=1,
        ),
        Setting(
            "mesh",
            "mesh",
            "the devices as named axes, e.g. `{data: 2, model: 2}`: the batch split over "
            "`data`, parameters and optimizer state over `model` (FSDP-style); it takes "
            "the product of the sizes as its devices",
        ),
        Setting(
            "shard",
            "shard",
            "with a `model` axis: which parameters are split over it, "
            "`{pattern: model or none}` (layer or block names, quoted globs; the first "
            "pattern that selects a parameter decides, the rest are split FSDP-style)",
        ),
        Setting("epochs", "int", "passes over the training split", 10, min=1),
        Setting(
            "seed", "int", "seeds initialisation, data order, dropout and augmentation", 0, min=0
        ),
        Setting("clip", "float", "clip gradients to this global norm", None, min=0),
        Setting(
            "keep",
            "int",
            "how many recent checkpoints to keep (the best one is kept too)",
            3,
            min=1,
        ),
        Setting(
            "checkpoint_every",
            "int",
            "write a checkpoint every N epochs (instead of by time, `checkpoint_seconds`)",
            None,
            min=1,
        ),
        Setting(
            "checkpoint_seconds",
            "float",
            "without `checkpoint_every`: write a checkpoint at the end of the first epoch "
            "this many seconds after the last one (always after the last epoch, at an early "
            "stop or an interrupt; the best epoch's weights are written with the next one)",
            30.0,
            min=0.0,
        ),
        Setting(
            "monitor",
            "str",
            "the metric that chooses the best checkpoint and early stopping, e.g. `val_accuracy`",
            None,
        ),
        Setting(
            "patience",
            "int",
            "stop after this many epochs without improvement of `monitor`",
            None,
            min=1,
        ),
        Setting(
            "noise",
            "names",
            "model inputs fed standard normal noise each step instead of data (a GAN's "
            "latent code): `noise = z`; `nnlang sample` draws them too",
            None,
        ),
        Setting(
            "sample",
            "str",
            "the output `nnlang sample` draws: from the `noise` inputs (`sample = fake`), or "
            "with its `sample_normal` values drawn from the prior N(0, I) (a VAE); for a causal "
            "language model, the logits (default: the loss's prediction)",
            None,
        ),
        Setting(
            "init_from", "str", "fine-tune: start from the parameters of this run directory", None
        ),
        Setting(
            "data_root",
            "str",
            "the folder data paths resolve in and may not leave (relative to the .nn file's "
            "folder; default: that folder); `--data-root DIR` sets it from the command line",
            None,
        ),
        Setting(
            "mismatched",
            "str",
            "with `init_from`: a parameter whose shape differs from the checkpoint's "
            "(a resized head) is `fail`: an error (E502), or `init`: initialised afresh",
            "fail",
            choices=("fail", "init"),
        ),
        Setting(
            "freeze",
            "patterns",
            "parameters left as they are: layer or block names or globs over node ids, "
            'e.g. `[backbone, "enc/dense*"]`; a frozen `batch_norm` uses its running averages',
            [],
        ),
        Setting(
            "lr_groups",
            "groups",
            'learning-rate multipliers per part: `[(head, 10.0), ("enc/*", 0.1)]` '
            "scales the optimizer's (scheduled) `lr` for the parameters each pattern selects",
            [],
        ),
        Setting(
            "train_metrics",
            "bool",
            "also measure `metrics` on the training batches as they run (`accuracy` beside "
            "`val_accuracy`), inside the compiled epoch; `false` leaves them out",
            True,
        ),
        Setting(
            "trackers",
            "strs",
            "experiment trackers that get the settings, every epoch's values and the result "
            "too, when installed: `trackers = [mlflow, wandb]`",
            [],
            choices=("mlflow", "wandb"),
        ),
        Setting(
            "histograms",
            "bool",
            "write a histogram of every parameter to TensorBoard after each epoch "
            "(`tensorboard/train`, from the copy the epoch end takes to the host)",
            False,
        ),
        Setting(
            "nonfinite",
            "str",
            "a step whose loss, gradients or updated weights are not finite is never applied; "
            "`stop`: the run stops there (E501), `skip`: the step is skipped and counted "
            "(for reduced precision such as `f16`), up to `max_skipped` per epoch",
            "stop",
            choices=("stop", "skip"),
        ),
        Setting(
            "stream",
            "str",
            "`on`: the training split is read from the data source batch by batch through "
            "Grain (shuffled, sharded per host, prefetched) instead of held on the device; "
            "`auto`: stream when the data is larger than `stream_memory`; `off`: never",
            "auto",
            choices=("auto", "on", "off"),
        ),
        Setting(
            "stream_memory",
            "size",
            'with `stream = auto`: the data size above which it streams, e.g. `"512 MiB"` '
            "(default: half the memory of the device the data would be put on)",
            None,
        ),
        Setting(
            "max_skipped",
            "int",
            "with `nonfinite = skip`: steps that may be skipped in one epoch; one more stops the run (E501)",
            25,
            min=0,
        ),
    ]
}

#: The catalogue each call setting binds against, and the word its messages use.
CATALOGS: dict[str, tuple[Catalog, str]] = {
    "data": (data.SOURCES, "data source"),
    "optimizer": (optim.OPTIMIZERS, "optimizer"),
    "schedule": (optim.SCHEDULES, "schedule"),
    "rule_schedule": (optim.SCHEDULES, "schedule"),
    "normalize": (data.NORMALIZERS, "normalizer"),
    "augment": (augment.AUGMENTATIONS, "augmentation"),
    "metrics": (metrics.METRICS, "metric"),
}


def check_scalar(s: Setting, v: Any) -> Any:
    """A scalar setting's value checked by the one binder's value rule; the problem is
    raised as :class:`~nnlang.diagnostics.ArgError`. `devices` is `all` or an integer."""
    if s.kind == "size":
        return parse_size(v)
    if s.kind == "strs":  # a list of choices, or one alone (`trackers = mlflow`)
        items = v if isinstance(v, list | tuple) else [v]
        return tuple(check_scalar(replace(s, kind="str", default=None), x) for x in items)
    if s.kind == "devices":
        if v == "all":
            return v
        s = replace(s, kind="int")
    param = Param(
        s.name,
        "name" if s.kind == "str" else s.kind,
        s.default,
        s.doc,
        min=s.min,
        choices=s.choices,
    )
    return check_value(None, param, v)


_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS.update({"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40})


def parse_size(v: Any) -> int:
    """A size in bytes: a number, or a string of a number and a unit (`"512 MiB"`,
    `"2GB"`); E202 (raised as :class:`~nnlang.diagnostics.ArgError`) otherwise."""
    import re

    if isinstance(v, (int, float)) and not isinstance(v, bool):
        n, unit = float(v), ""
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*", str(v))
        if m is None or m.group(2).lower() not in _UNITS:
            raise ArgError(
                "E202",
                f"{format_value(v)} is not a size",
                help='a number of bytes or a string with a unit: "512 MiB", "2 GB" '
                "(units B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)",
            )
        n, unit = float(m.group(1)), m.group(2).lower()
    size = n * _UNITS[unit]
    if not size >= 1 or size != size or size == float("inf"):
        raise ArgError("E202", f"the size {format_value(v)} is not at least one byte")
    return int(size)


# ---------------------------------------------------------------- --set
def _keywords_only(call: A.Call, catalog: Catalog) -> A.Call:
    """`adam(1e-3)` as `adam(lr = 1e-3)`, so `--set optimizer.lr=...` can replace it."""
    entry = catalog.get(call.func)
    if entry is None or not call.args:
        return call
    positional = [p.name for p in entry.params if not p.kw_only]
    named = tuple(A.Kwarg(n, a.span, a) for n, a in zip(positional, call.args, strict=False))
    rest = call.args[len(positional) :]  # too many: left for bind() to report
    return replace(call, args=rest, kwargs=named + call.kwargs)


def apply_overrides(
    program: Program, decl: A.TrainDecl, sets: list[str]
) -> tuple[dict[str, Any], dict[str, A.Expr]]:
    """Split `--set` items into model arguments and train settings (with `optimizer.lr=...`
    editing one argument of a call). Nothing is bound here: the settings are expressions
    that :func:`~nnlang.train.spec.build_spec` binds with the written ones."""
    model_decl = program.decls.get(decl.model)
    params = {p.name for p in model_decl.params} if model_decl else set()
    model_args: dict[str, Any] = {}
    settings: dict[str, A.Expr] = {}
    current = {s.key: s.value for s in decl.settings if isinstance(s, A.Setting)}
    phases = {s.name for s in decl.settings if isinstance(s, A.PhaseDecl)}
    for item in sets:
        key, value = split_set(item)
        expr = parse_override(key.split(".")[-1], value, program.sources)
        if key.split(".", 1)[0] in phases:  # `--set finetune.epochs=5`: one phase's setting
            if key.split(".", 1)[1] not in SETTINGS:
                raise NNError(
                    Diagnostic(
                        "E406",
                        f"`--set {key}`: a phase's setting is `--set PHASE.SETTING=VALUE`",
                        None,
                        help=f"e.g. --set {key.split('.', 1)[0]}.epochs=2",
                    )
                )
            settings[key] = expr
            continue
        if "." in key:
            head, arg = key.split(".", 1)
            base = settings.get(head) or current.get(head)
            if head not in SETTINGS or SETTINGS[head].kind != "call":
                raise NNError(
                    Diagnostic(
                        "E406",
                        f"`--set {key}`: `{head}` is not a setting with arguments",
                        None,
                        help="e.g. --set optimizer.lr=0.01",
                    )
                )
            if base is None:
                base = A.Name(str(SETTINGS[head].default), expr.span)
            call = (
                base
                if isinstance(base, A.Call)
                else A.Call(
                    base.id if isinstance(base, A.Name) else str(head), base.span, (), (), base.span
                )
            )
            call = _keywords_only(call, CATALOGS[head][0])
            kwargs = tuple(k for k in call.kwargs if k.name != arg) + (
                A.Kwarg(arg, expr.span, expr),
            )
            settings[head] = replace(call, kwargs=kwargs)
        elif key in params:
            model_args[key] = setting_value(program, expr)
        elif key in SETTINGS:
            settings[key] = expr
        else:
            raise NNError(
                Diagnostic(
                    "E406",
                    f"`--set {key}`: no train setting or model parameter `{key}`",
                    None,
                    help=did_you_mean(key, list(SETTINGS) + list(params))
                    or f"settings: {', '.join(SETTINGS)}; model parameters: {', '.join(sorted(params)) or 'none'}",
                )
            )
    return model_args, settings
