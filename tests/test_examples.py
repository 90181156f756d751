"""Every example checks clean; summary counts equal hand counts and the lowered model."""

from __future__ import annotations

import json

import pytest
from _util import EXAMPLES

import nnlang
from nnlang.cli import main
from nnlang.lower.network import count_params


def test_examples_exist() -> None:
    names = {p.stem for p in EXAMPLES}
    assert {
        "digits_mlp",
        "digits_cnn",
        "residual",
        "two_inputs",
        "siamese",
        "siamese_contrastive",
        "vae",
    } <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_checks_clean(path, capsys) -> None:
    assert main(["check", str(path)]) == 0
    res = nnlang.check(path)
    assert res.ok and not res.diagnostics, res.diagnostics
    first = path.read_text().splitlines()[0]
    assert first.startswith("#"), "each example opens with a comment saying what it shows"


def dense(i: int, o: int) -> int:
    return i * o + o


def conv(k: int, cin: int, cout: int, bias: bool = True) -> int:
    return k * k * cin * cout + (cout if bias else 0)


def bn(c: int) -> int:
    return 2 * c  # scale and bias; running statistics are not parameters


HAND_COUNTS = {
    "digits_mlp": dense(64, 256) + dense(256, 256) + dense(256, 10),
    "digits_cnn": conv(3, 1, 32)
    + bn(32)
    + conv(3, 32, 32)
    + bn(32)
    + conv(3, 32, 64)
    + bn(64)
    + dense(64, 10),
    "two_inputs": 2 * dense(32, 64) + dense(128, 64) + dense(64, 10),
    # the encoder is shared: counted once
    "siamese": dense(64, 64) + dense(64, 32) + dense(64, 32) + dense(32, 1),
    "siamese_contrastive": dense(64, 128) + dense(128, 16),
    "vae": dense(64, 128) + 2 * dense(128, 8) + dense(8, 128) + dense(128, 64),
    "residual": (
        conv(3, 1, 16)
        + bn(16)
        + 2 * (2 * (conv(3, 16, 16) + bn(16)))  # Residual(16) * 2, identity shortcuts
        + 2 * (conv(3, 32, 32) + bn(32))
        - conv(3, 32, 32)
        + conv(3, 16, 32)
        + conv(1, 16, 32)
        + bn(32)  # stride 2
        + 2 * (conv(3, 32, 32) + bn(32))  # Residual(32) * 1
        + dense(32, 10)
    ),
}


@pytest.mark.parametrize("name", sorted(HAND_COUNTS))
def test_summary_counts_by_hand(name, root, capsys) -> None:
    assert main(["summary", str(root / "examples" / f"{name}.nn"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["totals"]["params"] == HAND_COUNTS[name]
    assert sum(r["params"] for r in out["nodes"]) == HAND_COUNTS[name]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_summary_total_equals_lowered_model(path) -> None:
    graph = nnlang.build(path)
    assert count_params(nnlang.module(graph)) == graph.total_params()


def test_siamese_shares_one_encoder() -> None:
    g = nnlang.build(EXAMPLES[0].parent / "siamese.nn")
    owners = {n.owner for n in g.order() if n.kind is not None and n.kind.name == "dense"}
    calls = [n for n in g.order() if n.kind is not None and n.kind.name == "dense"]
    assert len(calls) == 6 and len(owners) == 4  # two encoder denses, called twice each
