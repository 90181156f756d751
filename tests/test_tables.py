"""Tables through pyarrow: CSV and Parquet read alike, columns of words one-hot with
their categories stored in the run, the missing-value policy, several label columns,
and every mistake named by row and column."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _util import ROOT

from nnlang.diagnostics import ArgError
from nnlang.train.data import load_data

TABLE = "a,color,b,y\n1,red,2.5,0\n3,blue,4,1\n\n5,red,6,1\n7,green,8,0\n"


def _load(root: Path, file: str, **kw):
    return load_data(file.rsplit(".", 1)[1], [file], {"test": 0.0, **kw}, root=root)


def _error(root: Path, file: str, **kw) -> ArgError:
    with pytest.raises(ArgError) as e:
        _load(root, file, **kw)
    return e.value


def test_categories_one_hot_and_stored(tmp_path) -> None:
    (tmp_path / "t.csv").write_text(TABLE)
    ds = _load(tmp_path, "t.csv", label="y")
    m = ds.meta
    assert m["categories"] == {"color": ["blue", "green", "red"]}
    assert m["feature_names"] == ["a", "color=blue", "color=green", "color=red", "b"]
    x, y = ds.splits["train"]["x"], ds.splits["train"]["label"]
    row = {tuple(r): int(c) for r, c in zip(x.tolist(), y, strict=True)}
    assert row[(1.0, 0.0, 0.0, 1.0, 2.5)] == 0 and row[(7.0, 0.0, 1.0, 0.0, 8.0)] == 0
    # numbers as codes: categorical = [...]
    ds = _load(tmp_path, "t.csv", label="y", categorical=["a"], features=["a"])
    assert ds.meta["categories"] == {"a": ["1", "3", "5", "7"]}
    assert ds.splits["train"]["x"].shape == (4, 4)


def test_parquet_reads_as_csv_does(tmp_path) -> None:
    (tmp_path / "t.csv").write_text(TABLE)
    t = pa.table(
        {
            "a": [1, 3, 5, 7],
            "color": ["red", "blue", "red", "green"],
            "b": [2.5, 4.0, 6.0, 8.0],
            "y": ["no", "yes", "yes", "no"],
        }
    )
    pq.write_table(t, tmp_path / "t.parquet")
    c, p = _load(tmp_path, "t.csv", label="y"), _load(tmp_path, "t.parquet", label="y")
    np.testing.assert_array_equal(c.splits["train"]["x"], p.splits["train"]["x"])
    np.testing.assert_array_equal(c.splits["train"]["label"], p.splits["train"]["label"])
    assert p.meta["class_names"] == ["no", "yes"] and p.meta["source"] == "parquet"
    coded = t.set_column(1, "color", pa.array(["red", "blue", "red", "green"]).dictionary_encode())
    pq.write_table(coded, tmp_path / "d.parquet")  # pandas categoricals are dictionaries
    d = _load(tmp_path, "d.parquet", label="y")
    np.testing.assert_array_equal(d.splits["train"]["x"], p.splits["train"]["x"])
    pq.write_table(t.set_column(2, "b", pa.array([2.5, None, 6.0, 8.0])), tmp_path / "m.parquet")
    assert "row 2, column `b`: the value is missing" in _error(tmp_path, "m.parquet").message


def test_missing_values_refused_dropped_or_filled(tmp_path) -> None:
    (tmp_path / "m.csv").write_text("a,c,y\n1,u,0\nNA,v,1\n3,,1\n5,u,0\n")
    e = _error(tmp_path, "m.csv")
    assert e.code == "E407" and "`m.csv` row 3, column `a`: the value is missing" in e.message
    assert 'missing = "drop"' in (e.help or "")
    ds = _load(tmp_path, "m.csv", missing="drop")
    assert sorted(ds.splits["train"]["x"][:, 0].tolist()) == [1.0, 5.0]
    ds = _load(tmp_path, "m.csv", missing="mean")
    assert sorted(ds.splits["train"]["x"][:, 0].tolist()) == [1.0, 3.0, 3.0, 5.0]
    assert ds.meta["categories"] == {"c": ["<missing>", "u", "v"]}
    (tmp_path / "l.csv").write_text("a,y\n1,0\n2,\n")
    assert "row 3, column `y`" in _error(tmp_path, "l.csv", missing="mean").message


def test_bad_cells_are_located(tmp_path) -> None:
    (tmp_path / "w.csv").write_text("a,b,y\n1,2,0\n\n3,oops,1\n")
    e = _error(tmp_path, "w.csv")
    assert e.message == "`w.csv` row 4, column `b`: `oops` is not a number"
    assert "categorical" in (e.help or "")
    (tmp_path / "i.csv").write_text("a,b,y\n1,2,0\n3,-inf,1\n")
    assert "row 3, column `b`: value `-inf` is not finite" in _error(tmp_path, "i.csv").message
    (tmp_path / "s.csv").write_text("a,b,y\n1,2,0\n3,1\n")
    assert _error(tmp_path, "s.csv").message == "`s.csv` row 3 has 2 columns, expected 3"
    (tmp_path / "f.csv").write_text("a,y\n1,0\n2,1.5\n")
    msg = _error(tmp_path, "f.csv", label_type="class").message
    assert "row 3, column `y`: class label `1.5` is not a whole number" in msg


def test_several_label_columns_are_targets(tmp_path) -> None:
    (tmp_path / "t.csv").write_text("a,kind,price\n1,x,2.5\n2,y,3.5\n3,x,1.0\n4,y,0.5\n")
    ds = _load(tmp_path, "t.csv", label=["kind", "price"])
    assert ds.label_keys == ("kind", "price")
    tr = ds.splits["train"]
    assert tr["kind"].dtype == np.int32 and tr["price"].dtype == np.float32
    assert ds.splits["train"]["x"].shape == (4, 1)
    e = _error(tmp_path, "t.csv", label=["kind", "kind"])
    assert e.code == "E201"


def test_table_example_trains_and_stores_its_categories(tmp_path) -> None:
    from nnlang.cli import main

    run = tmp_path / "run"
    args = ["train", str(ROOT / "examples" / "table.nn"), "--out", str(run), "-q"]
    assert main([*args, "--set", "epochs=10"]) == 0
    meta = json.loads((run / "settings.json").read_text())["data"]["meta"]
    assert meta["categories"] == {
        "city": ["Lyon", "Oslo", "Porto", "Turku"],
        "plan": ["basic", "premium", "standard"],
    }
    assert meta["class_names"] == ["no", "yes"]
    # the full run (30 epochs) reaches 0.915; the majority class is 0.57
    assert json.loads((run / "result.json").read_text())["test"]["accuracy"] > 0.85
