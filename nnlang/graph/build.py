"""AST -> checked graph: names resolved, blocks expanded, repeats unrolled, shapes inferred.

A model body is evaluated like a small pure program: compile-time values (parameters,
arithmetic, conditionals) are computed here, and every layer call becomes a graph node
whose output types are inferred as it is created (inputs are always built first, so
this is topological order). Mistakes are collected and evaluation carries on with a
poisoned value, so one run reports many errors without cascades.

This module walks the statements of a model or block body (inputs, bindings, outputs,
``shared``, ``if``) and holds :func:`build`; the builder's other halves are mixed in:
applying layers, blocks and instances (:mod:`.apply`), binding arguments
(:mod:`.bind`), statement order (:mod:`.order`) and compile-time values
(:mod:`.evaluate`).
"""

from __future__ import annotations

from typing import Any

from nnlang.diagnostics import Diagnostic, Label, NNError, Reporter, Span, did_you_mean
from nnlang.graph.apply import Applier
from nnlang.graph.bind import Binder
from nnlang.graph.evaluate import (
    POISON,
    Instance,
    Poison,
    Scope,
    Tensor,
    format_value,
    type_name,
)
from nnlang.graph.graph import Graph, Node, Port
from nnlang.graph.order import Ordering, defined_names, free_names
from nnlang.graph.program import Program
from nnlang.layers import REGISTRY
from nnlang.layers.base import Args
from nnlang.shapes import DTYPES, TensorType
from nnlang.syntax import ast as A


class Builder(Applier, Binder, Ordering):
    """The graph builder: walks a body's statements; its halves apply calls (over the
    evaluator), bind arguments and order statements."""

    def __init__(self, program: Program, reporter: Reporter) -> None:
        self.program = program
        self.rep = reporter
        self.graph = None
        self.owner_sigs = {}
        self._orders: dict[int, tuple[tuple[A.Stmt, ...], list[int], frozenset[int]]] = {}
        self.types_checked: set[Span] = set()
        self.inputs_declared = 0
        self.outputs_declared = 0

    # ------------------------------------------------------------------ models
    def build_model(
        self, decl: A.ModelDecl, overrides: dict[str, tuple[Any, Span | None]]
    ) -> Graph | None:
        args = self.bind_params(
            decl, [], {k: v for k, v in overrides.items()}, decl.name_span, what="model"
        )
        if args is None:
            return None
        self.graph = Graph(decl.name, decl.span, dict(args), program=self.program)
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

    # ------------------------------------------------------------------ blocks
    def check_block(self, decl: A.ModelDecl) -> None:
        """Check a block that has no call site (in a file of blocks and no model).

        Its parameters are bound to their defaults (those without one are unknown), and
        its body runs on inputs of their declared type where that is fixed, unknown
        otherwise (axis names unknown too). So unknown names, bad arguments, a missing
        output, unused values and the shapes that follow from fixed inputs are reported,
        and nothing that depends on what a caller passes."""
        self.check_param_types(decl)
        unknown: dict[str, tuple[Any, Span | None]] = {
            p.name: (POISON, None) for p in decl.params if p.default is None
        }
        params = self.bind_params(decl, [], unknown, decl.name_span, what="block", unknown_ok=True)
        if params is None:
            return
        self.graph = Graph(decl.name, decl.span, {}, program=self.program)  # scratch
        scope = Scope("", "", values=dict(params), block_stack=(decl.name,))
        scope.used.update(params)
        inputs = [self.lone_input(s, scope) for s in decl.body if isinstance(s, A.InputDecl)]
        outs = self.run_body(decl.body, scope, is_model=False, block_inputs=inputs)
        self.warn_unused(scope, None)
        if not outs:
            self.err("E111", f"block `{decl.name}` declares no output", decl.name_span)

    def lone_input(self, s: A.InputDecl, scope: Scope) -> Tensor:
        """A block input with no caller: of its declared type if that is fixed (a known
        dtype, every size a positive integer), else of unknown type."""
        t = s.type
        if t is not None and not any(
            isinstance(d, A.Name) and d.id not in scope.values for d in t.dims
        ):
            dims = [self.const(d, scope) for d in t.dims]
            if t.dtype in DTYPES and all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in dims
            ):
                ttype = TensorType(t.dtype, tuple(dims))
                self.add_node(Node(s.name, None, Args({}), [], [], [ttype], s.name_span, s.name))
                return Tensor(s.name, 0, ttype, s.name_span)
        for d in t.dims if t is not None else ():
            if isinstance(d, A.Name) and d.id not in scope.values:
                scope.values[d.id] = POISON  # an axis the caller's tensor would bind
                scope.used.add(d.id)
        return Tensor(s.name, 0, None, s.name_span)

    # -------------------------------------------------------------- statements
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
            outs: list[tuple[str, Any, Span]] = []
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
                                f"output `{t.name}` must be a tensor but is {type_name(v)}",
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
                    f"an `if` condition must be true or false, not {type_name(cond)} {format_value(cond)}",
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
            if isinstance(x, Tensor) and self.graph is not None and x.node in self.graph.dag:
                self.graph.value_names.setdefault(x.node, []).append(scope.prefix + t.name)

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
                    f"a dimension must be an integer or a symbolic axis name, not {type_name(v)}",
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
                        f"block input `{s.name}` expects size {format_value(v)} here but got {actual.type}",
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
        args: tuple[A.Expr, ...]
        kwargs: tuple[A.Kwarg, ...]
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


def check_blocks(program: Program, reporter: Reporter) -> list[str]:
    """Check every block of a program that declares no model, each on its own
    (:meth:`Builder.check_block`); the names of the blocks, in declaration order."""
    names = []
    for decl in program.decls.values():
        if not decl.is_block:
            continue
        names.append(decl.name)
        try:
            Builder(program, reporter).check_block(decl)
        except RecursionError:
            reporter.add(
                Diagnostic(
                    "E007",
                    f"block `{decl.name}` is nested too deeply to check",
                    decl.name_span,
                    help="split deep expressions into named values",
                )
            )
    return names


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
            blocks = [d.name for d in program.decls.values() if d.is_block]
            listed = ", ".join(f"`{b}`" for b in blocks[:4]) + (", ..." if len(blocks) > 4 else "")
            raise NNError(
                Diagnostic(
                    "E108",
                    f"`{program.main}` defines no model",
                    Span.point(program.main, 1, 1),
                    help="declare one with `model Name { ... }`"
                    if not blocks
                    else f"it declares only blocks ({listed}): import it from a file with a model",
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
    graph.warnings = [d for d in rep.diagnostics if d.severity == "warning"]
    return graph
