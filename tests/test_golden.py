"""Golden cases: every `.nn` file in tests/golden writes the diagnostics it must produce
inline, as comments on the line each diagnostic points at:

    output y = x -> dnese(4)   # E: E103 @21
    h = x -> relu              # W: W301

`# E:` / `# W:` take one or more codes, each optionally with `@COL`, the expected
1-based column of the primary span. The set of (file, line, code) that `nnlang.api.check`
reports must equal the set written in the file (and in the files it imports from
tests/golden/imports/), columns where given must match, no E999 may appear, and the CLI
must exit 1 (0 when only warnings are expected) without a traceback.

tests/golden/rendered/ holds exact CLI outputs (full, concise, JSON). Regenerate them
after an intended change with

    NNLANG_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from nnlang import cli
from nnlang.api import check

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
RENDERED = GOLDEN / "rendered"
CASES = sorted(GOLDEN.glob("*.nn"))
UPDATE = os.environ.get("NNLANG_UPDATE_GOLDEN") == "1"

MARK = re.compile(r"#\s*([EW]):((?:\s*,?\s*[EW]\d{3}(?:\s*@\d+)?)+)")
ITEM = re.compile(r"([EW]\d{3})(?:\s*@(\d+))?")
IMPORT = re.compile(r'^\s*import\s+"([^"]+)"', re.M)


def _files(main: Path) -> list[Path]:
    """The main file and every file it imports (transitively) inside tests/golden."""
    out: list[Path] = []
    todo = [main.resolve()]
    while todo:
        f = todo.pop()
        if f in out or not f.is_file() or GOLDEN not in f.parents:
            continue
        out.append(f)
        text = f.read_text("utf-8", errors="replace")
        todo.extend((f.parent / rel).resolve() for rel in IMPORT.findall(text))
    return out


def expectations(main: Path) -> tuple[set[tuple[Path, int, str]], dict[tuple[Path, int, str], int]]:
    expected: set[tuple[Path, int, str]] = set()
    columns: dict[tuple[Path, int, str], int] = {}
    for f in _files(main):
        for lineno, line in enumerate(f.read_text("utf-8", errors="replace").splitlines(), 1):
            for m in MARK.finditer(line):
                for code, col in ITEM.findall(m.group(2)):
                    key = (f, lineno, code)
                    expected.add(key)
                    if col:
                        columns[key] = int(col)
    return expected, columns


def _where(file: str) -> Path:
    return Path(file).resolve()


def test_corpus_is_large_enough() -> None:
    codes = set()
    for case in CASES:
        codes |= {c for _, _, c in expectations(case)[0]}
    assert len(CASES) >= 45, len(CASES)
    assert len(codes) >= 40, sorted(codes)


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_golden(case: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expected, columns = expectations(case)
    assert expected, f"{case.name} states no expected diagnostic"
    res = check(case)
    got: dict[tuple[Path, int, str], list[int]] = {}
    for d in res.diagnostics:
        assert d.code != "E999", d
        assert d.span is not None, f"diagnostic without a location: {d.code} {d.message}"
        got.setdefault((_where(d.span.file), d.span.line, d.code), []).append(d.span.col)

    def show(keys: set[tuple[Path, int, str]]) -> list[str]:
        return sorted(f"{k[0].name}:{k[1]}: {k[2]}" for k in keys)

    missing, extra = expected - set(got), set(got) - expected
    messages = "\n".join(f"  {d.span}: {d.code} {d.message}" for d in res.diagnostics)
    assert not missing and not extra, (
        f"missing {show(missing)}, unexpected {show(extra)}; reported:\n{messages}"
    )
    for key, col in columns.items():
        assert col in got[key], (
            f"{key[0].name}:{key[1]}: {key[2]} at column {got[key]}, expected {col}"
        )

    # the CLI: exit 1 on errors (0 when only warnings), never a traceback
    rc = cli.main(["check", str(case)])
    out = capsys.readouterr()
    text = out.out + out.err
    assert "Traceback" not in text and "E999" not in text, text
    only_warnings = all(code.startswith("W") for _, _, code in expected)
    assert rc == (0 if only_warnings else 1), text


def test_huge_dense_is_refused_fast() -> None:
    check(GOLDEN / "shapes_budget.nn")  # warm up: imports and the parser
    start = time.perf_counter()
    res = check(GOLDEN / "shapes_budget.nn")
    elapsed = time.perf_counter() - start
    budget = [d for d in res.diagnostics if d.code == "E306"]
    assert budget and "dense" in budget[0].message
    assert elapsed < 0.5, elapsed


# ------------------------------------------------------------------ rendered snapshots
#: (input file in tests/golden/rendered, format)
SNAPSHOTS = [
    ("shape_mismatch.nn", "full"),
    ("unclosed.nn", "full"),
    ("did_you_mean.nn", "full"),
    ("did_you_mean.nn", "json"),
    ("several.nn", "concise"),
    ("several.nn", "full"),
    ("unused.nn", "full"),
    ("import_cycle.nn", "full"),
    ("syntax_several.nn", "full"),
    ("syntax_several.nn", "concise"),
    ("not_utf8.nn", "full"),
    ("typo_import.nn", "full"),
    ("blocks_only.nn", "full"),
]


def _render(name: str, fmt: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = cli.main(["check", f"tests/golden/rendered/{name}", "--format", fmt])
    out = capsys.readouterr()
    return rc, out.err + out.out  # the order a terminal shows: diagnostics, then the summary


@pytest.mark.parametrize(("name", "fmt"), SNAPSHOTS, ids=[f"{n}-{f}" for n, f in SNAPSHOTS])
def test_rendered(
    name: str, fmt: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)  # file names in the output are relative to the cwd
    rc, text = _render(name, fmt, capsys)
    assert "Traceback" not in text
    snapshot = RENDERED / f"{Path(name).stem}.{fmt}.txt"
    if UPDATE:
        snapshot.write_text(text, "utf-8")
    assert snapshot.exists(), f"no snapshot {snapshot.name}: run with NNLANG_UPDATE_GOLDEN=1"
    assert text == snapshot.read_text("utf-8"), (
        f"{snapshot.name} differs; if the change is intended, regenerate with NNLANG_UPDATE_GOLDEN=1"
    )
    assert rc in (0, 1)
