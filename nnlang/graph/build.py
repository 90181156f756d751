"""AST -> checked graph: names resolved, blocks expanded, repeats unrolled, shapes inferred.

A model body is evaluated like a small pure program: compile-time values (parameters,
arithmetic, conditionals) are computed here, and every layer call becomes a graph node
whose output types are inferred as it is created (inputs are always built first, so
this is topological order). Mistakes are collected and evaluation carries on with a
poisoned value, so one run reports many errors without cascades.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from nnlang.diagnostics import ArgError, Diagnostic, Label, NNError, Reporter, Span, did_you_mean
from nnlang.graph.bind import Binder
from nnlang.graph.evaluate import (
    POISON,
    Evaluator,
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
from nnlang.layers.base import Args, LayerKind
from nnlang.shapes import DTYPES, TensorType
from nnlang.syntax import ast as A

MAX_NODES = 200_000


class Builder(Binder, Ordering, Evaluator):
    def __init__(self, program: Program, reporter: Reporter) -> None:
        self.program = program
        self.rep = reporter
        self.graph: Graph | None = None
        self.owner_sigs: dict[str, tuple[Any, Span]] = {}
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
        return super().call_expr(e, scope)

    def tensor_binop(self, e: A.BinOp, a: Any, b: Any, scope: Scope) -> Any:
        kinds = {"+": "add", "-": "sub", "*": "mul"}
        if e.op in kinds and isinstance(a, Tensor) and isinstance(b, Tensor):
            return self.apply_layer(REGISTRY[kinds[e.op]], [a, b], [], [], e.span, e.op_span, scope)
        return super().tensor_binop(e, a, b, scope)

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
                    f"a pipeline carries tensors, but this is {type_name(cur)} {format_value(cur)}",
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
                "E203", f"a repeat count must be a positive integer, not {format_value(n)}", e.span
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
