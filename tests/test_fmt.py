"""`nnlang fmt` (issue 15): whitespace only, comments kept, idempotent; a parse ->
format -> parse round trip on every example and every ```nn block of the docs."""

from __future__ import annotations

import re

import pytest
from _util import EXAMPLES, ROOT, write

from nnlang.cli import main
from nnlang.diagnostics import NNError
from nnlang.syntax.fmt import format_text, same_tokens, tokens
from nnlang.syntax.parser import parse


def _doc_blocks() -> list[tuple[str, str]]:
    out = []
    for doc in [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]:
        for i, m in enumerate(re.finditer(r"```nn[^\n]*\n(.*?)```", doc.read_text(), re.S)):
            out.append((f"{doc.name}#{i}", m.group(1)))
    return out


def _strip(module: object) -> object:
    """An AST with the spans dropped, to compare two parses of differently laid out text."""
    if isinstance(module, tuple | list):
        return [_strip(x) for x in module]
    if hasattr(module, "__dataclass_fields__"):
        return {
            k: _strip(getattr(module, k))
            for k in module.__dataclass_fields__  # type: ignore[attr-defined]
            if "span" not in k
        }
    return module


def test_round_trip_and_idempotence_on_examples_and_docs() -> None:
    sources = [(p.name, p.read_text()) for p in EXAMPLES] + _doc_blocks()
    checked = 0
    for name, text in sources:
        try:
            before = parse(text, name)
        except NNError:
            continue  # the docs' examples of mistakes
        out = format_text(text)
        assert same_tokens(text, out), name  # whitespace only: comments and code kept
        assert _strip(parse(out, name)) == _strip(before), name
        assert format_text(out) == out, name
        checked += 1
    assert checked >= len(EXAMPLES) + 100


MESSY = """# a comment
model   M( n :int=4 ){
  input x:f32[ 8 ]   # trailing
  h=x->dense( n , use_bias=false )->relu
        -> dense(-1 * -n)
  out = h


  output y = ( h , out )->concat
}
"""

CANON = """# a comment
model M(n: int = 4) {
    input x: f32[8]  # trailing
    h = x -> dense(n, use_bias = false) -> relu
          -> dense(-1 * -n)
    out = h

    output y = (h, out) -> concat
}
"""


def test_canonical_layout() -> None:
    assert format_text(MESSY) == CANON
    assert format_text(CANON) == CANON
    aligned = format_text(
        "train M {\ndata = digits()\nloss = cross_entropy(y, label)\nbatch = 8 # b\n}\n"
    )
    assert (
        "    data  = digits()\n    loss  = cross_entropy(y, label)\n    batch = 8  # b\n" in aligned
    )
    assert [t.type for t in tokens("x # c\n")] == ["NAME", "COMMENT"]


def test_fmt_verb_check_and_write(tmp_path, capsys) -> None:
    f = write(tmp_path / "m", "m.nn", MESSY)
    assert main(["fmt", "--check", str(tmp_path)]) == 1
    assert f"would reformat {f}" in capsys.readouterr().out and f.read_text() == MESSY
    assert main(["fmt", str(f)]) == 0 and f.read_text() == CANON
    assert main(["fmt", "--check", str(f)]) == 0
    bad = write(tmp_path, "bad.nn", "model M {\n  input x: f32[4\n}\n")
    assert main(["fmt", str(bad)]) == 1  # not parsed: reported, never rewritten
    assert "error[E0" in capsys.readouterr().err and bad.read_text().startswith("model M {\n  ")


@pytest.mark.parametrize("example", EXAMPLES[:3], ids=lambda p: p.stem)
def test_examples_format_without_error(example) -> None:
    assert format_text(example.read_text()).endswith("\n")


def test_the_examples_are_in_the_canonical_layout(capsys) -> None:
    """`nnlang fmt --check examples/` passes (issue 15's done-when): the shipped files
    are what the formatter writes."""
    from nnlang.cli import main

    assert main(["fmt", "--check", str(ROOT / "examples")]) == 0, capsys.readouterr().out
