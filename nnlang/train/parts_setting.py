"""The `freeze` and `lr_groups` settings read from the syntax tree: patterns (bare
layer or block names, quoted globs) and `(pattern, multiplier)` pairs, each pattern
checked against the graph's layers with parameters (E404 with a did-you-mean).

Imports: the diagnostics, the syntax tree, the graph and :mod:`nnlang.train.parts`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nnlang.diagnostics import Span, did_you_mean
from nnlang.graph.graph import Graph
from nnlang.syntax import ast as A
from nnlang.train import parts

#: how a problem is reported: (code, message, span, help=...)
Err = Callable[..., None]


def _pattern(err: Err, key: str, e: A.Expr) -> str | None:
    if isinstance(e, A.Name) and e.id not in ("true", "false"):
        return e.id
    if isinstance(e, A.Str):
        return e.value
    err(
        "E403",
        f"`{key}` patterns are layer or block names or quoted globs, e.g. `backbone` or "
        '`"enc/dense*"`',
        e.span,
    )
    return None


def parts_setting(
    err: Err,
    consts: Callable[[A.Expr], Any],
    key: str,
    e: A.Expr,
    graph: Graph | None,
    groups: bool,
    bad: object,
) -> tuple[Any, ...] | None:
    """`freeze = [names or globs]` and `lr_groups = [(pattern, multiplier), ...]`: each
    pattern must select a parameter of the model (E404 with a did-you-mean if not). None
    after reporting a problem; ``bad`` is what ``consts`` returns for a value it reported."""
    items = e.items if isinstance(e, A.ListExpr) else (e,)
    out: list[Any] = []
    spans: list[Span] = []
    for it in items:
        if groups:
            if not (isinstance(it, A.TupleExpr) and len(it.items) == 2):
                err(
                    "E403",
                    "`lr_groups` items are `(pattern, multiplier)` pairs, e.g. `(head, 10.0)`",
                    it.span,
                )
                return None
            pat, mult = _pattern(err, key, it.items[0]), consts(it.items[1])
            if pat is None or mult is bad:
                return None
            if isinstance(mult, bool) or not isinstance(mult, (int, float)) or not mult >= 0:
                err(
                    "E202",
                    f"an `lr_groups` multiplier must be a number >= 0, got {mult!r}",
                    it.items[1].span,
                )
                return None
            out.append((pat, float(mult)))
            spans.append(it.items[0].span)
        else:
            pat = _pattern(err, key, it)
            if pat is None:
                return None
            out.append(pat)
            spans.append(it.span)
    if graph is not None:
        paths = sorted({f"{n.owner}.*" for n in graph.order() if n.params > 0})
        pats = [o[0] if groups else o for o in out]
        found = parts.select(paths, pats)
        for i in found.unmatched():
            err(
                "E404",
                f"`{key}`: `{pats[i]}` matches no layer or block with parameters",
                spans[i],
                help=did_you_mean(pats[i], parts.names_near(pats[i], paths))
                or f"layers with parameters: {', '.join(parts.node_of(p) for p in paths)}",
            )
        if found.unmatched():
            return None
    return tuple(out)
