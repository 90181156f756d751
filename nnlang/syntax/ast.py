"""The typed AST of a .nn file. Every node carries the :class:`Span` it came from."""

from __future__ import annotations

from dataclasses import dataclass, field

from nnlang.diagnostics import Span


# ----------------------------------------------------------------- expressions
@dataclass(frozen=True)
class Num:
    value: int | float
    span: Span


@dataclass(frozen=True)
class Str:
    value: str
    span: Span


@dataclass(frozen=True)
class Bool:
    value: bool
    span: Span


@dataclass(frozen=True)
class Name:
    id: str
    span: Span


@dataclass(frozen=True)
class Kwarg:
    name: str
    name_span: Span
    value: Expr


@dataclass(frozen=True)
class Call:
    func: str
    func_span: Span
    args: tuple[Expr, ...]
    kwargs: tuple[Kwarg, ...]
    span: Span


@dataclass(frozen=True)
class TupleExpr:
    items: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True)
class ListExpr:
    items: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True)
class Entry:
    key: str  # a name or a string's text
    key_span: Span
    value: Expr


@dataclass(frozen=True)
class DictExpr:
    """`{name: expr, "pattern": expr}`: a mapping of distinct keys, in written order."""

    entries: tuple[Entry, ...]
    span: Span


@dataclass(frozen=True)
class BinOp:
    op: str  # + - * / // % ** == != < <= > >= and or
    left: Expr
    right: Expr
    op_span: Span
    span: Span


@dataclass(frozen=True)
class UnaryOp:
    op: str  # - + not
    operand: Expr
    span: Span


@dataclass(frozen=True)
class Stage:
    callee: Name | Call
    repeat: Expr | None
    span: Span


@dataclass(frozen=True)
class Pipeline:
    source: Expr
    stages: tuple[Stage, ...]
    span: Span


Expr = Num | Str | Bool | Name | Call | TupleExpr | ListExpr | DictExpr | BinOp | UnaryOp | Pipeline


# ------------------------------------------------------------------ statements
@dataclass(frozen=True)
class Target:
    name: str
    span: Span


@dataclass(frozen=True)
class TensorTypeExpr:
    dtype: str
    dtype_span: Span
    dims: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True)
class InputDecl:
    name: str
    name_span: Span
    type: TensorTypeExpr | None
    span: Span


@dataclass(frozen=True)
class OutputDecl:
    targets: tuple[Target, ...]
    value: Expr | None
    span: Span


@dataclass(frozen=True)
class Binding:
    targets: tuple[Target, ...]
    value: Expr
    span: Span


@dataclass(frozen=True)
class SharedDecl:
    name: str
    name_span: Span
    value: Expr
    span: Span


@dataclass(frozen=True)
class IfStmt:
    cond: Expr
    body: tuple[Stmt, ...]
    orelse: tuple[Stmt, ...]
    span: Span


Stmt = InputDecl | OutputDecl | Binding | SharedDecl | IfStmt


# ---------------------------------------------------------------- declarations
@dataclass(frozen=True)
class Param:
    name: str
    name_span: Span
    type: str
    type_span: Span
    default: Expr | None


@dataclass(frozen=True)
class ModelDecl:
    """A ``model`` or a ``block``: both are parameterised graphs."""

    is_block: bool
    name: str
    name_span: Span
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]
    span: Span

    @property
    def word(self) -> str:
        return "block" if self.is_block else "model"


@dataclass(frozen=True)
class Setting:
    key: str
    key_span: Span
    value: Expr
    span: Span


@dataclass(frozen=True)
class StepDecl:
    name: str
    name_span: Span
    settings: tuple[Setting | StepDecl, ...]
    span: Span


@dataclass(frozen=True)
class PhaseDecl:
    """`phase name { ... }` in a train section: settings (and steps) of one phase."""

    name: str
    name_span: Span
    settings: tuple[Setting | StepDecl | PhaseDecl, ...]
    span: Span


@dataclass(frozen=True)
class TrainDecl:
    model: str
    model_span: Span
    args: tuple[Expr, ...]
    kwargs: tuple[Kwarg, ...]
    settings: tuple[Setting | StepDecl | PhaseDecl, ...]
    span: Span


@dataclass(frozen=True)
class ImportDecl:
    path: str
    span: Span


@dataclass
class Module:
    """One parsed file."""

    file: str
    imports: list[ImportDecl] = field(default_factory=list)
    models: list[ModelDecl] = field(default_factory=list)
    trains: list[TrainDecl] = field(default_factory=list)


def declared_ports(body: tuple[Stmt, ...]) -> set[str]:
    """Input and output names a model body declares (inside `if` branches too)."""
    out: set[str] = set()
    for st in body:
        if isinstance(st, InputDecl):
            out.add(st.name)
        elif isinstance(st, OutputDecl):
            out.update(t.name for t in st.targets)
        elif isinstance(st, IfStmt):
            out |= declared_ports(st.body) | declared_ports(st.orelse)
    return out
