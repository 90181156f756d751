"""The `images` source (class folders or a CSV list, Pillow, the cache keyed by
content), its located mistakes, and the dm_pix augmentations."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _util import ROOT
from PIL import Image

from nnlang.diagnostics import ArgError
from nnlang.train.augment import make_augment
from nnlang.train.data import images, load_data

FOLDER = ROOT / "examples" / "data" / "digit_images"


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _load(root: Path, path: str, **kw):
    return load_data("images", [path], {"size": (8, 8), "channels": 1, **kw}, root=root)


def _error(root: Path, path: str, **kw) -> ArgError:
    with pytest.raises(ArgError) as e:
        _load(root, path, **kw)
    return e.value


def test_class_folders_decode_to_the_digits_and_are_cached(tmp_path, monkeypatch) -> None:
    ds = _load(ROOT / "examples", "data/digit_images", test=0.0)
    assert ds.meta["class_names"] == [str(c) for c in range(10)]
    x, y = ds.splits["train"]["x"], ds.splits["train"]["label"]
    assert x.shape == (400, 8, 8, 1) and x.dtype == np.float32 and 0 <= x.min() < x.max() <= 1
    # the PNGs are the bundled digits scaled to 0..255: the same images, in some order
    with np.load(ROOT / "nnlang/train/data/bundled/digits.npz") as z:
        first = np.round(z["x"][z["label"] == 3][0].astype(np.float32) * 255 / 16) / 255
    assert any(np.allclose(first, a, atol=1e-6) for a in x[y == 3])
    assert len(list((tmp_path / "cache" / "nnlang" / "images").glob("*.npz"))) == 1
    # RGB and resizing
    rgb = load_data(
        "images", ["data/digit_images"], {"size": (5, 6), "cache": False}, root=ROOT / "examples"
    )
    assert rgb.splits["train"]["x"].shape[1:] == (5, 6, 3)

    def no_decode(*a, **k):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(images, "_decode", no_decode)
    again = _load(ROOT / "examples", "data/digit_images", test=0.0)
    np.testing.assert_array_equal(again.splits["train"]["x"], x)


def test_csv_list_layout(tmp_path) -> None:
    shutil.copytree(FOLDER / "1", tmp_path / "imgs" / "a")
    files = sorted((tmp_path / "imgs" / "a").glob("*.png"))[:6]
    rows = "".join(f"imgs/a/{f.name},{'cat' if i % 2 else 'dog'}\n" for i, f in enumerate(files))
    (tmp_path / "list.csv").write_text("file,label\n" + rows)
    ds = _load(tmp_path, "list.csv", test=0.0)
    assert ds.meta["class_names"] == ["cat", "dog"] and len(ds.splits["train"]["x"]) == 6
    (tmp_path / "bad.csv").write_text("file,label\n" + rows + "imgs/a/nope.png,cat\n")
    e = _error(tmp_path, "bad.csv")
    assert e.code == "E408" and "`bad.csv` row 8" in e.message and "does not exist" in e.message


def test_folder_mistakes_are_named(tmp_path) -> None:
    (tmp_path / "flat").mkdir()
    Image.new("L", (4, 4)).save(tmp_path / "flat" / "a.png")
    e = _error(tmp_path, "flat")
    assert e.code == "E407" and "no class sub-folders (it holds 1 images directly)" in e.message
    (tmp_path / "d" / "cat").mkdir(parents=True)
    (tmp_path / "d" / "dog").mkdir()
    Image.new("L", (4, 4)).save(tmp_path / "d" / "cat" / "a.png")
    (tmp_path / "d" / "dog" / "notes.txt").write_text("x")
    assert "class folder `d/dog` has no images" in _error(tmp_path, "d").message
    (tmp_path / "d" / "dog" / "b.png").write_bytes(b"not a png")
    e = _error(tmp_path, "d")
    assert e.code == "E408" and "cannot decode image `d/dog/b.png`" in e.message
    (tmp_path / "d" / "dog" / "b.png").unlink()
    outside = tmp_path.parent / f"{tmp_path.name}_outside.png"
    Image.new("L", (4, 4)).save(outside)
    (tmp_path / "d" / "dog" / "b.png").symlink_to(outside)
    e = _error(tmp_path / "d", ".")
    assert e.code == "E408" and "dog/b.png" in e.message
    assert "_error" and _error(tmp_path, "nowhere").code == "E408"
    assert _error(tmp_path, "d", size=(0, 4)).code == "E202"


def test_augmentations_keep_shape_and_draw_per_sample() -> None:
    x = jnp.asarray(np.random.default_rng(0).random((4, 10, 10, 3)), jnp.float32)
    same = make_augment([("crop", (), {"scale": 1.0})], x.shape[1:])(jax.random.key(0), x)
    np.testing.assert_array_equal(same, x)
    for name, kw in (
        ("rotate", {"degrees": 20.0}),
        ("crop", {"scale": 0.7}),
        ("jitter", {"saturation": 0.3, "hue": 0.1}),
    ):
        y = make_augment([(name, (), kw)], x.shape[1:])(jax.random.key(1), x)
        assert y.shape == x.shape and not np.allclose(y, x)
        d = np.abs(np.asarray(y - x)).mean(axis=(1, 2, 3))
        assert len(set(np.round(d, 6))) > 1, name  # each sample draws its own
    grey = x[..., :1]
    with pytest.raises(ArgError, match="saturation and hue need RGB"):
        make_augment([("jitter", (), {"hue": 0.1})], grey.shape[1:])(jax.random.key(0), grey)
    with pytest.raises(ArgError, match="works on images"):
        make_augment([("rotate", (), {})], (5,))


def test_image_folder_example_trains(tmp_path) -> None:
    from nnlang.cli import main

    run = tmp_path / "run"
    args = ["train", str(ROOT / "examples" / "image_folder.nn"), "--out", str(run), "-q"]
    assert main([*args, "--set", "epochs=30"]) == 0
    # the full run (100 epochs) reaches 0.97
    assert json.loads((run / "result.json").read_text())["test"]["accuracy"] > 0.7
    meta = json.loads((run / "settings.json").read_text())["data"]["meta"]
    assert meta["size"] == [12, 12] and meta["channels"] == 1
