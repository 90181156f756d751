"""`nnlang fmt`: the canonical layout of a .nn file, changing whitespace only.

The file is split into tokens by the grammar's own lexer, comments included; the output
has exactly the same tokens in the same order (checked before anything is written), so
it parses to the same program. What it decides:

- **Lines.** Line breaks stay where they are written (newlines are not significant, so
  where to break is the author's); trailing whitespace goes; runs of blank lines become
  one; the file has no leading blank lines and ends with one newline.
- **Indentation.** A statement is indented 4 spaces per open ``{``; a ``}`` line one
  level less. A continuation line (inside brackets, starting with an operator such as
  ``->``, or after a line ending in one) keeps its indentation relative to its
  statement's first line, so a pipeline aligned under its first ``->`` stays aligned.
- **Spaces.** One space around ``=``, ``->``, binary operators and comparisons, after
  ``,`` and ``:``, before ``{`` and before a trailing comment's ``#`` (two); none inside
  brackets, before ``,`` ``:`` ``;`` ``)`` ``]``, between a name and its ``(`` or ``[``,
  or after a unary minus.
- **Alignment.** In consecutive lines of one block that each bind ``name = ...``, the
  ``=`` signs are aligned (as train sections are written).

Formatting is idempotent: a formatted file formats to itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

#: a dictionary's braces (``{data: 2}``) are told from a block's by what precedes them
#: (:func:`tokens` renames them): they lay out like brackets, not blocks
OPEN, CLOSE = {"LPAR", "LSQB", "LBRACE", "LDICT"}, {"RPAR", "RSQB", "RBRACE", "RDICT"}
BINARY = {"ARROW", "COMP_OP", "POW", "STAR", "MUL_OP", "ADD_OP", "EQUAL", "AND", "OR"}
#: a line ending in one of these continues on the next
CONTINUES = BINARY | {"COMMA", "LPAR", "LSQB", "LDICT", "NOT", "COLON"}
#: a `{` after one of these opens a dictionary (an expression starts there)
STARTS_EXPR = BINARY | {"COMMA", "LPAR", "LSQB", "LDICT", "COLON", "NOT", "IF"}
KEYWORDS = {"MODEL", "BLOCK", "TRAIN", "STEP", "INPUT", "OUTPUT", "SHARED", "IF", "ELSE"}
KEYWORDS |= {"IMPORT", "NOT"}


@dataclass
class Tok:
    type: str
    value: str
    line: int
    col: int


@lru_cache(maxsize=1)
def _lexer() -> Any:
    from lark import Lark

    from nnlang.syntax.parser import grammar_text

    return Lark(grammar_text(), parser="lalr", lexer="basic")


def tokens(text: str) -> list[Tok]:
    """Every token but whitespace, comments included (a lexing error raises Lark's); a
    dictionary's braces are ``LDICT``/``RDICT``."""
    out: list[Tok] = []
    braces: list[bool] = []  # open braces: whether each is a dictionary's
    last = ""  # the type of the last token that is not a comment
    for t in _lexer().lex(text, dont_ignore=True):
        if t.type == "WS":
            continue
        kind = t.type
        if kind == "LBRACE":
            braces.append(last in STARTS_EXPR)
            kind = "LDICT" if braces[-1] else kind
        elif kind == "RBRACE" and braces:
            kind = "RDICT" if braces.pop() else kind
        out.append(Tok(kind, str(t), int(t.line or 0), int(t.column or 1)))
        last = kind if kind != "COMMENT" else last
    return out


def _unary(prev: Tok | None) -> bool:
    return prev is None or prev.type in BINARY | OPEN | {"COMMA", "COLON", "SEMI", "NOT"}


def _space(prev: Tok, tok: Tok, before_prev: Tok | None) -> str:
    """The spaces between two tokens on one line."""
    if tok.type == "COMMENT":
        return "  "
    if prev.type in OPEN or tok.type in CLOSE - {"RBRACE"}:
        return ""
    if tok.type in {"COMMA", "COLON", "SEMI"}:
        return ""
    if prev.type == "ADD_OP" and _unary(before_prev):
        return ""  # -1, -x
    if tok.type in {"LPAR", "LSQB"} and prev.type in {"NAME", "RPAR", "RSQB"}:
        return ""  # dense(…), f32[…], f(x)(y)
    if tok.type in {"LPAR", "LSQB"} and prev.type in KEYWORDS - {"NOT"}:
        return " "
    return " "


@dataclass
class Line:
    toks: list[Tok]
    blank_before: bool
    indent: int  # the written indentation (columns), for continuation lines
    depth: int = 0  # open braces at its start
    continuation: bool = False


def _lines(text: str, toks: list[Tok]) -> list[Line]:
    src = text.splitlines()
    by_line: dict[int, list[Tok]] = {}
    for t in toks:
        by_line.setdefault(t.line, []).append(t)
    lines, last = [], 0
    for n in sorted(by_line):
        blank = any(not src[i - 1].strip() for i in range(last + 1, n)) if last else False
        lines.append(Line(by_line[n], blank, by_line[n][0].col - 1))
        last = n
    return lines


def format_text(text: str) -> str:
    """``text`` in the canonical layout (the same tokens; see the module doc)."""
    toks = tokens(text)
    lines = _lines(text, toks)
    braces, brackets = 0, 0
    prev_last: Tok | None = None
    for ln in lines:
        first = ln.toks[0]
        ln.continuation = brackets > 0 or (
            prev_last is not None
            and prev_last.type != "COMMENT"
            and (prev_last.type in CONTINUES or first.type in BINARY)
        )
        ln.depth = braces - (1 if first.type == "RBRACE" else 0)
        for t in ln.toks:
            if t.type == "LBRACE":
                braces += 1
            elif t.type == "RBRACE":
                braces = max(braces - 1, 0)
            elif t.type in ("LPAR", "LSQB", "LDICT"):
                brackets += 1
            elif t.type in ("RPAR", "RSQB", "RDICT"):
                brackets = max(brackets - 1, 0)
        code = [t for t in ln.toks if t.type != "COMMENT"]
        prev_last = code[-1] if code else prev_last
    texts = [_render(ln) for ln in lines]
    _align(lines, texts)
    out: list[str] = []
    head_indent = 0  # the written and the new indentation of the current statement
    new_indent = 0
    for ln, body in zip(lines, texts, strict=True):
        if ln.continuation:  # its written offset from the statement, at least 4
            least = (
                0 if ln.toks[0].type in ("RPAR", "RSQB", "RDICT") else 4
            )  # `) {` closing a header
            indent = new_indent + max(ln.indent - head_indent, least)
        else:
            indent = 4 * ln.depth
            head_indent, new_indent = ln.indent, indent
        if ln.blank_before and out:
            out.append("")
        out.append(" " * indent + body)
    return "\n".join(out) + "\n" if out else ""


def _render(ln: Line) -> str:
    parts, prev, before = [], None, None
    for t in ln.toks:
        if prev is not None:
            parts.append(_space(prev, t, before))
        parts.append(t.value.rstrip() if t.type == "COMMENT" else t.value)
        before, prev = prev, t
    return "".join(parts)


def _align(lines: list[Line], texts: list[str]) -> None:
    """Align the `=` of consecutive `name = ...` statements at one depth."""

    def key(i: int) -> int | None:  # a one-line `name = ...` statement
        ln = lines[i]
        t = ln.toks
        if ln.continuation or len(t) < 3 or t[0].type != "NAME" or t[1].type != "EQUAL":
            return None
        if i + 1 < len(lines) and lines[i + 1].continuation:
            return None
        return len(t[0].value)

    i = 0
    while i < len(lines):
        j = i
        while j < len(lines) and key(j) is not None and lines[j].depth == lines[i].depth:
            if j > i and lines[j].blank_before:
                break
            j += 1
        if j - i >= 2:
            width = max(key(k) or 0 for k in range(i, j))
            for k in range(i, j):
                name = lines[k].toks[0].value
                texts[k] = name.ljust(width) + texts[k][len(name) :]
        i = max(j, i + 1)
    _align_comments(lines, texts)


def _align_comments(lines: list[Line], texts: list[str]) -> None:
    """Trailing comments of consecutive lines start in one column (two after the
    longest code among them)."""

    def code_width(i: int) -> int | None:
        t = lines[i].toks
        if len(t) < 2 or t[-1].type != "COMMENT":
            return None
        return len(texts[i]) - len(t[-1].value.rstrip()) - 2

    i = 0
    while i < len(lines):
        j = i
        while (
            j < len(lines) and code_width(j) is not None and (j == i or not lines[j].blank_before)
        ):
            j += 1
        if j - i >= 2:
            # widths measured with each line's own indentation, added later: compare
            # lines of one indentation only (a run of one block)
            col = max((code_width(k) or 0) + _pad(lines, k) for k in range(i, j)) + 2
            for k in range(i, j):
                w = code_width(k) or 0
                comment = lines[k].toks[-1].value.rstrip()
                texts[k] = texts[k][:w].ljust(col - _pad(lines, k)) + comment
        i = max(j, i + 1)


def _pad(lines: list[Line], k: int) -> int:
    """A rough indentation of line ``k`` for comparing widths across lines."""
    ln = lines[k]
    return 4 * ln.depth + (4 if ln.continuation else 0)


def same_tokens(a: str, b: str) -> bool:
    return [(t.type, t.value.rstrip()) for t in tokens(a)] == [
        (t.type, t.value.rstrip()) for t in tokens(b)
    ]
