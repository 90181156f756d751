"""Statement order: a model or block body runs in dataflow order.

A statement runs after the ones defining the names it reads (a NetworkX topological
sort of the statements, worked out once per body). A value that needs itself is E307
with the whole path; statements stuck behind a cycle or an error are skipped and their
names poisoned, so nothing downstream reports a second time.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import networkx as nx

from nnlang.diagnostics import Label, Reporter, Span
from nnlang.graph.evaluate import POISON, Poison, Scope
from nnlang.syntax import ast as A


def free_names(e: Any) -> set[str]:
    """Names an expression or statement reads (for ordering statements)."""
    out: set[str] = set()

    def walk(x: Any) -> None:
        if isinstance(x, A.Name):
            out.add(x.id)
        elif isinstance(x, A.Call):
            out.add(x.func)
            for a in x.args:
                walk(a)
            for k in x.kwargs:
                walk(k.value)
        elif isinstance(x, A.Stage):
            walk(x.callee)
            if x.repeat is not None:
                walk(x.repeat)
        elif isinstance(x, A.Pipeline):
            walk(x.source)
            for s in x.stages:
                walk(s)
        elif isinstance(x, (A.TupleExpr, A.ListExpr)):
            for i in x.items:
                walk(i)
        elif isinstance(x, A.DictExpr):
            for en in x.entries:
                walk(en.value)
        elif isinstance(x, A.BinOp):
            walk(x.left)
            walk(x.right)
        elif isinstance(x, A.UnaryOp):
            walk(x.operand)
        elif isinstance(x, (A.Binding, A.SharedDecl)):
            walk(x.value)
        elif isinstance(x, A.OutputDecl):
            if x.value is None:
                out.update(t.name for t in x.targets)
            else:
                walk(x.value)
        elif isinstance(x, A.InputDecl):
            pass
        elif isinstance(x, A.IfStmt):
            walk(x.cond)
            for s in x.body + x.orelse:
                walk(s)

    walk(e)
    return out


def defined_names(s: A.Stmt) -> list[tuple[str, Span]]:
    if isinstance(s, A.InputDecl):
        return [(s.name, s.name_span)]
    if isinstance(s, A.Binding):
        return [(t.name, t.span) for t in s.targets]
    if isinstance(s, A.OutputDecl):
        return [(t.name, t.span) for t in s.targets] if s.value is not None else []
    if isinstance(s, A.SharedDecl):
        return [(s.name, s.name_span)]
    if isinstance(s, A.IfStmt):
        seen: dict[str, Span] = {}
        for x in s.body + s.orelse:
            for n, sp in defined_names(x):
                seen.setdefault(n, sp)
        return list(seen.items())
    return []


class Ordering:
    """The builder's statement-ordering half (a mixin: it reports through ``err``)."""

    rep: Reporter
    _orders: dict[int, tuple[tuple[A.Stmt, ...], list[int], frozenset[int]]]

    if TYPE_CHECKING:  # provided by the evaluator this mixes into

        def err(self, code: str, message: str, span: Span | None, **kw: Any) -> Poison: ...

    def order_statements(self, body: tuple[A.Stmt, ...], scope: Scope) -> list[A.Stmt]:
        """Dataflow order: a statement runs after the ones defining what it reads.
        A cycle (a value that needs itself) is E307 with the whole path.

        The order depends on the body alone, so it is worked out once per body (a block
        repeated 5000 times is sorted once); later instantiations replay it."""
        cached = self._orders.get(id(body))
        if cached is not None and cached[0] is body:
            _, order, skipped = cached
            self.poison_statements(skipped, body, scope)
            return [body[i] for i in order]
        self._skipped: set[int] = set()
        order = self._order_statements(body, scope)
        self._orders[id(body)] = (body, order, frozenset(self._skipped))
        return [body[i] for i in order]

    def _order_statements(self, body: tuple[A.Stmt, ...], scope: Scope) -> list[int]:
        definer: dict[str, int] = {}
        for i, s in enumerate(body):
            for n, sp in defined_names(s):
                if n in definer and not isinstance(s, A.IfStmt):
                    prev = body[definer[n]]
                    prev_span = dict(defined_names(prev)).get(n)
                    self.err(
                        "E102",
                        f"`{n}` is defined twice",
                        sp,
                        label="defined again here",
                        secondary=[Label(prev_span, "first defined here")] if prev_span else [],
                        help="every name is defined once; pick another name",
                    )
                    continue
                if n in scope.values and n not in definer:
                    self.err(
                        "E102",
                        f"`{n}` is already a parameter",
                        sp,
                        label="defined again here",
                        secondary=[Label(scope.spans[n], "declared here")]
                        if n in scope.spans
                        else [],
                    )
                    continue
                definer[n] = i
        deps = nx.DiGraph()
        deps.add_nodes_from(range(len(body)))
        self_ref: set[int] = set()
        for i, s in enumerate(body):
            for n in free_names(s):
                j = definer.get(n)
                if j is not None and j != i:
                    deps.add_edge(j, i, name=n)
                elif j == i and not isinstance(s, (A.IfStmt, A.OutputDecl)):
                    self.err(
                        "E307",
                        f"`{n}` is used in its own definition",
                        self._use_span(s, n) or s.span,
                        label="cycle",
                        help="a value cannot depend on itself; use a `block` and repetition for recurrence",
                    )
                    self_ref.add(i)
        while True:
            try:
                cycle = nx.find_cycle(deps)
            except nx.NetworkXNoCycle:
                break
            names = [deps.edges[a, b]["name"] for a, b in cycle]
            first = body[cycle[0][1]]
            self.err(
                "E307",
                "the graph has a cycle: " + " -> ".join(f"`{n}`" for n in names + names[:1]),
                self._use_span(first, names[0]) or first.span,
                label=f"`{names[0]}` is needed here",
                secondary=[
                    Label(
                        self._use_span(body[b], deps.edges[a, b]["name"]) or body[b].span,
                        f"`{deps.edges[a, b]['name']}` is needed here",
                    )
                    for a, b in cycle[1:]
                ],
                help="a value cannot depend on itself; use a `block` and repetition for recurrence",
            )
            self.skip_statements({a for a, _ in cycle}, body, scope, deps)
        self.skip_statements(self_ref, body, scope, deps)
        return list(nx.lexicographical_topological_sort(deps))

    def skip_statements(
        self, stuck: set[int], body: tuple[A.Stmt, ...], scope: Scope, deps: nx.DiGraph
    ) -> None:
        self._skipped |= stuck
        self.poison_statements(stuck, body, scope)
        deps.remove_nodes_from(stuck)

    def poison_statements(
        self, stuck: Iterable[int], body: tuple[A.Stmt, ...], scope: Scope
    ) -> None:
        """Statements in a cycle are not run: what they define is poisoned, and what they
        read counts as used (no W301 on top of the E307)."""
        for i in stuck:
            for n, _ in defined_names(body[i]):
                scope.values[n] = POISON
                scope.used.add(n)
            scope.used.update(free_names(body[i]))

    def _use_span(self, s: Any, name: str) -> Span | None:
        found: list[Span] = []

        def walk(x: Any) -> None:
            if isinstance(x, A.Name) and x.id == name:
                found.append(x.span)
            elif hasattr(x, "__dataclass_fields__"):
                for f in x.__dataclass_fields__:
                    walk(getattr(x, f))
            elif isinstance(x, tuple):
                for i in x:
                    walk(i)

        walk(s)
        return found[0] if found else None
