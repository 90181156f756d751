"""The command line: help with an example on every verb, exit codes, outputs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from _util import ROOT, write

from nnlang.cli import build_parser, main

VERBS = [
    "check",
    "summary",
    "layers",
    "graph",
    "fmt",
    "train",
    "eval",
    "predict",
    "sample",
    "runs",
    "curves",
    "time",
    "lsp",
    "export",
]


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_has_help_with_an_example(verb, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main([verb, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "example:" in out and f"nnlang {verb}" in out


def test_parser_knows_every_verb() -> None:
    p = build_parser()
    sub = next(a for a in p._actions if a.dest == "verb")
    assert sorted(sub.choices) == sorted(VERBS)  # type: ignore[union-attr]


def test_exit_codes(tmp_path, capsys) -> None:
    good = ROOT / "examples" / "digits_mlp.nn"
    bad = write(
        tmp_path, "bad.nn", "model M {\n    input x: f32[4]\n    output y = x -> dens(3)\n}\n"
    )
    assert main(["check", str(good)]) == 0
    assert main(["check", str(bad)]) == 1
    assert main([]) == 2
    with pytest.raises(SystemExit) as e:
        main(["frobnicate"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err


def test_check_formats(tmp_path, capsys) -> None:
    bad = write(
        tmp_path, "bad.nn", "model M {\n    input x: f32[4]\n    output y = x -> dens(3)\n}\n"
    )
    main(["check", str(bad), "--format", "concise"])
    err = capsys.readouterr().err
    assert (
        "bad.nn:3:21: error[E103]: unknown layer or block `dens` (help: did you mean `dense`?)"
        in err
    )
    main(["check", str(bad), "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert out[0]["code"] == "E103" and out[0]["span"]["line"] == 3 and out[0]["span"]["col"] == 21
    main(["check", str(bad)])
    err = capsys.readouterr().err
    assert "--> " in err and "^^^^" in err and "= help: did you mean `dense`?" in err


def test_summary_table_and_json(capsys) -> None:
    f = str(ROOT / "examples" / "digits_cnn.nn")
    assert main(["summary", f]) == 0
    out = capsys.readouterr().out
    assert "global_avg_pool" in out and "Trainable params: 28,970" in out
    assert main(["summary", f, "--json", "--set", "width=8"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["args"]["width"] == 8 and data["nodes"][1]["output"] == "f32[8, 8, 8]"


def test_summary_set_takes_what_train_set_takes(capsys) -> None:
    """One `--set` parser: a value is a compile-time expression for every verb."""
    f = str(ROOT / "examples" / "digits_cnn.nn")
    assert main(["summary", f, "--json", "--set", "width=2*4"]) == 0
    assert json.loads(capsys.readouterr().out)["args"]["width"] == 8
    assert main(["summary", f, "--set", "width=2.5"]) == 1
    assert "E201" in capsys.readouterr().err
    assert main(["summary", f, "--set", "width"]) == 1
    assert "E406" in capsys.readouterr().err


def test_json_verbs_print_json_on_a_mistake(tmp_path, capsys) -> None:
    bad = write(tmp_path, "bad.nn", "model N {\n input x: f32[4]\n output y = x -> dens(3)\n}\n")
    assert main(["summary", str(bad), "--json"]) == 1
    out = capsys.readouterr()
    data = json.loads(out.out)
    assert data["ok"] is False and data["diagnostics"][0]["code"] == "E103"
    assert "did you mean `dense`?" in out.err


@pytest.mark.parametrize("verb", ["check", "summary", "train"])
def test_every_building_verb_takes_the_budget_flags(verb, tmp_path, capsys) -> None:
    """The budget's diagnostic says "raise the limit with --max-params": every verb
    that builds a model takes it (train used not to, so a big model could not train)."""
    f = str(ROOT / "examples" / "digits_mlp.nn")
    extra = ["--out", str(tmp_path / "r")] if verb == "train" else []
    assert main([verb, f, "--max-params", "1000", *extra]) == 1
    assert "E306" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_layers_listing_is_one_line_per_kind(capsys, monkeypatch) -> None:
    from nnlang.layers import REGISTRY

    monkeypatch.setenv("COLUMNS", "80")
    assert main(["layers"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(x) for x in lines) <= 80
    assert len(lines) == len(REGISTRY) + 3  # header, kinds, blank, count


def test_layers_listing(capsys) -> None:
    assert main(["layers"]) == 0
    out = capsys.readouterr().out
    for kind in ("dense", "conv", "lstm", "attention", "batch_norm"):
        assert kind in out
    assert main(["layers", "conv", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data[0]["name"] == "conv" and any(a["name"] == "groups" for a in data[0]["attrs"])
    assert main(["layers", "convv"]) == 2
    assert "did you mean `conv`" in capsys.readouterr().err


def test_console_script_runs() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "nnlang.cli", "check", str(ROOT / "examples" / "residual.nn")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and "ResNet" in r.stdout


def test_check_refuses_absurd_size_fast(tmp_path, capsys) -> None:
    import time

    f = write(
        tmp_path,
        "huge.nn",
        "model M {\n    input x: f32[1000000]\n    output y = x -> dense(1000000)\n}\n",
    )
    t = time.perf_counter()
    assert main(["check", str(f)]) == 1
    assert time.perf_counter() - t < 1.0
    err = capsys.readouterr().err
    assert "E306" in err and "`dense`" in err and "1e+12" not in err
