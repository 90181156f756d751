"""Unlabelled data: an npz of features alone trains a model that needs no targets (a
self-organising map by its rule), split at random; nothing fakes a `label`."""

from __future__ import annotations

import numpy as np
from _util import write

from nnlang.train.data import load_data
from nnlang.train.run import train

SOM = """
model M {
    input x: f32[16]
    output bmu = x -> som(4, 4)
}
train M {
    data    = npz("u.npz", test = 0.2)
    loss    = rule(bmu)
    optimizer = sgd(lr = 0.5)
    batch   = 4
    epochs  = 2
    metrics = [quantization_error(bmu)]
}
"""


def test_features_alone_are_unlabelled_data(tmp_path) -> None:
    x = np.random.default_rng(0).random((100, 16)).astype(np.float32)
    np.savez(tmp_path / "u.npz", x=x)
    ds = load_data("npz", ["u.npz"], {"test": 0.2, "val": 0.1}, root=tmp_path)
    assert ds.label_keys == () and ds.meta["task"] == "none"
    sizes = {k: len(v["x"]) for k, v in ds.splits.items()}
    assert sizes == {"train": 70, "val": 10, "test": 20} and set(ds.splits["test"]) == {"x"}
    rows = np.concatenate([v["x"] for v in ds.splits.values()])
    assert sorted(map(tuple, rows)) == sorted(map(tuple, x))  # every row once
    r = train(write(tmp_path, "m.nn", SOM), out=tmp_path / "run", progress=False)
    assert r.stopped == "finished" and 0 < r.test["quantization_error"] < 2
