"""Normalisation and augmentation name the model inputs they apply to
(`inputs = [...]`); by default every floating input, image augmentations every image
input."""

from __future__ import annotations

import numpy as np
import pytest
from _util import ROOT

from nnlang.diagnostics import ArgError
from nnlang.train.augment import AUGMENTATIONS, per_input
from nnlang.train.catalog import resolve


def _calls(*specs):
    return [resolve(AUGMENTATIONS, "augmentation", n, (), kw) for n, kw in specs]


def test_augmentations_apply_to_the_inputs_they_name() -> None:
    shapes = {"img": (4, 4, 1), "vec": (3,), "other": (4, 4, 1)}
    fns = per_input(_calls(("noise", {"inputs": ["vec"]})), shapes)
    assert set(fns) == {"vec"}
    fns = per_input(_calls(("flip", {}), ("noise", {})), shapes)
    assert set(fns) == {"img", "vec", "other"}  # flip: the image inputs; noise: all
    fns = per_input(_calls(("flip", {"inputs": ["img"]})), shapes)
    assert set(fns) == {"img"}
    with pytest.raises(ArgError, match="names `imgg`, which is not a model input") as e:
        per_input(_calls(("flip", {"inputs": ["imgg"]})), shapes)
    assert "did you mean `img`" in (e.value.help or "")
    with pytest.raises(ArgError, match="works on images"):
        per_input(_calls(("flip", {"inputs": ["vec"]})), shapes)


def test_normalize_names_its_inputs(tmp_path, capsys) -> None:
    from nnlang.cli import main

    example = ROOT / "examples" / "two_inputs.nn"
    args = ["train", str(example), "--out", str(tmp_path / "r"), "-q", "--set", "epochs=1"]
    assert main([*args, "--set", "normalize=scale(0.0625, inputs = [top])"]) == 0
    with np.load(tmp_path / "r" / "normalizer.npz") as z:
        assert sorted(z.files) == ["top/kind", "top/mul", "top/shift"]
    args[3] = str(tmp_path / "r2")
    assert main([*args, "--set", "normalize=scale(0.0625, inputs = [topp])"]) == 1
    err = capsys.readouterr().err
    assert "E403" in err and "`normalize` names `topp`" in err and "did you mean `top`" in err
