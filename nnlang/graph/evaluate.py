"""The compile-time evaluator: the values of a .nn file that are known before it runs.

Parameters, arithmetic, comparisons, conditions and builtins (``min``, ``ceil``, ...)
are evaluated here, for the graph builder (which extends :class:`Evaluator` with
tensors, layer calls and blocks) and for the train section and the API (through
:func:`evaluate`). A mistake is reported to the :class:`~nnlang.diagnostics.Reporter`
and the value becomes :data:`POISON`, so evaluation carries on without cascades.
"""

from __future__ import annotations

import difflib
import math
import operator
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from nnlang import signature
from nnlang.diagnostics import Diagnostic, Reporter, Span, did_you_mean
from nnlang.graph.program import Program
from nnlang.layers import REGISTRY
from nnlang.shapes import TensorType
from nnlang.syntax import ast as A

MAX_INT_BITS = 128
#: The operators a tensor takes, with another tensor or with a number.
TENSOR_OPERATORS = ("+", "-", "*", "/", "**")
ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
    "**": operator.pow,
}


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
    repeats: set[str] = field(default_factory=set)  # names bound by a repetition

    def fresh(self, base: str) -> str:
        n = self.counters.get(base, 0)
        self.counters[base] = n + 1
        return base if n == 0 else f"{base}_{n}"


#: The name a repeated stage's arguments read its repeat's index from (0, 1, ...).
REPEAT_INDEX = "repeat_index"


@contextmanager
def repeat_index(scope: Scope, i: int | None) -> Iterator[None]:
    """Bind :data:`REPEAT_INDEX` to ``i`` while one repeat of a stage is applied (nothing
    when ``i`` is None or the body defines the name itself)."""
    if i is None or (REPEAT_INDEX in scope.values and REPEAT_INDEX not in scope.repeats):
        yield
        return
    had, saved = REPEAT_INDEX in scope.values, scope.values.get(REPEAT_INDEX)
    scope.values[REPEAT_INDEX] = i
    scope.repeats.add(REPEAT_INDEX)
    scope.used.add(REPEAT_INDEX)
    try:
        yield
    finally:
        if had:
            scope.values[REPEAT_INDEX] = saved  # an enclosing repetition's index
        else:
            del scope.values[REPEAT_INDEX]
            scope.repeats.discard(REPEAT_INDEX)


def format_value(v: Any) -> str:
    """A compile-time value as a message shows it (tensors by their node)."""
    if isinstance(v, Tensor):
        return f"`{v.node}`"
    if isinstance(v, tuple):
        return "(" + ", ".join(format_value(x) for x in v) + ")"
    if isinstance(v, list):
        return "[" + ", ".join(format_value(x) for x in v) + "]"
    if isinstance(v, float):
        return str(v)  # as computed: `2.0`, where a signature's default reads `2`
    return signature.format_value(v)


def type_name(v: Any) -> str:
    """The kind of a compile-time value, as a message names it."""
    if isinstance(v, Tensor):
        return f"tensor {v.type}" if v.type else "tensor"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, tuple) and v and all(isinstance(x, Tensor) for x in v):
        return f"{len(v)} tensors"
    return type(v).__name__


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


class Evaluator:
    """Evaluates expressions to compile-time values, reporting mistakes as it goes."""

    def __init__(self, reporter: Reporter, program: Program | None = None) -> None:
        self.rep = reporter
        self.program = program

    def err(self, code: str, message: str, span: Span | None, **kw: Any) -> Poison:
        self.rep.add(Diagnostic(code, message, span, **kw))
        return POISON

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
        if isinstance(e, A.DictExpr):  # a plain dict, keys in written order
            d = {en.key: self.value(en.value, scope) for en in e.entries}
            return POISON if any(isinstance(v, Poison) for v in d.values()) else d
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
        decls = self.program.decls if self.program is not None else {}
        if e.id in REGISTRY or e.id in decls:
            what = "layer" if e.id in REGISTRY else decls[e.id].word
            return self.err(
                "E206",
                f"`{e.id}` is a {what}, not a value",
                e.span,
                help=f"apply it to a tensor: `x -> {e.id}`",
            )
        hint = self.suggest_value(e.id, scope)
        if e.id == REPEAT_INDEX:
            hint = "it is known in the arguments of a repeated stage: `-> Block(repeat_index) * n`"
        return self.err("E101", f"unknown name `{e.id}`", e.span, help=hint)

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
                    "E204", f"`not` needs true or false, not {type_name(v)}", e.operand.span
                )
            return not v
        if isinstance(v, Tensor):
            return self.tensor_unary(e, v, scope)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return self.err("E204", f"`{e.op}` needs a number, not {type_name(v)}", e.operand.span)
        return -v if e.op == "-" else v

    def tensor_unary(self, e: A.UnaryOp, v: Tensor, scope: Scope) -> Any:
        """`-x` or `+x` of a tensor: the builder makes a layer of `-x`."""
        return self.err("E205", f"`{e.op}` needs a number, not {type_name(v)}", e.operand.span)

    def binop(self, e: A.BinOp, scope: Scope) -> Any:
        a = self.value(e.left, scope)
        b = self.value(e.right, scope)
        if isinstance(a, Poison) or isinstance(b, Poison):
            return POISON
        if isinstance(a, Tensor) or isinstance(b, Tensor):
            return self.tensor_binop(e, a, b, scope)
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
                    f"`{op}` is not defined for {type_name(a)} and {type_name(b)}",
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
            result: Any = ARITHMETIC[op](a, b)
        except ZeroDivisionError:
            return self.err("E204", "division by zero", e.right.span)
        except (TypeError, ValueError):
            return self.err(
                "E204", f"`{op}` is not defined for {type_name(a)} and {type_name(b)}", e.op_span
            )
        except OverflowError:
            return self.err("E204", "number too large", e.span)
        if isinstance(result, int) and result.bit_length() > MAX_INT_BITS:
            return self.err("E204", "integer too large", e.span)
        if isinstance(result, complex):
            return self.err("E204", "result is not a real number", e.span)
        return result

    def tensor_binop(self, e: A.BinOp, a: Any, b: Any, scope: Scope) -> Any:
        """An operator with a tensor operand: the builder makes a layer of
        `+ - * / **` between tensors, or a tensor and a number."""
        if e.op in TENSOR_OPERATORS:
            return self.err(
                "E206",
                f"`{e.op}` between a tensor and {type_name(b if isinstance(a, Tensor) else a)}",
                e.span,
                help=f"tensor `{e.op}` takes two tensors of broadcastable shapes, or a tensor "
                "and a number",
            )
        return self.err(
            "E205",
            f"`{e.op}` is not defined for tensors",
            e.op_span,
            help="tensors combine with `+`, `-`, `*`, `/`, `**` and layers such as `concat`",
        )

    def call_expr(self, e: A.Call, scope: Scope) -> Any:
        """A builtin call; the builder adds layers, blocks and shared instances."""
        decls = self.program.decls if self.program is not None else {}
        if e.func in BUILTINS and e.func not in decls:
            args = [self.const(a, scope) for a in e.args]
            if any(isinstance(a, Poison) for a in args):
                return POISON
            return self.call_builtin(e, args)
        if e.func in REGISTRY or e.func in decls:
            return self.err(
                "E205",
                f"`{e.func}(...)` makes a tensor; a compile-time value is needed here",
                e.span,
                help="settings and arguments are computed before the model runs",
            )
        return self.unknown_callee(e.func, e.func_span, scope)

    def call_builtin(self, e: A.Call, args: list[Any]) -> Any:
        """A builtin (``min``, ``ceil``, ...) applied to compile-time values."""
        if e.kwargs:
            return self.err("E104", f"`{e.func}` takes no keyword arguments", e.kwargs[0].name_span)
        try:
            return BUILTINS[e.func](*args)
        except (TypeError, ValueError, OverflowError) as ex:
            return self.err(
                "E204", f"`{e.func}({', '.join(format_value(a) for a in args)})`: {ex}", e.span
            )

    def unknown_callee(self, name: str, span: Span, scope: Scope) -> Poison:
        if name in scope.values:
            return self.err("E103", f"`{name}` is a value, not a layer or block", span)
        decls = self.program.decls if self.program is not None else {}
        candidates = list(REGISTRY) + list(decls) + list(BUILTINS)
        return self.err(
            "E103",
            f"unknown layer or block `{name}`",
            span,
            help=did_you_mean(name, candidates) or "`nnlang layers` lists the layer kinds",
        )

    def pipeline(self, e: A.Pipeline, scope: Scope) -> Any:
        return self.err(
            "E205",
            "a pipeline makes a tensor; a compile-time value is needed here",
            e.span,
            help="settings and arguments are computed before the model runs",
        )


def evaluate(
    expr: A.Expr,
    reporter: Reporter,
    program: Program | None = None,
    names: Mapping[str, Any] | None = None,
) -> Any:
    """The compile-time value of ``expr`` (``names`` are the values in scope), or
    :data:`POISON` after reporting why it has none."""
    scope = Scope("", "", values=dict(names or {}))
    return Evaluator(reporter, program).const(expr, scope)


def word_or_value(expr: A.Expr, reporter: Reporter, program: Program | None = None) -> Any:
    """A train setting's value: a bare word is a string, as in `monitor = val_loss` or
    `--set normalize=standardize`; anything else is :func:`evaluate`'s."""
    if isinstance(expr, A.Name) and expr.id not in ("true", "false"):
        return expr.id
    return evaluate(expr, reporter, program)
