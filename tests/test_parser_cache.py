"""The LALR tables cached as JSON (syntax.parser._parser): the cached parser gives the
same trees and the same diagnostics as one built from the grammar, and a damaged cache
file is rebuilt."""

from __future__ import annotations

from pathlib import Path

import pytest
from lark import Lark

from nnlang.diagnostics import NNError
from nnlang.syntax import parser as P

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.nn"))
BAD = "model M {\n    input x: f32[4]\n    output y = x -> dense(3 ->\n}\n"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("NNLANG_NO_CACHE", raising=False)
    P._parser.cache_clear()
    yield P._cache_file(P.grammar_text())
    P._parser.cache_clear()


def _errors(text: str) -> list[str]:
    try:
        P.parse(text, "bad.nn")
    except NNError as e:
        return [f"{d.code} {d.message} {d.span}" for d in e.diagnostics]
    return []


def test_cached_parser_parses_alike(cache) -> None:
    built = P._parser()
    assert cache.is_file() and built.source_path != "<deserialized>"
    want = _errors(BAD)
    P._parser.cache_clear()
    loaded = P._parser()
    assert loaded.source_path == "<deserialized>"  # read back from the JSON file
    fresh = Lark(P.grammar_text(), **P._OPTIONS)
    for f in EXAMPLES:
        text = f.read_text("utf-8")
        a, b = loaded.parse(text), fresh.parse(text)
        assert a == b, f.name
        assert [t.meta.line for t in a.iter_subtrees()] == [t.meta.line for t in b.iter_subtrees()]
    assert want and _errors(BAD) == want


def test_damaged_cache_is_rebuilt(cache) -> None:
    P._parser()
    cache.write_text('{"d": [[', "utf-8")
    P._parser.cache_clear()
    assert P._parser().source_path != "<deserialized>"
    P._parser.cache_clear()
    assert P._parser().source_path == "<deserialized>"
