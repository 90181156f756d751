"""The `train` section: validated field by field into a :class:`TrainSpec`.

The settings are declared in :mod:`nnlang.train.settings` (``SETTINGS``, with the
`--set` overrides). Named calls (`data = digits(test = 0.2)`, `optimizer = adam(lr =
1e-3)`) are bound here, once, against the catalogues of this package, so a typo is
caught by `nnlang check`, at its line; each :class:`CallSpec` carries its entry and its
bound arguments (defaults filled in), and the loop runs them as they are.

Imports: the diagnostics, the graph (program, evaluator, graph), the syntax tree, and
this package's catalogues and settings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import reduce
from typing import Any

from nnlang.diagnostics import ArgError, Diagnostic, Label, Reporter, Span, did_you_mean
from nnlang.graph.evaluate import POISON, word_or_value
from nnlang.graph.graph import Graph
from nnlang.graph.program import Program
from nnlang.syntax import ast as A
from nnlang.train import devices as D
from nnlang.train import losses
from nnlang.train import phases as P
from nnlang.train import steps as S
from nnlang.train.catalog import Catalog, Entry, bind, lookup
from nnlang.train.devices import batch_error
from nnlang.train.monitor import check_monitor
from nnlang.train.parts_setting import parts_setting
from nnlang.train.settings import CATALOGS, SETTINGS, check_scalar
from nnlang.train.steps import StepSpec


# ---------------------------------------------------------------- values
@dataclass(frozen=True)
class CallSpec:
    """A bound named call: `adam(lr = 1e-3)` -> entry `adam`, args {"lr": 0.001, ...}.

    ``args`` is the one binding of the call (every param, defaults filled in): whoever
    runs the call passes them to ``entry`` as they are, never binding them again."""

    entry: Entry
    args: dict[str, Any]
    span: Span
    tensors: tuple[str, ...] = ()  # loss/metric tensor names (prediction, target)
    weights: str | None = None  # a loss's per-example weights: a tensor name

    @property
    def name(self) -> str:
        return self.entry.name


@dataclass(frozen=True)
class LossTerm:
    call: CallSpec


@dataclass(frozen=True)
class Penalty:
    name: str
    fn: Callable[[Any], Any]
    span: Span


@dataclass(frozen=True)
class LossOp:
    op: str  # + - * / neg
    left: Any
    right: Any = None


LossExpr = LossTerm | Penalty | LossOp | float


@dataclass
class TrainSpec:
    model: str
    span: Span
    data: CallSpec
    loss: LossExpr
    loss_text: str
    optimizer: CallSpec
    schedule: CallSpec
    normalize: CallSpec | None = None
    augment: list[CallSpec] = field(default_factory=list)
    metrics: list[CallSpec] = field(default_factory=list)
    batch: int = 32
    epochs: int = 10
    seed: int = 0
    clip: float | None = None
    keep: int = 3
    checkpoint_every: int | None = None  # None: by time, every `checkpoint_seconds`
    checkpoint_seconds: float = 30.0
    monitor: str | None = None
    patience: int | None = None
    init_from: str | None = None
    mismatched: str = "fail"  # "fail" | "init": see SETTINGS
    freeze: tuple[str, ...] = ()  # patterns (nnlang.train.parts)
    lr_groups: tuple[tuple[str, float], ...] = ()  # (pattern, lr multiplier)
    nonfinite: str = "stop"  # "stop" | "skip": see SETTINGS
    max_skipped: int = 25
    stream: str = "auto"  # "auto" | "on" | "off": see SETTINGS (train.stream)
    stream_memory: int | None = None  # bytes; None: half the memory the data would go to
    histograms: bool = False  # parameter histograms per epoch in TensorBoard
    train_metrics: bool = True  # metrics of the training batches too (train.loop)
    trackers: tuple[str, ...] = ()  # experiment trackers (train.trackers)
    devices: int | str = 1  # an int or "all" (train.devices)
    mesh: dict[str, int] | None = None  # named axis sizes, `data` then `model` (train.devices)
    shard: tuple[tuple[str, str | None], ...] = ()  # (pattern, "model" or None) rules
    rule_schedule: CallSpec | None = None  # the local rule's parameter (SOM radius)
    spans: dict[str, Span] = field(default_factory=dict)
    #: `step` blocks, run in this order each iteration (empty: one step of `loss`)
    steps: list[StepSpec] = field(default_factory=list)
    noise: tuple[str, ...] = ()  # model inputs fed standard normal noise, not data
    sample: str | None = None  # the output `nnlang sample` draws
    data_root: str | None = None  # data paths resolve in this folder (default: the .nn's)
    phases: list[Any] = field(default_factory=list)  # `phase` blocks (phases.Phase), in order

    def loss_terms(self) -> list[LossTerm]:
        return loss_terms(self.loss)


def loss_terms(loss: Any) -> list[LossTerm]:
    """The loss calls of a loss expression, in order."""
    out: list[LossTerm] = []

    def walk(x: Any) -> None:
        if isinstance(x, LossTerm):
            out.append(x)
        elif isinstance(x, LossOp):
            walk(x.left)
            walk(x.right)

    walk(loss)
    return out


def loss_tensors(loss: Any) -> list[str]:
    """The tensors a loss expression reads (constant targets left out)."""
    return [n for t in loss_terms(loss) for n in t.call.tensors if not S.is_constant(n)]


def has_penalty(loss: Any) -> bool:
    return isinstance(loss, Penalty) or (
        isinstance(loss, LossOp) and (has_penalty(loss.left) or has_penalty(loss.right))
    )


# ---------------------------------------------------------------- building
class _SpecBuilder:
    def __init__(
        self, rep: Reporter, tensor_names: set[str], consts: Callable[[A.Expr], Any]
    ) -> None:
        self.rep = rep
        self.tensor_names = tensor_names
        self.consts = consts

    def err(self, code: str, msg: str, span: Span | None, **kw: Any) -> None:
        self.rep.add(Diagnostic(code, msg, span, **kw))

    def call(
        self, setting: str, e: A.Expr, *, catalog: Catalog, word: str, tensors: int = 0
    ) -> CallSpec | None:
        if isinstance(e, A.Name):
            name, args, kwargs, name_span = e.id, (), (), e.span
        elif isinstance(e, A.Call):
            name, args, kwargs, name_span = e.func, e.args, e.kwargs, e.func_span
        elif isinstance(e, A.Str):
            name, args, kwargs, name_span = e.value, (), (), e.span
        else:
            self.err(
                "E403",
                f"`{setting}` must name a {word}, e.g. `{next(iter(catalog), 'name')}(...)`",
                e.span,
            )
            return None
        try:
            entry = lookup(catalog, name, word)
        except ArgError as ex:
            self.err(ex.code, ex.message, name_span, help=ex.help)
            return None
        tensor_names: list[str] = []
        rest = list(args)
        if tensors and "inputs" in entry.extra:  # losses over other tensors than a pair
            tensors = len(entry.extra["inputs"])
        if tensors:
            while rest and len(tensor_names) < tensors:
                if catalog is losses.LOSSES and tensor_names and (c := S.constant(rest[0])):
                    tensor_names.append(c)  # a constant target: `bce(d_fake, 1)`
                    rest.pop(0)
                    continue
                if not isinstance(rest[0], A.Name) or rest[0].id in ("true", "false"):
                    break
                n = rest.pop(0)
                assert isinstance(n, A.Name)
                if n.id not in self.tensor_names:
                    self.err(
                        "E404",
                        f"`{n.id}` is not a model output, model input or label",
                        n.span,
                        help=did_you_mean(n.id, self.tensor_names)
                        or f"known: {', '.join(sorted(self.tensor_names))}",
                    )
                    return None
                tensor_names.append(n.id)
        values, spans = [], []
        for a in rest:
            v = self.consts(a)
            if v is _BAD:
                return None
            values.append(v)
            spans.append(a.span)
        kw_values = {}
        kw_spans = {}
        weights = None
        for k in kwargs:
            if k.name == "weights" and catalog is losses.LOSSES:
                if not isinstance(k.value, A.Name) or k.value.id not in self.tensor_names:
                    self.err(
                        "E404",
                        "`weights` must name a model output, model input or label",
                        k.value.span,
                        help=did_you_mean(getattr(k.value, "id", ""), self.tensor_names)
                        or f"known: {', '.join(sorted(self.tensor_names))}",
                    )
                    return None
                weights = k.value.id
                continue
            v = self.consts(k.value)
            if v is _BAD:
                return None
            kw_values[k.name] = v
            kw_spans[k.name] = (
                k.name_span if k.name not in [p.name for p in entry.params] else k.value.span
            )
        try:
            bound = bind(entry, values, kw_values)
        except ArgError as ex:
            positional = [p.name for p in entry.params if not p.kw_only]
            where = kw_spans.get(ex.arg or "")
            if where is None and ex.arg in positional and positional.index(ex.arg) < len(spans):
                where = spans[positional.index(ex.arg)]
            self.err(ex.code, ex.message, where or e.span, help=ex.help)
            return None
        return CallSpec(entry, bound, e.span, tuple(tensor_names), weights)

    def calls(
        self, setting: str, e: A.Expr, *, catalog: Catalog, word: str, tensors: int = 0
    ) -> list[CallSpec] | None:
        items = e.items if isinstance(e, (A.ListExpr, A.TupleExpr)) else (e,)
        out = []
        for it in items:
            c = self.call(setting, it, catalog=catalog, word=word, tensors=tensors)
            if c is None:
                return None
            out.append(c)
        return out

    def loss(self, e: A.Expr) -> Any:
        if isinstance(e, A.Num):
            return float(e.value)
        if isinstance(e, A.UnaryOp) and e.op == "-":
            inner = self.loss(e.operand)
            return _BAD if inner is _BAD else LossOp("neg", inner)
        if isinstance(e, A.BinOp) and e.op in ("+", "-", "*", "/"):
            a, b = self.loss(e.left), self.loss(e.right)
            return _BAD if _BAD in (a, b) else LossOp(e.op, a, b)
        if isinstance(e, A.Name) and e.id in losses.PENALTIES:
            return Penalty(e.id, losses.PENALTIES[e.id].fn, e.span)
        if isinstance(e, A.Call) and e.func in losses.PENALTIES:
            self.err(
                "E403",
                f"`{e.func}` takes no arguments; scale it instead: `1e-4 * {e.func}`",
                e.span,
            )
            return _BAD
        if isinstance(e, (A.Call, A.Name)):
            c = self.call("loss", e, catalog=losses.LOSSES, word="loss", tensors=2)
            if c is None:
                return _BAD
            names = c.entry.extra.get("inputs", losses.INPUTS)
            least = c.entry.extra.get("min_inputs", len(names))
            if not least <= len(c.tensors) <= len(names):
                if names == losses.INPUTS:
                    wanted = f"a prediction and a target, e.g. `{c.name}(logits, label)`"
                else:
                    wanted = f"{len(names)} tensors: `{c.name}({', '.join(names)})`"
                self.err("E404", f"`{c.name}` needs {wanted}", e.span)
                return _BAD
            return LossTerm(c)
        self.err(
            "E403",
            "a loss is loss calls, `l1`/`l2` penalties and numbers joined by `+ - * /`",
            e.span,
        )
        return _BAD


_BAD = object()


def _const_evaluator(program: Program, rep: Reporter) -> Callable[[A.Expr], Any]:
    """Setting values: bare words are strings here (`normalize = standardize`,
    `monitor = val_loss`); the rest is the compile-time evaluator's."""

    def ev(e: A.Expr) -> Any:
        if isinstance(e, A.ListExpr):
            items = [ev(i) for i in e.items]
            return _BAD if _BAD in items else items
        v = word_or_value(e, rep, program)
        return _BAD if v is POISON else v

    return ev


def build_spec(
    program: Program,
    decl: A.TrainDecl,
    graph: Graph | None,
    rep: Reporter,
    overrides: dict[str, A.Expr] | None = None,
) -> TrainSpec | None:
    """Validate one train section (with `--set` overrides applied)."""
    if P.has_phases(decl):  # each phase bound by this function as a section of its own
        return P.build_phased(program, decl, graph, rep, overrides, build_spec, loss_tensors)
    ev = _const_evaluator(program, rep)
    names: set[str] = {"label"}
    if graph is not None:
        names |= {p.name for p in graph.outputs} | {p.name for p in graph.inputs}
    elif (model := program.decls.get(decl.model)) is not None:
        # the model has errors of its own: take the names it declares, so the loss is not
        # reported as naming unknown outputs on top of them
        names |= A.declared_ports(model.body)
    sb = _SpecBuilder(rep, names, ev)
    settings: dict[str, A.Expr] = {}
    spans: dict[str, Span] = {}
    key_spans: dict[str, Span] = {}
    n_errors = len(rep.errors)
    step_decls: list[A.StepDecl] = []
    for s in decl.settings:
        if isinstance(s, A.StepDecl):
            step_decls.append(s)
            continue
        if s.key not in SETTINGS:
            sb.err(
                "E401",
                f"unknown train setting `{s.key}`",
                s.key_span,
                help=did_you_mean(s.key, SETTINGS) or f"settings: {', '.join(SETTINGS)}",
            )
            continue
        if s.key in settings:
            sb.err(
                "E102",
                f"train setting `{s.key}` is given twice",
                s.key_span,
                label="given again here",
                secondary=[Label(key_spans[s.key], "first given here")],
            )
            continue
        settings[s.key] = s.value
        spans[s.key] = s.value.span
        key_spans[s.key] = s.key_span
    for k, x in (overrides or {}).items():
        settings[k] = x
        spans[k] = x.span
    if "devices" in (overrides or {}) and "mesh" not in (overrides or {}):
        settings.pop("mesh", None)  # `--devices N` over a written mesh: data parallel on N
    if step_decls and "loss" in settings:
        sb.err(
            "E403",
            "a train section with `step` blocks has no `loss` of its own: each step has one",
            key_spans.get("loss", spans["loss"]),
            help="move the loss into the step it belongs to",
        )
    for setting in SETTINGS.values():
        if setting.required and setting.name not in {*settings, *["loss"] * bool(step_decls)}:
            sb.err(
                "E402",
                f"train section for `{decl.model}` needs `{setting.name}`",
                decl.model_span,
                help=f"add `{setting.name} = ...`: {setting.doc}",
            )
    values: dict[str, Any] = {}
    # the data first: a source with several targets names the tensors losses compare with
    for key, e in sorted(settings.items(), key=lambda kv: kv[0] != "data"):
        setting = SETTINGS[key]
        v: Any
        if setting.kind == "loss":
            v = sb.loss(e)
        elif setting.kind == "names":
            v = S.input_names(sb.err, key, e, names)
            v = _BAD if v is None else v
        elif setting.kind == "call":
            cat, word = CATALOGS[key]
            v = sb.call(key, e, catalog=cat, word=word)
        elif setting.kind in ("patterns", "groups"):
            v = parts_setting(sb.err, sb.consts, key, e, graph, setting.kind == "groups", _BAD)
            v = _BAD if v is None else v
        elif setting.kind in ("mesh", "shard"):  # train.devices
            v = D.read_setting(sb.err, setting.kind, e, ev, graph, _BAD)
        elif setting.kind == "calls":
            cat, word = CATALOGS[key]
            v = sb.calls(key, e, catalog=cat, word=word, tensors=2 if key == "metrics" else 0)
        else:
            v = ev(e)
            if v is not _BAD:
                try:
                    v = check_scalar(setting, v)
                except ArgError as ex:
                    sb.err(ex.code, ex.message, e.span, help=ex.help or setting.doc)
                    v = _BAD
        if v is None and setting.kind in ("call", "calls", "loss"):
            v = _BAD
        if key == "data" and v is not _BAD and isinstance(v.args.get("label"), list):
            labels = {str(k) for k in v.args["label"]}
            sb.tensor_names = (sb.tensor_names - {"label"}) | labels
        if v is not _BAD:
            values[key] = v
    bound = [S.bind_step(sb, d, ev, lambda sp: _text(program, sp), _BAD) for d in step_decls]
    steps = [st for st in bound if st is not None]
    S.check_names(steps, sb.err)
    S.check_alone(steps, values, spans, sb.err)
    if len(rep.errors) > n_errors:
        return None
    sample = values.get("sample"), spans.get("sample")
    if graph is not None and not S.check_steps(
        graph, steps, sample, loss_tensors, has_penalty, rep
    ):
        return None
    if steps:  # what is reported as `loss`: the steps' losses added
        values["loss"] = reduce(lambda a, b: LossOp("+", a, b), [st.loss for st in steps])

    def default(key: str) -> CallSpec:  # the call SETTINGS declares as the default
        entry = CATALOGS[key][0][SETTINGS[key].default]
        return CallSpec(entry, bind(entry), decl.span)

    optimizer = values.get("optimizer") or default("optimizer")
    schedule = values.get("schedule") or default("schedule")
    spec = TrainSpec(
        model=decl.model,
        span=decl.span,
        data=values["data"],
        loss=values["loss"],
        loss_text=_text(program, spans.get("loss")),
        optimizer=optimizer,
        schedule=schedule,
        spans=spans,
    )
    for key, v in values.items():  # the rest are fields of the same name
        if key not in ("data", "loss", "optimizer", "schedule", "noise"):
            setattr(spec, key, v)
    spec.steps = steps
    spec.noise = tuple(values.get("noise", ()))
    if steps:
        spec.loss_text = " + ".join(st.loss_text for st in steps)
    # metrics compare the first (prediction, target) loss term's pair by default
    terms = [
        t
        for t in spec.loss_terms()
        if len(t.call.tensors) == 2 and not any(map(S.is_constant, t.call.tensors))
    ]
    terms = [t for t in terms if t.call.entry.extra.get("inputs") == losses.INPUTS] or terms
    if terms:
        pair = terms[0].call.tensors
        spec.metrics = [m if m.tensors else replace(m, tensors=pair) for m in spec.metrics]
    if spec.monitor is not None and not check_monitor(spec, rep):
        return None
    if spec.mesh and isinstance(spec.devices, int) and "devices" in spans:
        if spec.devices != D.mesh_devices(spec.mesh):
            rep.add(D.conflict(spec, spec.devices))
            return None
    if isinstance(spec.devices, int) and (d := batch_error(spec, spec.devices)):
        rep.add(d)  # `devices = all` is checked when the run knows its devices
        return None
    return spec


def _text(program: Program, span: Span | None) -> str:
    if span is None:
        return ""
    if span.line == span.end_line:
        line = program.sources.line(span.file, span.line) or ""
        return line[span.col - 1 : span.end_col - 1]
    return "(loss)"
