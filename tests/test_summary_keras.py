"""`nnlang summary` like Keras's (issue 15): total / trainable / non-trainable, state,
"connected to", value names, and FLOPs of a symbolic axis as a formula or for --set T=."""

from __future__ import annotations

import json

from _util import write

from nnlang.cli import main

# Keras: Conv2D(16, 3) on 3 channels 3·3·3·16 + 16 = 448; on 16: 3·3·16·16 + 16 = 2,320;
# BatchNormalization(16): gamma, beta (trainable) + moving mean, variance (not) = 4·16;
# Dense(10) on 16: 170. count_params() = 448 + 3·64 + 2·2,320 + 170 = 5,450, of which
# 3·32 = 96 are non-trainable.
RESNET = """
# a residual block with batch norm, as Keras's ResNet writes it
model SmallRes {
    input x: f32[8, 8, 3]
    h = x -> conv(16, 3) -> batch_norm -> relu
    r = h -> conv(16, 3) -> batch_norm -> relu -> conv(16, 3) -> batch_norm
    s = (h, r) -> add -> relu
    output logits = s -> global_avg_pool -> dense(10)
}
"""

# Keras (MobileNet's use_bias=False): Conv2D(8, 3) on 3: 216; DepthwiseConv2D(3) on 8:
# 72; Conv2D(16, 1) on 8: 128; BN(8), BN(8), BN(16): 32 + 32 + 64; Dense(5) on 16: 85.
# count_params() = 629, non-trainable 2·8 + 2·8 + 2·16 = 64.
MOBILENET = """
# a depthwise-separable stem, as Keras's MobileNet writes it
model SmallMobile {
    input x: f32[16, 16, 3]
    h = x -> conv(8, 3, stride = 2, use_bias = false) -> batch_norm -> relu6
          -> conv(8, 3, groups = 8, use_bias = false) -> batch_norm -> relu6
          -> conv(16, 1, use_bias = false) -> batch_norm -> relu6
          -> global_avg_pool
    output logits = h -> dense(5)
}
"""


def _summary(path, capsys, *extra: str) -> dict:
    assert main(["summary", str(path), "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_totals_equal_keras_count_params(tmp_path, capsys) -> None:
    for text, total, non_trainable in ((RESNET, 5450, 96), (MOBILENET, 629, 64)):
        t = _summary(write(tmp_path, "m.nn", text), capsys)["totals"]
        assert (t["total"], t["non_trainable"]) == (total, non_trainable)
        assert t["trainable"] == total - non_trainable == t["params"]
        assert t["state"] == non_trainable and t["total_bytes"] == 4 * total
        assert t["trainable_bytes"] + t["non_trainable_bytes"] == t["total_bytes"]
    assert main(["summary", str(tmp_path / "m.nn")]) == 0
    out = capsys.readouterr().out
    assert "Total params: 629 (2.5 KiB)" in out and "Trainable params: 565" in out
    assert "Non-trainable params: 64 (256 B; 64 state: batch-norm statistics" in out


def test_connected_to_and_value_names(tmp_path, capsys) -> None:
    nodes = {r["name"]: r for r in _summary(write(tmp_path, "r.nn", RESNET), capsys)["nodes"]}
    assert nodes["add"]["connected_to"] == ["relu", "batch_norm_2"]
    assert nodes["relu"]["values"] == ["h"] and nodes["dense"]["values"] == ["logits"]
    assert nodes["batch_norm"]["state"] == 32 and nodes["batch_norm"]["params"] == 32


SEQ = """
# one symbolic axis
model Seq {
    input x: f32[T, 16]
    h = x -> dense(32) -> relu
    output y = (h, h, h) -> attention(heads = 2) -> global_avg_pool -> dense(4)
}
"""


def test_symbolic_axis_flops_are_a_formula_or_figures(tmp_path, capsys) -> None:
    path = write(tmp_path, "seq.nn", SEQ)
    t = _summary(path, capsys)["totals"]
    assert t["flops"] is None and t["symbols"] == ["T"]  # never the count at T = 1
    formula = t["flops_formula"]
    assert "T²" in formula and "T" in formula
    at = {n: _summary(path, capsys, "--set", f"T={n}")["totals"] for n in (1, 128, 300)}
    assert at[128]["axes"] == {"T": 128} and at[128]["flops"] > 100 * at[1]["flops"]
    # the formula is exact: a·T² + b·T + c through the figures at 1, 128 and 300
    a = (at[300]["flops"] - at[1]["flops"]) / 299 - (at[128]["flops"] - at[1]["flops"]) / 127
    assert a / (300 - 128) == int(formula.split("·T²")[0])
    assert main(["summary", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"FLOPs per sample: {formula}" in out and "--set T=128" in out
    assert main(["summary", str(path), "--set", "T=1.5"]) == 1
    assert "E406" in capsys.readouterr().err
    assert main(["summary", str(path), "--set", "Q=3"]) == 1  # neither parameter nor axis
    assert "E104" in capsys.readouterr().err
