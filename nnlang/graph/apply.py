"""Applying: a call of a layer kind, a block or a shared instance becomes graph nodes.

The evaluator's hooks for what only a graph can give meaning to are filled in here: a
call (``conv(16)``, ``Block(x)``, ``enc(x)``) and a pipeline (``x -> conv(16) ->
Block() * 3``); tensor operators are in :mod:`.tensorops`. A layer call binds its attributes, infers its
output types and adds one node; a block call expands its body in a fresh scope (the
statement walker runs it); a shared instance reuses one parameter owner for every call.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from nnlang.diagnostics import ArgError, Diagnostic, InternalError, Label, NNError, Span
from nnlang.graph.evaluate import (
    POISON,
    Instance,
    Poison,
    Scope,
    Tensor,
    format_value,
    repeat_index,
    type_name,
)
from nnlang.graph.graph import Graph, Node
from nnlang.graph.program import Program
from nnlang.graph.tensorops import BUILTIN_LAYERS, TensorOps
from nnlang.layers import REGISTRY
from nnlang.layers.base import Args, LayerKind
from nnlang.shapes import TensorType
from nnlang.syntax import ast as A

#: The most nodes one model may have (a repetition that would pass it is refused early).
MAX_NODES = 200_000


class Applier(TensorOps):
    """The builder's applying half: the evaluator, with layer calls, blocks and shared
    instances made into graph nodes (tensor operators in :class:`TensorOps`). It extends
    :class:`Evaluator` rather than mixing into it, since it overrides the evaluator's
    hooks and falls back on them."""

    program: Program
    graph: Graph | None
    owner_sigs: dict[str, tuple[Any, Span]]  # parameter owner -> (what its weights fit, first call)

    if TYPE_CHECKING:  # provided by the binder and by the statement walker (build.py)

        def bind_attrs(
            self,
            kind: LayerKind,
            values: list[tuple[Any, Span]],
            kwargs: list[tuple[A.Kwarg, Any]],
            span: Span,
        ) -> tuple[Args, dict[str, Span]] | None: ...

        def bind_params(
            self,
            decl: A.ModelDecl,
            args: list[tuple[Any, Span]],
            kwargs: dict[str, tuple[Any, Span | None]],
            call_span: Span,
            *,
            what: str,
            unknown_ok: bool = False,
        ) -> dict[str, Any] | None: ...

        def run_body(
            self,
            body: tuple[A.Stmt, ...],
            scope: Scope,
            *,
            is_model: bool,
            block_inputs: list[Tensor] | None = None,
        ) -> list[tuple[str, Any, Span]]: ...

        def warn_unused(self, scope: Scope, graph: Graph | None) -> None: ...

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
        if e.func in BUILTIN_LAYERS and e.func not in self.program.decls:
            return self.builtin_or_layer(e, scope)
        if e.func in REGISTRY or e.func in self.program.decls:
            tensors, values, ok = self.split_args(e.args, scope)
            if not ok:
                return POISON
            return self.apply(e.func, tensors, values, e.kwargs, e.span, e.func_span, scope)
        return super().call_expr(e, scope)

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
                with repeat_index(scope, i if st.repeat is not None else None):
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
        with repeat_index(scope, 0 if st.repeat is not None else None):
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
            counts = kind.params(args, in_types), kind.flops(args, in_types, out_types)
        except (NNError, RecursionError):
            raise
        except ArgError as ex:
            where = arg_spans.get(ex.arg, span) if ex.arg else span
            secondary = [
                Label(t.span, f"{'input' if n == 1 else f'input {i + 1}'} is {t.type}")
                for i, t in enumerate(tensors)
                if t.span.file == span.file and t.span != where
            ]
            self.err(ex.code, ex.message, where, help=ex.help, secondary=secondary[:3])
            return self.outputs_poisoned(kind, args)
        except Exception as ex:  # noqa: BLE001 - a shape rule that fails is an nnlang bug
            doing = f"inferring the shape and size of `{kind.name}`"
            raise InternalError(doing, span, ex, self.program.sources) from ex
        return self.add_layer_node(
            kind, args, tensors, in_types, out_types, counts, span, scope, instance
        )

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
        counts: tuple[int, int],  # parameters, FLOPs
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
        params, flops = counts
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
        fits = () if kind.weights_fit_any_input else tuple(in_types)
        if owner != node_id:
            sig = (kind.name, args, fits)
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
            self.owner_sigs[owner] = ((kind.name, args, fits), span)
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
        kw: dict[str, tuple[Any, Span | None]] = {
            k.name: (self.const(k.value, scope), k.value.span) for k in kwargs
        }
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


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and (not name[i - 1].isupper()):
            out.append("_")
        out.append(ch.lower())
    return "".join(out)
