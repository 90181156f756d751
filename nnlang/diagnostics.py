"""Diagnostics: source spans, error codes, rendering with carets and hints.

Every user mistake becomes a :class:`Diagnostic` with a stable code. Passes collect
diagnostics into a :class:`Reporter` and keep going; the CLI renders them. A Python
traceback is never shown for a user mistake: :class:`NNError` carries diagnostics out
of a stage, and anything else that escapes is an nnlang bug and is reported as one.

Failures of the machine rather than the file (a full disk, a read-only folder, a path
below a regular file, memory exhausted) are recognised by
:func:`nnlang.environment.environment_error` and reported as E7xx, never as a bug.

This module imports nothing else from nnlang.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# --------------------------------------------------------------------------- codes
#: Every code, declared once: code -> (stage, one-line title). docs/errors.md has a
#: section per code and a test keeps the two in step.
CODES: dict[str, tuple[str, str]] = {
    # syntax
    "E001": ("syntax", "unexpected character"),
    "E002": ("syntax", "unexpected token"),
    "E003": ("syntax", "unexpected end of file"),
    "E004": ("syntax", "unclosed bracket"),
    "E005": ("syntax", "unmatched closing bracket"),
    "E006": ("syntax", "bad literal"),
    "E007": ("syntax", "nesting too deep or file too large"),
    "E008": ("syntax", "unknown dtype"),
    "E009": ("syntax", "unknown parameter type"),
    # names and declarations
    "E101": ("names", "unknown name"),
    "E102": ("names", "duplicate definition"),
    "E103": ("names", "unknown layer or block"),
    "E104": ("names", "unknown argument"),
    "E105": ("names", "missing required argument"),
    "E106": ("names", "argument given twice"),
    "E107": ("names", "too many positional arguments"),
    "E108": ("names", "unknown model"),
    "E109": ("names", "import not found or not allowed"),
    "E110": ("names", "import cycle"),
    "E111": ("names", "model has no output"),
    "E112": ("names", "model has no input"),
    "E113": ("names", "block misuse"),
    "E114": ("names", "duplicate model or block"),
    # values and compile-time evaluation
    "E201": ("values", "wrong argument type"),
    "E202": ("values", "argument out of range"),
    "E203": ("values", "invalid repeat count"),
    "E204": ("values", "bad compile-time expression"),
    "E205": ("values", "tensor used where a value is needed"),
    "E206": ("values", "value used where a tensor is needed"),
    "E207": ("values", "wrong number of inputs"),
    "E208": ("values", "wrong number of outputs"),
    "E209": ("values", "recursion in blocks"),
    # graph and shapes
    "E301": ("shapes", "rank mismatch"),
    "E302": ("shapes", "shape mismatch"),
    "E303": ("shapes", "dimension reaches zero or below"),
    "E304": ("shapes", "dtype mismatch"),
    "E305": ("shapes", "symbolic axis where a fixed size is needed"),
    "E306": ("shapes", "size budget exceeded"),
    "E307": ("graph", "graph cycle"),
    "W301": ("graph", "unused value"),
    # train section
    "E401": ("train", "unknown train setting"),
    "E402": ("train", "missing train setting"),
    "E403": ("train", "bad train setting value"),
    "E404": ("train", "loss names an unknown output or label"),
    "E405": ("train", "unknown data source, loss, optimizer, schedule or metric"),
    "E406": ("train", "bad command-line override"),
    "E407": ("train", "data does not fit the model"),
    "E408": ("train", "data file missing or unreadable"),
    "E409": ("train", "batch does not fit in memory"),
    "E420": ("train", "step updates no parameter group"),
    "E421": ("train", "step loss does not depend on what it updates"),
    "E422": ("train", "setting cannot differ between phases"),
    "E423": ("train", "phase trains nothing"),
    "E424": ("train", "batch cannot be split over the devices"),
    "E425": ("train", "more devices asked for than present"),
    "W401": ("train", "batch norm statistics will not settle"),
    # run time
    "E501": ("run", "non-finite loss"),
    "E502": ("run", "checkpoint does not match the model"),
    "E503": ("run", "run directory missing or unreadable"),
    "E504": ("run", "bad input file"),
    "E505": ("run", "evaluation of the trained model is not finite"),
    "E510": ("run", "run directory in use by another process"),
    "E511": ("run", "run directory holds a link, hard link or special file"),
    "E512": ("run", "the train section declares nothing to sample"),
    # export
    "E601": ("export", "layer cannot be exported"),
    "E602": ("export", "exported artifact differs from the live model"),
    "E603": ("export", "output exists"),
    "E604": ("export", "artifact input mismatch"),
    # environment: the machine, not the file (exit 3)
    "E701": ("environment", "no space left or file too large"),
    "E702": ("environment", "permission denied or read-only"),
    "E703": ("environment", "not a directory"),
    "E704": ("environment", "out of memory"),
    "E705": ("environment", "an optional package is missing"),
    "E706": ("environment", "the processes of a distributed run could not start"),
    # internal
    "E999": ("internal", "internal error (an nnlang bug)"),
}


@dataclass(frozen=True)
class Span:
    """A region of one source file: 1-based line and column, end exclusive."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int

    @staticmethod
    def point(file: str, line: int, col: int, width: int = 1) -> Span:
        return Span(file, line, col, line, col + max(width, 1))

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Label:
    span: Span
    message: str = ""


@dataclass
class Diagnostic:
    code: str
    message: str
    span: Span | None = None
    label: str = ""
    secondary: list[Label] = field(default_factory=list)
    help: str | None = None
    notes: list[str] = field(default_factory=list)
    severity: str = "error"

    def __post_init__(self) -> None:
        if self.code not in CODES:  # pragma: no cover - a bug in nnlang
            raise ValueError(f"undeclared diagnostic code {self.code}")
        if self.code.startswith("W"):
            self.severity = "warning"

    def to_json(self) -> dict[str, object]:
        def span(s: Span | None) -> dict[str, object] | None:
            if s is None:
                return None
            return {
                "file": s.file,
                "line": s.line,
                "col": s.col,
                "end_line": s.end_line,
                "end_col": s.end_col,
            }

        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "span": span(self.span),
            "label": self.label,
            "secondary": [{"span": span(x.span), "message": x.message} for x in self.secondary],
            "help": self.help,
            "notes": list(self.notes),
        }


class NNError(Exception):
    """Raised to carry one or more diagnostics out of a stage.

    ``sources`` holds the text of the files the diagnostics point into, for rendering
    carets; the stage that loaded the files fills it in as the error passes through.
    """

    def __init__(
        self, diagnostics: Diagnostic | Sequence[Diagnostic], sources: Sources | None = None
    ) -> None:
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics = list(diagnostics)
        self.sources = sources
        super().__init__("; ".join(f"{d.code}: {d.message}" for d in self.diagnostics))


def error(
    code: str,
    message: str,
    span: Span | None = None,
    *,
    label: str = "",
    help: str | None = None,
    secondary: Iterable[Label] = (),
    notes: Iterable[str] = (),
) -> NNError:
    """Build an :class:`NNError` holding one diagnostic (``raise error(...)``)."""
    return NNError(Diagnostic(code, message, span, label, list(secondary), help, list(notes)))


class Reporter:
    """Collects diagnostics from passes that keep going after a mistake."""

    def __init__(self) -> None:
        self.diagnostics: list[Diagnostic] = []

    def add(self, d: Diagnostic | NNError) -> None:
        if isinstance(d, NNError):
            self.diagnostics.extend(d.diagnostics)
        else:
            self.diagnostics.append(d)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    def raise_if_errors(self) -> None:
        if self.errors:
            raise NNError(self.diagnostics)


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to ``name`` (by :mod:`difflib`'s ratio, at least 0.6), or
    ``None``; ties go to the first in sorted order, so the answer is deterministic."""
    matches = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A ``help:`` text naming the closest candidate, or ``None``."""
    match = closest(name, candidates)
    return f"did you mean `{match}`?" if match is not None else None


# ------------------------------------------------------------------------ rendering
class Sources:
    """File name -> text, so diagnostics can show the offending line."""

    def __init__(self) -> None:
        self.texts: dict[str, str] = {}

    def add(self, file: str, text: str) -> None:
        self.texts[file] = text

    def line(self, file: str, line: int) -> str | None:
        text = self.texts.get(file)
        if text is None:
            return None
        lines = text.splitlines()
        return lines[line - 1] if 0 < line <= len(lines) else ""


TAB = "    "


def _underline(span: Span, text: str, char: str) -> str:
    """Carets under ``span`` in ``text`` as displayed (tabs shown as four spaces)."""
    start = span.col - 1
    end = span.end_col - 1 if span.end_line == span.line else len(text)
    end = max(end, start + 1)
    shown_start = len(text[:start].replace("\t", TAB)) + max(start - len(text), 0)
    shown_end = (
        shown_start + len(text[start:end].replace("\t", TAB)) + max(end - max(start, len(text)), 0)
    )
    return " " * shown_start + char * max(shown_end - shown_start, 1)


def render(d: Diagnostic, sources: Sources | None = None) -> str:
    """Render like ruff/rustc: header, location, source line with carets, help."""
    out = [f"{d.severity}[{d.code}]: {d.message}"]
    if d.span is None:
        if d.help:
            out.append(f"  = help: {d.help}")
        out.extend(f"  = note: {n}" for n in d.notes)
        return "\n".join(out)
    labels = [(d.span, d.label, "^")] + [(s.span, s.message, "-") for s in d.secondary]
    width = max(len(str(s.line)) for s, _, _ in labels)
    pad = " " * width
    out.append(f"{pad}--> {d.span}")
    # labels on the same source line share one copy of it; lines in file order, the
    # primary span's file first
    groups: dict[tuple[str, int], list[tuple[Span, str, str]]] = {}
    for label in labels:
        groups.setdefault((label[0].file, label[0].line), []).append(label)
    files = list(dict.fromkeys(f for f, _ in groups))
    for file, line in sorted(groups, key=lambda k: (files.index(k[0]), k[1])):
        group = groups[(file, line)]
        if file != d.span.file:
            out.append(f"{pad}::: {group[0][0]}")
        text = sources.line(file, line) if sources else None
        if text is None:
            out.extend(f"{pad} = {span}: {message}" for span, message, _ in group if message)
            continue
        out.append(f"{pad} |")
        out.append(f"{line:>{width}} | {text.replace(chr(9), TAB)}".rstrip())
        for span, message, char in group:
            out.append(f"{pad} | {_underline(span, text, char)} {message}".rstrip())
    if d.help:
        out.append(f"{pad} = help: {d.help}")
    out.extend(f"{pad} = note: {n}" for n in d.notes)
    return "\n".join(out)


def render_concise(d: Diagnostic) -> str:
    where = f"{d.span}: " if d.span else ""
    hint = f" (help: {d.help})" if d.help else ""
    return f"{where}{d.severity}[{d.code}]: {d.message}{hint}"


def render_all(
    diagnostics: Sequence[Diagnostic], sources: Sources | None, fmt: str = "full"
) -> str:
    if fmt == "json":
        return json.dumps([d.to_json() for d in diagnostics], indent=2)
    if fmt == "concise":
        return "\n".join(render_concise(d) for d in diagnostics)
    return "\n\n".join(render(d, sources) for d in diagnostics)


class InternalError(Exception):
    """An nnlang bug met while working on one thing of the .nn file (a layer's shape rule,
    its lowering to Flax): it says what was being done, where in the file, and why (the
    original exception, also chained as ``__cause__``). It is not a user mistake: the
    CLI reports it as E999 and exits 2, with its location and source line."""

    def __init__(
        self, doing: str, span: Span | None, cause: BaseException, sources: Sources | None = None
    ) -> None:
        self.doing = doing
        self.span = span
        self.cause = cause
        self.sources = sources
        where = f" at {span}" if span is not None else ""
        super().__init__(f"{doing}{where}: {type(cause).__name__}: {cause}")

    def diagnostic(self) -> Diagnostic:
        """The E999 diagnostic to show: the place it happened and the exception."""
        return Diagnostic(
            "E999",
            f"internal error while {self.doing} — this is a bug in nnlang, not in your file",
            self.span,
            label="while working on this",
            help="please report it with the file and the command",
            notes=[f"{type(self.cause).__name__}: {self.cause}"],
        )


class ArgError(Exception):
    """A problem found by code that knows no source spans (a layer's shape rule, a data
    source, a loss). ``arg`` names the argument at fault, if one is; the caller turns it
    into a :class:`Diagnostic` pointing at that argument (or the whole call)."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        arg: str | None = None,
        help: str | None = None,
        at: str = "value",
        index: int | None = None,
    ) -> None:
        if code not in CODES:  # pragma: no cover - a bug in nnlang
            raise ValueError(f"undeclared diagnostic code {code}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.arg = arg
        self.help = help
        #: where the caller should point: the argument's "name", its "value", or the "call"
        self.at = at
        #: the positional argument at fault, where one is
        self.index = index
