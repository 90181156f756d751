"""Operators on tensors: what ``a + b``, ``x * 0.5``, ``1 - p``, ``x ** 2`` and ``-x``
become in the graph, and calls whose name is both a builtin and a layer kind.

Between two tensors, ``+ - * / **`` are the merge layers ``add``, ``sub``, ``mul``,
``div`` and ``pow`` (NumPy broadcasting of the per-sample shapes, equal dtypes). A
tensor with a compile-time number is one ``<op>_scalar`` layer holding the number
(``reverse = true`` when the number is on the left of ``-``, ``/`` or ``**``); unary
minus is ``neg`` and unary plus is the tensor itself. The dtype rules live in the
layers' shape rules (``nnlang/layers/elementwise.py``).

``abs``, ``sqrt``, ``min`` and ``max`` are compile-time builtins and layer kinds: a
call with a tensor argument is the layer, any other call the builtin.

May import the evaluator, the layer registry and the AST (it is a half of the builder,
mixed in below :class:`~nnlang.graph.apply.Applier`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from nnlang.diagnostics import Span
from nnlang.graph.evaluate import BUILTINS, POISON, Evaluator, Scope, Tensor
from nnlang.layers import REGISTRY
from nnlang.layers.base import LayerKind
from nnlang.syntax import ast as A

#: Tensor op tensor: the merge layer of each operator.
MERGES = {"+": "add", "-": "sub", "*": "mul", "/": "div", "**": "pow"}
#: Tensor op number (or number op tensor): the layer holding the number.
SCALARS = {
    "+": "add_scalar",
    "-": "sub_scalar",
    "*": "mul_scalar",
    "/": "div_scalar",
    "**": "pow_scalar",
}
COMMUTATIVE = frozenset({"+", "*"})
#: Names that are both a compile-time builtin and a layer kind.
BUILTIN_LAYERS = frozenset(BUILTINS) & frozenset(REGISTRY)


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class TensorOps(Evaluator):
    """The evaluator's operator hooks, filled in with layer nodes."""

    if TYPE_CHECKING:  # provided by the applier (apply.py)

        def apply_layer(
            self,
            kind: LayerKind,
            tensors: list[Tensor],
            values: list[tuple[Any, Span]],
            kwargs: list[tuple[A.Kwarg, Any]],
            span: Span,
            name_span: Span,
            scope: Scope,
        ) -> Any: ...

        def apply(
            self,
            name: str,
            tensors: list[Tensor],
            values: list[tuple[Any, Span]],
            kwargs: tuple[A.Kwarg, ...],
            span: Span,
            name_span: Span,
            scope: Scope,
        ) -> Any: ...

        def split_args(
            self, args: Iterable[A.Expr], scope: Scope
        ) -> tuple[list[Tensor], list[tuple[Any, Span]], bool]: ...

    def tensor_binop(self, e: A.BinOp, a: Any, b: Any, scope: Scope) -> Any:
        if e.op in MERGES:
            if isinstance(a, Tensor) and isinstance(b, Tensor):
                kind = REGISTRY[MERGES[e.op]]
                return self.apply_layer(kind, [a, b], [], [], e.span, e.op_span, scope)
            left = isinstance(a, Tensor)
            tensor, number = (a, b) if left else (b, a)
            if isinstance(tensor, Tensor) and is_number(number):
                values = [(number, e.right.span if left else e.left.span)]
                if not left and e.op not in COMMUTATIVE:
                    values.append((True, e.span))  # reverse = true: `c - x`, `c / x`, `c ** x`
                kind = REGISTRY[SCALARS[e.op]]
                return self.apply_layer(kind, [tensor], values, [], e.span, e.op_span, scope)
        return super().tensor_binop(e, a, b, scope)

    def tensor_unary(self, e: A.UnaryOp, v: Tensor, scope: Scope) -> Any:
        if e.op == "+":
            return v
        if e.op == "-":
            return self.apply_layer(REGISTRY["neg"], [v], [], [], e.span, e.span, scope)
        return super().tensor_unary(e, v, scope)

    def builtin_or_layer(self, e: A.Call, scope: Scope) -> Any:
        """``max(x, axis = 0)`` is the layer, ``max(a, b)`` of numbers the builtin."""
        tensors, values, ok = self.split_args(e.args, scope)
        if not ok:
            return POISON
        if tensors:
            return self.apply(e.func, tensors, values, e.kwargs, e.span, e.func_span, scope)
        return self.call_builtin(e, [v for v, _ in values])
