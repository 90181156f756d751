"""The language server: pygls over stdio, every answer from :mod:`nnlang.lsp.analysis`.

Diagnostics are published as you type (on open and on every change), hover shows a
value's inferred type and a layer's parameters and FLOPs, completion offers layer kinds
and their attributes from the catalogue, and go-to-definition follows blocks, models,
values and imports; formatting (`textDocument/formatting`) is `nnlang fmt`'s. An exception while answering is logged by pygls and answered with
nothing: a half-typed file must never stop the server.
"""

from __future__ import annotations

from typing import Any

from lsprotocol import types as T
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

from nnlang.diagnostics import Diagnostic, Span
from nnlang.lsp import analysis

_KINDS = {
    "layer": T.CompletionItemKind.Function,
    "attribute": T.CompletionItemKind.Property,
    "block": T.CompletionItemKind.Class,
    "keyword": T.CompletionItemKind.Keyword,
    "setting": T.CompletionItemKind.Field,
}
_SEVERITY = {
    "error": T.DiagnosticSeverity.Error,
    "warning": T.DiagnosticSeverity.Warning,
    "note": T.DiagnosticSeverity.Information,
}


def _range(span: Span | None) -> T.Range:
    if span is None:
        return T.Range(T.Position(0, 0), T.Position(0, 1))
    return T.Range(
        T.Position(span.line - 1, span.col - 1), T.Position(span.end_line - 1, span.end_col - 1)
    )


def to_lsp(d: Diagnostic) -> T.Diagnostic:
    message = d.message + (f"\nhelp: {d.help}" if d.help else "")
    return T.Diagnostic(
        range=_range(d.span),
        message=message,
        severity=_SEVERITY.get(d.severity, T.DiagnosticSeverity.Error),
        code=d.code,
        source="nnlang",
    )


def make_server() -> LanguageServer:
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("nnlang")
    except PackageNotFoundError:  # a source tree that is not installed
        v = "0"
    server = LanguageServer("nnlang", v)

    def _doc(uri: str) -> tuple[str, str]:
        doc = server.workspace.get_text_document(uri)
        return to_fs_path(uri) or uri, doc.source

    def _at(params: Any) -> tuple[str, str, int, int]:
        """A position request's document path, text, line and character."""
        path, text = _doc(params.text_document.uri)
        return path, text, params.position.line, params.position.character

    def _publish(uri: str) -> None:
        path, text = _doc(uri)
        diags = [to_lsp(d) for d in analysis.diagnostics(path, text)]
        server.text_document_publish_diagnostics(
            T.PublishDiagnosticsParams(uri=uri, diagnostics=diags)
        )

    @server.feature(T.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: Any, params: T.DidOpenTextDocumentParams) -> None:
        _publish(params.text_document.uri)

    @server.feature(T.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: Any, params: T.DidChangeTextDocumentParams) -> None:
        _publish(params.text_document.uri)

    @server.feature(T.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: Any, params: T.DidSaveTextDocumentParams) -> None:
        _publish(params.text_document.uri)

    @server.feature(T.TEXT_DOCUMENT_HOVER)
    def hover(ls: Any, params: T.HoverParams) -> T.Hover | None:
        md = analysis.hover(*_at(params))
        if md is None:
            return None
        return T.Hover(contents=T.MarkupContent(kind=T.MarkupKind.Markdown, value=md))

    @server.feature(
        T.TEXT_DOCUMENT_COMPLETION, T.CompletionOptions(trigger_characters=["(", ",", " "])
    )
    def completion(ls: Any, params: T.CompletionParams) -> T.CompletionList:
        items = [
            T.CompletionItem(
                label=i.label,
                kind=_KINDS[i.kind],
                detail=i.detail,
                documentation=T.MarkupContent(kind=T.MarkupKind.Markdown, value=i.doc)
                if i.doc
                else None,
                insert_text=i.insert,
            )
            for i in analysis.complete(*_at(params))
        ]
        return T.CompletionList(is_incomplete=False, items=items)

    @server.feature(T.TEXT_DOCUMENT_DEFINITION)
    def definition(ls: Any, params: T.DefinitionParams) -> T.Location | None:
        t = analysis.definition(*_at(params))
        if t is None:
            return None
        here = T.Position(t.line, t.col)
        return T.Location(uri=from_fs_path(t.path) or t.path, range=T.Range(here, here))

    @server.feature(T.TEXT_DOCUMENT_FORMATTING)
    def formatting(ls: Any, params: T.DocumentFormattingParams) -> list[T.TextEdit] | None:
        """One edit replacing the whole document (none when it is formatted already;
        null when it does not parse). The options (tab size...) do not apply: the
        layout is the language's, four spaces, as `nnlang fmt` writes it."""
        path, text = _doc(params.text_document.uri)
        new = analysis.formatted(path, text)
        if new is None or new == text:
            return None if new is None else []
        lines = text.split("\n")
        end = T.Position(len(lines) - 1, len(lines[-1].encode("utf-16-le")) // 2)  # UTF-16
        return [T.TextEdit(range=T.Range(T.Position(0, 0), end), new_text=new)]

    return server


def main() -> int:
    make_server().start_io()
    return 0
