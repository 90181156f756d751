"""The `text` source: contiguous splits that share no token, the vocabulary of the
training range only (id 0 for the rest), windows shifted by one, located mistakes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nnlang.diagnostics import ArgError
from nnlang.train.data import load_data


def _corpus(tmp_path: Path, text: str) -> Path:
    (tmp_path / "c.txt").write_text(text, encoding="utf-8")
    return tmp_path


def test_windows_are_next_token_pairs_over_contiguous_splits(tmp_path) -> None:
    text = "abcdefghij" * 9 + "XYZXYZXYZX"  # the test range (last 10 chars): new letters
    ds = load_data("text", ["c.txt"], {"window": 4, "test": 0.1}, root=_corpus(tmp_path, text))
    vocab = ds.meta["vocab"]
    assert vocab[0] == "<unk>" and vocab[1:] == sorted(set("abcdefghij"))
    x, y = ds.splits["train"]["x"], ds.splits["train"]["label"]
    assert x.shape[1] == 4 and x.dtype == np.int32
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])  # label = x shifted by one
    decoded = "".join(vocab[i] for i in x[0]) + vocab[y[0, -1]]
    assert decoded == text[:5]
    assert len(x) == (90 - 4 - 1) // 4 + 1  # stride = window: no overlap
    # the test split is the text's last 10%: letters training never saw are <unk>
    assert (ds.splits["test"]["x"] == 0).all()
    assert ds.meta["tokens"] == {"train": 90, "val": 0, "test": 10}


def test_words_min_count_and_stride(tmp_path) -> None:
    text = "the cat sat on the mat the end"
    ds = load_data(
        "text",
        ["c.txt"],
        {"window": 2, "stride": 1, "level": "word", "min_count": 2, "test": 0.0},
        root=_corpus(tmp_path, text),
    )
    assert ds.meta["vocab"] == ["<unk>", "the"]
    assert len(ds.splits["train"]["x"]) == 8 - 2  # windows of 3 words, stride 1


@pytest.mark.parametrize(
    ("kwargs", "text", "needle"),
    [
        ({"window": 50}, "short text", "fewer than one window"),
        ({"window": 4, "test": 0.05}, "x" * 40, "the test split"),
    ],
)
def test_mistakes_are_located(tmp_path, kwargs, text, needle) -> None:
    with pytest.raises(ArgError) as e:
        load_data("text", ["c.txt"], kwargs, root=_corpus(tmp_path, text))
    assert e.value.code == "E407" and needle in str(e.value)


def test_missing_and_undecodable_files_are_e408(tmp_path) -> None:
    with pytest.raises(ArgError) as e:
        load_data("text", ["nope.txt"], {}, root=tmp_path)
    assert e.value.code == "E408" and "does not exist" in str(e.value)
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ArgError) as e:
        load_data("text", ["bin.txt"], {}, root=tmp_path)
    assert e.value.code == "E408" and "cannot read" in str(e.value)
