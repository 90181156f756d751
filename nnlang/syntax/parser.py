"""Parse .nn text into the typed AST: grammar loading, the public entry points
(:func:`parse`, :func:`parse_file`), and the checks made before and after Lark runs (file
size, bracket balance, nesting depth).

Lark errors are worded by :mod:`nnlang.syntax.errors`; after one, parsing resumes at the
next statement (:mod:`nnlang.syntax.recover`) so that several are reported at once; the
tree becomes AST nodes in :mod:`nnlang.syntax.tree`. Lark types never leave
``nnlang.syntax``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

import lark
from lark import Lark, Token

from nnlang import fsio
from nnlang.diagnostics import Diagnostic, Label, NNError, Span
from nnlang.syntax import ast as A
from nnlang.syntax.errors import string_literal_error, syntax_error
from nnlang.syntax.recover import MAX_SYNTAX_ERRORS, Points, error_pos, recover
from nnlang.syntax.tree import ToAST

#: Larger files are refused up front: Lark parses roughly 100 KB a second, so a bigger file
#: would look like a hang (a real model file is a few KB).
MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64
#: Deepest syntax tree accepted (operator chains such as `- - - x` or `1 + 1 + ...`,
#: `else if` ladders); later stages walk the tree recursively.
MAX_TREE_DEPTH = 200
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


_OPTIONS = {
    "parser": "lalr",
    "lexer": "contextual",
    "propagate_positions": True,
    "maybe_placeholders": False,
}


def _encode(x: object) -> object:
    """Lark's serialized parser as JSON: tuples and dicts (int keys) tagged, so that
    :func:`_decode` gives back exactly what ``Lark.memo_serialize`` made."""
    if isinstance(x, dict):
        return {"d": [[_encode(k), _encode(v)] for k, v in x.items()]}
    if isinstance(x, tuple):
        return {"t": [_encode(v) for v in x]}
    if isinstance(x, list):
        return [_encode(v) for v in x]
    return x


def _decode(obj: dict) -> object:
    if "d" in obj:
        return {k if not isinstance(k, list) else tuple(k): v for k, v in obj["d"]}
    return tuple(obj["t"])


def _cache_file(text: str) -> Path:
    key = hashlib.sha256(repr((text, lark.__version__, _OPTIONS)).encode()).hexdigest()[:32]
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "nnlang" / "parser" / f"{key}.json"


@lru_cache(maxsize=1)
def _parser() -> Lark:
    """The LALR parser. Lark's analysis of the grammar takes 0.2-0.4 s, every process;
    its result (the tables, plain data) is kept as JSON in the user's cache folder under
    the hash of the grammar, Lark's version and the options, and loaded in about 15 ms
    (Lark's own cache would be a pickle). NNLANG_NO_CACHE=1 builds it every time."""
    from lark.grammar import Rule
    from lark.lexer import TerminalDef

    text = grammar_text()
    if os.environ.get("NNLANG_NO_CACHE"):
        return Lark(text, **_OPTIONS)
    path = _cache_file(text)
    try:
        return Lark.load(json.loads(path.read_text("utf-8"), object_hook=_decode))
    except Exception:  # noqa: BLE001 - absent, unreadable or from another version: build it
        pass
    parser = Lark(text, **_OPTIONS)
    data, memo = parser.memo_serialize([TerminalDef, Rule])
    try:
        fsio.atomic_write_text(path, json.dumps(_encode({"data": data, "memo": memo})))
    except OSError:  # a read-only home: build it every time
        pass
    return parser


def build_parser_strict() -> Lark:
    """Build the grammar with Lark's strict mode (collisions are errors); for tests."""
    return Lark(grammar_text(), parser="lalr", lexer="basic", strict=True)


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


def is_expression(src: str) -> bool:
    """Whether ``src`` is one whole expression (for hints that try a fix first)."""
    try:
        _parser().parse(f"model M {{ _ = {src}\n}}")
    except lark.exceptions.LarkError:
        return False
    return True


def _parse_tree(file: str, text: str) -> lark.Tree[Token]:
    """The Lark tree of ``text``, or :class:`NNError` with every syntax error found (up
    to :data:`MAX_SYNTAX_ERRORS`): after each, parsing resumes at the next statement."""
    errors: list[Diagnostic] = []
    points: list[Points] = []  # made on the first error only
    last = [-1]

    def on_error(e: lark.exceptions.UnexpectedInput) -> bool:
        pos = error_pos(e)
        if pos is not None and pos <= last[0]:
            return False  # no progress: stop rather than report the same place again
        errors.append(syntax_error(file, text, e, is_expression))
        if len(errors) >= MAX_SYNTAX_ERRORS or pos is None:
            if len(errors) >= MAX_SYNTAX_ERRORS:
                errors[-1].notes.append(
                    f"stopped after {MAX_SYNTAX_ERRORS} syntax errors; fix these first"
                )
            return False
        last[0] = pos
        if not points:
            points.append(Points(text))
        try:
            return recover(e, text, points[0])
        except Exception:  # noqa: BLE001 - recovery is best effort; the errors found stand
            return False

    try:
        tree = _parser().parse(text, on_error=on_error)
    except lark.exceptions.UnexpectedInput as e:
        if not errors:  # pragma: no cover - on_error sees every error first
            errors.append(syntax_error(file, text, e, is_expression))
    if errors:
        raise NNError(errors)
    return tree


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
    tree = _parse_tree(file, text)
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
        transformer = ToAST(file)
        items = transformer.transform(tree)
        if transformer.errors:
            raise NNError(transformer.errors)
    except RecursionError:
        raise NNError(too_deep) from None
    except lark.exceptions.VisitError as e:
        if isinstance(e.orig_exc, RecursionError):
            raise NNError(too_deep) from None
        if isinstance(e.orig_exc, (ValueError, SyntaxError)):
            raise NNError(string_literal_error(file, e)) from None
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
