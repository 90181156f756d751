"""Recovery after a syntax error, so that one run reports several independent ones.

Panic-mode recovery on Lark's LALR parser, through its ``on_error`` hook and the
interactive parser that hook is handed: after an error the parser skips to the next
place a statement can start *at the brace depth of the error* (a keyword that begins a
statement or a declaration, or a name followed by `=` or `, name ... =`, at the start
of a line and outside brackets) or to the `}` that closes that depth, pops its stack to the
innermost state that accepts the first tokens there, and goes on. Resuming only at the
error's own depth is what keeps one mistake from reporting a second: a broken
`if n = 1 { ... } else { ... }` header resumes after the whole `if`, not inside it.

The places are found by a small tokenizer of its own (:func:`resume_points`), which
never fails, so recovery also works after a character the grammar's lexer cannot read.
Brackets are balanced by the time the parser runs (the pre-scan in
:mod:`nnlang.syntax.parser` refuses the file otherwise), so depths are exact.

May import lark and the standard library only.
"""

from __future__ import annotations

import bisect
import re
from copy import copy
from dataclasses import dataclass

import lark
from lark import Token
from lark.parsers.lalr_parser_state import ParserState

#: At most this many syntax errors are reported for one file.
MAX_SYNTAX_ERRORS = 20

_TOKEN = re.compile(
    r'#[^\n]*|"(?:[^"\\\n]|\\.)*"?|[A-Za-z_][A-Za-z0-9_]*|==|!=|<=|>=|->|\*\*|//|\S'
)
#: Keywords that begin a statement, a setting or a declaration, and their terminals.
STARTS = {
    "input": "INPUT",
    "output": "OUTPUT",
    "shared": "SHARED",
    "if": "IF",
    "step": "STEP",
    "phase": "PHASE",
    "model": "MODEL",
    "block": "BLOCK",
    "train": "TRAIN",
    "import": "IMPORT",
}
_RESERVED = frozenset(STARTS) | {"else", "and", "or", "not", "true", "false"}


@dataclass(frozen=True)
class Resume:
    """A place parsing may resume at: where it starts, the brace depth around it, and
    the terminals of its first tokens (what the parser must accept there)."""

    pos: int
    depth: int
    probe: tuple[str, ...]


def _is_name(tok: str) -> bool:
    return (tok[0].isalpha() or tok[0] == "_") and tok not in _RESERVED


class Points:
    """Every :class:`Resume` place of a text, and the brace depth at any position."""

    def __init__(self, text: str) -> None:
        toks = [(m.start(), m.group()) for m in _TOKEN.finditer(text) if m.group()[0] != "#"]
        self.points: list[Resume] = []
        self.brace_pos: list[int] = []  # positions of `{` and `}`, in order
        self.depth_after: list[int] = []  # the depth just after each of them
        depth = paren = 0
        for i, (pos, tok) in enumerate(toks):
            if tok in ("(", "["):
                paren += 1
            elif tok in (")", "]"):
                paren = max(paren - 1, 0)
            elif tok == "{":
                depth += 1
                self.brace_pos.append(pos)
                self.depth_after.append(depth)
            elif tok == "}":
                self.points.append(Resume(pos, depth, ("RBRACE",)))
                depth = max(depth - 1, 0)
                self.brace_pos.append(pos)
                self.depth_after.append(depth)
            elif paren or text[text.rfind("\n", 0, pos) + 1 : pos].strip():
                continue  # statements resume only at the start of a line, outside brackets
            elif tok in STARTS:
                self.points.append(Resume(pos, depth, (STARTS[tok],)))
            elif _is_name(tok):
                probe = ["NAME"]
                j = i + 1
                while j + 1 < len(toks) and toks[j][1] == "," and _is_name(toks[j + 1][1]):
                    probe += ["COMMA", "NAME"]
                    j += 2
                if j < len(toks) and toks[j][1] == "=":
                    self.points.append(Resume(pos, depth, (*probe, "EQUAL")))
        self.starts = [p.pos for p in self.points]

    def depth_at(self, pos: int) -> int:
        """The brace depth just before ``pos``."""
        i = bisect.bisect_left(self.brace_pos, pos)
        return self.depth_after[i - 1] if i else 0

    def after(self, pos: int) -> list[Resume]:
        """The places at or after ``pos``, in order."""
        return self.points[bisect.bisect_left(self.starts, pos) :]


def _fits(state: ParserState[object], probe: tuple[str, ...]) -> int | None:
    """How much of the parser's stack to keep (the most) so that it accepts ``probe``."""
    conf = copy(state.parse_conf)
    conf.callbacks = {}  # trial runs build nothing
    # The places are outside brackets, so the parser must be too: keep nothing from the
    # first bracket still open on its stack (a reduced one is a tree, not a token). And
    # they are at the error's brace depth: keep every brace on the stack, so that no
    # body is left or, by dropping its `}`, opened again.
    limit, low = len(state.state_stack), 1
    for i, value in enumerate(state.value_stack):
        if isinstance(value, Token) and value.type in ("LPAR", "LSQB"):
            limit = min(limit, i + 1)
        elif isinstance(value, Token) and value.type in ("LBRACE", "RBRACE"):
            low = i + 2
    for keep in range(limit, low - 1, -1):
        trial = ParserState(
            conf, state.lexer, state.state_stack[:keep], state.value_stack[: keep - 1]
        )
        try:
            for terminal in probe:
                trial.feed_token(Token(terminal, ""))
        except lark.exceptions.UnexpectedToken:
            continue
        return keep
    return None


def _move_lexer(
    ip: lark.parsers.lalr_interactive_parser.InteractiveParser, text: str, pos: int
) -> None:
    """Put the lexer of ``ip`` at ``pos`` in ``text`` (line and column too)."""
    counter = ip.lexer_thread.state.line_ctr
    line_start = text.rfind("\n", 0, pos) + 1
    counter.char_pos = pos
    counter.line = text.count("\n", 0, pos) + 1
    counter.line_start_pos = line_start
    counter.column = pos - line_start + 1


def error_pos(e: lark.exceptions.UnexpectedInput) -> int | None:
    """Where in the text an error is (``None`` at the end of the file)."""
    if isinstance(e, lark.exceptions.UnexpectedToken):
        return None if e.token.type == "$END" else e.token.start_pos
    if isinstance(e, lark.exceptions.UnexpectedCharacters):
        return e.pos_in_stream
    return None


def recover(e: lark.exceptions.UnexpectedInput, text: str, points: Points) -> bool:
    """Make the parser of ``e`` resume at the next place after the error at the error's
    brace depth; ``False`` when there is none (the rest of the file is not checked)."""
    ip = getattr(e, "interactive_parser", None)
    start = error_pos(e)
    if ip is None or start is None:
        return False
    depth = points.depth_at(start)
    # a token the parser refused may itself start the statement to resume at; a
    # character the lexer refused cannot
    first = start if isinstance(e, lark.exceptions.UnexpectedToken) else start + 1
    state = ip.parser_state
    for place in points.after(first):
        if place.depth != depth:
            continue
        keep = _fits(state, place.probe)
        if keep is None or (place.pos == start and keep == len(state.state_stack)):
            continue  # not accepted there, or resuming would meet the same error again
        del state.state_stack[keep:]
        del state.value_stack[keep - 1 :]
        _move_lexer(ip, text, place.pos)
        return True
    return False
