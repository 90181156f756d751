"""Trainable parts and fine-tuning: `freeze`, `lr_groups`, `init_from` by name with its
preflight report (a renamed layer, a resized head, an extra layer), weight files, and
examples/transfer.nn (a frozen backbone and a new head beat training from scratch)."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest
from _util import ROOT, write
from flax import nnx

import nnlang.train.run as run_mod
from nnlang.api import check
from nnlang.cli import main
from nnlang.train.checkpoint import to_arrays
from nnlang.train.parts import select
from nnlang.train.run import train
from nnlang.train.trainable import param_path

TRANSFER = ROOT / "examples" / "transfer.nn"

SMALL = """
model M(classes: int = 10) {
    input  image: f32[8, 8, 1]
    output logits = image -> flatten -> dense(16) -> relu -> dense(16) -> relu -> dense(classes)
}
train M {
    data   = digits(test = 0.2, seed = 0)
    loss   = cross_entropy(logits, label)
    epochs = 1
    batch  = 64
    SETTINGS
}
"""


def small(tmp_path: Path, settings: str = "") -> Path:
    return write(tmp_path, "m.nn", SMALL.replace("SETTINGS", settings))


def flat(model: nnx.Module) -> dict[str, np.ndarray]:
    return {
        param_path(p): np.asarray(v.get_value())
        for p, v in nnx.to_flat_state(nnx.state(model, nnx.Any(nnx.Param, nnx.BatchStat)))
    }


# ------------------------------------------------------------------ patterns
def test_patterns_select_layers_blocks_and_globs() -> None:
    paths = ["enc/dense.kernel", "enc/dense_1.bias", "enc/inner/dense.kernel", "dense.kernel"]
    found = select(paths, ["enc", "enc/dense*", "*/dense", "dense", "nothing"])
    assert found.by_pattern[0] == tuple(paths[:3])
    assert found.by_pattern[1] == tuple(paths[:2])
    assert found.by_pattern[2] == ("enc/dense.kernel", "enc/inner/dense.kernel")
    assert found.by_pattern[3] == ("dense.kernel",)  # a name is a whole node id
    assert found.unmatched() == [4]


def test_a_pattern_matching_nothing_is_located(tmp_path: Path) -> None:
    res = check(small(tmp_path, 'freeze = [dense_3, "enc/*"]\n    lr_groups = [(dense_2, 2.0)]'))
    got = [(d.code, d.message, d.span.line if d.span else None, d.help) for d in res.diagnostics]
    assert ("E404", "`freeze`: `dense_3` matches no layer or block with parameters") == got[0][:2]
    assert "did you mean `dense_2`" in (got[0][3] or "")
    assert got[1][:2] == ("E404", "`freeze`: `enc/*` matches no layer or block with parameters")
    assert len(got) == 2  # dense_2 exists
    res = check(small(tmp_path, "lr_groups = [dense]"))
    assert [d.code for d in res.diagnostics] == ["E403"]
    res = check(small(tmp_path, "lr_groups = [(dense, -1)]"))
    assert [d.code for d in res.diagnostics] == ["E202"]


# ------------------------------------------------------------------ freezing
def test_frozen_parameters_are_not_in_the_optimizer_and_lr_groups_scale(tmp_path: Path) -> None:
    f = small(tmp_path, "freeze = [dense]\n    lr_groups = [(dense_1, 0.0), (dense_2, 3.0)]")
    setup = run_mod.setup(f)
    net = run_mod.lower(setup.graph, 0)
    before = flat(net)
    engine = run_mod.make_engine(setup.graph, setup.spec, net, 1400, {"image": (8, 8, 1)})
    _, opt = nnx.merge(engine.train_def, engine.state)
    # adam keeps two moments per trained parameter: none for the frozen `dense`
    moments = [x for x in jax.tree.leaves(opt.opt_state) if np.ndim(x) >= 1]
    assert sorted(np.shape(m) for m in moments) == sorted([(16, 16), (16,), (16, 10), (10,)] * 2)
    after = flat(train(f, out=tmp_path / "r", progress=False).model)
    for p in before:  # frozen, and multiplied by 0: bitwise unchanged; dense_2 trained
        assert np.array_equal(before[p], after[p]) == (not p.startswith("dense_2")), p


def test_frozen_batch_norm_keeps_its_running_averages(tmp_path: Path) -> None:
    f = write(
        tmp_path,
        "bn.nn",
        SMALL.replace(
            "-> dense(16) -> relu -> dense(16)", "-> dense(16) -> batch_norm -> dense(16)"
        ).replace("SETTINGS", "freeze = [batch_norm]"),
    )
    res = check(f)
    assert not res.diagnostics  # no W401: a frozen batch_norm does not need to settle
    before = flat(run_mod.lower(run_mod.setup(f).graph, 0))
    after = flat(train(f, out=tmp_path / "r", progress=False).model)
    for k in ("mean", "var", "scale", "bias"):
        assert np.array_equal(before[f"batch_norm.{k}"], after[f"batch_norm.{k}"]), k
    assert not np.array_equal(before["dense.kernel"], after["dense.kernel"])


# ------------------------------------------------------------------ init_from
def _source(tmp_path: Path) -> Path:
    """Weights of an older model: `dense` kept, the middle layer renamed to `hidden`,
    the head resized to 5 classes; the new model adds a layer (`dense_2`)."""
    rng = np.random.default_rng(0)
    arrays = {
        "dense.kernel": rng.normal(size=(64, 16)).astype(np.float32),
        "dense.bias": rng.normal(size=16).astype(np.float32),
        "hidden.kernel": rng.normal(size=(16, 16)).astype(np.float32),
        "hidden.bias": rng.normal(size=16).astype(np.float32),
        "dense_2.kernel": rng.normal(size=(16, 5)).astype(np.float32),
        "dense_2.bias": rng.normal(size=5).astype(np.float32),
    }
    np.savez(tmp_path / "old.npz", **arrays)
    return tmp_path / "old.npz"


REPORT = """\
init_from `old.npz`: 2 loaded, 2 new, 2 unused, 2 shape conflicts
  loaded   dense: bias [16], kernel [64, 16]
  new      dense_1: bias [16], kernel [16, 16]
  unused   hidden: bias [16], kernel [16, 16]
  conflict dense_2.bias: source [5], model [10] (initialised)
  conflict dense_2.kernel: source [16, 5], model [16, 10] (initialised)"""


def test_preflight_report_comes_before_any_compute(tmp_path: Path, capsys, monkeypatch) -> None:
    src = _source(tmp_path)
    f = small(tmp_path, 'init_from = "old.npz"\n    mismatched = init')

    class Stop(Exception):
        pass

    def no_lowering(*a: object, **k: object) -> None:
        assert REPORT in capsys.readouterr().err  # printed before the model is built
        raise Stop

    with monkeypatch.context() as m:
        m.setattr(run_mod, "lower", no_lowering)
        with pytest.raises(Stop):
            train(f, out=tmp_path / "r0", progress=False)
    r = train(f, out=tmp_path / "r", progress=False, sets=["freeze=[dense]"])
    assert np.array_equal(flat(r.model)["dense.kernel"], np.load(src)["dense.kernel"])


def test_a_shape_conflict_is_e502_unless_mismatched_init(tmp_path: Path, capsys) -> None:
    _source(tmp_path)
    f = small(tmp_path, 'init_from = "old.npz"')
    assert main(["train", str(f), "--out", str(tmp_path / "r"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "error[E502]: `init_from`: 2 parameter shapes in `old.npz` differ" in err
    assert "m.nn:11" in err and "mismatched = init" in err
    assert "dense_2.kernel: source [16, 5], model [16, 10]" in err


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"not a zip", "is not a readable .npz file of named arrays"),
        (None, "is not a readable .npz file of named arrays: Object arrays cannot be loaded"),
    ],
)
def test_an_unreadable_weight_file_is_named(tmp_path: Path, capsys, content, reason) -> None:
    bad = tmp_path / "w.npz"
    if content is None:
        np.savez(bad, x=np.array([{"a": 1}], dtype=object))  # needs pickle: refused
    else:
        bad.write_bytes(content)
    f = small(tmp_path, 'init_from = "w.npz"')
    assert main(["train", str(f), "--out", str(tmp_path / "r"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "E503" in err and "`w.npz`" in err and reason in err, err


def test_weight_file_outside_the_folder_and_missing(tmp_path: Path, capsys) -> None:
    f = small(tmp_path, 'init_from = "../w.npz"')
    assert main(["train", str(f), "--out", str(tmp_path / "r"), "-q"]) == 1
    assert "E503" in (err := capsys.readouterr().err) and "leads outside" in err
    f = small(tmp_path, 'init_from = "nope.safetensors"')
    assert main(["train", str(f), "--out", str(tmp_path / "r"), "-q"]) == 1
    assert "no file `nope.safetensors`" in capsys.readouterr().err


def test_safetensors_file(tmp_path: Path, capsys) -> None:
    from safetensors.numpy import save_file

    k = np.full((64, 16), 0.5, np.float32)
    save_file({"layers.dense.kernel": k}, str(tmp_path / "w.safetensors"))
    f = small(tmp_path, 'init_from = "w.safetensors"\n    freeze = [dense]')
    r = train(f, out=tmp_path / "r", progress=False)
    assert np.array_equal(flat(r.model)["dense.kernel"], k)
    assert "1 loaded, 5 new, 0 unused, 0 shape conflicts" in capsys.readouterr().err


# ------------------------------------------------------------------ the example
def test_transfer_beats_scratch_with_the_backbone_bitwise_unchanged(tmp_path: Path, capsys) -> None:
    pre = train(TRANSFER, model="Pretrain", out=tmp_path / "pre", progress=False)
    init = f'init_from="{pre.run_dir}"'
    tuned = train(TRANSFER, model="FineTune", out=tmp_path / "ft", progress=False, sets=[init])
    err = capsys.readouterr().err
    assert "8 loaded, 0 new, 0 unused, 2 shape conflicts" in err
    # the transcript in the docs is this run's report
    report = "\n".join(line for line in err.splitlines() if line.startswith(("init_from", "  ")))
    report = report.replace(f"`{pre.run_dir}`", "`runs/transfer_pretrain`")
    for doc in ("train.md", "families.md"):
        assert report in (ROOT / "docs" / doc).read_text("utf-8"), doc
    scratch = train(
        TRANSFER,
        model="FineTune",
        out=tmp_path / "scratch",
        progress=False,
        sets=["freeze=[]", 'init_from=""'],
    )
    print("transfer", tuned.test, "scratch", scratch.test)
    assert tuned.test["accuracy"] > scratch.test["accuracy"]
    a, b = flat(pre.model), flat(tuned.model)
    backbone = [p for p in b if p.startswith("backbone/")]
    assert len(backbone) == 8
    for p in backbone:
        assert np.array_equal(a[p], b[p]), p
    saved = to_arrays(nnx.state(tuned.model))
    assert saved["layers"]["dense"]["kernel"].shape == (128, 2)


def test_summary_marks_frozen_parameters(capsys) -> None:
    assert main(["summary", str(TRANSFER), "--model", "FineTune"]) == 0
    out = capsys.readouterr().out
    assert "frozen 8,320" in out and "25,088 frozen by `freeze`" in out
    assert main(["summary", str(TRANSFER), "--model", "FineTune", "--json"]) == 0
    import json

    rows = json.loads(capsys.readouterr().out)["nodes"]
    assert [r["name"] for r in rows if r["frozen"]] == [
        "backbone/dense",
        "backbone/batch_norm",
        "backbone/dense_1",
    ]
    assert main(["summary", str(TRANSFER), "--model", "Pretrain"]) == 0
    assert "rozen" not in capsys.readouterr().out


# ------------------------------------------------------------------ several targets
TWO = ROOT / "examples" / "two_targets.nn"


def test_two_targets_train_predict_and_export_keep_both(tmp_path: Path, capsys) -> None:
    r = train(TWO, out=tmp_path / "r", progress=False, sets=["epochs=3"])
    assert r.test["accuracy_digit_logits"] > 0.5 and r.test["accuracy_parity_logits"] > 0.6
    x = np.load(ROOT / "examples" / "data" / "digits_parity.npz")["x"][:7].astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    args = ["--run", str(r.run_dir), "--input", str(tmp_path / "x.npy")]
    assert main(["predict", str(TWO), *args, "-o", str(tmp_path / "out.npz")]) == 0
    out = np.load(tmp_path / "out.npz")
    assert {k: out[k].shape for k in out.files} == {
        "digit_logits": (7, 10),
        "parity_logits": (7, 2),
    }
    art = tmp_path / "m.shlo"
    exp = ["export", str(TWO), "--run", str(r.run_dir), "--format", "stablehlo"]
    assert main([*exp, "--out", str(art)]) == 0
    from nnlang.export.artifact import load_artifact

    assert load_artifact(art).output_names == ["digit_logits", "parity_logits"]


def test_target_names_are_checked(tmp_path: Path) -> None:
    text = TWO.read_text().replace('"data/', f'"{ROOT}/examples/data/')
    bad = write(
        tmp_path, "t.nn", text.replace("(digit_logits, digit) +", "(digit_logits, label) +")
    )
    (d,) = check(bad).diagnostics
    assert d.code == "E404" and d.message.startswith("`label` is not")
    assert "known: digit, digit_logits" in (d.help or "")
    f = write(tmp_path, "u.nn", text.replace("[digit, parity]", "[digit, digit]"))
    assert main(["train", str(f), "--out", str(tmp_path / "r"), "-q"]) == 1
