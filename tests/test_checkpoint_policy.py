"""The checkpoint policy: by default a checkpoint is written by time (`checkpoint_seconds`)
and at the end, with the best epoch's weights held in memory and written with the next
one, so a short run writes two checkpoints instead of one per epoch and reports exactly
what a run saving every epoch reports (issue 12: 30 saves were 4.8 of a 10.7 s run)."""

from __future__ import annotations

import json

from _util import ROOT

from nnlang.train.run import train

MLP = ROOT / "examples" / "digits_mlp.nn"
SETS = ["epochs=12", "data=digits(test = 0.2, val = 0.1, seed = 0)"]


def _steps(run) -> list[int]:
    return sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit())


def test_by_time_writes_the_best_and_the_last_and_reports_the_same(tmp_path) -> None:
    timed = train(MLP, out=tmp_path / "timed", progress=False, sets=SETS)
    every = train(MLP, out=tmp_path / "every", progress=False, sets=[*SETS, "checkpoint_every=1"])
    assert timed.test == every.test
    best = [json.loads((r.run_dir / "result.json").read_text())["best"] for r in (timed, every)]
    assert best[0] == best[1]
    spe = timed.steps // 12
    assert _steps(timed.run_dir)[-1] == 12 * spe
    if best[0]["epoch"] != 12:  # the best epoch's weights were held and written too
        assert _steps(timed.run_dir) == [best[0]["epoch"] * spe, 12 * spe]
    assert len(_steps(every.run_dir)) == 3  # `keep = 3` latest (the best among them)


def test_checkpoint_seconds_zero_writes_every_epoch(tmp_path) -> None:
    r = train(MLP, out=tmp_path / "r", progress=False, sets=[*SETS, "checkpoint_seconds=0"])
    assert len(_steps(r.run_dir)) == 3
