"""Build the documentation site: MkDocs with the Material theme over ``docs/``.

    python -m nnlang.cli.site OUT        # writes the HTML site to OUT (run in the checkout)

The configuration lives here rather than in a top-level ``mkdocs.yml`` (the project's
top level is fixed). The pages are a copy of ``docs/`` with the README as the home page
(``index.md``; its ``docs/...`` links and the pages' ``../README.md`` links rewritten),
so the same Markdown reads correctly on the repository and on the site. The build is
strict: a broken link or a missing anchor fails it (a test builds the site). Needs the
``docs`` extra (mkdocs, mkdocs-material).
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).resolve().parents[2]  # a source checkout's root


def project_root() -> Path:
    """The checkout whose docs are built: the working folder when it holds ``docs/`` and
    the README (nnlang may be installed elsewhere), else the one this file lies in."""
    here = Path.cwd()
    if (here / "docs").is_dir() and (here / "README.md").is_file():
        return here
    return SOURCE


NAV = [
    {"Home": "index.md"},
    {"Tutorial": "tutorial.md"},
    {"Language": "language.md"},
    {"Training": "train.md"},
    {"Scale": "scale.md"},
    {"Layers": "layers.md"},
    {"Families": "families.md"},
    {"Command line": "cli.md"},
    {"Errors": "errors.md"},
    {"Export": "export.md"},
    {"Editors": "editors.md"},
    {"Design": "design.md"},
]


def config(docs_dir: Path, site_dir: Path) -> dict[str, Any]:
    return {
        "site_name": "nnlang",
        "site_description": "Define, check, train and ship neural networks as plain text.",
        "docs_dir": str(docs_dir),
        "site_dir": str(site_dir),
        "nav": NAV,
        "theme": {"name": "material", "features": ["navigation.sections", "content.code.copy"]},
        "markdown_extensions": [
            "tables",
            {"toc": {"permalink": True}},
            "admonition",
            "pymdownx.superfences",
            {"pymdownx.arithmatex": {"generic": True}},
        ],
        "validation": {
            "nav": {"omitted_files": "warn", "not_found": "warn"},
            "links": {"not_found": "warn", "anchors": "warn", "unrecognized_links": "warn"},
        },
    }


def pages(into: Path, root: Path) -> None:
    """``docs/`` and the README as ``index.md``, links rewritten for the site."""
    shutil.copytree(root / "docs", into, dirs_exist_ok=True)
    readme = (root / "README.md").read_text("utf-8")
    readme = re.sub(r"\]\(docs/", "](", readme)
    readme = re.sub(r"\]\((examples|bench|tests|nnlang)/", r"](../\1/", readme)
    (into / "index.md").write_text(readme, encoding="utf-8")
    for md in into.glob("*.md"):
        text = md.read_text("utf-8")
        fixed = text.replace("](../README.md)", "](index.md)")
        if fixed != text:
            md.write_text(fixed, encoding="utf-8")


def build(site_dir: Path, strict: bool = True, root: Path | None = None) -> None:
    """Build the site of ``root`` (default :func:`project_root`) into ``site_dir``;
    raises on a warning when ``strict``."""
    import os

    from mkdocs.commands.build import build as mkdocs_build
    from mkdocs.config import load_config

    os.environ.setdefault("NO_MKDOCS_2_WARNING", "1")
    with tempfile.TemporaryDirectory() as tmp:
        docs = Path(tmp) / "docs"
        pages(docs, root or project_root())
        cfg_file = Path(tmp) / "mkdocs.yml"
        cfg_file.write_text("site_name: nnlang\n", encoding="utf-8")
        cfg = load_config(str(cfg_file), strict=strict, **config(docs, site_dir))
        mkdocs_build(cfg)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m nnlang.cli.site OUT", file=sys.stderr)
        return 2
    build(Path(argv[0]).resolve())
    print(f"wrote the site to {argv[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
