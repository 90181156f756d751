"""What a graph costs when its symbolic axes take values: FLOPs and activation bytes.

The layers' rules count with every axis concrete. A graph with a symbolic axis
(``f32[T, 16]``) is costed by substituting values for the axes in every node's input and
output types (:func:`flops_at`, :func:`activation_bytes_at`); with one axis, the cost
as a function of it is recovered exactly as a polynomial (:func:`formula`, degree at most
3, fitted by Newton differences at T = 1..5 and checked at two more points), so the
summary prints ``1.2M·T + 4.1K`` instead of the count at T = 1.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import TYPE_CHECKING

from nnlang.shapes import ITEMSIZE, TensorType, dim_value

if TYPE_CHECKING:
    from nnlang.graph.graph import Graph, Node


def _at(t: TensorType, env: dict[str, int]) -> TensorType:
    return t.with_shape(tuple(dim_value(d, env) for d in t.shape))


def node_flops_at(n: Node, env: dict[str, int]) -> int:
    if n.kind is None:
        return 0
    if not env:
        return n.flops
    ins = [_at(t, env) for t in n.in_types]
    outs = [_at(t, env) for t in n.out_types]
    return int(n.kind.flops(n.args, ins, outs))


def flops_at(g: Graph, env: dict[str, int]) -> int:
    """FLOPs per sample with the symbolic axes of ``env`` substituted."""
    return sum(node_flops_at(n, env) for n in g.order())


def activation_bytes_at(g: Graph, env: dict[str, int]) -> int:
    """Bytes of every node's outputs for one sample, the axes of ``env`` substituted."""
    total = 0
    for n in g.order():
        for t in n.out_types:
            c = _at(t, env)
            size = 1
            for d in c.shape:
                size *= int(d)
            total += size * ITEMSIZE[t.dtype]
    return total


def human(n: float) -> str:
    for unit in ("", "K", "M", "G", "T", "P"):
        if abs(n) < 1000:
            return f"{n:.3g}{unit}"
        n /= 1000
    return f"{n:.3g}E"


def _poly(f: Callable[[int], int]) -> list[Fraction] | None:
    """Coefficients c0.. of the polynomial (degree <= 3) equal to ``f`` on 1..5 and at
    two checking points, or None when ``f`` is no such polynomial (a strided axis)."""
    xs = [1, 2, 3, 4, 5]
    ys = [Fraction(f(x)) for x in xs]
    # Newton's divided differences, then expanded to monomial coefficients
    table, coef = list(ys), [ys[0]]
    for k in range(1, len(xs)):
        table = [(table[i + 1] - table[i]) / (xs[i + k] - xs[i]) for i in range(len(table) - 1)]
        coef.append(table[0])
    mono = [Fraction(0)] * len(xs)
    basis = [Fraction(1)]  # prod (x - xs[j]) for j < k, as monomial coefficients
    for k, c in enumerate(coef):
        for i, b in enumerate(basis):
            mono[i] += c * b
        nxt = [Fraction(0)] * (len(basis) + 1)
        for i, b in enumerate(basis):
            nxt[i + 1] += b
            nxt[i] -= xs[k] * b
        basis = nxt
    if mono[4] != 0:
        return None

    def value(x: int) -> Fraction:
        return sum((c * x**i for i, c in enumerate(mono)), Fraction(0))

    if any(value(x) != f(x) for x in (9, 16)):
        return None
    return mono[:4]


def formula(g: Graph, cost: Callable[[Graph, dict[str, int]], int]) -> str | None:
    """``cost`` as a function of the graph's one symbolic axis (``"1.2M·T + 4.1K"``); None
    for a graph without exactly one axis or a cost that is not a polynomial in it."""
    if len(g.symbols) != 1:
        return None
    axis = g.symbols[0]
    try:
        coef = _poly(lambda x: cost(g, {axis: x}))
    except (ValueError, KeyError, ArithmeticError):
        return None
    if coef is None:
        return None
    power = {1: "", 2: "²", 3: "³"}
    terms = [
        human(float(c)) + ("" if i == 0 else f"·{axis}{power[i]}")
        for i, c in reversed(list(enumerate(coef)))
        if c != 0
    ]
    return " + ".join(terms).replace("+ -", "- ") or "0"
