"""The one array-fitting rule (nnlang/fitting.py) that training data, predict and
exported artifacts share."""

from __future__ import annotations

import numpy as np
import pytest

from nnlang.fitting import Misfit, fit_array


def fit(x, shape, dtype="f32", **kw):
    return fit_array(np.asarray(x), shape, dtype, what="input `x`", **kw)


def test_equal_shapes_are_kept_and_symbolic_axes_match_any_size() -> None:
    assert fit(np.zeros((2, 3)), (3,)).shape == (2, 3)
    assert fit(np.zeros((2, 7, 4)), ("T", 4)).shape == (2, 7, 4)


def test_rows_reshape_only_to_a_fully_fixed_shape_of_as_many_values() -> None:
    assert fit(np.arange(128.0).reshape(2, 64), (8, 8, 1)).shape == (2, 8, 8, 1)
    np.testing.assert_array_equal(fit(np.arange(8.0).reshape(1, 8), (2, 4))[0, 1], [4, 5, 6, 7])
    with pytest.raises(Misfit, match=r"declared f32\[8, 8, 1\].*\[63\]"):
        fit(np.zeros((2, 63)), (8, 8, 1))
    with pytest.raises(Misfit, match="per-sample shape"):
        fit(np.zeros((2, 8)), ("T", 4))  # symbolic: no reshape guess
    with pytest.raises(Misfit, match="batch axis"):
        fit(np.float32(1), (1,))


def test_symbolic_axes_and_the_batch_agree_across_inputs() -> None:
    sizes: dict[str, int] = {}
    fit(np.zeros((2, 5)), ("T",), sizes=sizes, batch="B")
    with pytest.raises(Misfit, match="symbolic axis `T` is 6 here but 5"):
        fit(np.zeros((2, 6)), ("T",), sizes=sizes, batch="B")
    with pytest.raises(Misfit, match="the batch size is 3 here but 2"):
        fit(np.zeros((3, 5)), ("T",), sizes=sizes, batch="B")


def test_casts_change_no_value_but_for_precision() -> None:
    assert fit(np.zeros((1, 2), np.float64), (2,)).dtype == np.float32
    assert fit(np.ones((1, 2), np.int64), (2,), "i32").dtype == np.int32
    assert fit(np.array([[1.0, 2.0]]), (2,), "i32").tolist() == [[1, 2]]
    assert fit(np.array([[True, False]]), (2,), "i32").tolist() == [[1, 0]]
    with pytest.raises(Misfit, match="fractional"):
        fit(np.array([[0.5, 1.0]]), (2,), "i32")
    with pytest.raises(Misfit, match="values from"):
        fit(np.full((1, 2), 2**40), (2,), "i32")
    with pytest.raises(Misfit, match="holds"):
        fit(np.array([[0.0, 1.0]]), (2,), "bool")
    with pytest.raises(Misfit, match="holds <U1"):
        fit(np.array([["a", "b"]]), (2,))
