"""Fine-tuning (`init_from`): a new run starts from another run's trained parameters.

The source run is checked like any run that is read back (``rundir.confine_run``: E511
for a link out of it, a hard link or a FIFO). May import ``diagnostics``,
``train.checkpoint``, ``train.loop``, ``train.rundir`` and ``train.spec`` (Flax when it
runs).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from nnlang.diagnostics import Diagnostic, NNError
from nnlang.train.checkpoint import Checkpoints
from nnlang.train.loop import Engine
from nnlang.train.rundir import confine_run
from nnlang.train.spec import TrainSpec


def init_from(spec: TrainSpec, root: Path, model: str, state: Any, engine: Engine) -> Any:
    """The training state with the parameters and batch statistics of the best
    checkpoint of the run ``spec.init_from`` names; the optimizer (which may differ)
    starts fresh. ``root`` is the .nn file's folder, ``model`` the model's name."""
    from flax import nnx

    given = Path(spec.init_from or "")
    # like --out, a relative path is relative to the working directory; failing that,
    # to the .nn file's folder
    src = given if given.is_absolute() or (given / "checkpoints").is_dir() else root / given
    if not (src / "checkpoints").is_dir():
        raise NNError(
            Diagnostic(
                "E503",
                f"`init_from`: no checkpoints in `{spec.init_from}`",
                spec.spans.get("init_from"),
            )
        )
    try:
        confine_run(src, "`init_from` run directory")
    except NNError as e:
        e.diagnostics[0] = replace(e.diagnostics[0], span=spec.spans.get("init_from"))
        raise
    ck = Checkpoints(src / "checkpoints", create=False)
    step = ck.best() or ck.latest()
    if step is None:
        raise NNError(
            Diagnostic(
                "E503",
                f"`init_from`: no checkpoints in `{spec.init_from}`",
                spec.spans.get("init_from"),
            )
        )
    net, opt = nnx.merge(engine.train_def, state)
    restored = ck.restore_model(step, nnx.state(net), what=f"model `{model}` (init_from)")
    ck.close()
    nnx.update(net, restored)
    if isinstance(opt, tuple):  # `step` blocks: one optimizer per step, each over its groups
        return nnx.state((net, tuple(nnx.Optimizer(net, o.tx, wrt=o.wrt) for o in opt)))
    fresh = nnx.Optimizer(net, opt.tx, wrt=nnx.Param)
    return nnx.state((net, fresh))
