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


# ------------------------------------------------------------------ folders read back
def test_confined_tree_refuses_members_that_leave(tmp_path: Path) -> None:
    import os
    import socket

    from nnlang.fsio import confined_tree, read_confined

    root, outside = tmp_path / "run", tmp_path / "out.txt"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f").write_text("x")
    outside.write_text("secret")
    (root / "inside").symlink_to(root / "a" / "b" / "f")
    (root / "dir-inside").symlink_to(root / "a", target_is_directory=True)
    confined_tree(root)  # links that stay inside are fine
    assert read_confined(root, root / "a" / "b" / "f") == b"x"
    assert read_confined(root, root / "inside") == b"x"  # read where it points

    def refused(make, why: str) -> None:
        bad = root / "a" / "b" / "bad"
        make(bad)
        with pytest.raises(Escape) as e:
            confined_tree(root)
        assert str(bad) in str(e.value) and why in str(e.value), str(e.value)
        with pytest.raises(Escape):
            read_confined(root, bad)  # never blocks, never follows
        bad.unlink()

    refused(lambda p: p.symlink_to(outside), "is a symlink to")
    refused(lambda p: p.symlink_to(tmp_path / "nowhere"), "")
    refused(lambda p: os.link(outside, p), "hard-linked (2 links)")
    refused(os.mkfifo, "is a FIFO, not a regular file")
    sock = socket.socket(socket.AF_UNIX)
    try:
        refused(lambda p: sock.bind(str(p)), "is a socket")
    finally:
        sock.close()
    # a link to a FIFO inside the folder: the FIFO is refused through the link too
    os.mkfifo(root / "fifo")
    (root / "to-fifo").symlink_to(root / "fifo")
    with pytest.raises(Escape):
        read_confined(root, root / "to-fifo")


def test_a_symlink_loop_or_a_nul_byte_is_refused_not_a_crash(tmp_path: Path) -> None:
    """Path.resolve raises RuntimeError for a loop and ValueError for a NUL byte; both
    are an Escape that says so (not "leads outside"), for imports and data paths."""
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    with pytest.raises(Escape, match="symlink loop") as e:
        confined(tmp_path, "a")
    assert not e.value.leaves
    with pytest.raises(Escape, match="NUL byte") as e:
        confined(tmp_path, "x\0y")
    assert not e.value.leaves
