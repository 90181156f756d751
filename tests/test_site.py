"""The documentation site (MkDocs, Material) builds from docs/ and the README in strict
mode: a broken link or anchor fails the build."""

from __future__ import annotations

import pytest

pytest.importorskip("mkdocs")
pytest.importorskip("material")

from mkdocs.commands.build import build as mkdocs_build  # noqa: E402
from mkdocs.config import load_config  # noqa: E402
from mkdocs.exceptions import Abort  # noqa: E402

from nnlang.cli import site  # noqa: E402


def test_the_site_builds_strictly(tmp_path) -> None:
    from _util import ROOT

    site.build(tmp_path / "site", root=ROOT)
    for page in ("index.html", "tutorial/index.html", "layers/index.html", "editors/index.html"):
        assert (tmp_path / "site" / page).is_file(), page
    home = (tmp_path / "site" / "index.html").read_text("utf-8")
    assert "Define, check, train and ship neural networks" in home


def test_a_broken_anchor_fails_the_build(tmp_path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\nSee [there](other.md#nowhere).\n")
    (docs / "other.md").write_text("# Other\n")
    cfg_file = tmp_path / "mkdocs.yml"
    cfg_file.write_text("site_name: t\n")
    cfg = site.config(docs, tmp_path / "out")
    cfg["nav"] = [{"Home": "index.md"}, {"Other": "other.md"}]
    with pytest.raises(Abort):
        mkdocs_build(load_config(str(cfg_file), strict=True, **cfg))
