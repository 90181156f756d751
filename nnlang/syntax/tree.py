"""The Lark tree -> typed AST transformer (:mod:`nnlang.syntax.ast` nodes) and the span
helpers that turn Lark positions into :class:`Span`.

Mistakes the grammar lets through are collected in :attr:`ToAST.errors`.
"""

from __future__ import annotations

import ast as pyast
import warnings
from typing import Any

from lark import Token, Transformer, v_args

from nnlang.diagnostics import Diagnostic, Label, Span
from nnlang.syntax import ast as A


# ------------------------------------------------------------------ spans
def tok_span(file: str, t: Token) -> Span:
    return Span(
        file,
        t.line or 1,
        t.column or 1,
        t.end_line or t.line or 1,
        t.end_column or (t.column or 1) + 1,
    )


def span_of(file: str, meta: Any) -> Span:
    if getattr(meta, "empty", True):
        return Span(file, 1, 1, 1, 2)
    return Span(file, meta.line, meta.column, meta.end_line, meta.end_column)


def join_spans(a: Span, b: Span) -> Span:
    return Span(a.file, a.line, a.col, b.end_line, b.end_col)


# ------------------------------------------------------------------ transformer
def _unescape(raw: str) -> str:
    # A string literal is a quoted Python-compatible literal; literal_eval only builds a str.
    # An invalid escape (`"\e"`) is only a warning to Python, but a bad literal here.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            return str(pyast.literal_eval(raw))
        except Warning as w:
            raise ValueError(str(w)) from None


class ToAST(Transformer[Token, Any]):
    def __init__(self, file: str) -> None:
        super().__init__(visit_tokens=False)
        self.file = file
        self.errors: list[Diagnostic] = []  # mistakes the grammar lets through

    def _s(self, meta: Any) -> Span:
        return span_of(self.file, meta)

    def _t(self, t: Token) -> Span:
        return tok_span(self.file, t)

    # literals ---------------------------------------------------------------
    @v_args(meta=True)
    def int_lit(self, meta: Any, c: list[Token]) -> A.Num:
        return A.Num(int(c[0]), self._s(meta))

    @v_args(meta=True)
    def float_lit(self, meta: Any, c: list[Token]) -> A.Num:
        return A.Num(float(c[0]), self._s(meta))

    @v_args(meta=True)
    def string_lit(self, meta: Any, c: list[Token]) -> A.Str:
        return A.Str(_unescape(str(c[0])), self._s(meta))

    @v_args(meta=True)
    def true_lit(self, meta: Any, c: list[Token]) -> A.Bool:
        return A.Bool(True, self._s(meta))

    @v_args(meta=True)
    def false_lit(self, meta: Any, c: list[Token]) -> A.Bool:
        return A.Bool(False, self._s(meta))

    @v_args(meta=True)
    def name(self, meta: Any, c: list[Token]) -> A.Name:
        return A.Name(str(c[0]), self._t(c[0]))

    # calls ------------------------------------------------------------------
    @v_args(meta=True)
    def kwarg(self, meta: Any, c: list[Any]) -> A.Kwarg:
        return A.Kwarg(str(c[0]), self._t(c[0]), c[2])

    def arg_list(self, c: list[Any]) -> list[Any]:
        return [x for x in c if not isinstance(x, Token)]

    @v_args(meta=True)
    def call(self, meta: Any, c: list[Any]) -> A.Call:
        args = [a for a in c[1] if not isinstance(a, A.Kwarg)]
        kwargs = [a for a in c[1] if isinstance(a, A.Kwarg)]
        seen_keyword = False
        for a in c[1]:
            if isinstance(a, A.Kwarg):
                seen_keyword = True
            elif seen_keyword:
                self.errors.append(
                    Diagnostic(
                        "E002",
                        "positional argument after a keyword argument",
                        a.span,
                        label="give this one by name too",
                        help="positional arguments come first: `conv(8, 3, stride = 2)`",
                    )
                )
                break
        return A.Call(str(c[0]), self._t(c[0]), tuple(args), tuple(kwargs), self._s(meta))

    @v_args(meta=True)
    def tuple(self, meta: Any, c: list[Any]) -> A.TupleExpr:
        return A.TupleExpr(tuple(x for x in c if not isinstance(x, Token)), self._s(meta))

    @v_args(meta=True)
    def list(self, meta: Any, c: list[Any]) -> A.ListExpr:
        return A.ListExpr(tuple(x for x in c if not isinstance(x, Token)), self._s(meta))

    def entry(self, c: list[Any]) -> A.Entry:
        key = _unescape(str(c[0])) if c[0].type == "STRING" else str(c[0])
        return A.Entry(key, self._t(c[0]), c[2])

    @v_args(meta=True)
    def dict(self, meta: Any, c: list[Any]) -> A.DictExpr:
        entries = tuple(x for x in c if isinstance(x, A.Entry))
        first: dict[str, Span] = {}
        for en in entries:
            if en.key in first:
                self.errors.append(
                    Diagnostic(
                        "E102",
                        f"key `{en.key}` is given twice in one `{{...}}`",
                        en.key_span,
                        label="given again here",
                        secondary=[Label(first[en.key], "first given here")],
                        help="each key of a `{key: value, ...}` appears once",
                    )
                )
            first.setdefault(en.key, en.key_span)
        return A.DictExpr(entries, self._s(meta))

    # operators --------------------------------------------------------------
    @v_args(meta=True)
    def binop(self, meta: Any, c: list[Any]) -> A.BinOp:
        return A.BinOp(str(c[1]), c[0], c[2], self._t(c[1]), self._s(meta))

    @v_args(meta=True)
    def unop(self, meta: Any, c: list[Any]) -> A.UnaryOp:
        return A.UnaryOp(str(c[0]), c[1], self._s(meta))

    @v_args(meta=True)
    def stage(self, meta: Any, c: list[Any]) -> A.Stage:
        repeat = c[2] if len(c) == 3 else None
        return A.Stage(c[0], repeat, self._s(meta))

    @v_args(meta=True)
    def pipe(self, meta: Any, c: list[Any]) -> A.Pipeline:
        stages = tuple(x for x in c[1:] if isinstance(x, A.Stage))
        return A.Pipeline(c[0], stages, self._s(meta))

    # statements -------------------------------------------------------------
    @v_args(meta=True)
    def tensor_type(self, meta: Any, c: list[Any]) -> A.TensorTypeExpr:
        dims = tuple(x for x in c[1:] if not isinstance(x, Token))
        return A.TensorTypeExpr(str(c[0]), self._t(c[0]), dims, self._s(meta))

    @v_args(meta=True)
    def input_decl(self, meta: Any, c: list[Any]) -> A.InputDecl:
        ttype = c[3] if len(c) > 3 else None
        return A.InputDecl(str(c[1]), self._t(c[1]), ttype, self._s(meta))

    def name_list(self, c: list[Token]) -> tuple[A.Target, ...]:
        return tuple(A.Target(str(t), self._t(t)) for t in c if t.type == "NAME")

    @v_args(meta=True)
    def output_decl(self, meta: Any, c: list[Any]) -> A.OutputDecl:
        value = c[3] if len(c) > 3 else None
        return A.OutputDecl(c[1], value, self._s(meta))

    @v_args(meta=True)
    def binding(self, meta: Any, c: list[Any]) -> A.Binding:
        return A.Binding(c[0], c[2], self._s(meta))

    @v_args(meta=True)
    def shared_decl(self, meta: Any, c: list[Any]) -> A.SharedDecl:
        return A.SharedDecl(str(c[1]), self._t(c[1]), c[3], self._s(meta))

    def _stmts(self, c: list[Any]) -> tuple[Any, ...]:
        return tuple(x for x in c if not isinstance(x, Token))

    @v_args(meta=True)
    def if_stmt(self, meta: Any, c: list[Any]) -> A.IfStmt:
        parts = self._stmts(c[1:])
        orelse: tuple[Any, ...] = ()
        if parts and isinstance(parts[-1], tuple):
            orelse = parts[-1]
            parts = parts[:-1]
        return A.IfStmt(c[1], tuple(parts[1:]), orelse, self._s(meta))

    def else_part(self, c: list[Any]) -> tuple[Any, ...]:
        return self._stmts(c)

    # declarations -----------------------------------------------------------
    @v_args(meta=True)
    def param(self, meta: Any, c: list[Any]) -> A.Param:
        default = c[4] if len(c) > 4 else None
        return A.Param(str(c[0]), self._t(c[0]), str(c[2]), self._t(c[2]), default)

    def param_list(self, c: list[Any]) -> tuple[A.Param, ...]:
        return tuple(x for x in c if isinstance(x, A.Param))

    def _model(self, meta: Any, c: list[Any], is_block: bool) -> A.ModelDecl:
        params: tuple[A.Param, ...] = ()
        body = []
        for x in c[2:]:
            if isinstance(x, tuple) and all(isinstance(p, A.Param) for p in x):
                params = x
            elif not isinstance(x, Token):
                body.append(x)
        return A.ModelDecl(is_block, str(c[1]), self._t(c[1]), params, tuple(body), self._s(meta))

    @v_args(meta=True)
    def model_decl(self, meta: Any, c: list[Any]) -> A.ModelDecl:
        return self._model(meta, c, False)

    @v_args(meta=True)
    def block_decl(self, meta: Any, c: list[Any]) -> A.ModelDecl:
        return self._model(meta, c, True)

    @v_args(meta=True)
    def assign(self, meta: Any, c: list[Any]) -> A.Setting:
        return A.Setting(str(c[0]), self._t(c[0]), c[2], self._s(meta))

    @v_args(meta=True)
    def step_decl(self, meta: Any, c: list[Any]) -> A.StepDecl:
        settings = tuple(x for x in c[2:] if not isinstance(x, Token))
        return A.StepDecl(str(c[1]), self._t(c[1]), settings, self._s(meta))

    @v_args(meta=True)
    def phase_decl(self, meta: Any, c: list[Any]) -> A.PhaseDecl:
        settings = tuple(x for x in c[2:] if not isinstance(x, Token))
        return A.PhaseDecl(str(c[1]), self._t(c[1]), settings, self._s(meta))

    @v_args(meta=True)
    def train_decl(self, meta: Any, c: list[Any]) -> A.TrainDecl:
        args: list[Any] = []
        settings = []
        for x in c[2:]:
            if isinstance(x, list):
                args = x
            elif not isinstance(x, Token):
                settings.append(x)
        return A.TrainDecl(
            str(c[1]),
            self._t(c[1]),
            tuple(a for a in args if not isinstance(a, A.Kwarg)),
            tuple(a for a in args if isinstance(a, A.Kwarg)),
            tuple(settings),
            self._s(meta),
        )

    @v_args(meta=True)
    def import_decl(self, meta: Any, c: list[Token]) -> A.ImportDecl:
        return A.ImportDecl(_unescape(str(c[1])), self._s(meta))

    def start(self, c: list[Any]) -> list[Any]:
        return c

    # `?stmt: (...) SEMI?` and friends leave a tree only when a `;` or brackets follow.
    def stmt(self, c: list[Any]) -> Any:
        return c[0]

    def setting(self, c: list[Any]) -> Any:
        return c[0]

    def atom(self, c: list[Any]) -> Any:  # `( expr )`
        return c[1]
