"""Tensor types: dtype plus per-sample shape, with named symbolic axes.

The batch axis is implicit and never written: ``f32[8, 8, 1]`` is one sample. A
dimension is an ``int`` or a ``str``; a string is a named symbolic axis (``"T"``) or an
expression over such axes (``"T*64"``) that jax.export's symbolic shapes understand.
Pure Python: no JAX here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Dim = int | str

DTYPES: dict[str, str] = {
    "f32": "float32",
    "f16": "float16",
    "bf16": "bfloat16",
    "f64": "float64",
    "i32": "int32",
    "i64": "int64",
    "i8": "int8",
    "u8": "uint8",
    "bool": "bool",
}
#: Bytes per element, known without NumPy (which has no ``bfloat16`` of its own).
ITEMSIZE: dict[str, int] = {
    "f32": 4,
    "f16": 2,
    "bf16": 2,
    "f64": 8,
    "i32": 4,
    "i64": 8,
    "i8": 1,
    "u8": 1,
    "bool": 1,
}
FLOAT_DTYPES = frozenset({"f32", "f16", "bf16", "f64"})
INT_DTYPES = frozenset({"i32", "i64", "i8", "u8"})


@dataclass(frozen=True)
class TensorType:
    dtype: str
    shape: tuple[Dim, ...]

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_float(self) -> bool:
        return self.dtype in FLOAT_DTYPES

    def with_shape(self, shape: tuple[Dim, ...] | list[Dim]) -> TensorType:
        return TensorType(self.dtype, tuple(shape))

    def with_dtype(self, dtype: str) -> TensorType:
        return TensorType(dtype, self.shape)

    def __str__(self) -> str:
        return f"{self.dtype}[{', '.join(str(d) for d in self.shape)}]"


def is_concrete(d: Dim) -> bool:
    return isinstance(d, int)


def _wrap(d: Dim) -> str:
    s = str(d)
    return s if s.isidentifier() or s.isdigit() else f"({s})"


def dim_add(a: Dim, b: Dim) -> Dim:
    if isinstance(a, int) and isinstance(b, int):
        return a + b
    if b == 0:
        return a
    if a == 0:
        return b
    if isinstance(b, int) and b < 0:
        return f"{_wrap(a)} - {-b}"
    return f"{_wrap(a)} + {_wrap(b)}"


def dim_mul(a: Dim, b: Dim) -> Dim:
    if isinstance(a, int) and isinstance(b, int):
        return a * b
    if a == 1:
        return b
    if b == 1:
        return a
    return f"{_wrap(a)}*{_wrap(b)}"


def dim_floordiv(a: Dim, b: int) -> Dim:
    if isinstance(a, int):
        return a // b
    if b == 1:
        return a
    return f"{_wrap(a)}//{b}"


def dim_ceildiv(a: Dim, b: int) -> Dim:
    if isinstance(a, int):
        return -(-a // b)
    if b == 1:
        return a
    return dim_floordiv(dim_add(a, b - 1), b)


def numel(shape: tuple[Dim, ...]) -> Dim:
    out: Dim = 1
    for d in shape:
        out = dim_mul(out, d)
    return out


def concrete_numel(shape: tuple[Dim, ...], sym: int = 1) -> int:
    """Element count with each symbolic axis counted as ``sym`` (for FLOP estimates)."""
    return math.prod(d if isinstance(d, int) else sym for d in shape)


def dim_value(d: Dim, env: dict[str, int]) -> int:
    """The value of a dimension (an int, an axis name or an expression of them with
    ``+ - * //`` and parentheses, as the shape rules write them) with axes from ``env``;
    KeyError for an axis ``env`` lacks. Parsed by :mod:`ast`, never evaluated as code."""
    import ast
    import operator

    ops = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}
    ops[ast.FloorDiv] = operator.floordiv

    def walk(node: ast.AST) -> int:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name):
            return env[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in ops:
            return int(ops[type(node.op)](walk(node.left), walk(node.right)))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        raise ValueError(f"not a dimension expression: {d!r}")

    return d if isinstance(d, int) else walk(ast.parse(d, mode="eval").body)
