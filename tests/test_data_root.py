"""Data outside the .nn file's folder: `--data-root DIR` and the `data_root` setting,
confined by fsio's rule (no symlink out), checked by `nnlang check` as by `train`, and
recorded with the run so that `eval` reads the data there too."""

from __future__ import annotations

import json
import shutil

from _util import ROOT

from nnlang.cli import main

TABLE = (ROOT / "examples" / "table.nn").read_text()


def test_data_root_from_the_command_line_and_the_setting(tmp_path, capsys) -> None:
    (tmp_path / "datasets" / "shop").mkdir(parents=True)
    shutil.copy(ROOT / "examples/data/customers.csv", tmp_path / "datasets/shop/c.csv")
    (tmp_path / "proj").mkdir()
    nn = tmp_path / "proj" / "t.nn"
    nn.write_text(TABLE.replace("data/customers.csv", "shop/c.csv"))
    assert main(["check", str(nn)]) == 1  # not in the .nn file's folder
    assert "data file `shop/c.csv` does not exist" in capsys.readouterr().err
    root = str(tmp_path / "datasets")
    assert main(["check", str(nn), "--data-root", root]) == 0
    run = tmp_path / "run"
    args = ["train", str(nn), "--data-root", root, "--out", str(run), "-q", "--set", "epochs=2"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(["eval", str(nn), "--run", str(run), "--json"]) == 0  # reads it there too
    assert json.loads(capsys.readouterr().out)["test"]["accuracy"] > 0.5
    # the setting, relative to the .nn file's folder
    nn.write_text(
        nn.read_text().replace("    loss ", '    data_root = "../datasets"\n    loss ', 1)
    )
    assert main(["check", str(nn)]) == 0


def test_data_root_keeps_symlinks_and_parents_in(tmp_path, capsys) -> None:
    (tmp_path / "root").mkdir()
    shutil.copy(ROOT / "examples/data/customers.csv", tmp_path / "secret.csv")
    (tmp_path / "root" / "link.csv").symlink_to(tmp_path / "secret.csv")
    nn = tmp_path / "t.nn"
    for path in ("link.csv", "../secret.csv"):
        nn.write_text(TABLE.replace("data/customers.csv", path))
        assert main(["check", str(nn), "--data-root", str(tmp_path / "root")]) == 1
        err = capsys.readouterr().err
        assert "E408" in err and "leads outside the data root" in err, err
