"""Diagnostics: docs/errors.md in step with CODES, rendering, did-you-mean, CLI exit codes.

docs/errors.md shows, for each checked example (a fenced block opened with
```nn {CODE}), the real output of `nnlang check` in the ```text block that follows.
Regenerate those outputs after an intended change with

    NNLANG_UPDATE_GOLDEN=1 python -m pytest tests/test_diagnostics.py
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from nnlang import cli
from nnlang.api import build, check
from nnlang.diagnostics import (
    CODES,
    Diagnostic,
    Label,
    NNError,
    Sources,
    Span,
    did_you_mean,
    render,
    render_all,
    render_concise,
)

ROOT = Path(__file__).resolve().parents[1]
ERRORS_MD = ROOT / "docs" / "errors.md"
UPDATE = os.environ.get("NNLANG_UPDATE_GOLDEN") == "1"

HEADING = re.compile(r"^## ([EW]\d{3}): (.+)$", re.M)
EXAMPLE = re.compile(r"```nn \{([EW]\d{3})\}\n(.*?)```\n\n```text\n(.*?)```", re.S)
#: a file the next example imports (the same convention as tests/test_docs.py)
LIBRARY = re.compile(r"```nn file=(\S+)\n(.*?)```", re.S)


def _doc() -> str:
    return ERRORS_MD.read_text("utf-8")


def _sections() -> dict[str, str]:
    return {m.group(1): m.group(2) for m in HEADING.finditer(_doc())}


# ------------------------------------------------------------------ docs/errors.md
def test_every_code_has_a_section() -> None:
    sections = _sections()
    missing = [c for c in CODES if c not in sections]
    assert not missing, f"docs/errors.md has no section for {missing}"


def test_every_section_is_a_code_with_its_title() -> None:
    for code, title in _sections().items():
        assert code in CODES, f"docs/errors.md documents {code}, which CODES does not declare"
        assert title == CODES[code][1], (
            f"{code}: heading says {title!r}, CODES says {CODES[code][1]!r}"
        )


def test_sections_follow_code_order_once() -> None:
    found = [m.group(1) for m in HEADING.finditer(_doc())]
    assert len(found) == len(set(found))
    assert found == [c for c in CODES if c in found]


def test_front_end_codes_have_checked_examples() -> None:
    checked = {m.group(1) for m in EXAMPLE.finditer(_doc())}
    front = {
        c
        for c, (stage, _) in CODES.items()
        if stage in ("syntax", "names", "values", "shapes", "graph")
    }
    front |= {"E401", "E402", "E403", "E404", "E405"}
    assert front <= checked, f"no checked example for {sorted(front - checked)}"


def _write_example(tmp_path: Path, snippet: str, before: str) -> Path:
    for m in LIBRARY.finditer(before):
        p = tmp_path / m.group(1)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(m.group(2), "utf-8")
    (tmp_path / "example.nn").write_text(snippet, "utf-8")
    return tmp_path / "example.nn"


def _cli_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        capsys.readouterr()
        rc = cli.main(["check", "-q", "example.nn"])
        out = capsys.readouterr()
    finally:
        os.chdir(old)
    return rc, "$ nnlang check example.nn\n" + out.err + out.out


def test_examples_produce_their_code_and_output(
    tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = _doc()
    pieces: list[str] = []
    last = 0
    failures: list[str] = []
    for m in EXAMPLE.finditer(doc):
        code, snippet, shown = m.groups()
        tmp = tmp_path_factory.mktemp(code)
        path = _write_example(tmp, snippet, doc[last : m.start()])
        res = check(path)
        codes = [d.code for d in res.diagnostics]
        if code not in codes:
            failures.append(f"the {code} example gives {codes}")
        if any(c == "E999" for c in codes):
            failures.append(f"the {code} example gives E999")
        rc, output = _cli_output(tmp, capsys)
        if rc != (0 if code.startswith("W") else 1):
            failures.append(f"the {code} example exits {rc}")
        pieces.append(doc[last : m.start(3)] + output)
        last = m.end(3)
        if output != shown and not UPDATE:
            failures.append(f"the output shown for {code} differs from `nnlang check`:\n{output}")
    if UPDATE:
        ERRORS_MD.write_text("".join(pieces) + doc[last:], "utf-8")
    assert not failures, (
        "\n".join(failures) + "\n(regenerate with NNLANG_UPDATE_GOLDEN=1 if intended)"
    )


# ------------------------------------------------------------------ rendering
def _sources(text: str, file: str = "m.nn") -> Sources:
    s = Sources()
    s.add(file, text)
    return s


SRC = "model Net {\n    input x: f32[8]\n    output y = x -> dnese(4)\n}\n"


def test_caret_width_matches_span() -> None:
    d = Diagnostic(
        "E103",
        "unknown layer or block `dnese`",
        Span("m.nn", 3, 21, 3, 26),
        help="did you mean `dense`?",
    )
    out = render(d, _sources(SRC)).splitlines()
    assert out[0] == "error[E103]: unknown layer or block `dnese`"
    assert out[1] == " --> m.nn:3:21"
    assert out[3] == "3 |     output y = x -> dnese(4)"
    assert out[4] == "  |                     ^^^^^"
    assert out[5] == "  = help: did you mean `dense`?"


def test_point_span_gets_one_caret() -> None:
    d = Diagnostic("E001", "unexpected character `$`", Span.point("m.nn", 3, 5), label="here")
    assert render(d, _sources(SRC)).splitlines()[4] == "  |     ^ here"


def test_secondary_label_on_another_line_in_line_order() -> None:
    d = Diagnostic(
        "E102",
        "`h` is defined twice",
        Span("m.nn", 3, 5, 3, 6),
        label="defined again here",
        secondary=[Label(Span("m.nn", 2, 11, 2, 12), "first defined here")],
    )
    out = render(d, _sources(SRC)).splitlines()
    assert out == [
        "error[E102]: `h` is defined twice",
        " --> m.nn:3:5",
        "  |",
        "2 |     input x: f32[8]",
        "  |           - first defined here",
        "  |",
        "3 |     output y = x -> dnese(4)",
        "  |     ^ defined again here",
    ]


def test_labels_on_one_line_share_it() -> None:
    d = Diagnostic(
        "E004",
        "unclosed `(`",
        Span.point("m.nn", 3, 26),
        label="opened here",
        secondary=[Label(Span.point("m.nn", 3, 29), "file ends here")],
    )
    out = render(d, _sources(SRC)).splitlines()
    assert out[3:] == [
        "3 |     output y = x -> dnese(4)",
        "  |                          ^ opened here",
        "  |                             - file ends here",
    ]


def test_secondary_in_another_file() -> None:
    s = _sources(SRC)
    s.add("lib.nn", "block B {\n}\n")
    d = Diagnostic(
        "E113",
        "x",
        Span("m.nn", 3, 21, 3, 26),
        secondary=[Label(Span("lib.nn", 1, 7, 1, 8), "declared here")],
    )
    out = render(d, s).splitlines()
    assert " ::: lib.nn:1:7" in out
    assert "  |       - declared here" in out


def test_line_number_gutter_widens() -> None:
    text = "\n" * 11 + "    epoch = 10\n"
    d = Diagnostic("E401", "unknown train setting `epoch`", Span("m.nn", 12, 5, 12, 10))
    out = render(d, _sources(text)).splitlines()
    assert out[1] == "  --> m.nn:12:5"
    assert out[3] == "12 |     epoch = 10"
    assert out[4] == "   |     ^^^^^"


def test_tabs_are_shown_as_spaces_and_carets_follow() -> None:
    d = Diagnostic("E001", "unexpected character `?`", Span.point("m.nn", 1, 6))
    out = render(d, _sources("\tx = ?\n")).splitlines()
    assert out[3] == "1 |     x = ?"
    assert out[4] == "  |         ^"


def test_multiline_span_underlines_to_end_of_line() -> None:
    d = Diagnostic("E302", "x", Span("m.nn", 2, 5, 3, 3))
    assert render(d, _sources(SRC)).splitlines()[4] == "  |     " + "^" * len("input x: f32[8]")


def test_without_span_or_sources() -> None:
    d = Diagnostic("E406", "`--set btach`: no train setting", help="did you mean `batch`?")
    assert (
        render(d) == "error[E406]: `--set btach`: no train setting\n  = help: did you mean `batch`?"
    )
    d = Diagnostic("E408", "missing", Span("m.nn", 3, 5, 3, 6), label="here")
    assert render(d).splitlines() == ["error[E408]: missing", " --> m.nn:3:5", "  = m.nn:3:5: here"]


def test_concise_and_json_forms() -> None:
    d = Diagnostic(
        "E103",
        "unknown layer or block `dnese`",
        Span("m.nn", 3, 21, 3, 26),
        help="did you mean `dense`?",
        secondary=[Label(Span("m.nn", 2, 11, 2, 12), "input")],
    )
    assert (
        render_concise(d)
        == "m.nn:3:21: error[E103]: unknown layer or block `dnese` (help: did you mean `dense`?)"
    )
    w = Diagnostic("W301", "value `h` is never used", Span("m.nn", 2, 5, 2, 6))
    assert w.severity == "warning"
    assert (
        render_all([d, w], None, "concise").splitlines()[1]
        == "m.nn:2:5: warning[W301]: value `h` is never used"
    )
    data = json.loads(render_all([d, w], None, "json"))
    assert data[0] == {
        "code": "E103",
        "severity": "error",
        "message": "unknown layer or block `dnese`",
        "span": {"file": "m.nn", "line": 3, "col": 21, "end_line": 3, "end_col": 26},
        "label": "",
        "secondary": [
            {
                "span": {"file": "m.nn", "line": 2, "col": 11, "end_line": 2, "end_col": 12},
                "message": "input",
            }
        ],
        "help": "did you mean `dense`?",
        "notes": [],
    }
    assert data[1]["severity"] == "warning"


def test_full_form_separates_diagnostics_with_a_blank_line() -> None:
    a = Diagnostic("E101", "a", Span("m.nn", 2, 5, 2, 6))
    b = Diagnostic("E101", "b", Span("m.nn", 3, 5, 3, 6))
    assert render_all([a, b], _sources(SRC)) == render(a, _sources(SRC)) + "\n\n" + render(
        b, _sources(SRC)
    )


def test_undeclared_code_is_refused() -> None:
    with pytest.raises(ValueError):
        Diagnostic("E777", "no such code")


# ------------------------------------------------------------------ did you mean
@pytest.mark.parametrize(
    ("name", "candidates", "expected"),
    [
        ("dnese", ["dense", "conv", "relu"], "did you mean `dense`?"),
        ("optimiser", ["optimizer", "schedule"], "did you mean `optimizer`?"),
        ("Residal", ["Residual", "Stage"], "did you mean `Residual`?"),
        ("unit", {"units": 1, "use_bias": 2}, "did you mean `units`?"),
        ("xyzzy", ["dense", "conv"], None),
        ("dense", [], None),
    ],
)
def test_did_you_mean(name: str, candidates: object, expected: str | None) -> None:
    assert did_you_mean(name, candidates) == expected  # type: ignore[arg-type]


def test_did_you_mean_is_deterministic() -> None:
    assert did_you_mean("ab", ["ac", "ab_", "aa"]) == did_you_mean("ab", ["aa", "ab_", "ac"])


# ------------------------------------------------------------------ the CLI
GOOD = "model Net {\n    input x: f32[8]\n    output y = x -> dense(4)\n}\n"
BAD = "model Net {\n    input x: f32[8]\n    output y = x -> dnese(4)\n}\n"
WARN = "model Net {\n    input x: f32[8]\n    h = x -> relu\n    output y = x -> dense(4)\n}\n"


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = cli.main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, text in (("good.nn", GOOD), ("bad.nn", BAD), ("warn.nn", WARN)):
        (tmp_path / name).write_text(text)
    rc, out, _ = _run(["check", str(tmp_path / "good.nn")], capsys)
    assert rc == 0 and "ok" in out
    rc, _, err = _run(["check", str(tmp_path / "bad.nn")], capsys)
    assert rc == 1 and "error[E103]" in err and "did you mean `dense`?" in err
    rc, _, err = _run(["check", str(tmp_path / "warn.nn")], capsys)
    assert rc == 0 and "warning[W301]" in err
    rc, _, err = _run(["check", str(tmp_path / "good.nn"), str(tmp_path / "bad.nn")], capsys)
    assert rc == 1


def test_missing_file_is_e109_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = _run(["check", str(tmp_path / "nope.nn")], capsys)
    assert rc == 1
    assert "error[E109]" in err and "nope.nn" in err and "Traceback" not in err


def test_unreadable_file_is_e109(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bin.nn").write_bytes(b"\xff\xfe model")
    rc, _, err = _run(["check", str(tmp_path / "bin.nn")], capsys)
    assert rc == 1 and "error[E109]" in err
    rc, _, err = _run(["check", str(tmp_path)], capsys)  # a folder
    assert rc == 1 and "error[E109]" in err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main(["frobnicate"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        cli.main(["check"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        cli.main(["check", "x.nn", "--format", "xml"])
    assert e.value.code == 2
    assert cli.main([]) == 2
    capsys.readouterr()


def test_json_and_concise_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.nn").write_text(BAD)
    rc, out, _ = _run(["check", str(tmp_path / "bad.nn"), "--format", "json"], capsys)
    assert rc == 1
    data = json.loads(out)
    assert [d["code"] for d in data] == ["E103"] and data[0]["span"]["line"] == 3
    rc, _, err = _run(["check", str(tmp_path / "bad.nn"), "--format", "concise"], capsys)
    assert rc == 1 and err.splitlines()[0].endswith(
        "error[E103]: unknown layer or block `dnese` (help: did you mean `dense`?)"
    )
    (tmp_path / "good.nn").write_text(GOOD)
    rc, out, _ = _run(["check", str(tmp_path / "good.nn"), "--format", "json"], capsys)
    assert rc == 0 and json.loads(out) == []


def test_internal_error_is_e999_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import nnlang.api

    def boom(*_: object, **__: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(nnlang.api, "check", boom)
    (tmp_path / "good.nn").write_text(GOOD)
    rc, _, err = _run(["check", str(tmp_path / "good.nn")], capsys)
    assert rc == 2 and "E999" in err and "bug in nnlang" in err and "Traceback" not in err


# ------------------------------------------------------------------ imports on disk
def test_symlink_leaving_the_folder_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    proj = tmp_path / "proj"
    outside.mkdir()
    proj.mkdir()
    (outside / "lib.nn").write_text("block B {\n    input x: f32[F]\n    output y = x\n}\n")
    try:
        (proj / "lib").symlink_to(outside, target_is_directory=True)
    except OSError:
        pytest.skip("symbolic links are not available")
    (proj / "main.nn").write_text('import "lib/lib.nn"\n' + GOOD)
    res = check(proj / "main.nn")
    assert [d.code for d in res.diagnostics] == ["E109"]
    assert "leaves the project folder" in res.diagnostics[0].message


def test_import_cycle_names_the_chain(tmp_path: Path) -> None:
    (tmp_path / "a.nn").write_text('import "b.nn"\n')
    (tmp_path / "b.nn").write_text('import "c.nn"\n')
    (tmp_path / "c.nn").write_text('import "a.nn"\n')
    (tmp_path / "main.nn").write_text('import "a.nn"\n' + GOOD)
    res = check(tmp_path / "main.nn")
    assert [d.code for d in res.diagnostics] == ["E110"]
    assert "a.nn -> b.nn -> c.nn -> a.nn" in res.diagnostics[0].message
    assert Path(res.diagnostics[0].span.file).name == "c.nn"


def test_import_of_itself(tmp_path: Path) -> None:
    (tmp_path / "main.nn").write_text('import "main.nn"\n' + GOOD)
    res = check(tmp_path / "main.nn")
    assert [d.code for d in res.diagnostics] == ["E110"]


def test_diamond_import_is_fine(tmp_path: Path) -> None:
    (tmp_path / "base.nn").write_text(
        "block B {\n    input x: f32[F]\n    output y = x -> relu\n}\n"
    )
    (tmp_path / "l.nn").write_text('import "base.nn"\n')
    (tmp_path / "r.nn").write_text('import "base.nn"\n')
    (tmp_path / "main.nn").write_text(
        'import "l.nn"\nimport "r.nn"\n' + GOOD.replace("dense(4)", "B")
    )
    assert check(tmp_path / "main.nn").ok


# ------------------------------------------------------------------ the grammar
def test_grammar_builds_in_strict_mode() -> None:
    from nnlang.syntax.parser import build_parser_strict

    build_parser_strict()


def test_byte_order_mark_is_accepted() -> None:
    assert check("bom.nn", text="\ufeff" + GOOD).ok


def test_crlf_line_endings_keep_columns() -> None:
    res = check("crlf.nn", text=BAD.replace("\n", "\r\n"))
    (d,) = res.diagnostics
    assert (d.code, d.span.line, d.span.col) == ("E103", 3, 21)


def test_several_mistakes_in_one_run() -> None:
    text = (ROOT / "tests" / "golden" / "multi_five_mistakes.nn").read_text()
    res = check("five.nn", text=text)
    assert len({(d.code, d.span.line) for d in res.diagnostics}) == 5, [
        (d.code, d.message) for d in res.diagnostics
    ]
    assert {d.code for d in res.diagnostics} == {"E103", "E202", "E101", "E302", "E401"}


# ------------------------------------------------------------------ messages that help
def test_bytes_that_are_not_utf8_are_shown_at_their_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.nn").write_bytes(
        GOOD.replace("dense(4)", "dense(4)  # \xe9").encode("latin-1")
    )
    res = check(tmp_path / "bad.nn")
    (d,) = res.diagnostics
    assert (d.code, d.span.line, d.span.col) == ("E109", 3, 33)
    assert "not UTF-8 text (byte 0xe9)" in d.message
    rc, _, err = _run(["check", str(tmp_path / "bad.nn")], capsys)
    assert rc == 1 and "3 |     output y = x -> dense(4)  # \ufffd" in err
    assert err.splitlines()[4].endswith("^ not UTF-8")


def test_mistyped_file_names_get_the_closest_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "digits.nn").write_text(GOOD)
    monkeypatch.chdir(tmp_path)
    for typed in ("exmaples/digits.nn", "examples/digts.nn", "examples/digits"):
        rc, _, err = _run(["check", typed], capsys)
        assert rc == 1 and "help: did you mean `examples/digits.nn`?" in err, err
    rc, _, err = _run(["check", "nothing/like/it.nn"], capsys)
    assert rc == 1 and "did you mean" not in err
    (tmp_path / "main.nn").write_text('import "exmaples/digts.nn"\n' + GOOD)
    (d,) = check(tmp_path / "main.nn").diagnostics
    assert d.code == "E109" and d.help == 'did you mean `import "examples/digits.nn"`?'


def test_a_file_of_blocks_checks_ok_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lib = "block A(n: int) {\n    input x: f32[F]\n    output y = x -> dense(n)\n}\n"
    lib += "block B {\n    input x: f32[4]\n    output y = x -> A(3) -> relu\n}\n"
    (tmp_path / "lib.nn").write_text(lib)
    res = check(tmp_path / "lib.nn")
    assert res.ok and res.blocks == ["A", "B"] and not res.diagnostics
    rc, out, _ = _run(["check", str(tmp_path / "lib.nn")], capsys)
    assert rc == 0 and out.endswith("lib.nn: ok — 2 blocks (A, B), no model\n")
    with pytest.raises(NNError) as e:  # nothing to summarise or train
        build(tmp_path / "lib.nn")
    assert e.value.diagnostics[0].code == "E108"
    assert "only blocks (`A`, `B`)" in (e.value.diagnostics[0].help or "")
    (tmp_path / "empty.nn").write_text("# nothing here\n")
    assert [d.code for d in check(tmp_path / "empty.nn").diagnostics] == ["E108"]


def test_a_block_is_checked_with_fixed_input_shapes(tmp_path: Path) -> None:
    lib = "block A {\n    input x: f32[4, 4]\n    output y = x -> concat(x, axis = 2)\n}\n"
    (d,) = check("lib.nn", text=lib).diagnostics
    assert d.code == "E202" and d.span.line == 3


def test_syntax_errors_stop_at_the_cap() -> None:
    from nnlang.syntax.recover import MAX_SYNTAX_ERRORS

    body = "".join(f"    h{i} = = 1\n" for i in range(MAX_SYNTAX_ERRORS + 5))
    res = check("many.nn", text="model Net {\n    input x: f32[8]\n" + body + "}\n")
    assert len(res.diagnostics) == MAX_SYNTAX_ERRORS
    assert [d.span.line for d in res.diagnostics] == list(range(3, 3 + MAX_SYNTAX_ERRORS))
    assert "stopped after" in res.diagnostics[-1].notes[0]


def _broken(monkeypatch: pytest.MonkeyPatch, kind: str, rule: str) -> None:
    from dataclasses import replace

    from nnlang.layers import REGISTRY

    def boom(*_: object) -> object:
        raise ZeroDivisionError("boom")

    monkeypatch.setitem(REGISTRY, kind, replace(REGISTRY[kind], **{rule: boom}))


def test_a_failing_shape_rule_is_e999_at_the_layer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _broken(monkeypatch, "dense", "shape")
    (tmp_path / "good.nn").write_text(GOOD)
    rc, _, err = _run(["check", str(tmp_path / "good.nn")], capsys)
    assert rc == 2 and "Traceback" not in err
    lines = err.splitlines()
    assert lines[0].startswith(
        "error[E999]: internal error while inferring the shape and size of `dense`"
    )
    assert "bug in nnlang" in lines[0] and lines[1].endswith("good.nn:3:21")
    assert "3 |     output y = x -> dense(4)" in err and "= note: ZeroDivisionError: boom" in err


def test_a_failing_lowering_names_the_node_and_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nnlang import module
    from nnlang.diagnostics import InternalError

    _broken(monkeypatch, "relu", "build")
    text = GOOD.replace("dense(4)", "dense(4) -> relu")
    with pytest.raises(InternalError) as e:
        module(build("m.nn", text=text))
    assert "lowering layer `relu` (relu) to Flax at m.nn:3:33" in str(e.value)
    assert isinstance(e.value.__cause__, ZeroDivisionError)
    d = e.value.diagnostic()
    assert d.code == "E999" and d.span is not None and d.span.line == 3
