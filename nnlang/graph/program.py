"""A program: the main file and its confined imports, with every declaration by name.

Reading a file is where two mistakes are worded: a path that does not exist gets the
closest existing path as a "did you mean" (:func:`closest_path`), and bytes that are not
UTF-8 are reported at their line and column (:func:`not_utf8`). May import
:mod:`nnlang.diagnostics`, :mod:`nnlang.fsio` and :mod:`nnlang.syntax`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from nnlang.diagnostics import Diagnostic, Label, NNError, Reporter, Sources, Span, closest
from nnlang.fsio import Escape, confined
from nnlang.syntax import ast as A
from nnlang.syntax.parser import parse


@dataclass
class Program:
    main: str  # display name of the main file
    root: Path  # imports and data paths may not leave this folder
    sources: Sources
    decls: dict[str, A.ModelDecl] = field(default_factory=dict)  # models and blocks
    trains: list[A.TrainDecl] = field(default_factory=list)  # the main file's only

    @property
    def models(self) -> list[A.ModelDecl]:
        return [d for d in self.decls.values() if not d.is_block and d.name_span.file == self.main]

    def model(self, name: str | None) -> A.ModelDecl | None:
        models = self.models
        if name is None:
            trained = [t.model for t in self.trains]
            if trained and trained[0] in self.decls:
                return self.decls[trained[0]]
            return models[0] if models else None
        d = self.decls.get(name)
        return d if d is not None and not d.is_block else None

    def train_for(self, model: str) -> A.TrainDecl | None:
        for t in self.trains:
            if t.model == model:
                return t
        return None


def _display(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)


def confine(root: Path, base: Path, rel: str) -> Path | str:
    """Resolve ``rel`` against ``base``; return the path, or why it is refused.

    The rule is :func:`nnlang.fsio.confined`'s, with absolute paths refused outright. The
    path returned is ``base / rel`` as written (symlinks not resolved), for display.
    """
    try:
        confined(root, rel, base=base, absolute=False)
    except ValueError as e:  # Escape, or a path the OS cannot take (a NUL byte)
        if isinstance(e, Escape) and e.absolute:
            return "absolute paths are not allowed"
        if isinstance(e, Escape) and not e.leaves:
            return str(e)
        return f"`{rel}` leaves the project folder `{_display(root)}`"
    return base / rel


#: Folders with more entries than this are not searched for a "did you mean".
MAX_LISTED = 2000


def closest_path(base: Path, rel: str) -> str | None:
    """``rel`` with each part that does not exist (under ``base``) replaced by the closest
    name in its folder, if that leads to an existing file; else ``None``. The "did you
    mean" of a mistyped path: ``exmaples/digts.nn`` -> ``examples/digits.nn``."""
    parts = Path(rel).parts
    here, fixed, changed = base, [], False
    for i, part in enumerate(parts):
        nxt = here / part
        if part not in (".", "..") and not nxt.exists():
            last = i == len(parts) - 1
            try:
                entries = sorted(here.iterdir())[:MAX_LISTED]
            except OSError:
                return None
            names = [e.name for e in entries if (e.is_file() if last else e.is_dir())]
            match = closest(part, names)
            if match is None:
                return None
            part, nxt, changed = match, here / match, True
        fixed.append(part)
        here = nxt
    return str(Path(*fixed)) if changed and here.is_file() else None


def not_utf8(display: str, data: bytes, e: UnicodeDecodeError) -> tuple[Span, str, str]:
    """Where the first byte that is not UTF-8 is (line and column of the text decoded
    with replacement characters, which is what a caret is drawn under), how to say it,
    and that decoded text."""
    line = data.count(b"\n", 0, e.start) + 1
    line_start = data.rfind(b"\n", 0, e.start) + 1
    col = len(data[line_start : e.start].decode("utf-8", "replace")) + 1
    width = len(data[e.start : e.end].decode("utf-8", "replace"))
    bad = " ".join(f"0x{b:02x}" for b in data[e.start : e.end][:4])
    what = f"not UTF-8 text (byte{'s' if e.end - e.start > 1 else ''} {bad})"
    return Span.point(display, line, col, width), what, data.decode("utf-8", "replace")


def _utf8_help(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "the file looks like UTF-16: save it as UTF-8"
    return "save the file as UTF-8 (your editor's encoding setting)"


def load_text(text: str, file: str = "<input>", root: Path | None = None) -> Program:
    """Parse ``text`` as a main file (imports resolve against ``root`` or the cwd)."""
    root = (root or Path.cwd()).resolve()
    return _load_main(file, text, root, root, Path(file).name)


def load(path: str | Path) -> Program:
    """Parse a file and everything it imports. Raises :class:`NNError` (with
    ``.sources``) on any syntax or import mistake."""
    p = Path(path)
    display = _display(p)
    try:
        data = p.read_bytes()
    except OSError as e:
        fix = None if p.exists() else closest_path(Path(), str(path))
        raise NNError(
            Diagnostic(
                "E109",
                f"cannot read `{display}`: {e.strerror or e}",
                help=f"did you mean `{fix}`?" if fix else None,
            )
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        span, what, shown = not_utf8(display, data, e)
        sources = Sources()
        sources.add(display, shown)
        raise NNError(
            Diagnostic(
                "E109",
                f"cannot read `{display}`: {what}",
                span,
                label="not UTF-8",
                help=_utf8_help(data),
            ),
            sources,
        ) from None
    return _load_main(display, text, p.resolve().parent, p.parent, str(p.resolve()))


def _load_main(display: str, text: str, root: Path, base: Path, key: str) -> Program:
    sources = Sources()
    sources.add(display, text)
    prog = Program(display, root, sources)
    rep = Reporter()
    try:
        module = parse(text, display)
        _add_module(prog, module, base, [key], rep, {key}, is_main=True)
        rep.raise_if_errors()
    except NNError as e:
        e.sources = sources
        raise
    return prog


def _add_module(
    prog: Program,
    module: A.Module,
    base: Path,
    chain: list[str],
    rep: Reporter,
    seen: set[str],
    *,
    is_main: bool,
) -> None:
    for imp in module.imports:
        target = confine(prog.root, base, imp.path)
        if isinstance(target, str):
            rep.add(
                Diagnostic(
                    "E109",
                    f"cannot import `{imp.path}`: {target}",
                    imp.span,
                    help="imports are relative to the importing file and stay inside its project folder",
                )
            )
            continue
        key = str(target.resolve())
        if key in chain:
            cycle = [Path(c).name for c in chain[chain.index(key) :]] + [Path(key).name]
            rep.add(
                Diagnostic(
                    "E110", "import cycle: " + " -> ".join(cycle), imp.span, label="imported here"
                )
            )
            continue
        if key in seen:
            continue
        seen.add(key)
        display = _display(target)
        try:
            data = target.read_bytes()
        except OSError as e:
            missing = not target.exists()
            fix = closest_path(base, imp.path) if missing else None
            if fix is not None and isinstance(confine(prog.root, base, fix), str):
                fix = None  # never suggest a path the import may not take
            rep.add(
                Diagnostic(
                    "E109",
                    f"cannot import `{imp.path}`: "
                    + ("no such file" if missing else (e.strerror or str(e)).lower()),
                    imp.span,
                    label=f"looked for {display}",
                    help=f'did you mean `import "{fix}"`?' if fix else None,
                )
            )
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            span, what, shown = not_utf8(display, data, e)
            prog.sources.add(display, shown)
            rep.add(
                Diagnostic(
                    "E109",
                    f"cannot import `{imp.path}`: {what}",
                    imp.span,
                    label="imported here",
                    secondary=[Label(span, "not UTF-8")],
                    help=_utf8_help(data),
                )
            )
            continue
        prog.sources.add(display, text)
        try:
            sub = parse(text, display)
        except NNError as e:
            for d in e.diagnostics:
                rep.add(d)
            continue
        _add_module(prog, sub, target.parent, chain + [key], rep, seen, is_main=False)
    for decl in module.models:
        prev = prog.decls.get(decl.name)
        if prev is not None:
            rep.add(
                Diagnostic(
                    "E114",
                    f"{decl.word} `{decl.name}` is defined twice",
                    decl.name_span,
                    label="defined again here",
                    secondary=[Label(prev.name_span, "first defined here")],
                )
            )
            continue
        prog.decls[decl.name] = decl
    if is_main:
        prog.trains.extend(module.trains)
