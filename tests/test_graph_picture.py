"""`nnlang graph`: DOT quoted once, pictures with and without Graphviz, read back (issue 15)."""

from __future__ import annotations

import shutil

import pytest
from _util import ROOT

from nnlang.cli import main
from nnlang.graph.picture import quote, svg_labels

SIAMESE = str(ROOT / "examples" / "siamese.nn")
HAS_DOT = shutil.which("dot") is not None


def _expect(labels: dict[str, list[str]]) -> None:
    # node labels: one text line each, no literal backslash-n anywhere
    assert labels["left"] == ["left", "input f32[8, 8, 1]"]
    assert labels["dense_1"] == ["dense_1 (same)", "dense → f32[1]", "output same"]
    assert labels["enc@2/dense"] == ["enc@2/dense", "dense → f32[64]", "shares enc/dense"]
    assert labels["sub"][0] == "sub (d)"  # the user's value name
    # blocks are clusters; the shared instance and its second call site are marked
    assert labels["cluster_enc"] == ["enc (shared)"]
    assert labels["cluster_enc@2"] == ["enc@2 (shares enc)"]
    assert not any("\\n" in line for lines in labels.values() for line in lines)


def test_dot_is_quoted_once(tmp_path) -> None:
    assert main(["graph", SIAMESE, "-o", str(tmp_path / "g.dot")]) == 0
    dot = (tmp_path / "g.dot").read_text()
    assert dot.startswith('digraph "Siamese"') and 'subgraph "cluster_enc@2"' in dot
    assert '"enc@2/dense" [label="enc@2/dense\\ndense → f32[64]\\nshares enc/dense"' in dot
    assert "\\\\n" not in dot
    assert quote('a "b" \\ c\nd') == '"a \\"b\\" \\\\ c\\nd"'


@pytest.mark.parametrize("suffix", [".svg", ".png"])
def test_picture_without_graphviz(tmp_path, monkeypatch, capsys, suffix) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` on the PATH
    out = tmp_path / f"g{suffix}"
    assert main(["graph", SIAMESE, "-o", str(out)]) == 0
    assert "nnlang's own layout" in capsys.readouterr().out
    if suffix == ".svg":
        _expect(svg_labels(out.read_text()))
    else:
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["graph", SIAMESE, "-o", str(tmp_path / "h.svg"), "--renderer", "graphviz"]) == 2
    assert "Graphviz" in capsys.readouterr().err


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's `dot` is not installed")
def test_picture_with_graphviz(tmp_path, capsys) -> None:
    out = tmp_path / "g.svg"
    assert main(["graph", SIAMESE, "-o", str(out)]) == 0
    assert "drawn by Graphviz" in capsys.readouterr().out
    _expect(svg_labels(out.read_text()))


def test_builtin_layout_draws_every_example(tmp_path) -> None:
    """Every example draws without Graphviz; each node's first line is its id."""
    import nnlang
    from nnlang.graph.picture import to_svg

    for f in sorted((ROOT / "examples").glob("*.nn")):
        from nnlang.graph.program import load

        for name in [m.name for m in load(str(f)).models]:
            g = nnlang.build(f, name)
            labels = svg_labels(to_svg(g))
            assert {n.id for n in g.order()} <= set(labels), f
            assert all(labels[n.id][0].split(" (")[0] == n.id for n in g.order())
