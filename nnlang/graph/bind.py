"""Binding the builder's calls: layer attributes and model/block parameters.

Both go through the one binder, :func:`nnlang.signature.bind`; this module adds what
only the graph knows: source spans ("declared here", "first given here"), model and
block parameter defaults that are expressions over earlier parameters, and E009 for a
parameter of an unknown type.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from nnlang import signature
from nnlang.diagnostics import ArgError, Label, Span, did_you_mean
from nnlang.graph.evaluate import POISON, Poison, Scope, describe
from nnlang.layers.base import Args, LayerKind
from nnlang.signature import REQUIRED, Param, signature_text
from nnlang.syntax import ast as A

#: The types a model or block parameter may declare.
PARAM_TYPES = {"int": int, "float": float, "bool": bool, "str": str}


class Binder:
    """The builder's binding half (a mixin over the evaluator)."""

    types_checked: set[Span]

    if TYPE_CHECKING:  # provided by the evaluator this mixes into

        def err(self, code: str, message: str, span: Span | None, **kw: Any) -> Poison: ...

        def const(self, e: A.Expr, scope: Scope) -> Any: ...

    def check_param_types(self, decl: A.ModelDecl) -> None:
        """E009 for each parameter whose type is unknown (reported once per declaration)."""
        if decl.name_span in self.types_checked:
            return
        self.types_checked.add(decl.name_span)
        for p in decl.params:
            if p.type not in PARAM_TYPES:
                self.err(
                    "E009",
                    f"unknown parameter type `{p.type}`",
                    p.type_span,
                    help=did_you_mean(p.type, PARAM_TYPES) or "types are int, float, bool and str",
                )

    def bind_params(
        self,
        decl: A.ModelDecl,
        args: list[tuple[Any, Span]],
        kwargs: dict[str, tuple[Any, Span | None]],
        call_span: Span,
        *,
        what: str,
        unknown_ok: bool = False,
    ) -> dict[str, Any] | None:
        """Bind a model's or block's parameters (positional, keyword, defaults). With
        ``unknown_ok``, a parameter given an unknown (poisoned) value is bound to it
        rather than failing the binding."""
        unknown_type = any(p.type not in PARAM_TYPES for p in decl.params)
        if unknown_type:
            self.check_param_types(decl)  # E009; the others are still checked
        params = [
            Param(
                p.name,
                p.type if p.type in PARAM_TYPES else "any",
                REQUIRED if p.default is None else p.default,
                span=p.name_span,
            )
            for p in decl.params
        ]
        defaults = {p.name: p.default for p in decl.params if p.default is not None}

        def fill(p: Param, so_far: Mapping[str, Any]) -> Any:
            return self.const(defaults[p.name], Scope("", "", values=dict(so_far)))

        owner = f"{what} `{decl.name}`"
        bound = signature.bind(
            owner,
            params,
            [v for v, _ in args],
            [(k, v) for k, (v, _) in kwargs.items()],
            noun="parameter",
            fill=fill,
            unusable=lambda v: isinstance(v, Poison),
            describe=describe,
        )
        given = {k: sp for k, (_, sp) in kwargs.items()}  # None: given with --set
        self.report_binding(
            bound.errors,
            params,
            call=call_span,
            positional=[sp for _, sp in args],
            names={k: sp for k, sp in given.items() if sp is not None},
            values={**{name: e.span for name, e in defaults.items()}, **given},
        )
        if unknown_ok and not bound.errors and not unknown_type:
            return {p.name: bound.values.get(p.name, POISON) for p in decl.params}
        return bound.values if bound.ok and not unknown_type else None

    def report_binding(
        self,
        errors: list[ArgError],
        params: Iterable[Param],
        *,
        call: Span,
        positional: list[Span],
        names: dict[str, Span],
        values: dict[str, Span | None],
    ) -> None:
        """Each binding problem as a diagnostic at its argument (one rule for all)."""
        declared = {p.name: p.span for p in params if p.span is not None}
        for e in errors:
            secondary = []
            if e.code == "E106" and e.index is not None and e.index < len(positional):
                secondary.append(Label(positional[e.index], "first given here"))
            if e.arg in declared and e.code != "E104":
                secondary.append(Label(declared[e.arg], "declared here"))
            where = signature.locate(
                e, call=call, positional=positional, names=names, values=values
            )
            self.err(e.code, e.message, where, help=e.help, secondary=secondary)

    def bind_attrs(
        self,
        kind: LayerKind,
        values: list[tuple[Any, Span]],
        kwargs: list[tuple[A.Kwarg, Any]],
        span: Span,
    ) -> tuple[Args, dict[str, Span]] | None:
        bound = signature.bind(
            f"`{kind.name}`",
            kind.attrs,
            [v for v, _ in values],
            [(k.name, v) for k, v in kwargs],
            usage=signature_text(kind.name, kind.attrs),
            unusable=lambda v: isinstance(v, Poison),
            describe=describe,
        )
        positional = [a.name for a in kind.attrs if not a.kw_only]
        spans = {name: sp for name, (_, sp) in zip(positional, values, strict=False)}
        names: dict[str, Span] = {}
        for k, _ in kwargs:
            names.setdefault(k.name, k.name_span)
            spans.setdefault(k.name, k.value.span)
        self.report_binding(
            bound.errors,
            kind.attrs,
            call=span,
            positional=[sp for _, sp in values],
            names=names,
            values=dict(spans),
        )
        return (Args(bound.values), spans) if bound.ok else None
