"""Export: StableHLO and ONNX artifacts, the parity gate, sidecars, `predict --artifact`,
and the docs' snippets run in a Python process that cannot import nnlang."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import nnlang
from nnlang.cli import main as cli
from nnlang.diagnostics import NNError
from nnlang.export import ExportResult, export, gate
from nnlang.export import onnx as onnx_export
from nnlang.export.artifact import load_artifact, sidecar_json, sidecar_npz
from nnlang.train.trained import TrainedRun

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "export.md"

MLP = """
model Net {
    input x: f32[4]
    output logits = x -> dense(16) -> relu -> dense(3)
}
train Net {
    data = iris(test = 0.2, seed = 0)
    loss = cross_entropy(logits, label)
    optimizer = adam(lr = 1e-2)
    batch = 16
    epochs = 5
    metrics = [accuracy]
}
"""

# input `image`, output `logits`: the names docs/export.md's snippets use. Two
# conv -> batch_norm -> relu blocks: jax2onnx 0.17 leaves stale value_info shapes there.
CNN = """
model Digits {
    input image: f32[8, 8, 1]
    output logits = image -> conv(8, 3) -> batch_norm -> relu
                          -> conv(8, 3) -> batch_norm -> relu -> max_pool(2)
                          -> dropout(0.2) -> flatten -> dense(10)
}
train Digits {
    data = digits(test = 0.2, seed = 0)
    normalize = standardize(per = "global")
    loss = cross_entropy(logits, label)
    optimizer = adam(lr = 3e-3)
    batch = 64
    epochs = 5
}
"""

SEQ = """
model Seq {
    input tokens: i32[T]
    h = tokens -> embedding(20, 8)
    output logits = h -> lstm(8, return_sequences = false) -> dense(2)
    output pooled = h -> global_avg_pool
}
train Seq {
    data = npz("seq.npz", x = "x", label = "label")
    loss = cross_entropy(logits, label)
    optimizer = adam(lr = 1e-2)
    batch = 16
    epochs = 5
}
"""

# two inputs (no data source gives two feature arrays yet: its run is made by hand) and
# an output that is an input passed through
TWO = """
model Two {
    input a: f32[4]
    input b: f32[3]
    output y = concat(a -> dense(5) -> tanh, b -> dense(5)) -> dense(2)
    output same = a -> identity
}
train Two {
    data = npz("two.npz", x = "x", label = "label")
    loss = mse(y, label)
    optimizer = adam(lr = 1e-2)
    batch = 8
    epochs = 1
}
"""

UPSAMPLE = """
model Up {
    input image: f32[8, 8, 1]
    output logits = image -> conv(4, 3)
                          -> upsample(2) -> upsample((3, 2), method = "bilinear")
                          -> global_avg_pool -> dense(10)
}
train Up {
    data = digits(test = 0.2, seed = 0)
    loss = cross_entropy(logits, label)
    optimizer = adam(lr = 1e-3)
    batch = 32
    epochs = 1
}
"""


def _train(root: Path, name: str, text: str) -> tuple[Path, Path]:
    from nnlang.train.run import train

    nn = root / f"{name}.nn"
    nn.write_text(text)
    run = root / f"{name}-run"
    train(nn, out=run, sets=["epochs=1"], progress=False, cache=False)
    return nn, run


def _hand_made_run(root: Path, name: str, text: str) -> tuple[Path, Path]:
    """A run directory holding the freshly initialised model (no training)."""
    from nnlang.lower.network import lower
    from nnlang.train.checkpoint import Checkpoints
    from nnlang.train.loop import make_engine
    from nnlang.train.run import setup

    nn = root / f"{name}.nn"
    nn.write_text(text)
    s = setup(nn)
    engine = make_engine(
        s.graph,
        s.spec,
        lower(s.graph, s.spec.seed),
        s.spec.batch,
        {p.name: tuple(p.type.shape) for p in s.graph.inputs},
    )
    run = root / f"{name}-run"
    run.mkdir()
    (run / "settings.json").write_text(json.dumps({"model": s.graph.name, "overrides": []}))
    ck = Checkpoints(run / "checkpoints")
    ck.save(0, engine.state, {"epoch": 0}, None)
    ck.close()
    return nn, run


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    root = tmp_path_factory.mktemp("runs")
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 20, (96, 6)).astype(np.int64)
    np.savez(root / "seq.npz", x=tokens, label=(tokens.sum(1) > 57).astype(np.int64))
    return {
        "mlp": _train(root, "mlp", MLP),
        "cnn": _train(root, "cnn", CNN),
        "seq": _train(root, "seq", SEQ),
        "two": _hand_made_run(root, "two", TWO),
    }


class Exports:
    """Each (model, format) exported once for the module; live predictions cached."""

    def __init__(self, root: Path, runs: dict[str, tuple[Path, Path]]) -> None:
        self.root, self.runs = root, runs
        self.done: dict[tuple[str, str], ExportResult] = {}
        self.live: dict[tuple[str, int, int], dict[str, np.ndarray]] = {}

    def __call__(self, kind: str, fmt: str) -> ExportResult:
        if (kind, fmt) not in self.done:
            folder = self.root / f"{kind}-{fmt}"
            name = "digits" if kind == "cnn" else kind  # the names docs/export.md uses
            self.done[kind, fmt] = export(*self.runs[kind], fmt=fmt, out=folder / f"{name}.{fmt}")
        return self.done[kind, fmt]

    def predict(
        self, kind: str, n: int = 5, T: int = 6
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Raw inputs and what `nnlang predict --run` gives for them."""
        x = _inputs(kind, n=n, T=T)
        if (kind, n, T) not in self.live:
            self.live[kind, n, T] = TrainedRun.open(*self.runs[kind]).predict(x)
        return x, self.live[kind, n, T]


@pytest.fixture(scope="module")
def exports(runs, tmp_path_factory: pytest.TempPathFactory) -> Exports:
    return Exports(tmp_path_factory.mktemp("exports"), runs)


def _inputs(kind: str, n: int = 5, seed: int = 1, T: int = 6) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    if kind == "mlp":
        return {"x": rng.normal(5.0, 2.0, (n, 4))}
    if kind == "cnn":
        return {"image": rng.integers(0, 17, (n, 8, 8, 1)).astype(np.float32)}
    if kind == "seq":
        return {"tokens": rng.integers(0, 20, (n, T))}
    return {
        "a": rng.normal(size=(n, 4)).astype(np.float32),
        "b": rng.normal(size=(n, 3)).astype(np.float32),
    }


TOL = {"stablehlo": 1e-6, "onnx": 1e-5}


def _close(got: dict[str, np.ndarray], want: dict[str, np.ndarray], fmt: str) -> None:
    assert sorted(got) == sorted(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=TOL[fmt], atol=TOL[fmt], err_msg=k)


# ------------------------------------------------------------------ both formats, every model
@pytest.mark.parametrize("fmt", ["stablehlo", "onnx"])
@pytest.mark.parametrize("kind", ["mlp", "cnn", "seq", "two"])
def test_export_passes_gate_and_matches_predict(exports: Exports, kind: str, fmt: str) -> None:
    res = exports(kind, fmt)
    out = res.path
    assert out.is_file() and res.size == out.stat().st_size and res.format == fmt
    assert res.gate.max_abs <= 10 * TOL[fmt]
    assert (
        res.gate.source.startswith("random inputs")
        if kind == "two"
        else res.gate.source == "test split"
    )
    line = res.summary()
    assert fmt in line and str(out) in line and "parity gate passed" in line and "\n" not in line
    meta = json.loads(sidecar_json(out).read_text())
    assert meta["format"] == fmt and meta["gate"]["passed"] and meta["gate"]["batches"] == [1, 7]
    art = load_artifact(out)
    x, want = exports.predict(kind)
    assert art.input_names == list(x) and art.format == fmt
    got = art.run(x)
    assert list(got) == art.output_names == [o["name"] for o in meta["outputs"]]
    _close(got, want, fmt)


def test_sidecars_describe_inputs_outputs_and_normalisation(exports: Exports, runs) -> None:
    res = exports("cnn", "stablehlo")
    out = res.path
    assert res.files == [out, sidecar_json(out), sidecar_npz(out)]
    meta = json.loads(sidecar_json(out).read_text())
    assert meta["version"] == 1 and meta["model"] == "Digits" and meta["batch_axis"] == "batch"
    assert meta["inputs"] == [
        {
            "name": "image",
            "dtype": "float32",
            "shape": [8, 8, 1],
            "type": "f32[8, 8, 1]",
            "normalized": True,
        }
    ]
    assert meta["outputs"] == [
        {"name": "logits", "dtype": "float32", "shape": [10], "type": "f32[10]"}
    ]
    assert (
        meta["normalization"]["required"]
        and meta["normalization"]["file"] == "digits.stablehlo.normalizer.npz"
    )
    assert "cpu" in meta["platforms"]
    run = runs["cnn"][1]
    with (
        np.load(sidecar_npz(out), allow_pickle=False) as z,
        np.load(run / "normalizer.npz", allow_pickle=False) as r,
    ):
        assert sorted(z.files) == sorted(r.files)
        for k in r.files:
            np.testing.assert_array_equal(z[k], r[k])
    # no normaliser: no npz, and the JSON says so; symbolic axes keep their names
    res = exports("seq", "onnx")
    out = res.path
    assert res.files == [out, sidecar_json(out)] and not sidecar_npz(out).exists()
    meta = json.loads(sidecar_json(out).read_text())
    assert meta["inputs"][0]["shape"] == ["T"] and meta["inputs"][0]["dtype"] == "int32"
    assert meta["symbolic_axes"] == ["T"] and not meta["normalization"]["required"]
    assert meta["normalization"]["file"] is None and isinstance(meta["opset"], int)


@pytest.mark.parametrize("fmt", ["stablehlo", "onnx"])
def test_symbolic_axis_takes_other_lengths(exports: Exports, fmt: str) -> None:
    out = exports("seq", fmt).path
    art = load_artifact(out)
    for T in (1, 13):
        x, want = exports.predict("seq", n=3, T=T)
        _close(art.run(x), want, fmt)
    if fmt == "onnx":
        import onnx

        dims = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim
        assert [d.dim_param or d.dim_value for d in dims] == ["batch", "T"]


@pytest.mark.parametrize("fmt", ["stablehlo", "onnx"])
def test_predict_artifact_cli_equals_predict_run(
    exports: Exports, runs, tmp_path: Path, fmt: str
) -> None:
    nn, run = runs["cnn"]
    out = exports("cnn", fmt).path
    np.save(tmp_path / "x.npy", _inputs("cnn", n=9)["image"])
    assert (
        cli(
            [
                "predict",
                "--artifact",
                str(out),
                "--input",
                str(tmp_path / "x.npy"),
                "-o",
                str(tmp_path / "a.npy"),
            ]
        )
        == 0
    )
    assert (
        cli(
            [
                "predict",
                str(nn),
                "--run",
                str(run),
                "--input",
                str(tmp_path / "x.npy"),
                "-o",
                str(tmp_path / "b.npy"),
            ]
        )
        == 0
    )
    a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    assert a.shape == (9, 10)
    np.testing.assert_allclose(a, b, rtol=TOL[fmt], atol=TOL[fmt])


def test_cli_export(runs, tmp_path: Path, capsys) -> None:
    nn, run = runs["mlp"]
    out = tmp_path / "m.stablehlo"
    assert (
        cli(["export", str(nn), "--run", str(run), "--format", "stablehlo", "--out", str(out)]) == 0
    )
    printed = capsys.readouterr().out.strip()
    assert (
        printed.startswith(f"exported Net to {out} (stablehlo,") and "parity gate passed" in printed
    )
    assert (
        cli(["export", str(nn), "--run", str(run), "--format", "stablehlo", "--out", str(out)]) == 1
    )
    assert "E603" in capsys.readouterr().err


# ------------------------------------------------------------------ input checks (E604)
def _code(e: pytest.ExceptionInfo[NNError]) -> str:
    return e.value.diagnostics[0].code


def test_wrong_inputs_are_E604_naming_the_input(exports: Exports, tmp_path: Path, capsys) -> None:
    out = exports("cnn", "stablehlo").path
    art = load_artifact(out)
    with pytest.raises(NNError) as e:
        art.run({"image": np.zeros((2, 7, 8, 1), np.float32)})
    assert _code(e) == "E604" and "`image`" in e.value.diagnostics[0].message
    assert (
        "f32[8, 8, 1]" in e.value.diagnostics[0].message
        and "[2, 7, 8, 1]" in e.value.diagnostics[0].message
    )
    with pytest.raises(NNError) as e:
        art.run({})
    assert _code(e) == "E604" and "`image`" in e.value.diagnostics[0].message
    with pytest.raises(NNError) as e:
        art.run({"img": np.zeros((2, 8, 8, 1))})
    assert (
        _code(e) == "E604"
        and "`image`" in e.value.diagnostics[0].message
        and "img" in e.value.diagnostics[0].message
    )
    assert art.run({"image": np.zeros((2, 8, 8, 1)), "label": np.zeros(2)})["logits"].shape == (
        2,
        10,
    )  # ignored
    assert art.run({"image": np.zeros((2, 64))})["logits"].shape == (
        2,
        10,
    )  # flat rows, like predict --run
    assert art.run({"image": np.zeros((2, 8, 8, 1), np.float64)})["logits"].dtype == np.float32
    # integer input (the one fitting rule, as for training data): fractional floats
    # refused, whole-number floats and wider ints in range cast, symbolic sizes agree
    seq = load_artifact(exports("seq", "stablehlo").path)
    with pytest.raises(NNError) as e:
        seq.run({"tokens": np.full((2, 5), 0.5, np.float32)})
    assert _code(e) == "E604" and "`tokens`" in e.value.diagnostics[0].message
    assert "fractional" in e.value.diagnostics[0].message
    assert seq.run({"tokens": np.zeros((2, 5), np.float32)})["logits"].shape == (2, 2)
    with pytest.raises(NNError) as e:
        seq.run({"tokens": np.full((2, 5), 2**40)})
    assert _code(e) == "E604"
    assert seq.run({"tokens": np.ones((2, 5), np.int64)})["logits"].shape == (2, 2)
    np.save(tmp_path / "bad.npy", np.zeros((3, 5)))
    assert (
        cli(
            [
                "predict",
                "--artifact",
                str(out),
                "--input",
                str(tmp_path / "bad.npy"),
                "-o",
                str(tmp_path / "y.npy"),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "E604" in err and "`image`" in err and not (tmp_path / "y.npy").exists()


def test_load_artifact_needs_its_sidecar(exports: Exports, tmp_path: Path) -> None:
    with pytest.raises(NNError) as e:
        load_artifact(tmp_path / "nothing.stablehlo")
    assert _code(e) == "E504"
    lone = tmp_path / "lone.stablehlo"
    shutil.copy(exports("mlp", "stablehlo").path, lone)
    with pytest.raises(NNError) as e:
        load_artifact(lone)
    assert _code(e) == "E504" and "lone.stablehlo.json" in e.value.diagnostics[0].message


def test_onnx_model_has_initializers_names_and_dynamic_batch(exports: Exports) -> None:
    import onnx

    model = onnx.load(str(exports("two", "onnx").path))
    assert [i.name for i in model.graph.input] == ["a", "b"]
    assert [o.name for o in model.graph.output] == ["y", "same"]
    assert len(model.graph.initializer) >= 6  # 3 dense layers' kernels and biases
    for i in model.graph.input:
        assert i.type.tensor_type.shape.dim[0].dim_param == "batch"
    assert (
        json.loads(next(m.value for m in model.metadata_props if m.key == "nnlang"))["model"]
        == "Two"
    )


@pytest.mark.parametrize("fmt", ["stablehlo", "onnx"])
def test_two_inputs_must_agree_on_the_batch(exports: Exports, fmt: str) -> None:
    art = load_artifact(exports("two", fmt).path)
    with pytest.raises(NNError) as e:
        art.run({"a": np.zeros((2, 4)), "b": np.zeros((3, 3))})
    assert (
        _code(e) == "E604"
        and "`b`" in e.value.diagnostics[0].message
        and "batch" in e.value.diagnostics[0].message
    )


# ------------------------------------------------------------------ E603, E602
def test_existing_output_is_E603_and_untouched(runs, tmp_path: Path) -> None:
    nn, run = runs["mlp"]
    out = tmp_path / "m.stablehlo"
    out.write_bytes(b"precious")
    with pytest.raises(NNError) as e:
        export(nn, run, fmt="stablehlo", out=out)
    assert _code(e) == "E603" and "--force" in (e.value.diagnostics[0].help or "")
    assert out.read_bytes() == b"precious" and not sidecar_json(out).exists()
    res = export(nn, run, fmt="stablehlo", out=out, force=True)
    assert out.read_bytes() != b"precious" and res.size == out.stat().st_size
    before = out.read_bytes()
    with pytest.raises(NNError) as e:  # the sidecar counts too
        export(nn, run, fmt="stablehlo", out=out)
    assert _code(e) == "E603" and out.read_bytes() == before


@pytest.mark.parametrize("fmt", ["stablehlo", "onnx"])
def test_gate_failure_is_E602_and_writes_nothing(
    runs, tmp_path: Path, monkeypatch, fmt: str
) -> None:
    real = gate.reference

    def off(trained, inputs):
        outs = real(trained, inputs)
        return {
            k: v + np.float32(1e-3) * (np.arange(v.size).reshape(v.shape) == 4)
            for k, v in outs.items()
        }

    monkeypatch.setattr(gate, "reference", off)
    out = tmp_path / f"m.{fmt}"
    with pytest.raises(NNError) as e:
        export(*runs["mlp"], fmt=fmt, out=out)
    d = e.value.diagnostics[0]
    assert (
        d.code == "E602"
        and "`logits`" in d.message
        and "(1, 1)" in d.message
        and "differs" in d.message
    )
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ E601
RATE = UPSAMPLE.replace(
    '-> upsample(2) -> upsample((3, 2), method = "bilinear")', "-> sigmoid -> rate_encode(4)"
).replace("global_avg_pool", "mean(axis = 0) -> global_avg_pool")


def test_upsample_both_methods_convert_to_onnx(tmp_path: Path) -> None:
    """Upsampling is a broadcast (nearest) or a constant matrix per axis (bilinear), so
    jax2onnx converts it with a dynamic batch; the parity gate checks the values."""
    nn, run = _hand_made_run(tmp_path, "up", UPSAMPLE)
    res = export(nn, run, fmt="onnx", out=tmp_path / "up.onnx")
    assert res.gate.max_rel <= 1e-5 and (tmp_path / "up.onnx").is_file()


def test_onnx_unconvertible_layer_is_E601_at_the_layer(tmp_path: Path) -> None:
    nn, run = _hand_made_run(tmp_path, "rate", RATE)
    with pytest.raises(NNError) as e:
        export(nn, run, fmt="onnx", out=tmp_path / "rate.onnx")
    d = e.value.diagnostics[0]
    line = next(i for i, t in enumerate(RATE.splitlines(), 1) if "rate_encode" in t)
    assert (
        d.code == "E601"
        and "rate_encode" in d.message
        and d.span is not None
        and d.span.line == line
    )
    assert "--format stablehlo" in (d.help or "")
    assert not (tmp_path / "rate.onnx").exists()
    res = export(
        nn, run, fmt="stablehlo", out=tmp_path / "rate.stablehlo"
    )  # StableHLO takes every layer
    assert res.gate.max_abs <= 1e-5


def test_bilinear_upsample_over_a_named_axis_is_E601(tmp_path: Path) -> None:
    from nnlang.api import build
    from nnlang.export import onnx as onnx_export

    text = """
model M {
    input x: f32[T, 4, 2]
    output y = x -> upsample((1, 2), method = "bilinear") -> upsample(2)
}
"""
    (tmp_path / "m.nn").write_text(text)
    [d] = onnx_export.unsupported(build(tmp_path / "m.nn"))
    assert d.code == "E601" and d.span is not None and d.span.line == 4


def test_kind_declared_not_onnx_is_E601(runs) -> None:
    from nnlang.train.run import setup

    graph = setup(runs["mlp"][0]).graph
    assert onnx_export.unsupported(graph) == []
    node = next(n for n in graph.order() if n.kind_name == "relu")
    node.kind = replace(node.kind, onnx=False)
    [d] = onnx_export.unsupported(graph)
    assert (
        d.code == "E601"
        and "`relu`" in d.message
        and d.span == node.span
        and "stablehlo" in (d.help or "")
    )


def test_onnx_without_the_extra_says_how_to_install(runs, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "jax2onnx", None)
    with pytest.raises(NNError) as e:
        export(*runs["mlp"], fmt="onnx", out=tmp_path / "m.onnx")
    help_ = e.value.diagnostics[0].help or ""
    assert _code(e) == "E601" and "pip install '" in help_ and "[onnx]'" in help_


# ------------------------------------------------------------------ docs, without nnlang
def _snippet(tag: str) -> str:
    text = DOCS.read_text()
    m = re.search(rf"<!-- tested: {tag} -->\s*```python\n(.*?)```", text, re.S)
    assert m, f"docs/export.md has no snippet tagged {tag}"
    return m.group(1)


@pytest.mark.parametrize(
    ("fmt", "tag", "tol"),
    [("onnx", "onnx-onnxruntime", 1e-5), ("stablehlo", "stablehlo-jax", 1e-6)],
)
def test_docs_snippet_runs_without_nnlang_and_matches_predict(
    exports: Exports, runs, tmp_path: Path, fmt: str, tag: str, tol: float
) -> None:
    """The required check: an nnlang-made artifact, loaded in a separate Python process
    that cannot import nnlang (onnxruntime / plain JAX only), predicts what
    `nnlang predict --run` predicts on the same raw input."""
    nn, run = runs["cnn"]
    work = tmp_path / "plain"
    work.mkdir()
    for f in exports("cnn", fmt).files:  # digits.onnx, digits.onnx.json, digits.onnx.normalizer.npz
        shutil.copy(f, work / f.name)
    from sklearn.datasets import load_digits

    x = load_digits().images[:25, :, :, None].astype(np.float32)
    np.save(work / "x.npy", x)
    assert (
        cli(
            [
                "predict",
                str(nn),
                "--run",
                str(run),
                "--input",
                str(work / "x.npy"),
                "-o",
                str(tmp_path / "ref.npy"),
            ]
        )
        == 0
    )
    guard = "import sys\nsys.modules['nnlang'] = None  # any `import nnlang` fails\n"
    check = "\nassert not [m for m, v in sys.modules.items() if m.startswith('nnlang') and v is not None]\n"
    if fmt == "onnx":
        check += "assert 'jax' not in sys.modules\n"
    (work / "snippet.py").write_text(guard + _snippet(tag) + check)
    proc = subprocess.run(
        [sys.executable, "-I", "snippet.py"], cwd=work, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got, ref = np.load(work / "logits.npy"), np.load(tmp_path / "ref.npy")
    assert got.shape == (25, 10)
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol)
    np.testing.assert_array_equal(got.argmax(1), ref.argmax(1))


@pytest.mark.parametrize(
    "example",
    sorted(p.stem for p in (Path(__file__).resolve().parent.parent / "examples").glob("*.nn")),
)
def test_every_example_exports_to_both_formats(example: str, tmp_path: Path) -> None:
    """Each shipped example, trained briefly, exports to StableHLO and ONNX (StableHLO
    only where a layer is declared not convertible) and passes the parity gate on its
    own data."""
    from nnlang.export import export
    from nnlang.train.run import train

    src = Path(__file__).resolve().parent.parent / "examples" / f"{example}.nn"
    run = train(src, out=tmp_path / "run", sets=["epochs=1"], progress=False).run_dir
    graph = nnlang.build(src)
    onnx_ok = all(n.kind is None or n.kind.onnx for n in graph.order())
    for fmt in ("stablehlo", "onnx") if onnx_ok else ("stablehlo",):
        res = export(src, run, fmt=fmt, out=tmp_path / f"model.{fmt}")
        assert (tmp_path / f"model.{fmt}").stat().st_size > 0
        assert "parity gate passed" in res.summary()
