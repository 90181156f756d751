"""AST -> checked graph: names resolved, blocks expanded, repeats unrolled, shapes inferred.

A model body is evaluated like a small pure program: compile-time values (parameters,
arithmetic, conditionals) are computed here, and every layer call becomes a graph node
whose output types are inferred as it is created (inputs are always built first, so
this is topological order). Mistakes are collected and evaluation carries on with a
poisoned value, so one run reports many errors without cascades.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import networkx as nx

from nnlang import signature
from nnlang.diagnostics import ArgError, Diagnostic, Label, NNError, Reporter, Span, did_you_mean
from nnlang.graph.graph import Graph, Node, Port
from nnlang.graph.program import Program
from nnlang.layers import REGISTRY
from nnlang.layers.base import Args, LayerKind
from nnlang.shapes import DTYPES, TensorType
from nnlang.signature import REQUIRED, Param, signature_text
from nnlang.syntax import ast as A

MAX_NODES = 200_000
MAX_INT_BITS = 128
PARAM_TYPES = {"int": int, "float": float, "bool": bool, "str": str}


class Poison:
    """The value of an expression that already produced a diagnostic."""

    def __repr__(self) -> str:
        return "<error>"


POISON = Poison()


@dataclass(frozen=True)
class Tensor:
    node: str
    port: int
    type: TensorType | None  # None when an earlier error left it unknown
    span: Span  # where it was produced, for secondary labels


@dataclass
class Instance:
    """A `shared` instance: one parameter owner, called from several places."""

    name: str
    callee: str
    args: tuple[A.Expr, ...]
    kwargs: tuple[A.Kwarg, ...]
    span: Span
    calls: int = 0


@dataclass
class Scope:
    prefix: str  # node ids
    owner_prefix: str  # parameter owners (differs inside calls of shared block instances)
    values: dict[str, Any] = field(default_factory=dict)
    spans: dict[str, Span] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)
    counters: dict[str, int] = field(default_factory=dict)
    block_stack: tuple[str, ...] = ()
    call_span: Span | None = None  # inside a block: the call being expanded

    def fresh(self, base: str) -> str:
        n = self.counters.get(base, 0)
        self.counters[base] = n + 1
        return base if n == 0 else f"{base}_{n}"


def _fmt(v: Any) -> str:
    if isinstance(v, Tensor):
        return f"`{v.node}`"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, tuple):
        return "(" + ", ".join(_fmt(x) for x in v) + ")"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


def _type_name(v: Any) -> str:
    if isinstance(v, Tensor):
        return f"tensor {v.type}" if v.type else "tensor"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, tuple) and v and all(isinstance(x, Tensor) for x in v):
        return f"{len(v)} tensors"
    return type(v).__name__.replace("list", "list").replace("tuple", "tuple")


def describe(v: Any) -> str:
    """A wrong value as a binding message names it (tensors by their node)."""
    if isinstance(v, Tensor):
        return f"tensor `{v.node}`" + (f" {v.type}" if v.type else "")
    if isinstance(v, tuple) and v and all(isinstance(x, Tensor) for x in v):
        return f"{len(v)} tensors"
    return signature.describe(v)


def _builtin_int(x: Any) -> int:
    return int(x)


BUILTINS: dict[str, Callable[..., Any]] = {
    "min": min,
    "max": max,
    "abs": abs,
    "int": _builtin_int,
    "float": float,
    "round": round,
    "ceil": math.ceil,
    "floor": math.floor,
    "sqrt": math.sqrt,
    "log2": math.log2,
}


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


class Builder:
    def __init__(self, program: Program, reporter: Reporter) -> None:
        self.program = program
        self.rep = reporter
        self.graph: Graph | None = None
        self.owner_sigs: dict[str, tuple[Any, Span]] = {}
        self._orders: dict[int, tuple[tuple[A.Stmt, ...], list[int], frozenset[int]]] = {}
        self.types_checked: set[Span] = set()
        self.inputs_declared = 0
        self.outputs_declared = 0

    # ------------------------------------------------------------- diagnostics
    def err(self, code: str, message: str, span: Span | None, **kw: Any) -> Poison:
        self.rep.add(Diagnostic(code, message, span, **kw))
        return POISON

    # ------------------------------------------------------------------ models
    def build_model(
        self, decl: A.ModelDecl, overrides: dict[str, tuple[Any, Span | None]]
    ) -> Graph | None:
        args = self.bind_params(
            decl, [], {k: v for k, v in overrides.items()}, decl.name_span, what="model"
        )
        if args is None:
            return None
        self.graph = Graph(decl.name, decl.span, dict(args))
        scope = Scope("", "", values=dict(args))
        for name in args:
            scope.spans[name] = decl.name_span
        scope.used.update(args)
        n_errors = len(self.rep.errors)
        self.run_body(decl.body, scope, is_model=True)
        self.graph.outputs.sort(key=lambda p: (p.span.line, p.span.col))  # declaration order
        graph = self.graph
        if not self.inputs_declared and not any(d.code == "E112" for d in self.rep.errors):
            self.err(
                "E112",
                f"model `{decl.name}` declares no input",
                decl.name_span,
                help="declare one, e.g. `input x: f32[8, 8, 1]`",
            )
        if not graph.outputs and not self.outputs_declared and len(self.rep.errors) == n_errors:
            self.err(
                "E111",
                f"model `{decl.name}` declares no output",
                decl.name_span,
                help="name what the model computes, e.g. `output y = x -> dense(10)`",
            )
        self.warn_unused(scope, graph)
        return graph

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
        name_spans: dict[str, Span] | None = None,
    ) -> dict[str, Any] | None:
        """Bind a model's or block's parameters (positional, keyword, defaults)."""
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
        values = {k: sp for k, (_, sp) in kwargs.items()}
        for name, e in defaults.items():
            values.setdefault(name, e.span)
        self.report_binding(
            bound.errors,
            params,
            call=call_span,
            positional=[sp for _, sp in args],
            names={**{k: sp for k, sp in values.items() if sp is not None}, **(name_spans or {})},
            values=values,
        )
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

    # -------------------------------------------------------------- statements
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

    def run_body(
        self,
        body: tuple[A.Stmt, ...],
        scope: Scope,
        *,
        is_model: bool,
        block_inputs: list[Tensor] | None = None,
    ) -> list[tuple[str, Any, Span]]:
        outputs: list[tuple[str, Any, Span]] = []
        inputs_seen = 0
        for s in self.order_statements(body, scope):
            if isinstance(s, A.InputDecl):
                if is_model:
                    self.model_input(s, scope)
                else:
                    if block_inputs is not None and inputs_seen < len(block_inputs):
                        self.block_input(s, block_inputs[inputs_seen], scope)
                    inputs_seen += 1
            else:
                outputs.extend(self.stmt(s, scope, is_model=is_model))
        return outputs

    def stmt(self, s: A.Stmt, scope: Scope, *, is_model: bool) -> list[tuple[str, Any, Span]]:
        if isinstance(s, A.Binding):
            self.bind_targets(s.targets, self.value(s.value, scope), s.value, scope)
        elif isinstance(s, A.OutputDecl):
            if s.value is not None:
                v = self.value(s.value, scope)
                self.bind_targets(s.targets, v, s.value, scope)
            outs = []
            for t in s.targets:
                v = scope.values.get(t.name)
                if v is None:
                    v = self.err(
                        "E101",
                        f"unknown name `{t.name}`",
                        t.span,
                        help=self.suggest_value(t.name, scope)
                        or "define it with `output name = ...`",
                    )
                scope.used.add(t.name)
                if isinstance(v, Poison):
                    outs.append((t.name, v, t.span))
                elif not isinstance(v, Tensor):
                    outs.append(
                        (
                            t.name,
                            self.err(
                                "E206",
                                f"output `{t.name}` must be a tensor but is {_type_name(v)}",
                                t.span,
                            ),
                            t.span,
                        )
                    )
                else:
                    outs.append((t.name, v, t.span))
            if is_model:
                self.outputs_declared += 1
                for name, v, span in outs:
                    if isinstance(v, Tensor) and v.type is not None and self.graph is not None:
                        self.graph.outputs.append(Port(name, v.node, v.port, v.type, span))
            return outs
        elif isinstance(s, A.SharedDecl):
            self.shared(s, scope)
        elif isinstance(s, A.IfStmt):
            cond = self.const(s.cond, scope)
            if not isinstance(cond, Poison) and not isinstance(cond, bool):
                cond = self.err(
                    "E204",
                    f"an `if` condition must be true or false, not {_type_name(cond)} {_fmt(cond)}",
                    s.cond.span,
                    help="compare it, e.g. `if stride != 1 { ... }`",
                )
            if isinstance(cond, Poison):
                for n, _ in defined_names(s):  # neither branch ran: no "unknown name" later
                    scope.values.setdefault(n, POISON)
                scope.used.update(free_names(s))  # and no "never used" for what they read
                return []
            return self.run_body(s.body if cond else s.orelse, scope, is_model=is_model)
        return []

    def bind_targets(
        self, targets: tuple[A.Target, ...], v: Any, expr: A.Expr, scope: Scope
    ) -> None:
        if isinstance(v, tuple) and any(isinstance(x, Poison) for x in v) and len(targets) == 1:
            v = POISON  # the parts of a failed call: no second error about them
        if len(targets) == 1:
            values = [v]
        elif isinstance(v, Poison):
            values = [POISON] * len(targets)
        elif isinstance(v, tuple) and len(v) == len(targets):
            values = list(v)
        else:
            n = len(v) if isinstance(v, tuple) else 1
            self.err(
                "E208",
                f"{len(targets)} names but the value has {n} {'part' if n == 1 else 'parts'}",
                targets[0].span,
                secondary=[Label(expr.span, f"this gives {n}")],
                help="multi-output layers say how many outputs they give: see `nnlang layers`",
            )
            values = [POISON] * len(targets)
        for t, x in zip(targets, values, strict=True):
            scope.values[t.name] = x
            scope.spans[t.name] = t.span

    def model_input(self, s: A.InputDecl, scope: Scope) -> None:
        assert self.graph is not None
        self.inputs_declared += 1
        if s.type is None:
            self.err(
                "E302",
                f"model input `{s.name}` needs a type",
                s.name_span,
                help=f"e.g. `input {s.name}: f32[8, 8, 1]` (the batch axis is implicit)",
            )
            scope.values[s.name] = POISON
            return
        ttype = self.tensor_type(s.type, scope, bind_symbols=False)
        if ttype is None:
            scope.values[s.name] = POISON
            return
        for d in ttype.shape:
            if isinstance(d, str) and d not in self.graph.symbols:
                self.graph.symbols.append(d)
        node = Node(s.name, None, Args({}), [], [], [ttype], s.name_span, s.name)
        self.add_node(node)
        self.graph.inputs.append(Port(s.name, s.name, 0, ttype, s.name_span))
        scope.values[s.name] = Tensor(s.name, 0, ttype, s.name_span)
        scope.spans[s.name] = s.name_span

    def tensor_type(
        self, t: A.TensorTypeExpr, scope: Scope, *, bind_symbols: bool
    ) -> TensorType | None:
        ok = True
        if t.dtype not in DTYPES:
            self.err(
                "E008",
                f"unknown dtype `{t.dtype}`",
                t.dtype_span,
                help=did_you_mean(t.dtype, DTYPES) or f"dtypes are {', '.join(DTYPES)}",
            )
            ok = False
        dims: list[int | str] = []
        for d in t.dims:
            if isinstance(d, A.Name) and d.id not in scope.values:
                dims.append(d.id)  # a named symbolic axis
                continue
            v = self.const(d, scope)
            if isinstance(v, Poison):
                ok = False
            elif isinstance(v, str) and v.isidentifier():
                dims.append(v)
            elif not isinstance(v, int) or isinstance(v, bool):
                self.err(
                    "E201",
                    f"a dimension must be an integer or a symbolic axis name, not {_type_name(v)}",
                    d.span,
                )
                ok = False
            elif v <= 0:
                self.err("E303", f"dimension {v} is not positive", d.span)
                ok = False
            else:
                dims.append(v)
        return TensorType(t.dtype, tuple(dims)) if ok else None

    def block_input(self, s: A.InputDecl, actual: Tensor, scope: Scope) -> None:
        scope.values[s.name] = actual
        scope.spans[s.name] = s.name_span
        scope.used.add(s.name)  # an unused block input is the caller's business
        if s.type is None or actual.type is None:
            return
        t = s.type
        # point at the call; the block's declaration and the tensor's origin are labels
        where = scope.call_span or actual.span
        origin = [Label(actual.span, f"this is {actual.type}")] if where != actual.span else []
        problem = False
        if t.dtype in DTYPES and t.dtype != actual.type.dtype:
            self.err(
                "E304",
                f"block input `{s.name}` is {t.dtype} but got {actual.type}",
                where,
                secondary=[Label(t.span, "declared here"), *origin],
            )
            problem = True
        elif len(t.dims) != actual.type.rank:
            self.err(
                "E301",
                f"block input `{s.name}` has rank {len(t.dims)} but got {actual.type}",
                where,
                secondary=[Label(t.span, "declared here"), *origin],
            )
            problem = True
        else:
            for d, real in zip(t.dims, actual.type.shape, strict=True):
                if isinstance(d, A.Name) and d.id not in scope.values:
                    scope.values[d.id] = real  # shape polymorphism: `input x: f32[H, W, C]` binds C
                    scope.spans[d.id] = d.span
                    scope.used.add(d.id)
                    continue
                v = self.const(d, scope)
                if not isinstance(v, Poison) and v != real:
                    self.err(
                        "E302",
                        f"block input `{s.name}` expects size {_fmt(v)} here but got {actual.type}",
                        where,
                        secondary=[Label(d.span, "declared here"), *origin],
                    )
                    problem = True
                    break
        if problem:  # the body sees an input of unknown type: no errors that follow from this one
            scope.values[s.name] = Tensor(actual.node, actual.port, None, actual.span)
            for d in t.dims:
                if isinstance(d, A.Name) and d.id not in scope.values:
                    scope.values[d.id] = POISON
                    scope.used.add(d.id)

    def shared(self, s: A.SharedDecl, scope: Scope) -> None:
        v = s.value
        if isinstance(v, A.Name):
            callee, args, kwargs = v.id, (), ()
        elif isinstance(v, A.Call):
            callee, args, kwargs = v.func, v.args, v.kwargs
        else:
            self.err(
                "E113",
                "`shared` takes a layer or block call, e.g. `shared enc = Encoder()`",
                v.span,
            )
            scope.values[s.name] = POISON
            return
        if callee not in REGISTRY and callee not in self.program.decls:
            self.unknown_callee(callee, v.span if isinstance(v, A.Name) else v.func_span, scope)
            scope.values[s.name] = POISON
            return
        scope.values[s.name] = Instance(
            scope.owner_prefix + s.name, callee, args, kwargs, s.name_span
        )
        scope.spans[s.name] = s.name_span

    # -------------------------------------------------------------- expressions
    def const(self, e: A.Expr, scope: Scope) -> Any:
        """Evaluate an expression that must be a compile-time value."""
        v = self.value(e, scope)
        if isinstance(v, Tensor) or (
            isinstance(v, tuple) and any(isinstance(x, Tensor) for x in v)
        ):
            return self.err(
                "E205",
                "a tensor is used where a compile-time value is needed",
                e.span,
                help="layer arguments and conditions are computed before the model runs",
            )
        return v

    def value(self, e: A.Expr, scope: Scope) -> Any:
        try:
            return self._value(e, scope)
        except RecursionError:
            return self.err("E007", "expression nested too deeply", e.span)

    def _value(self, e: A.Expr, scope: Scope) -> Any:
        if isinstance(e, (A.Num, A.Str, A.Bool)):
            return e.value
        if isinstance(e, A.Name):
            return self.lookup(e, scope)
        if isinstance(e, A.TupleExpr):
            items = tuple(self.value(i, scope) for i in e.items)
            return POISON if any(isinstance(i, Poison) for i in items) else items
        if isinstance(e, A.ListExpr):
            items_l = [self.value(i, scope) for i in e.items]
            return POISON if any(isinstance(i, Poison) for i in items_l) else items_l
        if isinstance(e, A.UnaryOp):
            return self.unary(e, scope)
        if isinstance(e, A.BinOp):
            return self.binop(e, scope)
        if isinstance(e, A.Call):
            return self.call_expr(e, scope)
        if isinstance(e, A.Pipeline):
            return self.pipeline(e, scope)
        raise AssertionError(f"unknown expression {e!r}")  # pragma: no cover

    def lookup(self, e: A.Name, scope: Scope) -> Any:
        if e.id in scope.values:
            scope.used.add(e.id)
            v = scope.values[e.id]
            if isinstance(v, Instance):
                return self.err(
                    "E206",
                    f"`{e.id}` is a shared instance; apply it to a tensor: `x -> {e.id}`",
                    e.span,
                )
            return v
        if e.id in REGISTRY or e.id in self.program.decls:
            what = "layer" if e.id in REGISTRY else self.program.decls[e.id].word
            return self.err(
                "E206",
                f"`{e.id}` is a {what}, not a value",
                e.span,
                help=f"apply it to a tensor: `x -> {e.id}`",
            )
        return self.err(
            "E101", f"unknown name `{e.id}`", e.span, help=self.suggest_value(e.id, scope)
        )

    def suggest_value(self, name: str, scope: Scope) -> str | None:
        """ "did you mean" for an unknown name; the suggested value counts as used, so it
        is not also reported as unused (W301)."""
        close = difflib.get_close_matches(name, sorted(scope.values), n=1, cutoff=0.6)
        if not close:
            return None
        scope.used.add(close[0])
        return f"did you mean `{close[0]}`?"

    def unary(self, e: A.UnaryOp, scope: Scope) -> Any:
        v = self.value(e.operand, scope)
        if isinstance(v, Poison):
            return v
        if e.op == "not":
            if not isinstance(v, bool):
                return self.err(
                    "E204", f"`not` needs true or false, not {_type_name(v)}", e.operand.span
                )
            return not v
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return self.err(
                "E204" if not isinstance(v, Tensor) else "E205",
                f"`{e.op}` needs a number, not {_type_name(v)}",
                e.operand.span,
            )
        return -v if e.op == "-" else v

    def binop(self, e: A.BinOp, scope: Scope) -> Any:
        a = self.value(e.left, scope)
        b = self.value(e.right, scope)
        if isinstance(a, Poison) or isinstance(b, Poison):
            return POISON
        if isinstance(a, Tensor) or isinstance(b, Tensor):
            kinds = {"+": "add", "-": "sub", "*": "mul"}
            if e.op in kinds and isinstance(a, Tensor) and isinstance(b, Tensor):
                return self.apply_layer(
                    REGISTRY[kinds[e.op]], [a, b], [], [], e.span, e.op_span, scope
                )
            if e.op in kinds:
                return self.err(
                    "E206",
                    f"`{e.op}` between a tensor and {_type_name(b if isinstance(a, Tensor) else a)}",
                    e.span,
                    help=f"tensor `{e.op}` takes two tensors of broadcastable shapes",
                )
            return self.err(
                "E205",
                f"`{e.op}` is not defined for tensors",
                e.op_span,
                help="tensors combine with `+`, `-`, `*` and layers such as `concat`",
            )
        op = e.op
        try:
            if op in ("and", "or"):
                if not isinstance(a, bool) or not isinstance(b, bool):
                    return self.err("E204", f"`{op}` needs true or false on both sides", e.span)
                return (a and b) if op == "and" else (a or b)
            if op in ("==", "!="):
                return (a == b) if op == "==" else (a != b)
            num = (int, float)
            if (
                isinstance(a, bool)
                or isinstance(b, bool)
                or not isinstance(a, num)
                or not isinstance(b, num)
            ):
                if op == "+" and isinstance(a, str) and isinstance(b, str):
                    return a + b
                if op == "+" and isinstance(a, (tuple, list)) and type(a) is type(b):
                    return a + b  # type: ignore[operator]
                if (
                    op == "*"
                    and isinstance(a, (tuple, list))
                    and isinstance(b, int)
                    and not isinstance(b, bool)
                ):
                    if b > 10_000:
                        return self.err("E204", "sequence repetition too large", e.span)
                    return a * b
                return self.err(
                    "E204",
                    f"`{op}` is not defined for {_type_name(a)} and {_type_name(b)}",
                    e.op_span,
                )
            if op == "<":
                return a < b
            if op == "<=":
                return a <= b
            if op == ">":
                return a > b
            if op == ">=":
                return a >= b
            if op == "**" and isinstance(b, int) and abs(b) > 256:
                return self.err("E204", f"exponent {b} is too large", e.right.span)
            result = {
                "+": lambda: a + b,
                "-": lambda: a - b,
                "*": lambda: a * b,
                "/": lambda: a / b,
                "//": lambda: a // b,
                "%": lambda: a % b,
                "**": lambda: a**b,
            }[op]()
        except ZeroDivisionError:
            return self.err("E204", "division by zero", e.right.span)
        except (TypeError, ValueError):
            return self.err(
                "E204", f"`{op}` is not defined for {_type_name(a)} and {_type_name(b)}", e.op_span
            )
        except OverflowError:
            return self.err("E204", "number too large", e.span)
        if isinstance(result, int) and result.bit_length() > MAX_INT_BITS:
            return self.err("E204", "integer too large", e.span)
        if isinstance(result, complex):
            return self.err("E204", "result is not a real number", e.span)
        return result

    # ------------------------------------------------------------------- calls
    def split_args(
        self, args: Iterable[A.Expr], scope: Scope
    ) -> tuple[list[Tensor], list[tuple[Any, Span]], bool]:
        """Positional arguments: leading tensors are inputs, the rest attribute values."""
        tensors: list[Tensor] = []
        values: list[tuple[Any, Span]] = []
        ok = True
        for a in args:
            v = self.value(a, scope)
            if isinstance(v, Poison) or (
                isinstance(v, tuple) and any(isinstance(x, Poison) for x in v)
            ):
                ok = False
            elif isinstance(v, Tensor):
                if values:
                    self.err("E201", "tensor inputs come before other arguments", a.span)
                    ok = False
                tensors.append(v)
            elif isinstance(v, tuple) and v and all(isinstance(x, Tensor) for x in v):
                tensors.extend(v)
            else:
                values.append((v, a.span))
        return tensors, values, ok

    def call_expr(self, e: A.Call, scope: Scope) -> Any:
        if e.func in scope.values and isinstance(scope.values[e.func], Instance):
            scope.used.add(e.func)
            tensors, values, ok = self.split_args(e.args, scope)
            if values or e.kwargs:
                return self.err(
                    "E113",
                    f"shared instance `{e.func}` was configured where it was declared; call it with tensors only",
                    e.span,
                    secondary=[Label(scope.values[e.func].span, "declared here")],
                )
            return (
                self.apply_instance(scope.values[e.func], tensors, e.span, scope) if ok else POISON
            )
        if e.func in REGISTRY or e.func in self.program.decls:
            tensors, values, ok = self.split_args(e.args, scope)
            if not ok:
                return POISON
            return self.apply(e.func, tensors, values, e.kwargs, e.span, e.func_span, scope)
        if e.func in BUILTINS:
            args = [self.const(a, scope) for a in e.args]
            if any(isinstance(a, Poison) for a in args):
                return POISON
            if e.kwargs:
                return self.err(
                    "E104", f"`{e.func}` takes no keyword arguments", e.kwargs[0].name_span
                )
            try:
                return BUILTINS[e.func](*args)
            except (TypeError, ValueError, OverflowError) as ex:
                return self.err(
                    "E204", f"`{e.func}({', '.join(_fmt(a) for a in args)})`: {ex}", e.span
                )
        return self.unknown_callee(e.func, e.func_span, scope)

    def unknown_callee(self, name: str, span: Span, scope: Scope) -> Poison:
        if name in scope.values:
            return self.err("E103", f"`{name}` is a value, not a layer or block", span)
        candidates = list(REGISTRY) + list(self.program.decls) + list(BUILTINS)
        return self.err(
            "E103",
            f"unknown layer or block `{name}`",
            span,
            help=did_you_mean(name, candidates) or "`nnlang layers` lists the layer kinds",
        )

    def pipeline(self, e: A.Pipeline, scope: Scope) -> Any:
        cur = self.value(e.source, scope)
        for st in e.stages:
            if isinstance(cur, tuple) and any(isinstance(x, Poison) for x in cur):
                cur = POISON
            if isinstance(cur, Poison):
                self.check_callee_names(st, scope)
                continue
            if isinstance(cur, Tensor):
                inputs = [cur]
            elif isinstance(cur, tuple) and cur and all(isinstance(x, Tensor) for x in cur):
                inputs = list(cur)
            else:
                return self.err(
                    "E206",
                    f"a pipeline carries tensors, but this is {_type_name(cur)} {_fmt(cur)}",
                    e.source.span if st is e.stages[0] else st.span,
                )
            times = 1
            if st.repeat is not None:
                n = self.repeat_count(st.repeat, scope)
                if isinstance(n, Poison):
                    cur = POISON
                    self.check_callee_names(replace(st, repeat=None), scope)
                    continue
                times = n
            for i in range(times):
                before = len(self.graph) if self.graph is not None else 0
                cur = self.apply_stage(st.callee, inputs, scope)
                if isinstance(cur, Poison) or (
                    isinstance(cur, tuple) and any(isinstance(x, Poison) for x in cur)
                ):
                    break  # a multi-output layer that failed gives a tuple of poisons
                inputs = [cur] if isinstance(cur, Tensor) else list(cur)
                if i == 0 and times > 1 and self.graph is not None:
                    # one instance built: refuse a repetition that cannot fit now, rather
                    # than after building MAX_NODES nodes (nested repeats multiply)
                    each = len(self.graph) - before
                    if before + each * times > MAX_NODES:
                        raise NNError(
                            Diagnostic(
                                "E007",
                                f"this repetition would make {each * times:,} nodes, more than the {MAX_NODES:,} allowed",
                                st.repeat.span if st.repeat is not None else st.span,
                                label=f"{times:,} × {each:,} nodes",
                                help="lower the repeat count, or the depth of nested repeats",
                            )
                        )
        return cur

    def check_callee_names(self, st: A.Stage, scope: Scope) -> None:
        """After an error upstream, still report what can be known of a stage without its
        input: an unknown name, and its arguments and repeat count."""
        callee = st.callee
        name = callee.id if isinstance(callee, A.Name) else callee.func
        if name not in scope.values and name not in REGISTRY and name not in self.program.decls:
            span = callee.span if isinstance(callee, A.Name) else callee.func_span
            self.unknown_callee(name, span, scope)
            return
        if st.repeat is not None:
            self.repeat_count(st.repeat, scope)
        if name in scope.values:
            return
        args = callee.args if isinstance(callee, A.Call) else ()
        kwargs = callee.kwargs if isinstance(callee, A.Call) else ()
        _, values, ok = self.split_args(args, scope)
        kw = [(k, self.const(k.value, scope)) for k in kwargs]
        if not ok or any(isinstance(v, Poison) for _, v in kw):
            return
        if name in REGISTRY:
            self.bind_attrs(REGISTRY[name], values, kw, callee.span)
        elif self.program.decls[name].is_block:
            self.bind_params(
                self.program.decls[name],
                values,
                {k.name: (v, k.value.span) for k, v in kw},
                callee.span,
                what="block",
            )

    def repeat_count(self, e: A.Expr, scope: Scope) -> int | Poison:
        n = self.const(e, scope)
        if isinstance(n, Poison):
            return n
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            return self.err(
                "E203", f"a repeat count must be a positive integer, not {_fmt(n)}", e.span
            )
        if n > 10_000:
            return self.err("E203", f"repeat count {n} is too large (at most 10000)", e.span)
        return n

    def apply_stage(self, callee: A.Name | A.Call, inputs: list[Tensor], scope: Scope) -> Any:
        name = callee.id if isinstance(callee, A.Name) else callee.func
        span = callee.span if isinstance(callee, A.Name) else callee.func_span
        if name in scope.values and isinstance(scope.values[name], Instance):
            scope.used.add(name)
            inst = scope.values[name]
            if isinstance(callee, A.Call):
                extra, values, ok = self.split_args(callee.args, scope)
                if values or callee.kwargs:
                    return self.err(
                        "E113",
                        f"shared instance `{name}` was configured where it was declared; apply it without arguments",
                        callee.span,
                        secondary=[Label(inst.span, "declared here")],
                    )
                inputs = inputs + extra
            return self.apply_instance(inst, inputs, callee.span, scope)
        if name in scope.values:
            return self.err(
                "E103",
                f"`{name}` is a value, not a layer or block",
                span,
                help="a pipeline stage is a layer, a block or a shared instance",
            )
        if isinstance(callee, A.Name):
            if name not in REGISTRY and name not in self.program.decls:
                return self.unknown_callee(name, span, scope)
            return self.apply(name, inputs, [], (), callee.span, span, scope)
        extra, values, ok = self.split_args(callee.args, scope)
        if not ok:
            return POISON
        if name not in REGISTRY and name not in self.program.decls:
            return self.unknown_callee(name, span, scope)
        return self.apply(name, inputs + extra, values, callee.kwargs, callee.span, span, scope)

    def apply(
        self,
        name: str,
        tensors: list[Tensor],
        values: list[tuple[Any, Span]],
        kwargs: tuple[A.Kwarg, ...],
        span: Span,
        name_span: Span,
        scope: Scope,
        *,
        instance: Instance | None = None,
    ) -> Any:
        if name in self.program.decls:
            return self.apply_block(
                self.program.decls[name], tensors, values, kwargs, span, scope, instance=instance
            )
        kw_values = [(k, self.const(k.value, scope)) for k in kwargs]
        if any(isinstance(v, Poison) for _, v in kw_values):
            return POISON
        return self.apply_layer(
            REGISTRY[name], tensors, values, kw_values, span, name_span, scope, instance=instance
        )

    def apply_instance(
        self, inst: Instance, tensors: list[Tensor], span: Span, scope: Scope
    ) -> Any:
        inst.calls += 1
        values = []
        for a in inst.args:
            v = self.const(a, scope)
            if isinstance(v, Poison):
                return POISON
            values.append((v, a.span))
        return self.apply(
            inst.callee, tensors, values, inst.kwargs, span, span, scope, instance=inst
        )

    # ---------------------------------------------------------------- layers
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

    def apply_layer(
        self,
        kind: LayerKind,
        tensors: list[Tensor],
        values: list[tuple[Any, Span]],
        kwargs: list[tuple[A.Kwarg, Any]],
        span: Span,
        name_span: Span,
        scope: Scope,
        *,
        instance: Instance | None = None,
    ) -> Any:
        lo, hi = kind.n_inputs
        n = len(tensors)
        if n < lo or (hi is not None and n > hi):
            want = f"{lo}" if lo == hi else (f"at least {lo}" if hi is None else f"{lo} to {hi}")
            return self.err(
                "E207",
                f"`{kind.name}` takes {want} input{'s' if want != '1' else ''} but got {n}",
                name_span,
                secondary=[
                    Label(t.span, f"input {i + 1}: {t.type}")
                    for i, t in enumerate(tensors[:4])
                    if t.span.file == span.file
                ],
                help="pipe several tensors with a tuple: `(a, b) -> concat`" if n < lo else None,
            )
        bound = self.bind_attrs(kind, values, kwargs, span)
        if bound is None or any(t.type is None for t in tensors):
            return self.outputs_poisoned(kind, bound[0] if bound else None)
        args, arg_spans = bound
        in_types = [t.type for t in tensors if t.type is not None]
        try:
            out_types = kind.shape(args, in_types)
        except ArgError as ex:
            where = arg_spans.get(ex.arg, span) if ex.arg else span
            secondary = [
                Label(t.span, f"{'input' if n == 1 else f'input {i + 1}'} is {t.type}")
                for i, t in enumerate(tensors)
                if t.span.file == span.file and t.span != where
            ]
            self.err(ex.code, ex.message, where, help=ex.help, secondary=secondary[:3])
            return self.outputs_poisoned(kind, args)
        return self.add_layer_node(kind, args, tensors, in_types, out_types, span, scope, instance)

    def outputs_poisoned(self, kind: LayerKind, args: Args | None) -> Any:
        n = kind.outputs_for(args) if args is not None else 1
        return POISON if n == 1 else tuple([POISON] * n)

    def add_layer_node(
        self,
        kind: LayerKind,
        args: Args,
        tensors: list[Tensor],
        in_types: list[TensorType],
        out_types: list[TensorType],
        span: Span,
        scope: Scope,
        instance: Instance | None,
    ) -> Any:
        if instance is not None and instance.callee == kind.name:
            local = instance.name if instance.calls == 1 else f"{instance.name}@{instance.calls}"
            node_id, owner = scope.prefix + local, instance.name
        else:
            local = scope.fresh(kind.name)
            node_id, owner = scope.prefix + local, scope.owner_prefix + local
        params = kind.params(args, in_types)
        flops = kind.flops(args, in_types, out_types)
        node = Node(
            node_id,
            kind,
            args,
            [(t.node, t.port) for t in tensors],
            in_types,
            list(out_types),
            span,
            owner,
            params,
            flops,
        )
        if owner != node_id:
            sig = (kind.name, args, tuple(in_types))
            first = self.owner_sigs.get(owner)
            if first is not None and first[0] != sig:
                self.err(
                    "E302",
                    f"shared `{owner}` is called with {', '.join(map(str, in_types))} here, but its weights were made for "
                    f"{', '.join(map(str, first[0][2]))}",
                    span,
                    secondary=[Label(first[1], "first called here")],
                    help="every call of a shared instance must fit the same weights",
                )
                return self.outputs_poisoned(kind, args)
            self.owner_sigs.setdefault(owner, (sig, span))
        else:
            self.owner_sigs[owner] = ((kind.name, args, tuple(in_types)), span)
        self.add_node(node)
        outs = tuple(Tensor(node_id, i, t, span) for i, t in enumerate(out_types))
        return outs[0] if len(outs) == 1 else outs

    def add_node(self, node: Node) -> None:
        assert self.graph is not None
        if len(self.graph) >= MAX_NODES:
            raise NNError(
                Diagnostic("E007", f"the model has more than {MAX_NODES} nodes", node.span)
            )
        self.graph.add(node)

    # ---------------------------------------------------------------- blocks
    def apply_block(
        self,
        decl: A.ModelDecl,
        tensors: list[Tensor],
        values: list[tuple[Any, Span]],
        kwargs: tuple[A.Kwarg, ...],
        span: Span,
        scope: Scope,
        *,
        instance: Instance | None,
    ) -> Any:
        if not decl.is_block:
            return self.err(
                "E113",
                f"`{decl.name}` is a model; only blocks can be used inside models",
                span,
                secondary=[Label(decl.name_span, "declared as a model here")],
                help=f"declare it with `block {decl.name}` instead",
            )
        if decl.name in scope.block_stack:
            return self.err(
                "E209",
                f"block `{decl.name}` uses itself: "
                + " -> ".join(scope.block_stack + (decl.name,)),
                span,
                help="use repetition (`-> Block(...) * n`) instead of recursion",
            )
        kw = {k.name: (self.const(k.value, scope), k.value.span) for k in kwargs}
        if any(isinstance(v, Poison) for v, _ in kw.values()):
            return POISON
        params = self.bind_params(decl, values, kw, span, what="block")
        if params is None:
            return POISON
        n_inputs = sum(1 for s in decl.body if isinstance(s, A.InputDecl))
        if len(tensors) != n_inputs:
            return self.err(
                "E207",
                f"block `{decl.name}` takes {n_inputs} input{'s' if n_inputs != 1 else ''} but got {len(tensors)}",
                span,
                secondary=[Label(decl.name_span, "declared here")],
            )
        if any(t.type is None for t in tensors):
            return POISON
        if instance is not None and instance.callee == decl.name:
            local = instance.name if instance.calls == 1 else f"{instance.name}@{instance.calls}"
            prefix, owner_prefix = scope.prefix + local + "/", instance.name + "/"
        else:
            local = scope.fresh(_snake(decl.name))
            prefix, owner_prefix = scope.prefix + local + "/", scope.owner_prefix + local + "/"
        inner = Scope(
            prefix,
            owner_prefix,
            values=dict(params),
            block_stack=scope.block_stack + (decl.name,),
            call_span=span,
        )
        inner.used.update(params)
        # outputs in declaration order, whatever order dataflow ran them in
        outs = sorted(
            self.run_body(decl.body, inner, is_model=False, block_inputs=tensors),
            key=lambda o: (o[2].line, o[2].col),
        )
        self.warn_unused(inner, None)
        if not outs:
            return self.err("E111", f"block `{decl.name}` declares no output", decl.name_span)
        results = tuple(v for _, v, _ in outs)
        if any(isinstance(v, Poison) for v in results):
            return (
                POISON
                if len(results) == 1
                else tuple(POISON if isinstance(v, Poison) else v for v in results)
            )
        return results[0] if len(results) == 1 else results

    # -------------------------------------------------------------- warnings
    def warn_unused(self, scope: Scope, graph: Graph | None) -> None:
        for name, v in scope.values.items():
            if name in scope.used or name.startswith("_"):
                continue
            if isinstance(v, (Tensor, Instance)) or (
                isinstance(v, tuple) and v and all(isinstance(x, Tensor) for x in v)
            ):
                what = "input" if graph and any(p.name == name for p in graph.inputs) else "value"
                self.rep.add(
                    Diagnostic(
                        "W301",
                        f"{what} `{name}` is never used",
                        scope.spans.get(name),
                        help=f"use it, or name it `_{name}` to silence this warning",
                    )
                )


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and (not name[i - 1].isupper()):
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


def build(
    program: Program,
    model: str | None = None,
    overrides: dict[str, tuple[Any, Span | None]] | None = None,
    reporter: Reporter | None = None,
) -> Graph:
    """Build and check one model's graph. Raises :class:`NNError` on any error."""
    rep = reporter or Reporter()
    decl = program.model(model)
    if decl is None:
        names = [d.name for d in program.models]
        if model is None:
            raise NNError(
                Diagnostic(
                    "E108",
                    f"`{program.main}` defines no model",
                    Span.point(program.main, 1, 1),
                    help="declare one with `model Name { ... }`",
                )
            )
        raise NNError(
            Diagnostic(
                "E108",
                f"no model named `{model}` in `{program.main}`",
                None,
                help=did_you_mean(model, names) or f"models: {', '.join(names) or 'none'}",
            )
        )
    builder = Builder(program, rep)
    for d in program.decls.values():  # every declaration, used or not
        builder.check_param_types(d)
    try:
        graph = builder.build_model(decl, overrides or {})
    except RecursionError:
        rep.add(
            Diagnostic(
                "E007",
                f"model `{decl.name}` is nested too deeply to check",
                decl.name_span,
                help="split deep expressions into named values",
            )
        )
        graph = None
    if rep.errors or graph is None:
        raise NNError(rep.diagnostics)
    graph.warnings = [d for d in rep.diagnostics if d.severity == "warning"]  # type: ignore[attr-defined]
    return graph
