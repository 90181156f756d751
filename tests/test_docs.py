"""The user documentation is checked like code.

- Every ```nn block in docs/language.md, docs/tutorial.md and docs/train.md is a complete
  file that `nnlang check` accepts with no diagnostics at all, or, fenced as
  ```nn {E123}, one that produces that code. A block fenced ```nn file=PATH is a file
  other blocks of the same document import: it is written to PATH in a temporary
  folder, and blocks that import are checked from that folder.
- docs/cli.md is exactly what nnlang.cli.doc.py generates from the argument parser.
- The generated part of docs/train.md is exactly what nnlang/train/doc.py renders.
- README.md still shows its two commands.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from nnlang.api import check
from nnlang.diagnostics import CODES

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CHECKED = ("language.md", "tutorial.md", "train.md", "scale.md")

FENCE = re.compile(r"^```nn([^\n]*)\n(.*?)^```[ \t]*$", re.S | re.M)


@dataclass(frozen=True)
class Block:
    doc: str
    line: int
    text: str
    code: str | None  # expected diagnostic code, for error blocks
    file: str | None  # a file other blocks import

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"


def blocks(doc: str) -> list[Block]:
    text = (DOCS / doc).read_text("utf-8")
    out = []
    for m in FENCE.finditer(text):
        info = m.group(1).strip()
        code = re.search(r"\{([EW]\d{3})\}", info)
        file = re.search(r"\bfile=(\S+)", info)
        line = text.count("\n", 0, m.start()) + 1
        out.append(
            Block(
                doc,
                line,
                m.group(2),
                code.group(1) if code else None,
                file.group(1) if file else None,
            )
        )
    return out


ALL = [b for doc in CHECKED for b in blocks(doc)]
MAIN = [b for b in ALL if b.file is None]


def test_docs_have_examples() -> None:
    for doc in CHECKED:
        assert [b for b in blocks(doc) if b.file is None], f"{doc} has no ```nn examples"


def test_error_fences_name_real_codes() -> None:
    for b in ALL:
        if b.code is not None:
            assert b.code in CODES, f"{b.id}: unknown code {b.code}"


def _write_library(doc: str, folder: Path) -> None:
    for b in blocks(doc):
        if b.file is not None:
            path = folder / b.file
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(b.text, "utf-8")


@pytest.mark.parametrize("block", MAIN, ids=[b.id for b in MAIN])
def test_nn_block(block: Block, tmp_path: Path) -> None:
    if re.search(r"^\s*import\s", block.text, re.M):
        _write_library(block.doc, tmp_path)
        main = tmp_path / "main.nn"
        main.write_text(block.text, "utf-8")
        res = check(main)
    else:
        res = check(f"{block.doc}:{block.line}", text=block.text)
    got = [f"{d.code} {d.message}" for d in res.diagnostics]
    if block.code is None:
        assert not res.diagnostics, f"{block.id}: expected no diagnostics, got {got}"
    else:
        assert block.code in {d.code for d in res.diagnostics}, (
            f"{block.id}: expected {block.code}, got {got}"
        )


def test_cli_md_is_generated() -> None:
    from nnlang.cli.doc import render_markdown

    assert (DOCS / "cli.md").read_text("utf-8") == render_markdown(), (
        "docs/cli.md is out of date: python -m nnlang.cli.doc > docs/cli.md"
    )


def test_cli_md_covers_every_verb_and_option() -> None:
    from nnlang.cli.doc import _verbs, build

    text = (DOCS / "cli.md").read_text("utf-8")
    for name, sp in _verbs(build()).items():
        assert f"### `nnlang {name}`" in text
        for a in sp._actions:
            for opt in a.option_strings:
                if opt not in ("-h", "--help"):
                    assert opt in text, f"nnlang {name} {opt} is not documented"


def test_train_md_catalogue_is_generated() -> None:
    from nnlang.train.doc import generated_part, render_markdown

    part = generated_part((DOCS / "train.md").read_text("utf-8"))
    assert part is not None, "docs/train.md lost its generated-section markers"
    assert part == render_markdown(), (
        "docs/train.md is out of date: python -m nnlang.train.doc --write"
    )


def test_train_md_documents_every_setting() -> None:
    from nnlang.train.settings import SETTINGS

    text = (DOCS / "train.md").read_text("utf-8")
    prose = text[: text.find("<!-- BEGIN GENERATED -->")]
    for name in SETTINGS:
        assert f"`{name}`" in prose, (
            f"setting `{name}` has no hand-written explanation in docs/train.md"
        )


def test_readme_commands() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    assert "pip install . && nnlang train examples/digits_mlp.nn" in readme
    assert "pip install '.[test]' && pytest" in readme


def test_docs_link_layer_reference() -> None:
    assert "layers.md" in (DOCS / "language.md").read_text("utf-8")


def test_families_gallery_shows_every_example_as_it_is() -> None:
    """docs/families.md shows each example file whole (`# NAME.nn — ...` on its first
    line), identical to examples/NAME.nn, and no example is missing from it (the
    examples themselves are checked, trained and exported by the example tests)."""
    shown = {}
    for b in blocks("families.md"):
        name = re.match(r"# (\w+\.nn) — ", b.text)
        assert name, f"families.md:{b.line}: a gallery block must be an example file"
        shown[name.group(1)] = b
        assert b.text == (ROOT / "examples" / name.group(1)).read_text("utf-8"), (
            f"families.md:{b.line} differs from examples/{name.group(1)}"
        )
    assert sorted(shown) == sorted(p.name for p in (ROOT / "examples").glob("*.nn"))
