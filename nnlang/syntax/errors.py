"""Translation of Lark parse errors into nnlang diagnostics (E001-E003, E006): how each
expected token is worded, the caret span, and the hints for common mistakes (a keyword typo,
a missing `=` or `->`, `!` for `not`, a malformed number, a bad string literal).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import lark
from lark import Token

from nnlang.diagnostics import Diagnostic, Span, did_you_mean
from nnlang.syntax.tree import span_of, tok_span

#: How each terminal is spelt for the user, instead of Lark's `RPAR` or `__ANON_0`.
EXPECTED_TEXT: dict[str, str] = {
    "IMPORT": "`import`",
    "MODEL": "`model`",
    "BLOCK": "`block`",
    "TRAIN": "`train`",
    "STEP": "`step`",
    "PHASE": "`phase`",
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
KEYWORDS = (
    "import",
    "model",
    "block",
    "train",
    "step",
    "phase",
    "input",
    "output",
    "shared",
    "if",
    "else",
)
#: Words that are keywords too, but not ones a misspelling is likely to have meant.
LITERAL_WORDS = frozenset({"true", "false", "and", "or", "not"})
#: What the parser may expect after a name that starts a statement or setting.
STATEMENT_FOLLOW = frozenset(
    {"EQUAL", "COMMA", "SEMI", "RBRACE", "NAME", "INPUT", "OUTPUT", "SHARED", "IF", "STEP", "PHASE"}
)


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


def _malformed_number_error(file: str, text: str, run: tuple[int, int]) -> Diagnostic:
    """E006 for the characters ``text[run[0]:run[1]]`` that look like a number but are not."""
    return Diagnostic(
        "E006",
        f"malformed number `{text[run[0] : run[1]]}`",
        _span_at(file, text, *run),
        label="not a number",
        help="numbers look like 3, 0.5, 1e-3 or .5",
    )


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


#: A single `=` (not part of `==`, `!=`, `<=` or `>=`).
_ASSIGN = re.compile(r"(?<![=!<>])=(?!=)")


def _call_text(text: str, start: int, name: str) -> str:
    """``name`` and, when `(` follows it on its line, its argument list (`dense(10)`)."""
    i = start + len(name)
    end = text.find("\n", i)
    end = len(text) if end < 0 else end
    j = i
    while j < end and text[j] in " \t":
        j += 1
    if j >= end or text[j] != "(":
        return name
    depth = 0
    for k in range(j, end):
        depth += {"(": 1, ")": -1}.get(text[k], 0)
        if depth == 0:
            call = name + text[j : k + 1]
            return call if len(call) <= 40 else f"{name}(...)"
    return f"{name}(...)"


def _missing_arrow(
    file: str,
    text: str,
    t: Token,
    expected: set[str],
    prev: tuple[str, int] | None,
    statement: bool,
    is_expression: Callable[[str], bool] | None,
) -> Diagnostic | None:
    """E002 for a layer or block call that follows a value without `->` (`x dense(10)`).

    Two shapes: inside an expression the parser expected `->` and got the name; or, at
    the end of a statement, the name was read as the start of a new statement on the
    same line. The second is reported only when writing `->` there is valid (checked
    by parsing the statement with it: ``is_expression``)."""
    inside = t.type == "NAME" and "ARROW" in expected
    if inside:
        name, start = str(t), t.start_pos
    elif statement and prev is not None and prev[0] not in KEYWORDS and is_expression:
        name, start = prev
    else:
        return None
    if start is None:
        return None
    line_start = text.rfind("\n", 0, start) + 1
    before = text[line_start:start]
    if not before.strip():  # the name starts its line: a new statement, not a step
        return None
    right = _call_text(text, start, name)
    if inside:
        cut = max(before.rfind(c) for c in "(,=")
        left = before[cut + 1 :].strip()
        ok = bool(left) and (is_expression is None or is_expression(f"{left} -> {right}"))
        help = "a pipeline step needs `->` before it" + (
            f": `{left} -> {right}`" if ok and len(left) <= 40 else ""
        )
        return Diagnostic(
            "E002",
            f"unexpected {_token_text(t)}",
            tok_span(file, t),
            label=_expected(expected),
            help=help,
        )
    assign = _ASSIGN.search(before)
    left = before[assign.end() :].strip() if assign else ""
    if not left or is_expression is None or not is_expression(f"{left} -> {right}"):
        return None
    shown = left if len(left) <= 40 else "..."
    return Diagnostic(
        "E002",
        f"missing `->` before `{name}`",
        _span_at(file, text, start, start + len(name)),
        label=f"`{name}` follows a value, so it reads as a new statement",
        help=f"a pipeline step needs `->` before it: `{shown} -> {right}`",
    )


def syntax_error(
    file: str,
    text: str,
    e: lark.exceptions.LarkError,
    is_expression: Callable[[str], bool] | None = None,
) -> Diagnostic:
    """The diagnostic for one Lark error. ``is_expression`` says whether a piece of text
    is a whole expression (the parser's answer), for hints that try a fix first."""
    if isinstance(e, lark.exceptions.UnexpectedCharacters):
        span = Span.point(file, e.line, e.column)
        ch = text[e.pos_in_stream] if e.pos_in_stream < len(text) else ""
        run = _malformed_number(text, e.pos_in_stream) if ch in _WORD_CHARS else None
        if run is not None:
            return _malformed_number_error(file, text, run)
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
        span = tok_span(file, t)
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
                return _malformed_number_error(file, text, run)
        prev = _prev_word(text, start) if start is not None else None
        # after a name at the start of a statement or setting: only `=` (or `,`) can follow
        statement = "EQUAL" in expected and expected <= STATEMENT_FOLLOW
        arrow = _missing_arrow(file, text, t, expected, prev, statement, is_expression)
        if arrow is not None:
            return arrow
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
        if hint is None and t.type == "NAME" and str(t) not in LITERAL_WORDS:
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
            and t.type in {"MODEL", "BLOCK", "TRAIN", "INPUT", "OUTPUT", "SHARED", "STEP", "PHASE"}
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


def _reason(e: BaseException) -> str:
    """Why Python could not read a string literal, without its `(<unknown>, line 1)`."""
    text = (getattr(e, "msg", None) or str(e) or "cannot be read").splitlines()[0]
    return re.sub(r"\s*\(<unknown>, line \d+\)$", "", text).replace("(unicode error) ", "")


def string_literal_error(file: str, e: lark.exceptions.VisitError) -> Diagnostic:
    """E006 for a string literal the transformer could not read (``e.orig_exc``)."""
    return Diagnostic(
        "E006",
        f"bad string literal: {_reason(e.orig_exc)}",
        span_of(file, getattr(e.obj, "meta", None)),
        label="cannot be read",
        help="in strings, write `\\\\` for a backslash (or use `/` in paths)",
    )
