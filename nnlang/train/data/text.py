"""The ``text`` source: a UTF-8 corpus cut into windows of token ids for causal
(next-token) language models.

The text is split into **contiguous ranges** before any window is made (train first,
then validation, then test), so no window and no token is shared between splits. The
vocabulary is built on the training range only: characters (``level = "char"``) or
whitespace-separated words (``level = "word"``), sorted, after id 0, which stands for
any token the training range does not have (``<unk>``). It is stored with the run
(``settings.json`` holds the data's ``meta``: ``vocab``, and ``class_names`` for
``predict``). Each example is ``window + 1`` consecutive tokens: ``x`` the first
``window``, ``label`` the same shifted by one, so ``cross_entropy(logits, label)`` over
``logits: f32[window, vocab]`` is the next-token loss at every position.

Imports: the diagnostics, the catalogue and this package's dataset and path helpers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nnlang.diagnostics import ArgError
from nnlang.train.catalog import Param, declare
from nnlang.train.data.dataset import SOURCES, Dataset
from nnlang.train.data.sources import _existing, _unreadable
from nnlang.train.data.splits import _VAL

UNKNOWN = "<unk>"

_TEST = Param(
    "test",
    "float",
    0.1,
    "fraction of the text (its end) held out for testing",
    min=0.0,
    max=1.0,
    max_open=True,
)


def _tokens(text: str, level: str) -> list[str]:
    return list(text) if level == "char" else text.split()


def _windows(ids: np.ndarray, window: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """``(x, label)``: every ``window + 1`` tokens starting at multiples of ``stride``."""
    n = (len(ids) - window - 1) // stride + 1 if len(ids) > window else 0
    if n <= 0:
        empty = np.zeros((0, window), np.int32)
        return empty, empty
    starts = np.arange(n) * stride
    rows = ids[starts[:, None] + np.arange(window + 1)[None]]
    return rows[:, :-1].astype(np.int32), rows[:, 1:].astype(np.int32)


@declare(
    SOURCES,
    "text",
    "A UTF-8 text file for next-token models: windows of `window` token ids as x "
    "i32[window], the same shifted by one as label i32[window]. The splits are contiguous "
    "ranges of the text (train, then val, then test: no window crosses them); the "
    "vocabulary is the training range's characters or words, sorted, after id 0 "
    "(`<unk>`, for tokens training never saw), and is stored with the run.",
    Param("path", "str", doc="text file, relative to the .nn file"),
    Param("window", "int", 64, "tokens per example (the model's sequence length)", min=1),
    Param(
        "stride",
        "int",
        None,
        "tokens between the starts of consecutive windows (default: window, no overlap)",
        min=1,
    ),
    Param(
        "level", "str", "char", "`char` or `word` (split on whitespace)", choices=("char", "word")
    ),
    Param("lowercase", "bool", False, "lower-case the text first"),
    Param(
        "min_count",
        "int",
        1,
        "tokens seen fewer times in the training range become `<unk>`",
        min=1,
    ),
    _TEST,
    _VAL,
)
def _text_source(
    root: Path,
    path: str,
    window: int,
    stride: int | None,
    level: str,
    lowercase: bool,
    min_count: int,
    test: float,
    val: float,
) -> Dataset:
    file = _existing(root, path, "path")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise _unreadable(path, e, "path") from None
    tokens = _tokens(text.lower() if lowercase else text, level)
    n = len(tokens)
    sizes = {"test": int(round(test * n)), "val": int(round(val * n))}
    bounds = {"train": (0, n - sizes["val"] - sizes["test"])}
    bounds["val"] = (bounds["train"][1], bounds["train"][1] + sizes["val"])
    bounds["test"] = (bounds["val"][1], n)
    train = tokens[slice(*bounds["train"])]
    values, counts = np.unique(np.asarray(train, dtype=object), return_counts=True)
    vocab = [
        UNKNOWN,
        *sorted(
            str(v) for v, c in zip(values, counts, strict=True) if c >= min_count and v != UNKNOWN
        ),
    ]
    lookup = {t: i for i, t in enumerate(vocab)}
    ids = np.asarray([lookup.get(t, 0) for t in tokens], np.int32)
    step = stride or window
    splits: dict[str, dict[str, np.ndarray]] = {}
    for split, frac in (("train", 1.0), ("val", val), ("test", test)):
        if split != "train" and frac == 0:
            continue
        lo, hi = bounds[split]
        x, y = _windows(ids[lo:hi], window, step)
        if len(x) == 0:
            unit = "characters" if level == "char" else "words"
            raise ArgError(
                "E407",
                f"the {split} split of `{path}` has {hi - lo} {unit}, fewer than one window "
                f"of {window} + 1",
                arg="window" if split == "train" else split,
                help=f"use a smaller `window`, or a larger `{split}` fraction"
                if split != "train"
                else "use a smaller `window` or a longer text",
            )
        splits[split] = {"x": x, "label": y}
    meta = {
        "source": "text",
        "path": path,
        "level": level,
        "lowercase": bool(lowercase),
        "task": "classes",
        "n_classes": len(vocab),
        "class_names": vocab,
        "vocab": vocab,
        "window": window,
        "tokens": {k: hi - lo for k, (lo, hi) in bounds.items()},
    }
    return Dataset(splits, meta=meta)
