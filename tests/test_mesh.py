"""The `{key: value}` dictionary literal and the `mesh`/`shard` settings (issue 14):
parsed, evaluated, formatted canonically, and their mistakes located. Training on a
mesh needs forced host devices: tests/test_devices.py runs it in a subprocess."""

from __future__ import annotations

import pytest
from _util import write

from nnlang.api import check
from nnlang.graph.evaluate import evaluate
from nnlang.syntax import ast as A
from nnlang.syntax.fmt import format_text
from nnlang.syntax.parser import parse

SRC = """\
model M(h: int = 16) {
    input image: f32[8, 8, 1]
    output logits = image -> flatten -> dense(h) -> relu -> dense(10)
}
train M {
    data  = digits(test = 0.2)
    loss  = cross_entropy(logits, label)
    mesh  = {data: 2, model: 2}
    shard = {dense_1: none}
}
"""


def test_dict_literal_parses_and_evaluates() -> None:
    f = parse('train M { x = {a: 1 + 1, "b*": [2, 3],} }', "t.nn")
    e = f.trains[0].settings[0].value
    assert isinstance(e, A.DictExpr) and [en.key for en in e.entries] == ["a", "b*"]
    from nnlang.diagnostics import Reporter

    assert evaluate(e, Reporter()) == {"a": 2, "b*": [2, 3]}
    assert isinstance(parse("train M { x = {} }", "t.nn").trains[0].settings[0].value, A.DictExpr)


def test_dict_layout_is_canonical_and_idempotent() -> None:
    messy = 'train M {\nmesh={  data : 2,model:2 }\nshard={"a*":model,\n  b : none,\n}\n}\n'
    out = format_text(messy)
    assert "    mesh = {data: 2, model: 2}\n" in out
    assert '    shard = {"a*": model,\n        b: none,\n    }\n' in out
    assert format_text(out) == out
    block = "model M {\n    input x: f32[2]\n    output y = x\n}\n"
    assert format_text(block) == block  # a block's braces are not a dictionary's


def _first(src: str, tmp_path) -> tuple[str, int, int]:
    ds = [d for d in check(write(tmp_path, "m.nn", src)).diagnostics if d.severity == "error"]
    if not ds:
        return "ok", 0, 0
    return ds[0].code, ds[0].span.line, ds[0].span.col


def _code(tmp_path, setting: str) -> tuple[str, int, int]:
    return _first(SRC.replace("    mesh  = {data: 2, model: 2}\n", f"    {setting}\n"), tmp_path)


@pytest.mark.parametrize(
    "setting, want",
    [
        ("mesh = {data: 2, model: 2}", ("ok", 0, 0)),
        ("mesh = {data: 2, modl: 2}", ("E202", 8, 22)),  # unknown axis, at its key
        ("mesh = {data: 2, data: 2}", ("E102", 8, 22)),  # a key twice
        ("mesh = {data: 0}", ("E202", 8, 19)),
        ("mesh = {data: 2.5}", ("E201", 8, 19)),
        ("mesh = 4", ("E201", 8, 12)),
        ("mesh = {data: 3}", ("E424", 8, 12)),  # batch 32 over a data axis of 3
        ("mesh = {model: 2}\n    devices = 4", ("E403", 9, 15)),  # 2 devices, not 4
        ("mesh = {data: 4}\n    shard = {foo: model}", ("E102", 10, 5)),
    ],
)
def test_mesh_mistakes_are_located(tmp_path, setting: str, want: tuple[str, int, int]) -> None:
    assert _code(tmp_path, setting) == want


def test_shard_mistakes_are_located(tmp_path) -> None:
    assert _first(SRC.replace("{dense_1: none}", "{foo: model}"), tmp_path) == ("E404", 9, 14)
    assert _first(SRC.replace("{dense_1: none}", "{dense: maybe}"), tmp_path) == ("E202", 9, 21)


def test_summary_reports_bytes_per_device(tmp_path, capsys) -> None:
    import json

    from nnlang.cli import main

    f = write(tmp_path, "m.nn", SRC)
    assert main(["summary", str(f), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)["totals"]["per_device"]
    # dense (1,040) split over model 2, dense_1 (170) whole by `shard`; adam: 2 moments
    assert d["devices"] == 4 and d["mesh"] == {"data": 2, "model": 2}
    assert d["param_bytes"] == (520 + 170) * 4 and d["optimizer_state_bytes"] == 2 * 690 * 4
    assert d["batch_per_device"] == 16 and d["activation_bytes"] == 680 * 16
    assert main(["summary", str(f), "--set", "devices=2", "--set", "optimizer=sgd"]) == 0
    out = capsys.readouterr().out
    assert "Per device (2 devices, mesh data 2; 16 examples of each batch): params 4.7 KiB" in out
    assert ", sgd state 0 B" in out
    assert main(["summary", str(f), "--set", "mesh={data: 1}", "--json"]) == 0
    assert "per_device" not in json.loads(capsys.readouterr().out)["totals"]


def test_fsdp_partition_and_shard_rules() -> None:
    from types import SimpleNamespace

    from jax.sharding import PartitionSpec as P

    from nnlang.train.sharding import DataParallel, partition, state_path

    assert partition((64, 16), 2) == P("model", None)  # the largest axis 2 divides
    assert partition((15, 16), 2) == P(None, "model")
    assert partition((16, 16), 2) == P("model", None)  # the first of equal ones
    assert partition((5, 3), 2) == P() and partition((), 2) == P() and partition((8,), 1) == P()
    model = ("layers", "enc/dense", "kernel", "value")
    moment = (1, "opt_state", "inner_state", 0, "mu", "layers", "enc/dense", "kernel", "value")
    assert state_path(model) == state_path(moment) == "enc/dense.kernel"
    assert state_path((1, "opt_state", "count", "value")) is None
    mesh = SimpleNamespace(shape={"data": 2, "model": 2})
    dp = DataParallel(mesh, (("enc", None), ("*.kernel", "model")))  # type: ignore[arg-type]
    head = ("layers", "head", "kernel", "value")
    assert dp.spec_of(model, (64, 16)) == P()  # `enc` whole: the first rule decides
    assert dp.spec_of(moment, (64, 16)) == P()  # its moments follow it
    assert dp.spec_of(head, (16, 10)) == P("model", None)
    assert dp.spec_of(("layers", "head", "bias", "value"), (10,)) == P("model")  # default
