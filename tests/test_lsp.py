"""`nnlang lsp` through the Language Server Protocol: a pygls client starts the server
as editors do (`nnlang lsp` over stdio) and asks for diagnostics, hover, completion and
definitions; and the analysis functions it answers from, directly."""

from __future__ import annotations

import asyncio
import sys

import pytest
from _util import ROOT

pytest.importorskip("pygls")

from lsprotocol import types as T  # noqa: E402
from pygls.lsp.client import LanguageClient  # noqa: E402
from pygls.uris import from_fs_path  # noqa: E402

from nnlang.lsp import analysis  # noqa: E402

CHAR_LM = ROOT / "examples" / "char_lm.nn"


def _pos(text: str, needle: str, offset: int = 1) -> tuple[int, int]:
    for i, line in enumerate(text.splitlines()):
        if needle in line:
            return i, line.index(needle) + offset
    raise AssertionError(needle)


def test_hover_completion_and_definition_from_the_analysis() -> None:
    p, text = str(CHAR_LM), CHAR_LM.read_text()
    assert analysis.diagnostics(p, text) == []
    line, _ = _pos(text, "input x: i32")
    assert analysis.hover(p, text, line, text.splitlines()[line].index("x:")) == (
        "input `x`: `i32[64]`"
    )
    h = analysis.hover(p, text, *_pos(text, "h = x -> embed", 0))
    assert h == "`h`: `f32[64, 128]` (from `layer_norm`)"
    emb = analysis.hover(p, text, *_pos(text, "-> embed ->", 4))
    assert "**embedding**" in emb and "8,192 parameters" in emb
    assert analysis.hover(p, text, *_pos(text, "output logits", 8)) == (
        "output `logits`: `f32[64, 64]`"
    )
    d = analysis.definition(p, text, *_pos(text, "Decoder * depth"))
    assert d is not None and (d.line, d.col) == (_pos(text, "block Decoder", 6))
    d = analysis.definition(p, text, *_pos(text, "-> embed ->", 4))
    assert d is not None and d.line == _pos(text, "shared embed")[0]
    src = "model M {\n    input x: f32[4]\n    output y = x -> dense(3, "
    attrs = [i.label for i in analysis.complete(p, src, 2, len(src.splitlines()[2]))]
    assert "use_bias" in attrs and "units" in attrs
    kinds = {i.label: i.kind for i in analysis.complete(p, text, 0, 0)}
    assert kinds["conv"] == "layer" and kinds["Decoder"] == "block" and kinds["train"] == "keyword"
    line, _ = _pos(text, "batch     = 32")
    settings = {i.label for i in analysis.complete(p, text, line, 4) if i.kind == "setting"}
    assert {"optimizer", "epochs", "freeze"} <= settings


async def _session(path: str, text: str, broken: str) -> dict:
    client = LanguageClient("test", "1")
    got: dict = {"diagnostics": []}

    @client.feature(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def _diags(params: T.PublishDiagnosticsParams) -> None:
        got["diagnostics"].append(params.diagnostics)

    await client.start_io(sys.executable, "-m", "nnlang.cli", "lsp")
    await client.initialize_async(T.InitializeParams(capabilities=T.ClientCapabilities()))
    client.initialized(T.InitializedParams())
    uri = from_fs_path(path)
    doc = T.TextDocumentIdentifier(uri=uri)
    client.text_document_did_open(
        T.DidOpenTextDocumentParams(
            T.TextDocumentItem(uri=uri, language_id="nn", version=1, text=text)
        )
    )
    line, col = _pos(text, "-> embed ->", 4)
    got["hover"] = await client.text_document_hover_async(T.HoverParams(doc, T.Position(line, col)))
    got["completion"] = await client.text_document_completion_async(
        T.CompletionParams(doc, T.Position(0, 0))
    )
    line, col = _pos(text, "Decoder * depth")
    got["definition"] = await client.text_document_definition_async(
        T.DefinitionParams(doc, T.Position(line, col))
    )
    client.text_document_did_change(
        T.DidChangeTextDocumentParams(
            T.VersionedTextDocumentIdentifier(version=2, uri=uri),
            [T.TextDocumentContentChangeWholeDocument(text=broken)],
        )
    )
    for _ in range(200):  # the change's diagnostics arrive as a notification
        if len(got["diagnostics"]) >= 2:
            break
        await asyncio.sleep(0.05)
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return got


def test_the_server_answers_over_the_protocol() -> None:
    text = CHAR_LM.read_text()
    broken = text.replace("dense(ff)", "dens(ff)")
    got = asyncio.run(_session(str(CHAR_LM), text, broken))
    assert list(got["diagnostics"][0]) == []  # on open: the example is clean
    (d,) = got["diagnostics"][1]
    assert d.code == "E103" and "`dens`" in d.message and d.source == "nnlang"
    line, col = _pos(broken, "dens(ff)", 0)
    assert (d.range.start.line, d.range.start.character) == (line, col)
    assert "8,192 parameters" in got["hover"].contents.value
    labels = {i.label for i in got["completion"].items}
    assert {"dense", "conv", "attention", "Decoder"} <= labels
    loc = got["definition"]
    assert loc.uri == from_fs_path(str(CHAR_LM))
    assert loc.range.start.line == _pos(text, "block Decoder")[0]


def test_a_missing_pygls_is_an_environment_error(monkeypatch, capsys) -> None:
    from nnlang.cli import EXIT_ENV, main

    monkeypatch.setitem(sys.modules, "pygls", None)  # import pygls raises ImportError
    assert main(["lsp"]) == EXIT_ENV
    err = capsys.readouterr().err
    assert "E705" in err and "nnlang[lsp]" in err


def test_a_mistake_in_an_imported_file_is_shown_at_the_import(tmp_path) -> None:
    (tmp_path / "lib.nn").write_text(
        "block B {\n    input x: f32[4]\n    output y = x -> dens(3)\n}\n", encoding="utf-8"
    )
    main = tmp_path / "main.nn"
    text = 'import "lib.nn"\nmodel M {\n    input x: f32[4]\n    output y = x -> B\n}\n'
    (d,) = analysis.diagnostics(str(main), text)
    assert d.code == "E103" and d.message.startswith("in an imported file:")
    assert d.span is not None and (d.span.line, d.span.col) == (1, 1)


MESSY = "model M {\ninput x:f32[4]  # é\n  output y=x->dense(3)->relu\n}\n"


async def _format_session(path: str, texts: list[str]) -> list:
    client = LanguageClient("test", "1")
    await client.start_io(sys.executable, "-m", "nnlang.cli", "lsp")
    init = await client.initialize_async(T.InitializeParams(capabilities=T.ClientCapabilities()))
    client.initialized(T.InitializedParams())
    uri = from_fs_path(path)
    out = [init.capabilities.document_formatting_provider]
    for v, text in enumerate(texts, 1):
        item = T.TextDocumentItem(uri=uri, language_id="nn", version=v, text=text)
        client.text_document_did_open(T.DidOpenTextDocumentParams(item))
        opts = T.FormattingOptions(tab_size=2, insert_spaces=True)
        params = T.DocumentFormattingParams(T.TextDocumentIdentifier(uri=uri), opts)
        out.append(await client.text_document_formatting_async(params))
        client.text_document_did_close(
            T.DidCloseTextDocumentParams(T.TextDocumentIdentifier(uri=uri))
        )
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return out


def test_formatting_over_the_protocol_is_nnlang_fmt(tmp_path) -> None:
    """`textDocument/formatting`: one edit over the whole document giving what
    `nnlang fmt` writes; no edit for a formatted file, null for one that does not parse."""
    from nnlang.syntax.fmt import format_text

    path = str(tmp_path / "m.nn")
    formatted = format_text(MESSY)
    assert formatted != MESSY
    cap, (edit,), same, broken = asyncio.run(
        _format_session(path, [MESSY, formatted, "model M {\n  input x: f32[4\n}\n"])
    )
    assert cap and edit.new_text == formatted
    lines = MESSY.split("\n")
    assert (edit.range.start.line, edit.range.start.character) == (0, 0)
    assert (edit.range.end.line, edit.range.end.character) == (len(lines) - 1, 0)
    assert list(same) == [] and broken is None
