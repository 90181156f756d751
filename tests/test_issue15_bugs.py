"""Bugs a new user met around the tools (issue 15), each with the test that would have caught it."""

from __future__ import annotations

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
