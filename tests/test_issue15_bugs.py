"""Bugs a new user met around the tools (issue 15), each with the test that would have caught it."""

from __future__ import annotations

import json
from pathlib import Path

from _util import write

import nnlang
from nnlang.cli import main

BF16 = """
model M {
    input x: bf16[4]
    output y = x -> dense(3)
}
"""


def test_bf16_model_checks_and_summarises(tmp_path, capsys) -> None:
    # NumPy has no bfloat16: the size budget once asked np.dtype("bfloat16") and crashed (E999)
    path = write(tmp_path, "bf.nn", BF16)
    assert main(["check", str(path)]) == 0
    assert main(["summary", str(path)]) == 0
    assert "Activations per sample: 14 B" in capsys.readouterr().out  # 4·2 B input + 3·2 B output
    assert nnlang.build(path).activation_bytes() == 14


BLOCKS_ONLY = """
# a library of blocks, no model
block Head(n: int = 4) {
    input x: f32[8]
    output y = x -> dense(n) -> frobnicate
}
"""


def test_a_file_of_blocks_is_still_checked(tmp_path, capsys) -> None:
    # a file holding only blocks once printed "ok" and checked nothing
    path = write(tmp_path, "lib.nn", BLOCKS_ONLY)
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "E103" in err and "frobnicate" in err and "lib.nn:5:" in err
    assert main(["summary", str(path)]) == 1  # no model to summarise: E108, naming the block
    assert "E108" in capsys.readouterr().err


def test_train_json_prints_a_json_error(tmp_path, capsys) -> None:
    text = "model N {\n input x: f32[4]\n output y = x -> dens(3)\n}\n"
    text += "train N {\n data = digits(test = 0.2)\n loss = cross_entropy(y, label)\n}\n"
    bad = write(tmp_path, "bad.nn", text)
    assert main(["train", str(bad), "--json", "--out", str(tmp_path / "r")]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and data["diagnostics"][0]["code"] == "E103"
    assert data["diagnostics"][0]["span"]["line"] == 3


def test_onnx_install_hint_fits_a_source_checkout() -> None:
    from nnlang.export.onnx import install_help

    root = Path(nnlang.__file__).resolve().parents[1]
    hint = install_help()
    assert "[onnx]" in hint
    if (root / "pyproject.toml").is_file():  # running from a checkout: point pip at it
        where = hint.split("pip install '")[1].split("[onnx]")[0]
        assert (Path(where) / "pyproject.toml").resolve() == (root / "pyproject.toml")
    readme = (root / "README.md").read_text() if (root / "README.md").is_file() else "[onnx]"
    assert "[onnx]" in readme
