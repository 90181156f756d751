"""Every ```console transcript in the docs is replayed, or marked as not run (issue 15.7).

The tutorial runs as one session in a temporary folder, in its order (train, then eval,
predict, --set, init_from and export on that run). The error examples of errors.md and
train.md run on the small files in FIXTURES. A block of commands without output (the
families' `nnlang train examples/...`) is checked to parse and to name files that exist.
A block is skipped only when the line before it says `<!-- transcript: not run (why) -->`.

`NNLANG_UPDATE_TRANSCRIPTS=1 pytest tests/test_transcripts.py` writes what the commands
print into the docs (keeping each block's `...` elision); read the diff before committing.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import shutil
from pathlib import Path

import pytest
from _transcripts import Block, blocks, check, update_docs
from _util import ROOT

DOCS = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
ALL = [b for d in DOCS for b in blocks(ROOT / "docs" / d)]


def _ids(b: Block) -> str:
    return b.where


def test_every_block_is_replayed_or_marked_not_run() -> None:
    assert len(ALL) > 50  # the parser found the blocks
    for b in ALL:
        assert b.commands, f"{b.where}: a console block without a `$ ` command"
        if b.marker is not None:
            assert re.fullmatch(r"not run \(.+\)", b.marker), (
                f"{b.where}: a marker reads `<!-- transcript: not run (why) -->`"
            )
    for b in ALL:  # every unmarked block with output has a replay below
        if b.marker is None and b.has_output and b.doc != "tutorial.md":
            assert _key(b) in FIXTURES, (
                f"{b.where}: `{_key(b)}` is neither replayed (add it to "
                "FIXTURES in tests/test_transcripts.py) nor marked not run"
            )


@pytest.mark.parametrize(
    "block", [b for b in ALL if not b.has_output and b.marker is None], ids=_ids
)
def test_commands_without_output_parse_and_name_files_that_exist(block: Block) -> None:
    from nnlang.cli import build_parser

    for c in block.commands:
        argv = shlex.split(c.text, comments=True)
        if argv[0] == "nnlang":
            build_parser().parse_args(argv[1:])
        for a in argv[1:]:
            if a.endswith((".nn", ".py")):
                assert (ROOT / a).is_file(), f"{block.where}: `{a}` does not exist"


def _tutorial_model(text: str) -> tuple[str, str]:
    """The tutorial's digits.nn and the line its section 3 puts in as a mistake."""
    model = re.search(r"```nn\n(# digits\.nn.*?)```", text, re.S)
    mistake = re.search(r"Change line 4 to put it after:\n\n```\n(.*?)\n```", text, re.S)
    assert model and mistake
    return model.group(1), mistake.group(1)


def test_tutorial(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "tutorial.md").read_text("utf-8")
    model, mistake = _tutorial_model(text)
    (tmp_path / "digits.nn").write_text(model)
    for b in blocks(ROOT / "docs" / "tutorial.md"):
        if b.marker is not None:
            continue
        wrong = any("error[" in ln for c in b.commands for ln in c.output)
        if wrong:  # section 3: the mistake in, checked, and out again
            lines = model.splitlines(keepends=True)
            lines[3] = mistake + "\n"
            (tmp_path / "digits.nn").write_text("".join(lines))
        try:
            check(b, tmp_path)
        finally:
            (tmp_path / "digits.nn").write_text(model)


@pytest.fixture(autouse=True, scope="module")
def _update_docs():
    """NNLANG_UPDATE_TRANSCRIPTS=1: the docs rewritten once all blocks were replayed."""
    yield
    update_docs()


@pytest.fixture(scope="module")
def table_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/table.nn trained for one epoch into runs/table, once for the module."""
    from _transcripts import run

    home = tmp_path_factory.mktemp("table")
    (home / "examples" / "data").mkdir(parents=True)
    shutil.copy(ROOT / TABLE, home / TABLE)
    shutil.copy(ROOT / "examples/data/customers.csv", home / "examples/data/customers.csv")
    rc, out = run(f"nnlang train {TABLE} --out runs/table --set epochs=1 -q", home)
    assert rc == 0, out
    return home


# the files the error examples run on, by the example's command
TABLE = Path("examples/table.nn")
MODEL_NN = """\
model Net {
    input x: f32[8, 8, 1]
    output logits = x -> flatten -> dense(10)
}
train Net {
    data = digits(test = 0.2, val = 0.1, seed = 0)
    loss = cross_entropy(logits, label)
    optimizer = adam(lr = 1e-3)
    batch = 64
    epochs = 1
}
"""
WIDE_NN = """\
model Wide {
    input image: f32[8, 8, 1]
    output y = image -> flatten -> dense(65536) -> relu -> dense(10)
}
train Wide {
    data = digits(test = 0.2, seed = 0)
    loss = cross_entropy(y, label)
    batch = 65536
}
"""
IRIS_BN_NN = """\
model IrisBN {
    input x: f32[4]
    output logits = x -> dense(16) -> batch_norm -> relu -> dense(3)
}
train IrisBN {
    data = iris(test = 0.2)
    loss = cross_entropy(logits, label)
    batch = 16
    epochs = 20
}
"""
TINY_NN = """\
model Tiny {
    input x: f16[10]
    output y = x -> dense(1)
}
train Tiny {
    data = diabetes(test = 0.2)
    loss = mse(y, label)
    optimizer = sgd(lr = 1.0)
    batch = 32
}
"""


def _zeros(*shape: int) -> object:
    import numpy as np

    return np.zeros(shape, np.float32 if len(shape) > 1 else np.int32)


def _old_npz() -> bytes:
    """Weights for M_NN's init_from: one layer that fits, one unused, a head of 5."""
    import numpy as np

    shapes = {"dense": (64, 16), "hidden": (16, 16), "dense_2": (16, 5)}
    arrays = {}
    for name, (i, o) in shapes.items():
        arrays[f"{name}.kernel"] = np.zeros((i, o), np.float32)
        arrays[f"{name}.bias"] = np.zeros(o, np.float32)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


M_NN = MODEL_NN.replace("dense(10)", "dense(16) -> relu -> dense(16) -> relu -> dense(10)")
E407_NN = """\
model Net {
    input x: f32[4]
    output logits = x -> dense(2)
}
train Net {
    data = npz("d.npz")
    loss = cross_entropy(logits, label)
    batch = 16
}
"""


def _npz(**arrays: object) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


FIXTURES: dict[str, dict[str, str | bytes]] = {
    "nnlang train model.nn [E407]": {
        "model.nn": E407_NN,
        "d.npz": _npz(x=_zeros(100, 3), label=_zeros(100)),
    },
    "nnlang predict examples/table.nn --run runs/table --input new.csv -o p.json [E504]": {
        "new.csv": "age,city,plan,monthly_fee\n44,Paris,basic,30.0\n",
    },
    "nnlang train model.nn --out runs/model --resume [E510]": {
        "model.nn": MODEL_NN,
        "runs/model/checkpoints/.keep": "",
    },
    """nnlang train m.nn --set 'init_from="old.npz"' [E502]""": {
        "m.nn": M_NN,
        "old.npz": _old_npz(),
    },
    "nnlang train tiny.nn [E501]": {"tiny.nn": TINY_NN},
    "nnlang train iris_bn.nn [W401]": {"iris_bn.nn": IRIS_BN_NN},
    "nnlang train model.nn --set btach=3 [E406]": {"model.nn": MODEL_NN},
    "nnlang train model.nn [E408]": {
        "model.nn": MODEL_NN.replace(
            "digits(test = 0.2, val = 0.1, seed = 0)", 'csv("flowers.csv", label = "species")'
        )
    },
    "nnlang check wide.nn --memory-mb 16384 [E409]": {"wide.nn": WIDE_NN},
    "nnlang export model.nn --run nowhere --format onnx --out m.onnx [E503]": {
        "model.nn": MODEL_NN
    },
    "nnlang train digits_mlp.nn --out notes.txt/run [E703]": {
        "digits_mlp.nn": MODEL_NN,
        "notes.txt": "notes\n",
    },
}


def _key(b: Block) -> str:
    """A block's first command and the first code it shows: its fixture's name."""
    code = re.search(r"\[([EW]\d{3})\]", "\n".join(b.commands[0].output))
    return f"{b.commands[0].text} [{code.group(1) if code else ''}]"


@pytest.mark.parametrize(
    "block",
    [b for b in ALL if b.doc != "tutorial.md" and b.has_output and b.marker is None],
    ids=_ids,
)
def test_error_examples(block: Block, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    table_run = request.getfixturevalue("table_run") if "[E504]" in _key(block) else None
    for name, content in FIXTURES[_key(block)].items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            (tmp_path / name).write_bytes(content)
        else:
            (tmp_path / name).write_text(content)
    with contextlib.ExitStack() as stack:
        if _key(block).endswith("[E504]"):  # a run of examples/table.nn to predict with
            shutil.copytree(table_run, tmp_path, dirs_exist_ok=True)
        if _key(block).endswith("[E510]"):  # another training holds the run's lock
            from nnlang.train.rundir import RunLock

            stack.callback(RunLock.acquire(tmp_path / "runs" / "model").release)
        check(block, tmp_path, home=tmp_path)
