"""The paper-family examples train: each, trained briefly on the bundled digits, beats
a threshold far above chance (10%). Full trainings (`nnlang train examples/X.nn`)
reach the accuracies the issue asks for; the slow ones run only without
NNLANG_FAST_TESTS=1."""

from __future__ import annotations

import os

import pytest
from _util import ROOT

from nnlang.train.run import train

SLOW = os.environ.get("NNLANG_FAST_TESTS") == "1"

#: example -> (epochs, test accuracy it must reach, slow)
BRIEF = {
    "rbf": (10, 0.95, False),
    "bilstm": (5, 0.85, False),
    "snn": (15, 0.85, False),
    "transformer": (5, 0.85, False),
    "capsnet": (3, 0.80, True),
    "mobilenet_small": (15, 0.80, True),
    "efficientnet_small": (15, 0.80, True),
}


@pytest.mark.parametrize("name", sorted(BRIEF))
def test_family_example_trains_briefly(name: str, tmp_path) -> None:
    epochs, threshold, slow = BRIEF[name]
    if slow and SLOW:
        pytest.skip("slow: a convolutional family example")
    r = train(
        ROOT / "examples" / f"{name}.nn",
        out=tmp_path / "run",
        sets=[f"epochs={epochs}"],
        progress=False,
    )
    assert r.stopped == "finished"
    assert r.test["accuracy"] >= threshold, r.test


def test_char_lm_learns_next_characters_and_stores_its_vocabulary(tmp_path) -> None:
    import json

    r = train(
        ROOT / "examples" / "char_lm.nn",
        out=tmp_path / "run",
        sets=["epochs=3", "width=64", "batch=16"],
        progress=False,
    )
    assert r.stopped == "finished"
    # a unigram model of the training text has test perplexity 26.4 (the full run: 5.99)
    assert r.test["perplexity"] < 16.0, r.test
    meta = json.loads((tmp_path / "run" / "settings.json").read_text())["data"]["meta"]
    assert meta["vocab"][0] == "<unk>" and len(meta["vocab"]) == 60
