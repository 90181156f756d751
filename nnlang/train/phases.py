"""Training phases, checked: `phase name { ... }` blocks of a train section, run one after
another (greedy layer-wise pretraining, then fine-tuning).

Each phase is bound into a whole :class:`~nnlang.train.spec.TrainSpec` of its own: the
train section's settings outside the phases are the defaults, the phase's own settings
replace them, and `--set` overrides replace both (they apply to every phase). A phase
with `step` blocks takes no `loss` from outside, and one with a `loss` takes no steps
from outside. What is loaded or written once per run (the data, its normalizer, the
seed, checkpoint retention, `init_from`, noise inputs) cannot differ between phases
(E422). A phase whose loss reaches no parameter it may change is E423.

The spec the train section yields is its last phase's (what eval, predict and export
use: the final model and its optimizer state); ``spec.phases`` lists every phase. The
running of phases, one compiled engine each, is :mod:`nnlang.train.phaserun`.

Imports: the diagnostics, the graph, the syntax tree, and this package's settings,
`parts` and `steps`; no JAX (``nnlang check`` runs without it). The binder of one
train section (and its reader of loss tensors) is passed in by :mod:`nnlang.train.spec`,
which imports this module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from nnlang.diagnostics import Diagnostic, Label, Reporter, Span, did_you_mean
from nnlang.graph.graph import Graph
from nnlang.syntax import ast as A
from nnlang.train import parts
from nnlang.train import steps as S
from nnlang.train.settings import SETTINGS

#: the settings a phase may set for itself (the rest are the run's, set once)
PHASE_SETTINGS = (
    "loss",
    "epochs",
    "optimizer",
    "schedule",
    "rule_schedule",
    "freeze",
    "lr_groups",
    "metrics",
    "augment",
    "batch",
    "clip",
    "monitor",
    "patience",
    "nonfinite",
    "max_skipped",
)


@dataclass(frozen=True)
class Phase:
    """One bound phase: its name, where it is declared, and its whole train spec."""

    name: str
    span: Span
    spec: Any  # a spec.TrainSpec


def has_phases(decl: A.TrainDecl) -> bool:
    return any(isinstance(s, A.PhaseDecl) for s in decl.settings)


def build_phased(
    program: Any,
    decl: A.TrainDecl,
    graph: Graph | None,
    rep: Reporter,
    overrides: dict[str, A.Expr] | None,
    build: Callable[..., Any],
    tensors_of: Callable[[Any], list[str]],
) -> Any:
    """The train section's phases, each bound by ``build`` (spec.build_spec) as a train
    section of its own; returns the last phase's spec with ``phases`` set, or None after
    reporting (``tensors_of``: the tensors a loss reads, spec.loss_tensors). A diagnostic
    several phases share (one in the settings they inherit) is reported once."""
    outer = [s for s in decl.settings if not isinstance(s, A.PhaseDecl)]
    decls = [s for s in decl.settings if isinstance(s, A.PhaseDecl)]
    n_errors = len(rep.errors)
    seen_names: dict[str, Span] = {}
    for d in decls:
        if d.name in seen_names:
            rep.add(
                Diagnostic(
                    "E102",
                    f"phase `{d.name}` is declared twice",
                    d.name_span,
                    label="declared again here",
                    secondary=[Label(seen_names[d.name], "first declared here")],
                    help="phases run in the order they are written: give each its own name",
                )
            )
        seen_names.setdefault(d.name, d.name_span)
    reported: set[tuple[str, str, Any]] = set()
    out: list[Phase] = []
    outer_loss = any(isinstance(s, A.StepDecl) or s.key == "loss" for s in outer)
    outer_loss |= "loss" in (overrides or {})
    for d in decls:
        own = _own_settings(d, rep)
        if own is None:
            continue
        keys = {s.key for s in own if isinstance(s, A.Setting)}
        with_steps = any(isinstance(s, A.StepDecl) for s in own)
        if not (outer_loss or with_steps or "loss" in keys):
            rep.add(
                Diagnostic(
                    "E402",
                    f"phase `{d.name}` needs `loss`",
                    d.name_span,
                    help="give the phase its own `loss = ...` (or `step` blocks), "
                    "or the train section one for every phase",
                )
            )
            continue

        def inherited(s: Any, keys: set[str] = keys, with_steps: bool = with_steps) -> bool:
            if isinstance(s, A.StepDecl):
                return not with_steps and "loss" not in keys
            return s.key not in keys and not (with_steps and s.key == "loss")

        merged = replace(decl, settings=tuple([s for s in outer if inherited(s)] + own))
        sub = Reporter()
        spec = build(program, merged, graph, sub, _overrides_of(d, overrides or {}, rep))
        for diag in sub.diagnostics:
            key = (diag.code, diag.message, diag.span)
            if key not in reported:
                reported.add(key)
                rep.add(diag)
        if spec is None or sub.errors:
            continue
        if (
            graph is not None
            and not spec.steps
            and not _trains_something(graph, spec, d, rep, tensors_of)
        ):
            continue
        out.append(Phase(d.name, d.span, spec))
    if len(rep.errors) > n_errors or not out:
        return None
    final = out[-1].spec
    final.phases = out
    return final


def _overrides_of(d: A.PhaseDecl, overrides: dict[str, A.Expr], rep: Reporter) -> dict[str, A.Expr]:
    """The `--set` overrides of phase ``d``: those of every phase, then its own
    (`--set finetune.epochs=5`, read by settings.apply_overrides); E422 for a run-wide
    setting given to one phase."""
    out = {k: v for k, v in overrides.items() if "." not in k}
    for k, v in overrides.items():
        name, _, key = k.partition(".")
        if name != d.name:
            continue
        if key in PHASE_SETTINGS:
            out[key] = v
        else:
            rep.add(
                Diagnostic(
                    "E422",
                    f"`--set {k}`: `{key}` is set once for the whole run, not per phase",
                    None,
                    help=f"--set {key}=... sets it for the run",
                )
            )
    return out


def _own_settings(d: A.PhaseDecl, rep: Reporter) -> list[Any] | None:
    """The settings and steps a phase sets itself; None after reporting a mistake:
    E401 for an unknown setting or a nested phase, E422 for a setting of the whole run,
    E102 for one given twice."""
    own: list[Any] = []
    given: dict[str, Span] = {}
    ok = True
    for s in d.settings:
        if isinstance(s, A.PhaseDecl):
            rep.add(Diagnostic("E401", "a `phase` cannot hold another `phase`", s.name_span))
            ok = False
        elif isinstance(s, A.StepDecl):
            own.append(s)
        elif s.key not in SETTINGS:
            rep.add(
                Diagnostic(
                    "E401",
                    f"unknown phase setting `{s.key}`",
                    s.key_span,
                    help=did_you_mean(s.key, PHASE_SETTINGS)
                    or f"a phase takes: {', '.join(PHASE_SETTINGS)}",
                )
            )
            ok = False
        elif s.key not in PHASE_SETTINGS:
            rep.add(
                Diagnostic(
                    "E422",
                    f"`{s.key}` is set once for the whole run, not per phase",
                    s.key_span,
                    help=f"move `{s.key} = ...` out of phase `{d.name}`, into the train section; "
                    f"a phase takes: {', '.join(PHASE_SETTINGS)}",
                )
            )
            ok = False
        elif s.key in given:
            rep.add(
                Diagnostic(
                    "E102",
                    f"phase setting `{s.key}` is given twice",
                    s.key_span,
                    label="given again here",
                    secondary=[Label(given[s.key], "first given here")],
                )
            )
            ok = False
        else:
            given[s.key] = s.key_span
            own.append(s)
    return own if ok else None


def _trains_something(
    graph: Graph, spec: Any, d: A.PhaseDecl, rep: Reporter, tensors_of: Callable[[Any], list[str]]
) -> bool:
    """E423: a phase whose loss reaches (through no `stop_gradient`) no parameter that
    its `freeze` leaves trainable."""
    reached = S.reached_owners(graph, set(tensors_of(spec.loss)))
    frozen = set(spec.freeze)
    free = {o for o in reached if not any(parts.matches(p, f"{o}.*") for p in frozen)}
    if free:
        return True
    where = spec.spans.get("freeze") if reached else spec.spans.get("loss")
    why = (
        f"its `freeze` covers every layer its loss `{spec.loss_text}` depends on"
        if reached
        else f"its loss `{spec.loss_text}` depends on no parameter"
    )
    rep.add(
        Diagnostic(
            "E423",
            f"phase `{d.name}` trains nothing: {why}",
            where or d.name_span,
            help="unfreeze a layer the loss depends on, or drop the phase",
            secondary=[Label(d.name_span, "the phase")],
        )
    )
    return False
