"""MLflow and W&B writers (`trackers = [...]`, issue 15): params, per-epoch metrics and
the result; a tracker not installed is E705 before the run directory is made."""

from __future__ import annotations

import json
import sys
import types

import pytest
from _util import write

import nnlang
from nnlang.cli import EXIT_ENV, main

NN = """model Tiny {
    input image: f32[8, 8, 1]
    output logits = image -> flatten -> dense(16) -> relu -> dense(10)
}
train Tiny {
    data = digits(test = 0.2, val = 0.1, seed = 0)
    normalize = scale(0.0625)
    loss = cross_entropy(logits, label)
    optimizer = adam(lr = 3e-3)
    batch = 128
    epochs = 2
    metrics = [accuracy]
    trackers = TRACKERS
}
"""


def _train(tmp_path, trackers: str, *sets: str) -> tuple[int, list[dict]]:
    f = write(tmp_path, "t.nn", NN.replace("TRACKERS", trackers))
    run = tmp_path / "run"
    rc = main(["train", str(f), "--out", str(run), "-q", *sets])
    hist = (
        [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()] if rc == 0 else []
    )
    return rc, hist


def test_mlflow_gets_params_epochs_and_result(tmp_path, monkeypatch) -> None:
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    store = tmp_path / "mlruns"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3: file stores opt in
    rc, hist = _train(tmp_path, "[mlflow]")
    assert rc == 0
    run_id = json.loads((tmp_path / "run" / "trackers.json").read_text())["mlflow"]
    client = MlflowClient(tracking_uri=store.as_uri())
    r = client.get_run(run_id)
    assert r.info.status == "FINISHED" and r.info.run_name == "run"
    assert client.get_experiment(r.info.experiment_id).name == "Tiny"
    assert r.data.params["train.optimizer.args.lr"] == "0.003"
    assert r.data.params["train.batch"] == "128"
    val = client.get_metric_history(run_id, "val_accuracy")
    assert [(m.step, m.value) for m in val] == [(h["step"], h["val_accuracy"]) for h in hist]
    assert [m.value for m in client.get_metric_history(run_id, "accuracy")] == [
        h["accuracy"] for h in hist
    ]
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert r.data.metrics["test_accuracy"] == pytest.approx(result["test"]["accuracy"])
    assert r.data.tags["best_epoch"] == str(result["best"]["epoch"])


class FakeWandb(types.ModuleType):
    """What the writer calls of wandb: init, and the run's log, summary and finish."""

    def __init__(self) -> None:
        super().__init__("wandb")
        self.calls: list[tuple] = []

    def init(self, **kwargs):  # noqa: ANN003, ANN201
        calls = self.calls
        calls.append(("init", kwargs))

        class Summary(dict):
            pass

        class Run:
            id = "abc123"
            summary = Summary()

            def log(self, values, step):  # noqa: ANN001, ANN202
                calls.append(("log", step, values))

            def finish(self, exit_code):  # noqa: ANN001, ANN202
                calls.append(("finish", exit_code, dict(self.summary)))

        return Run()


def test_wandb_gets_config_epochs_and_summary(tmp_path, monkeypatch) -> None:
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    rc, hist = _train(tmp_path, "wandb")
    assert rc == 0
    (_, init), *logs, (_, code, summary) = fake.calls
    assert init["project"] == "Tiny" and init["name"] == "run" and init["id"] is None
    assert init["config"]["train.epochs"] == "2" and init["dir"] == str(tmp_path / "run")
    assert [(step, v["val_loss"]) for _, step, v in logs] == [
        (h["step"], h["val_loss"]) for h in hist
    ]
    assert code == 0 and "test_accuracy" in summary and "best_epoch" in summary
    assert json.loads((tmp_path / "run" / "trackers.json").read_text()) == {"wandb": "abc123"}


def test_a_tracker_not_installed_is_an_environment_error(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    rc, _ = _train(tmp_path, "[wandb]")
    err = capsys.readouterr().err
    assert rc == EXIT_ENV and "E705" in err and "nnlang[wandb]" in err
    assert "trackers = [wandb]" in err  # located at the setting
    assert not (tmp_path / "run").exists()


def test_trackers_setting_is_checked() -> None:
    res = nnlang.check("t.nn", text=NN.replace("TRACKERS", "[mlfow]"))
    (d,) = res.diagnostics
    assert d.code == "E202" and "mlflow" in (d.help or "")
