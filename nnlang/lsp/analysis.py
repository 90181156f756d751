"""What the language server answers, as plain functions of a document's text: the
diagnostics of ``nnlang check``, hover (a value's inferred type, a layer's parameters and
FLOPs, a kind's documentation), completion (layer kinds and their attributes from the
catalogue, the file's blocks, keywords, train settings) and go-to-definition (blocks,
models, values and imports). Positions are 0-based lines and columns, as in the
Language Server Protocol; nnlang's spans are 1-based.

May import the pipeline up to :mod:`nnlang.api` (the same check as the command line).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nnlang.api import Checked, check
from nnlang.diagnostics import Diagnostic, Span
from nnlang.graph.graph import Graph, Node
from nnlang.layers.base import REGISTRY
from nnlang.syntax import ast as A

KEYWORDS = ("model", "block", "input", "output", "shared", "train", "import", "if", "else", "step")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Item:
    """A completion: label, kind ("layer", "attribute", "block", "keyword", "setting"),
    a one-line detail, documentation and the text to insert."""

    label: str
    kind: str
    detail: str
    doc: str
    insert: str


@dataclass(frozen=True)
class Target:
    """Where a definition lies: a file path and a 0-based position."""

    path: str
    line: int
    col: int


def analyse(path: str, text: str) -> Checked:
    """``nnlang check`` of the unsaved text, its imports resolved beside ``path``."""
    return check(path, text=text, root=Path(path).resolve().parent)


def diagnostics(path: str, text: str) -> list[Diagnostic]:
    """The diagnostics that belong to this document (those of imported files are
    shown at the import)."""
    res = analyse(path, text)
    imports = _imports(text, path)
    return [d for d in res.diagnostics if d.span is None or d.span.file == path] + [
        Diagnostic(
            d.code,
            f"in an imported file: {d.message}",
            _import_span(imports, d.span, path),
            d.severity,
        )
        for d in res.diagnostics
        if d.span is not None and d.span.file != path
    ]


def _import_span(imports: list[A.ImportDecl], at: Span, path: str) -> Span | None:
    """The `import` of this document that brings in the file ``at`` lies in (display
    paths are relative to the working folder, imports to the document's folder)."""
    here = Path(path).resolve().parent
    for imp in imports:
        if (here / imp.path).resolve() == Path(at.file).resolve():
            return imp.span
    return None


# ------------------------------------------------------------------ positions
def _contains(s: Span, line: int, col: int) -> bool:
    """Whether the 0-based (line, col) lies in ``s`` (1-based, end exclusive)."""
    pos = (line + 1, col + 1)
    return (s.line, s.col) <= pos < (s.end_line, s.end_col) or (
        s.line == s.end_line == pos[0] and s.col <= pos[1] <= s.end_col
    )


def _size(s: Span) -> tuple[int, int]:
    return (s.end_line - s.line, s.end_col - s.col if s.end_line == s.line else 10**6)


def word_at(text: str, line: int, col: int) -> str | None:
    lines = text.splitlines()
    if line >= len(lines):
        return None
    for m in _WORD.finditer(lines[line]):
        if m.start() <= col <= m.end():
            return m.group()
    return None


def _decls(res: Checked) -> dict[str, A.ModelDecl]:
    return res.program.decls if res.program is not None else {}


def _enclosing(res: Checked, name: str, line: int, col: int) -> A.ModelDecl | None:
    for d in _decls(res).values():
        if d.span.file == name and _contains(d.span, line, col):
            return d
    return None


def _graph_of(res: Checked, decl: A.ModelDecl | None) -> Graph | None:
    if decl is not None and decl.name in res.graphs:
        return res.graphs[decl.name]
    return next(iter(res.graphs.values()), None) if decl is None else None


def _node_text(n: Node) -> str:
    out = ", ".join(f"`{t}`" for t in n.out_types)
    facts = [f"{n.params:,} parameters"] if n.params and n.owner == n.id else []
    if n.owner != n.id:
        facts.append(f"shares the weights of `{n.owner}`")
    if n.flops:
        facts.append(f"{n.flops:,} FLOPs per sample")
    head = f"**{n.kind_name}** `{n.id}` → {out}"
    return head + ("\n\n" + ", ".join(facts) if facts else "")


# ---------------------------------------------------------------------- hover
def hover(path: str, text: str, line: int, col: int) -> str | None:
    """Markdown for the position: the layer call under it, else the value, input or
    declaration it names, else the layer kind's documentation."""
    name = path  # the document's spans carry the path it was checked under
    res = analyse(path, text)
    word = word_at(text, line, col)
    decl = _enclosing(res, name, line, col)
    graph = _graph_of(res, decl)
    if graph is not None and decl is not None and not decl.is_block:
        value = _value_hover(graph, decl, word, line, col)
        if value:
            return value
        hits = [n for n in graph.order() if n.kind and n.span.file == name]
        hits = [n for n in hits if _contains(n.span, line, col)]
        if hits:
            return _node_text(min(hits, key=lambda n: _size(n.span)))
    if word in _decls(res):
        d = _decls(res)[word]
        params = ", ".join(f"{p.name}: {p.type}" for p in d.params)
        g = res.graphs.get(word)
        tail = f"\n\n{g.total_params():,} parameters" if g is not None else ""
        return f"**{d.word}** `{d.name}({params})`{tail}"
    if word in REGISTRY:
        k = REGISTRY[word]
        return f"**{k.name}** ({k.family})\n\n{k.doc}"
    return None


def _value_hover(graph: Graph, decl: A.ModelDecl, word: str | None, line: int, col: int) -> str:
    if word is None:
        return ""
    for p in graph.inputs:
        if p.name == word:
            return f"input `{p.name}`: `{p.type}`"
    for p in graph.outputs:
        if p.name == word:
            return f"output `{p.name}`: `{p.type}`"
    for st in _statements(decl.body):
        if isinstance(st, A.Binding) and any(t.name == word for t in st.targets):
            inside = [n for n in graph.order() if n.kind and _within(n.span, st.value.span)]
            if inside:
                n = inside[-1]
                return f"`{word}`: {', '.join(f'`{t}`' for t in n.out_types)} (from `{n.id}`)"
    return ""


def _within(inner: Span, outer: Span) -> bool:
    return (
        inner.file == outer.file
        and (outer.line, outer.col) <= (inner.line, inner.col)
        and (inner.end_line, inner.end_col) <= (outer.end_line, outer.end_col)
    )


def _statements(body: tuple[Any, ...]) -> list[Any]:
    out: list[Any] = []
    for st in body:
        out.append(st)
        if isinstance(st, A.IfStmt):
            out += _statements(st.body) + _statements(st.orelse)
    return out


# ----------------------------------------------------------------- completion
_CALL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\(([^()]*)$")


def complete(path: str, text: str, line: int, col: int) -> list[Item]:
    """Attributes of the layer whose call the position is in; else layer kinds, the
    file's blocks and models, keywords and (inside a train section) its settings."""
    lines = text.splitlines()
    before = lines[line][:col] if line < len(lines) else ""
    m = _CALL.search(before)
    if m and m.group(1) in REGISTRY:
        k = REGISTRY[m.group(1)]
        given = set(re.findall(r"([A-Za-z_]\w*)\s*=", m.group(2)))
        return [
            Item(a.name, "attribute", _attr_detail(a), a.doc, f"{a.name} = ")
            for a in k.attrs
            if a.name not in given
        ]
    items = [
        Item(k.name, "layer", k.family, k.doc, k.name) for k in sorted(REGISTRY.values(), key=_n)
    ]
    try:
        res = analyse(path, text)
        decls = _decls(res)
    except Exception:  # noqa: BLE001 - completion must answer while the file is broken
        decls = {}
    items += [Item(d.name, "block", d.word, "", d.name) for d in decls.values()]
    items += [Item(w, "keyword", "keyword", "", w) for w in KEYWORDS]
    if _in_train(text, line):
        from nnlang.train.settings import SETTINGS

        items += [Item(s.name, "setting", s.kind, s.doc, f"{s.name} = ") for s in SETTINGS.values()]
    return items


def _attr_detail(a: Any) -> str:
    from nnlang.signature import REQUIRED

    return f"{a.type} (required)" if a.default is REQUIRED else f"{a.type} = {a.default!r}"


def _n(k: Any) -> str:
    return str(k.name)


def _in_train(text: str, line: int) -> bool:
    depth, inside = 0, False
    for i, ln in enumerate(text.splitlines()[: line + 1]):
        if depth == 0 and re.match(r"\s*train\b", ln):
            inside = True
        depth += ln.count("{") - ln.count("}")
        if depth <= 0 and i < line:
            inside = False
    return inside and depth > 0


# ----------------------------------------------------------------- definition
def definition(path: str, text: str, line: int, col: int) -> Target | None:
    """The declaration of the block, model, value or import under the position."""
    name = path
    res = analyse(path, text)
    if res.program is None:
        return None
    here = Path(path).resolve().parent
    for imp in _imports(text, name):
        if _contains(imp.span, line, col):
            return Target(str((here / imp.path).resolve()), 0, 0)
    word = word_at(text, line, col)
    if word is None:
        return None
    decl = _enclosing(res, name, line, col)
    if decl is not None:
        for st in _statements(decl.body):
            for span in _defines(st, word):
                return _target(span, here, name, path)
        for p in decl.params:
            if p.name == word:
                return _target(p.name_span, here, name, path)
    d = _decls(res).get(word)
    if d is not None:
        return _target(d.name_span, here, name, path)
    return None


def _defines(st: Any, word: str) -> list[Span]:
    if isinstance(st, A.InputDecl) and st.name == word:
        return [st.name_span]
    if isinstance(st, A.SharedDecl) and st.name == word:
        return [st.name_span]
    if isinstance(st, (A.Binding, A.OutputDecl)):
        return [t.span for t in st.targets if t.name == word]
    return []


def _target(span: Span, here: Path, name: str, path: str) -> Target:
    file = path if span.file == name else str((here / span.file).resolve())
    return Target(file, span.line - 1, span.col - 1)


def _imports(text: str, name: str) -> list[A.ImportDecl]:
    from nnlang.syntax.parser import parse

    try:
        return list(parse(text, name).imports)
    except Exception:  # noqa: BLE001 - a broken file has no imports to follow
        return []


def formatted(path: str, text: str) -> str | None:
    """The document in the canonical layout of `nnlang fmt` (:mod:`nnlang.syntax.fmt`,
    the one formatter), or None when it does not parse (its diagnostics say why) or
    formatting would change its tokens (a formatter bug: the document is left alone)."""
    from nnlang.diagnostics import NNError
    from nnlang.syntax.fmt import format_text, same_tokens
    from nnlang.syntax.parser import parse

    try:
        parse(text, path)
        new = format_text(text)
    except NNError:
        return None
    return new if same_tokens(text, new) else None
