"""Write examples/data/digit_images/<digit>/<n>.png, the image folder that
examples/image_folder.nn trains on (deterministic): the first 40 of each digit in the
bundled 8x8 digits, as 8-bit grey PNGs scaled from 0..16 to 0..255 (400 files, ~60 kB).

    python examples/data/make_image_folder.py
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).parent
BUNDLED = HERE.parents[1] / "nnlang" / "train" / "data" / "bundled" / "digits.npz"
OUT = HERE / "digit_images"
PER_CLASS = 40


def main() -> None:
    with np.load(BUNDLED) as z:
        x, y = z["x"][..., 0], z["label"]
    shutil.rmtree(OUT, ignore_errors=True)
    for c in range(10):
        (OUT / str(c)).mkdir(parents=True)
        for n, i in enumerate(np.flatnonzero(y == c)[:PER_CLASS]):
            img = Image.fromarray((x[i].astype(np.float32) * 255 / 16).round().astype(np.uint8))
            img.save(OUT / str(c) / f"{n:03d}.png", optimize=True)
    print(f"{OUT}: {10 * PER_CLASS} PNGs")


if __name__ == "__main__":
    main()
