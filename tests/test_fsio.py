"""nnlang.fsio.confined: the one path-confinement rule (imports and data files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nnlang.fsio import Escape, confined


def test_confined_resolves_inside_and_refuses_escapes(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / "sub").mkdir(parents=True)
    assert confined(root, "sub/../x") == (root / "x").resolve()
    assert confined(root, "y", base=root / "sub") == (root / "sub" / "y").resolve()
    assert confined(root, str(root / "z")) == (root / "z").resolve()
    for bad in ("../x", "sub/../../x", str(tmp_path / "x"), "/"):
        with pytest.raises(Escape) as e:
            confined(root, bad)
        assert not e.value.absolute and e.value.root == root.resolve()
    with pytest.raises(Escape) as e:
        confined(root, str(root / "z"), absolute=False)
    assert e.value.absolute and str(e.value) == "absolute paths are not allowed"


def test_confined_follows_symlinks(tmp_path: Path) -> None:
    root, outside = tmp_path / "proj", tmp_path / "out"
    root.mkdir()
    outside.mkdir()
    try:
        (root / "out").symlink_to(outside, target_is_directory=True)
        (root / "self").symlink_to(root, target_is_directory=True)
    except OSError:
        pytest.skip("symbolic links are not available")
    assert confined(root, "self/a") == (root / "a").resolve()
    with pytest.raises(Escape):
        confined(root, "out/a")
