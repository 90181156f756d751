"""Parse .nn text into the typed AST, turning every Lark error into a diagnostic.

Lark types never leave this module.
"""

from __future__ import annotations

import ast as pyast
import re
import warnings
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import lark
from lark import Lark, Token, Transformer, v_args

from nnlang.diagnostics import Diagnostic, Label, NNError, Span, did_you_mean
from nnlang.syntax import ast as A

#: Larger files are refused up front: Lark parses roughly 100 KB a second, so a bigger file
#: would look like a hang (a real model file is a few KB).
MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64
#: Deepest syntax tree accepted (operator chains such as `- - - x` or `1 + 1 + ...`,
#: `else if` ladders); later stages walk the tree recursively.
MAX_TREE_DEPTH = 200

#: How each terminal is spelt for the user, instead of Lark's `RPAR` or `__ANON_0`.
EXPECTED_TEXT: dict[str, str] = {
    "IMPORT": "`import`",
    "MODEL": "`model`",
    "BLOCK": "`block`",
    "TRAIN": "`train`",
    "STEP": "`step`",
    "INPUT": "`input`",
    "OUTPUT": "`output`",
    "SHARED": "`shared`",
    "IF": "`if`",
    "ELSE": "`else`",
    "AND": "`and`",
    "OR": "`or`",
    "NOT": "`not`",
    "TRUE": "`true`",
    "FALSE": "`false`",
    "ARROW": "`->`",
    "COMP_OP": "a comparison",
    "POW": "`**`",
    "STAR": "`*`",
    "MUL_OP": "`/`",
    "ADD_OP": "`+` or `-`",
    "EQUAL": "`=`",
    "LPAR": "`(`",
    "RPAR": "`)`",
    "LSQB": "`[`",
    "RSQB": "`]`",
    "LBRACE": "`{`",
    "RBRACE": "`}`",
    "COMMA": "`,`",
    "COLON": "`:`",
    "SEMI": "`;`",
    "NAME": "a name",
    "INT": "an integer",
    "FLOAT": "a number",
    "STRING": "a string",
    "$END": "end of file",
}
KEYWORDS = ("import", "model", "block", "train", "step", "input", "output", "shared", "if", "else")
#: What the parser may expect after a name that starts a statement or setting.
STATEMENT_FOLLOW = frozenset(
    {"EQUAL", "COMMA", "SEMI", "RBRACE", "NAME", "INPUT", "OUTPUT", "SHARED", "IF", "STEP"}
)
OPENERS = {"(": ")", "[": "]", "{": "}"}
CLOSERS = {v: k for k, v in OPENERS.items()}


def grammar_text() -> str:
    """The grammar: ``nnlang/grammar/nnlang.lark`` in an installed wheel, or
    ``grammar/nnlang.lark`` beside the package when running from a source checkout."""
    source_tree = Path(__file__).resolve().parents[2] / "grammar" / "nnlang.lark"
    try:
        return resources.files("nnlang.grammar").joinpath("nnlang.lark").read_text("utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        return source_tree.read_text("utf-8")


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(
        grammar_text(),
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=False,
    )


def build_parser_strict() -> Lark:
    """Build the grammar with Lark's strict mode (collisions are errors); for tests."""
    return Lark(grammar_text(), parser="lalr", lexer="basic", strict=True)


# ------------------------------------------------------------------ spans
def _tok_span(file: str, t: Token) -> Span:
    return Span(
        file,
        t.line or 1,
        t.column or 1,
        t.end_line or t.line or 1,
        t.end_column or (t.column or 1) + 1,
    )


def _span_of(file: str, meta: Any) -> Span:
    if getattr(meta, "empty", True):
        return Span(file, 1, 1, 1, 2)
    return Span(file, meta.line, meta.column, meta.end_line, meta.end_column)


def _join(a: Span, b: Span) -> Span:
    return Span(a.file, a.line, a.col, b.end_line, b.end_col)


# ------------------------------------------------------------- pre-scan
_INTERESTING = re.compile(r'[#"()\[\]{}\n]')


def _scan_brackets(file: str, text: str) -> list[Diagnostic]:
    """Bracket balance and depth, ignoring comments and strings: precise 'opened here'."""
    out: list[Diagnostic] = []
    stack: list[tuple[str, Span]] = []
    line, col, i, n = 1, 1, 0, len(text)
    while i < n:
        m = _INTERESTING.search(text, i)  # jump over ordinary characters in C
        if m is None:
            break
        col += m.start() - i
        i = m.start()
        ch = text[i]
        if ch == "#":
            j = text.find("\n", i)
            j = n if j < 0 else j
            col += j - i
            i = j
            continue
        if ch == '"':
            j = i + 1
            while j < n and text[j] not in '"\n':
                j += 2 if text[j] == "\\" and text[j + 1 : j + 2] not in ("", "\n") else 1
            if j >= n or text[j] != '"':
                return [
                    Diagnostic(
                        "E006",
                        "unterminated string",
                        Span.point(file, line, col),
                        label="string starts here",
                        help='close the string with `"` on the same line',
                    )
                ]
            col += j + 1 - i
            i = j + 1
            continue
        if ch in OPENERS:
            stack.append((ch, Span.point(file, line, col)))
            if len(stack) > MAX_DEPTH:
                return [
                    Diagnostic(
                        "E007",
                        f"brackets nested more than {MAX_DEPTH} deep",
                        Span.point(file, line, col),
                        label="too deep",
                        help="split the expression into named values",
                    )
                ]
        elif ch in CLOSERS:
            here = Span.point(file, line, col)
            if not any(opener == CLOSERS[ch] for opener, _ in stack) and not (
                stack and stack[-1][1].line == line
            ):
                out.append(
                    Diagnostic(
                        "E005",
                        f"unmatched closing `{ch}`",
                        here,
                        label=f"no `{CLOSERS[ch]}` is open here",
                        help="remove it",
                    )
                )
            elif stack[-1][0] != CLOSERS[ch]:
                opener, where = stack.pop()
                if where.line == line:
                    out.append(
                        Diagnostic(
                            "E004",
                            f"expected `{OPENERS[opener]}` to close `{opener}` but found `{ch}`",
                            here,
                            label=f"expected `{OPENERS[opener]}`",
                            secondary=[Label(where, "opened here")],
                        )
                    )
                else:  # the mistake is most likely where the bracket was opened
                    out.append(
                        Diagnostic(
                            "E004",
                            f"unclosed `{opener}`",
                            where,
                            label="opened here",
                            secondary=[Label(here, f"`{ch}` found before the `{OPENERS[opener]}`")],
                            help=f"add `{OPENERS[opener]}` to close it",
                        )
                    )
                return out
            else:
                stack.pop()
        if ch == "\n":
            line, col = line + 1, 1
        else:
            col += 1
        i += 1
    for opener, where in reversed(stack):
        lines = text.splitlines() or [""]
        end_line, last = len(lines), lines[-1]
        out.append(
            Diagnostic(
                "E004",
                f"unclosed `{opener}`",
                where,
                label="opened here",
                help=f"add `{OPENERS[opener]}` to close it",
                secondary=[Label(Span.point(file, end_line, len(last) + 1), "file ends here")],
            )
        )
        break
    return out


# ---------------------------------------------------------- error translation
def _expected(names: set[str]) -> str:
    texts = sorted({EXPECTED_TEXT.get(n, n.lower()) for n in names if not n.startswith("__")})
    if not texts:
        return ""
    if len(texts) > 6:
        texts = texts[:6] + ["..."]
    return "expected " + ", ".join(texts)


def _token_text(t: Token) -> str:
    if t.type == "$END":
        return "end of file"
    return f"`{t}`"


def _char_text(ch: str) -> str:
    """A character as the user should read it: `@`, or U+0000 for invisible ones."""
    return f"`{ch}`" if ch.isprintable() and not ch.isspace() else f"U+{ord(ch):04X}"


def _span_at(file: str, text: str, start: int, end: int) -> Span:
    """The span of ``text[start:end]`` (one line)."""
    line = text.count("\n", 0, start) + 1
    col = start - (text.rfind("\n", 0, start) + 1) + 1
    return Span(file, line, col, line, col + max(end - start, 1))


_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.")


def _malformed_number(text: str, pos: int) -> tuple[int, int] | None:
    """The extent of a malformed number touching ``pos`` (`1.2.3`, `12abc`, `1e`), if the
    run of letters, digits and dots around it starts like a number."""
    start, end = pos, pos
    while start > 0 and text[start - 1] in _WORD_CHARS:
        start -= 1
    while end < len(text) and text[end] in _WORD_CHARS:
        end += 1
    word = text[start:end]
    if word[:1].isdigit() or (word[:1] == "." and word[1:2].isdigit()):
        return start, end
    return None


def _code_end(line: str) -> int:
    """Where the code of one line ends (before a `#` comment outside a string)."""
    in_str = False
    i = 0
    while i < len(line):
        ch = line[i]
        if in_str and ch == "\\":
            i += 2
            continue
        if ch == '"':
            in_str = not in_str
        elif ch == "#" and not in_str:
            return i
        i += 1
    return len(line)


def _prev_word(text: str, pos: int) -> tuple[str, int] | None:
    """The name just before ``pos`` (skipping spaces and comments) and where it starts."""
    i = pos
    while True:
        while i > 0 and text[i - 1] in " \t\r\n":
            i -= 1
        ls = text.rfind("\n", 0, i) + 1
        cut = ls + _code_end(text[ls:i])
        if cut < i:  # the text before `pos` ends in a comment
            i = cut
            continue
        break
    j = i
    while j > ls and (text[j - 1].isalnum() or text[j - 1] == "_"):
        j -= 1
    word = text[j:i]
    if word and (word[0].isalpha() or word[0] == "_"):
        return word, j
    return None


def _syntax_error(file: str, text: str, e: lark.exceptions.LarkError) -> Diagnostic:
    if isinstance(e, lark.exceptions.UnexpectedCharacters):
        span = Span.point(file, e.line, e.column)
        ch = text[e.pos_in_stream] if e.pos_in_stream < len(text) else ""
        run = _malformed_number(text, e.pos_in_stream) if ch in _WORD_CHARS else None
        if run is not None:
            return Diagnostic(
                "E006",
                f"malformed number `{text[run[0] : run[1]]}`",
                _span_at(file, text, *run),
                label="not a number",
                help="numbers look like 3, 0.5, 1e-3 or .5",
            )
        if ch == '"':
            return Diagnostic(
                "E006",
                "unterminated string",
                span,
                label="string starts here",
                help='close the string with `"` on the same line',
            )
        hint = None
        if ch == "!":
            hint = "`not` negates a condition; `!=` compares"
        elif ch == "&":
            hint = "use `and`"
        elif ch == "|":
            hint = "use `or`"
        elif ch == "'":
            hint = 'strings use double quotes: "..."'
        elif ch == "." and e.pos_in_stream > 0 and text[e.pos_in_stream - 1] in _WORD_CHARS:
            hint = "names cannot contain `.`; use `_`"
        elif ch == "\ufeff":
            hint = "remove the byte-order mark (save the file as plain UTF-8)"
        return Diagnostic(
            "E001",
            f"unexpected character {_char_text(ch)}",
            span,
            label="not allowed here",
            help=hint,
        )
    if isinstance(e, lark.exceptions.UnexpectedToken):
        t: Token = e.token
        if t.type == "$END":
            last_line = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
            col = len(text.splitlines()[-1]) + 1 if text.splitlines() else 1
            return Diagnostic(
                "E003",
                "unexpected end of file",
                Span.point(file, last_line, col),
                label=_expected(set(e.expected)) or "here",
            )
        span = _tok_span(file, t)
        expected = set(e.expected)
        start = getattr(t, "start_pos", None)
        if (
            t.type in ("NAME", "INT", "FLOAT")
            and start is not None
            and start > 0
            and text[start - 1] in _WORD_CHARS
        ):
            run = _malformed_number(text, start)
            if run is not None:
                return Diagnostic(
                    "E006",
                    f"malformed number `{text[run[0] : run[1]]}`",
                    _span_at(file, text, *run),
                    label="not a number",
                    help="numbers look like 3, 0.5, 1e-3 or .5",
                )
        prev = _prev_word(text, start) if start is not None else None
        # after a name at the start of a statement or setting: only `=` (or `,`) can follow
        statement = "EQUAL" in expected and expected <= STATEMENT_FOLLOW
        if statement and prev is not None and prev[0] not in KEYWORDS:
            close = did_you_mean(prev[0], KEYWORDS)
            if close:
                return Diagnostic(
                    "E002",
                    f"`{prev[0]}` is not a keyword",
                    _span_at(file, text, prev[1], prev[1] + len(prev[0])),
                    label=f"followed by {_token_text(t)}, this reads as a name",
                    help=close,
                )
        hint = None
        if statement and prev is not None and "EQUAL" in expected:
            hint = f"missing `=`? write `{prev[0]} = ...`"
        if hint is None and t.type == "NAME":
            close = did_you_mean(str(t), KEYWORDS)
            if close:
                hint = close
        if hint is None and t.type == "EQUAL" and "COMP_OP" in expected:
            hint = "compare with `==`"
        if hint is None and t.type == "RBRACE" and "EQUAL" in expected:
            hint = "a statement here needs `=` and a value"
        if (
            hint is None
            and {"NAME"} & expected
            and t.type in {"MODEL", "BLOCK", "TRAIN", "INPUT", "OUTPUT", "SHARED", "STEP"}
        ):
            hint = f"`{t}` is a keyword and cannot be used as a name"
        return Diagnostic(
            "E002",
            f"unexpected {_token_text(t)}",
            span,
            label=_expected(expected),
            help=hint,
        )
    if isinstance(e, lark.exceptions.UnexpectedEOF):
        lines = text.splitlines() or [""]
        return Diagnostic(
            "E003", "unexpected end of file", Span.point(file, len(lines), len(lines[-1]) + 1)
        )
    return Diagnostic("E002", "syntax error", Span.point(file, 1, 1))


# ------------------------------------------------------------------ transformer
def _reason(e: BaseException) -> str:
    """Why Python could not read a string literal, without its `(<unknown>, line 1)`."""
    text = (getattr(e, "msg", None) or str(e) or "cannot be read").splitlines()[0]
    return re.sub(r"\s*\(<unknown>, line \d+\)$", "", text).replace("(unicode error) ", "")


def _unescape(raw: str) -> str:
    # A string literal is a quoted Python-compatible literal; literal_eval only builds a str.
    # An invalid escape (`"\e"`) is only a warning to Python, but a bad literal here.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            return str(pyast.literal_eval(raw))
        except Warning as w:
            raise ValueError(str(w)) from None


class _ToAST(Transformer[Token, Any]):
    def __init__(self, file: str) -> None:
        super().__init__(visit_tokens=False)
        self.file = file
        self.errors: list[Diagnostic] = []  # mistakes the grammar lets through

    def _s(self, meta: Any) -> Span:
        return _span_of(self.file, meta)

    def _t(self, t: Token) -> Span:
        return _tok_span(self.file, t)

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


def _too_deep(file: str, tree: lark.Tree[Token]) -> Diagnostic | None:
    """E007 at the first place the tree nests deeper than MAX_TREE_DEPTH (iterative,
    so it cannot overflow the stack itself)."""
    stack: list[tuple[lark.Tree[Token], int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_TREE_DEPTH:
            meta = node.meta
            span = (
                Span.point(file, meta.line, meta.column)
                if not getattr(meta, "empty", True)
                else Span.point(file, 1, 1)
            )
            return Diagnostic(
                "E007",
                f"code nested more than {MAX_TREE_DEPTH} levels deep",
                span,
                label="too deep",
                help="split the expression into named values",
            )
        stack.extend((c, depth + 1) for c in node.children if isinstance(c, lark.Tree))
    return None


def parse(text: str, file: str = "<input>") -> A.Module:
    """Parse one file's text. Raises :class:`NNError` with every syntax diagnostic."""
    if len(text.encode("utf-8", "replace")) > MAX_BYTES:
        raise NNError(
            Diagnostic(
                "E007",
                f"file is larger than {MAX_BYTES // (1024 * 1024)} MiB",
                Span.point(file, 1, 1),
                help="split it into files joined with `import`",
            )
        )
    if text.startswith("\ufeff"):  # a byte-order mark: keep the columns, drop the mark
        text = " " + text[1:]
    bracket_errors = _scan_brackets(file, text)
    if bracket_errors:
        raise NNError(bracket_errors)
    try:
        tree = _parser().parse(text)
    except lark.exceptions.UnexpectedInput as e:
        raise NNError(_syntax_error(file, text, e)) from None
    deep = _too_deep(file, tree)
    if deep is not None:
        raise NNError(deep)
    too_deep = Diagnostic(
        "E007",
        "expression nested too deeply",
        Span.point(file, 1, 1),
        help="split the expression into named values",
    )
    try:
        transformer = _ToAST(file)
        items = transformer.transform(tree)
        if transformer.errors:
            raise NNError(transformer.errors)
    except RecursionError:
        raise NNError(too_deep) from None
    except lark.exceptions.VisitError as e:
        if isinstance(e.orig_exc, RecursionError):
            raise NNError(too_deep) from None
        if isinstance(e.orig_exc, (ValueError, SyntaxError)):
            raise NNError(
                Diagnostic(
                    "E006",
                    f"bad string literal: {_reason(e.orig_exc)}",
                    _span_of(file, getattr(e.obj, "meta", None)),
                    label="cannot be read",
                    help="in strings, write `\\\\` for a backslash (or use `/` in paths)",
                )
            ) from None
        raise
    module = A.Module(file)
    for it in items:
        if isinstance(it, A.ImportDecl):
            module.imports.append(it)
        elif isinstance(it, A.ModelDecl):
            module.models.append(it)
        elif isinstance(it, A.TrainDecl):
            module.trains.append(it)
    return module


def parse_file(path: str | Path, display: str | None = None) -> tuple[A.Module, str]:
    p = Path(path)
    text = p.read_text("utf-8")
    return parse(text, display or str(path)), text
