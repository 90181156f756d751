"""Experiment trackers: a run's settings, epoch records and result sent to MLflow or
Weights & Biases too, when the train section asks (`trackers = [mlflow, wandb]`).

Like :mod:`nnlang.train.tblog` these writers follow the one place that writes epoch
records (:func:`nnlang.train.rundir.append_metrics`) and the result
(:func:`~nnlang.train.rundir.write_result`); a tracker's package is imported only when
a run names it, never on the way of a run that does not. A tracker named but not
installed is E705 before the run directory is made, with the install command. The
tracker's own run id is kept in the run directory (``trackers.json``), so
``--resume`` goes on logging into the same tracker run.

- ``mlflow``: ``MlflowClient`` under the tracking URI MLflow is configured with
  (``MLFLOW_TRACKING_URI``: a server, or ``file:./mlruns`` with
  ``MLFLOW_ALLOW_FILE_STORE=true`` under MLflow 3), one experiment per
  model name, one MLflow run per run directory (named after it): the settings as
  params, each epoch's values as metrics at its optimizer step, the test values as
  ``test_<metric>``, the run marked FINISHED (KILLED when it stopped early: paused,
  interrupted or diverged).
- ``wandb``: ``wandb.init(project = <model>, name = <run dir>, dir = <run dir>)``
  with the settings as config; epochs with ``wandb.log(..., step = step)``, the test
  values in the run's summary (``WANDB_MODE=offline`` works without an account).

Imports the standard library, ``diagnostics`` and ``fsio``; mlflow and wandb lazily.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from nnlang.diagnostics import Diagnostic, NNError, Span
from nnlang.fsio import atomic_write_text

NAMES = ("mlflow", "wandb")
INSTALL = {
    "mlflow": "pip install 'nnlang[mlflow]' (or pip install mlflow)",
    "wandb": "pip install 'nnlang[wandb]' (or pip install wandb)",
}
IDS = "trackers.json"
_open: dict[Path, list[Any]] = {}  # run -> its open tracker writers


def module(name: str, span: Span | None = None) -> Any:
    """The tracker's package, imported now; E705 (an environment error) if it is not
    installed."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise NNError(
            Diagnostic(
                "E705",
                f"`trackers` names `{name}`, which is not installed ({e})",
                span,
                help=INSTALL[name] + f"; or drop `{name}` from `trackers`",
            )
        ) from None


def require(spec: Any) -> None:
    """Every tracker the train section names can be imported (E705 otherwise)."""
    for name in spec.trackers:
        module(name, spec.spans.get("trackers"))


def params_of(settings: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """settings.json flattened to ``{"train.optimizer.args.lr": "0.001", ...}``."""
    out: dict[str, str] = {}
    for k, v in settings.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(params_of(v, key + "."))
        else:
            out[key] = (v if isinstance(v, str) else json.dumps(v))[:500]
    return out


def start(run: Path, spec: Any) -> None:
    """Open the trackers the train section names for ``run`` (its settings.json written):
    a new tracker run, or the one ``trackers.json`` names (a resume)."""
    close(run)
    if not spec.trackers:
        return
    settings = json.loads((run / "settings.json").read_text(encoding="utf-8"))
    ids_file = run / IDS
    ids = json.loads(ids_file.read_text(encoding="utf-8")) if ids_file.is_file() else {}
    writers = []
    for name in spec.trackers:
        try:
            w = WRITERS[name](module(name, spec.spans.get("trackers")))
            ids[name] = w.open(run, settings, ids.get(name))
        except NNError:
            raise
        except Exception as e:  # noqa: BLE001 - the tracker's own errors (a server, a login)
            for other in writers:
                other.close()
            raise NNError(
                Diagnostic(
                    "E705",
                    f"the `{name}` tracker could not start a run: {type(e).__name__}: {e}",
                    spec.spans.get("trackers"),
                    help=f"check the {name} configuration (for MLflow, `MLFLOW_TRACKING_URI`; "
                    f"for W&B, `wandb login` or `WANDB_MODE=offline`), or drop `{name}` "
                    "from `trackers`",
                )
            ) from None
        w.name = name
        writers.append(w)
    atomic_write_text(ids_file, json.dumps(ids, indent=2) + "\n")
    _open[run] = writers


def _numbers(record: dict[str, Any], prefix: str = "") -> dict[str, float]:
    return {
        prefix + k: float(v)
        for k, v in record.items()
        if k not in ("epoch", "step", "split") and isinstance(v, int | float)
    }


def _each(run: Path, what: str, *args: Any, keep: bool = True) -> None:
    """``what`` of every open writer. A tracker that fails mid-run (a server gone) is
    told on stderr once and dropped: logging never stops a training run."""
    import sys

    writers = _open.get(run, []) if keep else _open.pop(run, [])
    for w in list(writers):
        try:
            getattr(w, what)(*args)
        except Exception as e:  # noqa: BLE001 - the tracker's own errors
            print(
                f"warning: the `{w.name}` tracker failed ({type(e).__name__}: {e}); "
                "the run goes on without it",
                file=sys.stderr,
            )
            if keep:
                writers.remove(w)


def log_epoch(run: Path, record: dict[str, Any]) -> None:
    _each(run, "epoch", record)


def finish(run: Path, result: dict[str, Any]) -> None:
    """The run's result (result.json's document) logged, and the tracker runs closed
    as finished."""
    _each(run, "finish", result, keep=False)


def close(run: Path) -> None:
    """Close what is still open: the run stopped without a result."""
    _each(run, "close", keep=False)


class MLflowWriter:
    name = "mlflow"

    def __init__(self, mlflow: Any) -> None:
        from mlflow import entities
        from mlflow.tracking import MlflowClient

        self.client, self.entities = MlflowClient(), entities

    def open(self, run: Path, settings: dict[str, Any], run_id: str | None) -> str:
        c = self.client
        if run_id is None:
            name = str(settings.get("model", "nnlang"))
            exp = c.get_experiment_by_name(name)
            exp_id = exp.experiment_id if exp is not None else c.create_experiment(name)
            self.id = c.create_run(exp_id, run_name=run.name).info.run_id
            P = self.entities.Param
            items = sorted(params_of(settings).items())
            for i in range(0, len(items), 100):  # MLflow takes at most 100 params a batch
                c.log_batch(self.id, params=[P(k, v) for k, v in items[i : i + 100]])
        else:
            self.id = run_id
            c.update_run(self.id, status="RUNNING")
        return self.id

    def _metrics(self, values: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        M = self.entities.Metric
        self.client.log_batch(self.id, metrics=[M(k, v, now, step) for k, v in values.items()])

    def epoch(self, record: dict[str, Any]) -> None:
        self._metrics(_numbers(record), int(record.get("step", 0)))

    def finish(self, result: dict[str, Any]) -> None:
        self._metrics(_numbers(result.get("test", {}), "test_"), 0)
        best = result.get("best") or {}
        if "epoch" in best:
            self.client.set_tag(self.id, "best_epoch", str(best["epoch"]))
        self.client.set_tag(self.id, "stopped", str(result.get("stopped")))
        self.client.set_terminated(self.id, "FINISHED")

    def close(self) -> None:
        self.client.set_terminated(self.id, "KILLED")


class WandbWriter:
    name = "wandb"

    def __init__(self, wandb: Any) -> None:
        self.wandb = wandb

    def open(self, run: Path, settings: dict[str, Any], run_id: str | None) -> str:
        self.run = self.wandb.init(
            project=str(settings.get("model", "nnlang")),
            name=run.name,
            dir=str(run),
            config=params_of(settings),
            id=run_id,
            resume="allow" if run_id else None,
        )
        return str(self.run.id)

    def epoch(self, record: dict[str, Any]) -> None:
        self.run.log(_numbers(record), step=int(record.get("step", 0)))

    def finish(self, result: dict[str, Any]) -> None:
        self.run.summary.update(_numbers(result.get("test", {}), "test_"))
        best = result.get("best") or {}
        if "epoch" in best:
            self.run.summary.update({"best_epoch": best["epoch"]})
        self.run.finish(exit_code=0)

    def close(self) -> None:
        self.run.finish(exit_code=1)


WRITERS = {"mlflow": MLflowWriter, "wandb": WandbWriter}
