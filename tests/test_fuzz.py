"""Fuzzing the front end: whatever the text, `nnlang.api.check` ends in a checked graph or
in diagnostics, never in another exception, never in E999, and the diagnostics render.

Two sources of programs (Hypothesis):

- generated: models built from the layer registry with random (mostly plausible,
  sometimes wrong) arguments, pipelines, merges, repeats, blocks, `if`, `shared`,
  multi-output bindings and train sections;
- mutated: valid programs (the README example, `examples/*.nn`, the golden cases) with
  characters and tokens deleted, inserted, replaced and lines shuffled.

Plus deep nesting and huge files, which must give E007 quickly.

The runs are derandomized (the same examples every time) so the suite is stable; set
NNLANG_FUZZ_RANDOM=1 to explore new examples and NNLANG_FUZZ_EXAMPLES=N to run more.
"""

from __future__ import annotations

import json
import os
import re
import time
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnlang.api import Checked, check
from nnlang.diagnostics import CODES, render_all
from nnlang.layers import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = int(os.environ.get("NNLANG_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=os.environ.get("NNLANG_FUZZ_RANDOM") != "1",
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)

EXAMPLE = """\
block Residual(ch: int, stride: int = 1) {
    input x: f32[H, W, C]
    h = x -> conv(ch, 3, stride = stride) -> relu -> conv(ch, 3)
    if stride != 1 or C != ch { sc = x -> conv(ch, 1, stride = stride) } else { sc = x }
    output y = (h + sc) -> relu
}
model Net(width: int = 16) {
    input image: f32[8, 8, 1]
    shared proj = dense(10)
    h = image -> conv(width, 3) -> Residual(width) * 2 -> global_avg_pool
    output logits = h -> proj
}
train Net {
    data = digits(test = 0.2, seed = 0)
    loss = cross_entropy(logits, label) + 1e-4 * l2
    optimizer = adam(lr = 1e-3)
    batch = 64
    epochs = 10
    metrics = [accuracy, ece]
}
"""

SEQ_MODEL = """\
model Tagger(vocab: int = 100, dim: int = 16) {
    input tokens: i32[T]
    e = tokens -> embedding(vocab, dim)
    seq, h, c = e -> lstm(dim, return_state = true)
    a = attention(seq, seq, seq, heads = 2)
    output tags = (a + seq) -> layer_norm -> dense(5)
    output summary = h -> dense(2)
}
"""


def seeds() -> list[str]:
    out = [EXAMPLE, SEQ_MODEL]
    for pattern in ("examples/*.nn", "tests/golden/*.nn"):
        out += [p.read_text("utf-8") for p in sorted(ROOT.glob(pattern))]
    for doc in sorted((ROOT / "docs").glob("*.md")):  # the examples of the user docs
        out += re.findall(r"^```nn[^\n]*\n(.*?)^```", doc.read_text("utf-8"), re.S | re.M)
    return out


SEEDS = seeds()


def assert_well_behaved(text: str) -> Checked:
    """check() returns; every diagnostic is declared, located sensibly and renders.
    Warnings are errors here: a Python warning on odd input is a bug waiting to happen."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = check("fuzz.nn", text=text)
    n_lines = max(text.count("\n") + 1, 1)
    for d in res.diagnostics:
        assert d.code in CODES and d.code != "E999", (d.code, d.message)
        assert d.message and "Traceback" not in d.message
        if d.span is not None and d.span.file == "fuzz.nn":
            assert 1 <= d.span.line <= n_lines + 1, (d.code, d.span)
            assert d.span.col >= 1, (d.code, d.span)
    if res.ok:
        assert res.graphs or res.program is not None
    sources = res.sources
    render_all(res.diagnostics, sources, "full")
    render_all(res.diagnostics, sources, "concise")
    json.loads(render_all(res.diagnostics, sources, "json"))
    return res


# ------------------------------------------------------------------ generated programs
LAYERS = sorted(REGISTRY)
NAMES = st.sampled_from(["width", "n", "x", "h0", "T", "C", "label", "relu", "Blk"])


def attr_value(kind_name: str, attr_name: str) -> st.SearchStrategy[str]:
    """Mostly plausible values for one attribute, sometimes a wrong one."""
    attr = REGISTRY[kind_name].attr(attr_name)
    assert attr is not None
    plausible: dict[str, st.SearchStrategy[str]] = {
        "int": st.integers(-2, 40).map(str),
        "float": st.sampled_from(["0.0", "0.1", "0.5", "1.0", "2", "1e-3", "-0.5"]),
        "bool": st.sampled_from(["true", "false"]),
        "str": st.sampled_from([f'"{c}"' for c in (attr.choices or ("same", "x"))]),
        "ints": st.one_of(
            st.integers(0, 5).map(str),
            st.lists(st.integers(0, 4), min_size=1, max_size=3).map(
                lambda v: "(" + ", ".join(map(str, v)) + ",)"
            ),
        ),
        "padding": st.sampled_from(['"same"', '"valid"', "0", "1", "(1, 1)", '"full"']),
        "shape": st.lists(st.integers(-1, 8), min_size=1, max_size=3).map(
            lambda v: "(" + ", ".join(map(str, v)) + ",)"
        ),
        "any": st.sampled_from(["1", '"a"', "true"]),
    }
    wrong = st.sampled_from(
        ["2.5", '"seven"', "true", "(1, 2)", "[3]", "-1", "width", "width * 2", "n // 0", "x"]
    )
    good = plausible.get(attr.type, wrong)
    return st.one_of(good, good, good, good, wrong)


#: Calls that fit most inputs, so that many generated models check cleanly.
SAFE = [
    "relu",
    "tanh",
    "gelu",
    "sigmoid",
    "identity",
    "layer_norm",
    "dropout(0.1)",
    "dense(4)",
    "dense(width)",
    "dense(n * 4)",
    "softmax",
    "rms_norm",
    "leaky_relu(alpha = 0.2)",
]


@st.composite
def layer_call(draw: st.DrawFn, extra_callees: tuple[str, ...] = ()) -> str:
    if draw(st.integers(0, 9)) < 6:
        return draw(st.sampled_from(SAFE + list(extra_callees)))
    name = draw(st.sampled_from(LAYERS + list(extra_callees) + ["dnese", "Nope"]))
    kind = REGISTRY.get(name)
    if kind is None:
        args = draw(st.lists(st.sampled_from(["4", "n", "width", "stride = 2", "2.5"]), max_size=2))
        return f"{name}({', '.join(args)})" if args or draw(st.booleans()) else name
    parts: list[str] = []
    positional = True
    for attr in kind.attrs:
        include = attr.required and draw(st.integers(0, 9)) > 0 or draw(st.integers(0, 3)) == 0
        if not include:
            positional = False
            continue
        value = draw(attr_value(name, attr.name))
        if positional and not attr.kw_only and draw(st.booleans()):
            parts.append(value)
        else:
            positional = False
            parts.append(f"{attr.name} = {value}")
    if draw(st.integers(0, 15)) == 0:
        parts.append(draw(st.sampled_from(["bogus = 1", "7", "units = 3"])))
    if not parts and draw(st.booleans()):
        return name
    return f"{name}({', '.join(parts)})"


@st.composite
def stage(draw: st.DrawFn, callees: tuple[str, ...]) -> str:
    call = draw(layer_call(callees))
    if draw(st.integers(0, 6)) == 0:
        call += " * " + draw(st.sampled_from(["2", "3", "n", "0", "-1", "2.5", "(width // 8)"]))
    return call


DTYPES = st.sampled_from(["f32", "f32", "f32", "i32", "f16", "bool", "f64"])
DIM = st.one_of(st.integers(1, 12).map(str), st.sampled_from(["T", "S", "width", "0", "n * 2"]))


@st.composite
def program(draw: st.DrawFn) -> str:
    lines: list[str] = []
    callees: tuple[str, ...] = ()
    if draw(st.booleans()):
        ptype = draw(st.sampled_from(["int", "int", "int", "int", "float", "bool", "integer"]))
        lines.append(
            f"block Blk(n: {ptype} = {draw(st.sampled_from(['4', '2', '0.5', 'true']))}) {{"
        )
        lines.append(
            f"    input x: f32[{', '.join(draw(st.lists(st.sampled_from(['F', 'H', 'W', 'C', '8', 'n']), min_size=1, max_size=3)))}]"
        )
        body = " -> ".join(draw(st.lists(stage(()), min_size=1, max_size=3)))
        lines.append(f"    h = x -> {body}")
        if draw(st.booleans()):
            lines.append("    if n > 2 { z = h -> relu } else { z = h }")
            lines.append("    output y = z")
        else:
            lines.append("    output y = h" + draw(st.sampled_from(["", " + x", " -> Blk(n)"])))
        lines.append("}")
        callees = ("Blk",)
    lines.append("model Net(width: int = 8, n: int = 2) {")
    names: list[str] = []
    for i in range(draw(st.integers(1, 3))):
        dims = draw(st.lists(DIM, min_size=1, max_size=4))
        lines.append(f"    input x{i}: {draw(DTYPES)}[{', '.join(dims)}]")
        names.append(f"x{i}")
    if draw(st.booleans()):
        lines.append(f"    shared s = {draw(layer_call(callees))}")
        callees = callees + ("s",)
    for i in range(draw(st.integers(1, 6))):
        choice = draw(st.integers(0, 9))
        a, b = draw(st.sampled_from(names)), draw(st.sampled_from(names))
        if choice <= 5:
            stages = draw(st.lists(stage(callees), min_size=1, max_size=4))
            expr = f"{a} -> " + " -> ".join(stages)
        elif choice == 6:
            expr = f"{a} {draw(st.sampled_from(['+', '*', '-', '/']))} {b}"
        elif choice == 7:
            expr = draw(
                st.sampled_from(
                    [
                        f"concat({a}, {b}, axis = -1)",
                        f"({a}, {b}) -> concat",
                        f"attention({a}, {b}, {b}, heads = 2)",
                    ]
                )
            )
        elif choice == 8:
            k = draw(st.sampled_from(["lstm", "gru", "rnn"]))
            targets = ", ".join(f"m{i}_{j}" for j in range(draw(st.integers(1, 3))))
            lines.append(
                f"    {targets} = {a} -> {k}(8, return_state = {draw(st.sampled_from(['true', 'false']))})"
            )
            names.append(f"m{i}_0")
            continue
        else:
            lines.append(
                f"    if width {draw(st.sampled_from(['>', '==', '!=']))} {draw(st.integers(0, 16))} {{ h{i} = {a} -> relu }} else {{ h{i} = {a} }}"
            )
            names.append(f"h{i}")
            continue
        lines.append(f"    h{i} = {expr}")
        names.append(f"h{i}")
    outs = draw(st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True))
    for j, o in enumerate(outs):
        lines.append(
            f"    output out{j} = {o}"
            + draw(st.sampled_from(["", "", " -> flatten -> dense(3)", " -> global_avg_pool"]))
        )
    lines.append("}")
    if draw(st.booleans()):
        settings_ = [
            f"data = {draw(st.sampled_from(['digits(test = 0.2)', 'iris()', 'digitz()', 'digits(test = 2)', '3']))}",
            f"loss = {draw(st.sampled_from(['cross_entropy(out0, label)', 'mse(out0, label) + 1e-4 * l2', 'cross_entropy(out9, label)', 'l2(3)', 'mse(out0)']))}",
        ]
        settings_ += draw(
            st.lists(
                st.sampled_from(
                    [
                        "optimizer = adam(lr = 1e-3)",
                        "optimizer = sgd(lr = -1)",
                        "optimizer = adamm()",
                        "schedule = cosine",
                        "schedule = step(every_epochs = 2)",
                        "batch = 32",
                        "batch = 0",
                        "epochs = 2.5",
                        "metrics = [accuracy, ece]",
                        "metrics = [acuracy]",
                        "seed = 1",
                        "optimiser = adam()",
                        "clip = 1.0",
                        "monitor = val_accuracy",
                        "patience = 2",
                    ]
                ),
                max_size=4,
            )
        )
        if draw(st.booleans()):
            settings_ = draw(st.permutations(settings_))[: max(1, len(settings_) - 1)]
        lines.append(
            f"train {draw(st.sampled_from(['Net', 'Net', 'Nett', 'Blk', 'Net(16)', 'Net(width = 4)']))} {{"
        )
        lines += [f"    {s}" for s in settings_]
        lines.append("}")
    return "\n".join(lines) + "\n"


@FUZZ
@given(program())
def test_generated_programs(text: str) -> None:
    assert_well_behaved(text)


def test_generated_programs_reach_graphs() -> None:
    """The generator is not only producing errors: a fixed sample holds checked models."""
    ok = 0

    @settings(
        max_examples=60,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(program())
    def run(text: str) -> None:
        nonlocal ok
        res = assert_well_behaved(text)
        ok += bool(res.graphs)

    run()
    assert ok >= 3, ok


# ------------------------------------------------------------------- mutated programs
TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+\.\d*(?:[eE][+-]?\d+)?|\d+|->|\*\*|//|[=!<>]=|\S")
INSERTS = [
    "(",
    ")",
    "{",
    "}",
    "[",
    "]",
    "->",
    "*",
    "**",
    ",",
    "=",
    "==",
    '"',
    "#",
    "\n",
    " ",
    "-",
    "1e",
    ".",
    "0",
    "-1",
    "2.5",
    "\t",
    "é",
    "\x00",
    "\ufeff",
    ";",
    ":",
    "$",
    "'",
    "!",
    "input",
    "output",
    "model",
    "block",
    "train",
    "if",
    "else",
    "shared",
    "import",
    "step",
    "true",
    "dense",
    "conv",
    "relu",
    "lstm",
    "concat",
    "x",
    "T",
    "f32",
    "i32",
    "\\",
    "1" * 40,
    "9e999",
]
OPS = st.sampled_from(
    ["delete", "insert", "replace_token", "delete_token", "dup_line", "swap_lines", "truncate"]
)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(OPS)
        n = len(text)
        pos = draw(st.integers(0, max(n - 1, 0)))
        if op == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 8)) :]
        elif op == "insert":
            text = text[:pos] + draw(st.sampled_from(INSERTS)) + text[pos:]
        elif op in ("replace_token", "delete_token"):
            tokens = list(TOKEN.finditer(text))
            if not tokens:
                continue
            m = tokens[draw(st.integers(0, len(tokens) - 1))]
            new = (
                draw(st.sampled_from(INSERTS + [t.group() for t in tokens[:50]]))
                if op == "replace_token"
                else ""
            )
            text = text[: m.start()] + new + text[m.end() :]
        elif op == "dup_line" or op == "swap_lines":
            lines = text.split("\n")
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            if op == "dup_line":
                lines.insert(j, lines[i])
            else:
                lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
        else:
            text = text[:pos]
    return text


@settings(FUZZ, max_examples=3 * EXAMPLES)
@given(mutated())
def test_mutated_programs(text: str) -> None:
    assert_well_behaved(text)


@pytest.mark.parametrize("seed", range(len(SEEDS)), ids=lambda i: f"seed{i}")
def test_seeds_behave(seed: int) -> None:
    assert_well_behaved(SEEDS[seed])


def test_example_is_valid() -> None:
    res = assert_well_behaved(EXAMPLE)
    assert res.ok, [d.message for d in res.diagnostics]
    assert assert_well_behaved(SEQ_MODEL).ok


# ---------------------------------------------------------------- deep and huge inputs
def _e007_fast(text: str, limit: float = 10.0) -> None:
    start = time.perf_counter()
    res = assert_well_behaved(text)
    assert time.perf_counter() - start < limit
    assert [d.code for d in res.diagnostics] == ["E007"], [
        (d.code, d.message) for d in res.diagnostics
    ]


def _model(line: str) -> str:
    return f"model Net {{\n    input x: f32[8]\n    {line}\n    output y = x -> dense(4)\n}}\n"


def test_deep_parentheses() -> None:
    _e007_fast(_model("n = " + "(" * 10_000 + "1" + ")" * 10_000))


def test_deep_unclosed_parentheses() -> None:
    _e007_fast(_model("n = " + "(" * 10_000))


def test_deep_brackets_and_braces() -> None:
    _e007_fast(_model("n = " + "[" * 5_000 + "]" * 5_000))
    _e007_fast("model Net {\n" + "if true {\n" * 10_000 + "}\n" * 10_000 + "}\n")


def test_deep_unary_minus() -> None:
    _e007_fast(_model("n = " + "- " * 10_000 + "1"))
    _e007_fast("model Net {\n    input x: f32[8]\n    output y = " + "- " * 10_000 + "x\n}\n")


def test_deep_not_and_power_and_sums() -> None:
    _e007_fast(_model("b = " + "not " * 10_000 + "true"))
    _e007_fast(_model("n = " + "2 ** " * 10_000 + "1"))
    _e007_fast(_model("n = " + "1 + " * 10_000 + "1"))


def test_long_else_if_ladder() -> None:
    _e007_fast(_model("if false { z = 1 }" + " else if false { z = 1 }" * 5_000))


def test_five_megabyte_file() -> None:
    body = "".join(f"    h{i} = x -> relu\n" for i in range(250_000))
    text = "model Net {\n    input x: f32[8]\n" + body + "    output y = x\n}\n"
    assert len(text) > 5_000_000
    _e007_fast(text, limit=5.0)


def test_long_flat_pipeline_is_fine() -> None:
    res = assert_well_behaved(
        "model Net {\n    input x: f32[8]\n    output y = x" + " -> relu" * 2_000 + "\n}\n"
    )
    assert res.ok


def test_huge_repeat_is_refused() -> None:
    res = assert_well_behaved(_model("h = x -> relu * 100000"))
    assert [d.code for d in res.diagnostics] == ["E203"]
    res = assert_well_behaved(_model("n = 10 ** 300"))
    assert [d.code for d in res.diagnostics] == ["E204"]


@settings(FUZZ, max_examples=EXAMPLES)
@given(mutated())
def test_recovery_keeps_the_first_error_and_moves_forward(text: str) -> None:
    """Several syntax errors per file: the first is the one a parse without recovery
    finds, worded the same; the others follow it in file order, at most the cap."""
    import lark

    from nnlang.diagnostics import NNError
    from nnlang.syntax import parser
    from nnlang.syntax.errors import syntax_error
    from nnlang.syntax.recover import MAX_SYNTAX_ERRORS

    try:
        parser._parser().parse(text)
        first = None
    except lark.exceptions.UnexpectedInput as e:
        first = syntax_error("f.nn", text, e, parser.is_expression)
    try:
        parser._parse_tree("f.nn", text)
    except NNError as e:
        found = e.diagnostics
    else:
        found = []
    assert (first is None) == (not found)
    if first is not None:
        assert found[0] == first
        where = [(d.span.line, d.span.col) for d in found if d.span is not None]
        assert where == sorted(set(where)) and len(found) <= MAX_SYNTAX_ERRORS
