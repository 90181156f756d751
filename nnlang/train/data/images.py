"""The ``images`` source: a folder of image files, decoded with Pillow.

Two layouts: a folder with one sub-folder per class (the classes are the sub-folder
names, sorted; files sorted by name), or a CSV file with a header and the columns
``file`` and ``label`` (files relative to the CSV's folder; labels read as the ``csv``
source reads a label column). Every image is converted to grey (``channels = 1``) or
RGB (``channels = 3``), resized to ``size = (H, W)`` with bilinear filtering and
scaled to [0, 1]: x is f32[H, W, C].

Each file is read through :func:`nnlang.fsio.read_confined` (inside the data root, no
symlink out of it). The decoded arrays are cached in ``$XDG_CACHE_HOME/nnlang/images``
(``~/.cache`` by default) under the SHA-256 of the files' bytes and names, the size
and the channels, so a second run decodes nothing; a cache that cannot be written is
skipped (``cache = false``: not used).
"""

from __future__ import annotations

import csv as _csv
import hashlib
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from nnlang.diagnostics import ArgError
from nnlang.fsio import Escape, atomic_write_bytes, read_confined
from nnlang.train.catalog import Param, declare
from nnlang.train.data.csvread import _Rows
from nnlang.train.data.dataset import PREDICTING, SOURCES, Dataset
from nnlang.train.data.sources import confine
from nnlang.train.data.splits import _SPLIT_PARAMS, _class_meta, _make
from nnlang.train.data.tables import _labels

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
_CACHE_VERSION = b"nnlang-images-1"


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "nnlang" / "images"


def _is_image(p: Path) -> bool:
    return p.suffix.lower() in EXTENSIONS and not p.name.startswith(".")


def _sub_folders(top: Path) -> list[str]:
    return sorted(d.name for d in top.iterdir() if d.is_dir() and not d.name.startswith("."))


def _folder_layout(root: Path, top: Path, path: str) -> tuple[list[Path], list[str], list[str]]:
    """Files, their class names and the sorted classes of a class-per-folder layout."""
    classes = _sub_folders(top)
    if not classes:
        loose = [p.name for p in top.iterdir() if _is_image(p)]
        raise ArgError(
            "E407",
            f"`{path}` has no class sub-folders"
            + (f" (it holds {len(loose)} images directly)" if loose else ""),
            arg="path",
            help="put the images of each class in a sub-folder named after the class, or "
            "give a CSV file of `file,label` rows",
        )
    files: list[Path] = []
    labels: list[str] = []
    for c in classes:
        found = sorted(p for p in (top / c).iterdir() if _is_image(p))
        if not found:
            raise ArgError(
                "E407",
                f"class folder `{path}/{c}` has no images ({', '.join(EXTENSIONS)})",
                arg="path",
                help="remove the folder, or add the class's images",
            )
        files += found
        labels += [c] * len(found)
    return files, labels, classes


def _csv_layout(file: Path, path: str) -> tuple[list[Path], list[str], list[int]]:
    try:
        with open(file, newline="", encoding="utf-8-sig") as f:
            reader = _csv.reader(f)
            rows = [(reader.line_num, r) for r in reader if any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, _csv.Error) as e:
        raise ArgError("E408", f"cannot read `{path}`: {e}", arg="path") from None
    head = [c.strip() for c in rows[0][1]] if rows else []
    if "file" not in head or "label" not in head:
        raise ArgError(
            "E407",
            f"`{path}` needs a header with the columns `file` and `label`",
            arg="path",
            help="first line: file,label",
        )
    fi, li = head.index("file"), head.index("label")
    files, labels, lines = [], [], []
    for line, r in rows[1:]:
        if len(r) != len(head):
            raise ArgError(
                "E407",
                f"`{path}` row {line} has {len(r)} columns, expected {len(head)}",
                arg="path",
            )
        files.append(file.parent / r[fi].strip())
        labels.append(r[li].strip())
        lines.append(line)
    if not files:
        raise ArgError("E407", f"`{path}` lists no images", arg="path")
    return files, labels, lines


def _decode(data: bytes, shown: str, size: tuple[int, int], channels: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img = img.convert("L" if channels == 1 else "RGB")
            if img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            a = np.asarray(img, np.uint8)
    except UnidentifiedImageError:
        raise ArgError(
            "E408", f"cannot decode image {shown}: not an image Pillow can read", arg="path"
        ) from None
    except (OSError, ValueError) as e:
        raise ArgError("E408", f"cannot decode image {shown}: {e}", arg="path") from None
    return a.reshape(size[0], size[1], channels)


@declare(
    SOURCES,
    "images",
    "A folder of images, one sub-folder per class (or a CSV of `file,label` rows), decoded "
    "with Pillow, converted to `channels`, resized to `size` and scaled to [0, 1]: x "
    "f32[H, W, C]. Decoded arrays are cached by content.",
    Param(
        "path", "str", doc="folder of class sub-folders, or a .csv list, relative to the .nn file"
    ),
    Param("size", "shape", doc="(H, W) every image is resized to"),
    Param("channels", "int", 3, "1 (grey) or 3 (RGB)", choices=(1, 3)),
    Param("cache", "bool", True, "keep the decoded arrays in the cache folder"),
    *_SPLIT_PARAMS,
)
def _images_source(
    root: Path,
    path: str,
    size: tuple[int, ...],
    channels: int,
    cache: bool,
    test: float,
    val: float,
    seed: int,
) -> Dataset:
    if len(size) != 2 or min(size) < 1:
        raise ArgError("E202", f"`size` must be (H, W) with H, W >= 1, got {size}", arg="size")
    hw = (int(size[0]), int(size[1]))
    top = confine(root, path)
    if not top.exists():
        raise ArgError(
            "E408", f"data folder `{path}` does not exist (looked for {top})", arg="path"
        )
    trained = PREDICTING.get()
    labelled = True
    if top.is_dir() and trained is not None and not _sub_folders(top):
        files = sorted(p for p in top.iterdir() if _is_image(p))  # predicting: unlabelled
        if not files:
            raise ArgError("E407", f"`{path}` holds no images", arg="path")
        y, meta, labelled = np.zeros(len(files), np.int32), {}, False
        where = [f"`{path}/{f.name}`" for f in files]
    elif top.is_dir():
        files, names, classes = _folder_layout(root, top, path)
        if trained is not None:  # predicting: the classes training knew
            known = trained.get("class_names", [])
            unknown = [c for c in classes if c not in known]
            if unknown:
                raise ArgError(
                    "E407",
                    f"class folder `{path}/{unknown[0]}` is not a class the model was trained on",
                    arg="path",
                    help=f"classes: {', '.join(known)}",
                )
            classes = known
        lookup = {c: i for i, c in enumerate(classes)}
        y = np.asarray([lookup[n] for n in names], np.int32)
        meta: dict[str, Any] = _class_meta(y, classes)
        where = [f"`{path}/{f.parent.name}/{f.name}`" for f in files]
    else:
        files, names, lines = _csv_layout(top, path)
        rows = _Rows(None, ",", True)
        rows.kept = np.asarray(lines) - 1  # row i is named by its line
        y, meta = _labels(pa.chunked_array([pa.array(names)]), "label", "class", path, rows)
        where = [f"`{path}` row {n}" for n in lines]
    blobs: list[bytes] = []
    for f, shown in zip(files, where, strict=True):
        try:
            blobs.append(read_confined(root, f))
        except Escape as e:
            raise ArgError("E408", f"image {shown}: {e}", arg="path") from None
        except FileNotFoundError:
            raise ArgError(
                "E408", f"image {shown} does not exist (looked for {f})", arg="path"
            ) from None
        except OSError as e:
            raise ArgError("E408", f"cannot read image {shown}: {e}", arg="path") from None
    h = hashlib.sha256(_CACHE_VERSION + repr((hw, channels)).encode())
    for f, b in zip(files, blobs, strict=True):
        h.update(f.name.encode() + b"\0" + hashlib.sha256(b).digest())
    key = cache_dir() / f"{h.hexdigest()}.npz"
    x: np.ndarray | None = None
    if cache and key.is_file():
        try:
            with np.load(key, allow_pickle=False) as z:
                x = z["x"]
        except (OSError, ValueError, KeyError):
            x = None
    if x is None or x.shape != (len(files), *hw, channels):
        x = np.stack([_decode(b, w, hw, channels) for b, w in zip(blobs, where, strict=True)])
        if cache:
            buf = io.BytesIO()
            np.savez_compressed(buf, x=x)
            try:
                atomic_write_bytes(key, buf.getvalue())
            except OSError:
                pass  # a read-only cache folder: decode again next time
    meta.update(source="images", path=path, size=list(hw), channels=channels)
    x = x.astype(np.float32) / 255.0
    if not labelled:
        return Dataset({"train": {"x": x}}, ("x",), (), meta)
    return _make({"x": x, "label": y}, "label", test, val, seed, meta)
