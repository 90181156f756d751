"""The TextMate grammar (editor highlighting) is generated from the Lark grammar and the
layer registry, and tokenises every example and every `nn` snippet of the docs with no
character left unmatched."""

from __future__ import annotations

import json
import re

from _util import EXAMPLES, ROOT

from nnlang.lsp import textmate


def _snippets() -> list[tuple[str, str]]:
    out = [(p.name, p.read_text("utf-8")) for p in EXAMPLES]
    out += [(p.name, p.read_text("utf-8")) for p in sorted((ROOT / "examples").rglob("*.nn"))]
    for md in sorted((ROOT / "docs").glob("*.md")):
        for i, block in enumerate(re.findall(r"```nn\n(.*?)```", md.read_text("utf-8"), re.S)):
            out.append((f"{md.name}#{i}", block))
    return out


def test_the_grammar_file_is_generated() -> None:
    assert textmate.FILE.read_text("utf-8") == textmate.render(), (
        "regenerate: python -m nnlang.lsp.textmate --write"
    )
    g = json.loads(textmate.FILE.read_text("utf-8"))
    assert g["scopeName"] == "source.nn" and g["fileTypes"] == ["nn"]


def test_every_example_and_snippet_tokenises_without_unknown_tokens() -> None:
    g = textmate.grammar()
    snippets = _snippets()
    assert len(snippets) > 40
    for name, text in snippets:
        for n, line in enumerate(text.splitlines(), 1):
            bad = [t for s, t in textmate.tokenise(line, g) if s == "invalid"]
            assert not bad, f"{name}:{n}: {bad} in {line!r}"


def test_tokens_get_the_expected_scopes() -> None:
    toks = dict(
        (t, s) for s, t in textmate.tokenise('model M { h = x -> conv(8, 3) -> relu  # c "s" 1e-3')
    )
    assert toks["model"] == "keyword.control.nn"
    assert toks["conv"] == toks["relu"] == "support.function.layer.nn"
    assert toks["->"] == "keyword.operator.nn" and toks["8"] == "constant.numeric.integer.nn"
    assert toks['# c "s" 1e-3'] == "comment.line.number-sign.nn"
    assert textmate.tokenise("f32[4]")[0] == ("storage.type.dtype.nn", "f32")
    assert [t for _, t in textmate.tokenise("a == b -> c // d")][1::2] == ["==", "->", "//"]
