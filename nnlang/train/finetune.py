"""Fine-tuning (`init_from`): a new run starts from trained parameters, matched by name.

The source is a run directory (its best checkpoint) or a plain file of named arrays,
``.npz`` (read with ``allow_pickle=False``) or ``.safetensors``, whose keys are parameter
paths as the summary names them (``backbone/dense.kernel``; a leading ``layers.`` is
allowed). :func:`preflight` compares the source with the model's parameters and batch
statistics, by path, before anything is compiled, and prints what is loaded, what is
new (initialised), what in the source is unused and which shapes conflict. A conflict
is E502 unless ``mismatched = init``, which initialises those parameters afresh (a
resized head). :func:`init_from` then puts the loaded arrays into the training state;
the optimizer (which may differ) starts fresh.

A source run is checked like any run that is read back (``rundir.confine_run``: E511
for a link out of it, a hard link or a FIFO); a file is resolved against the .nn file's
folder and must stay in it (``fsio.confined``). May import ``diagnostics``, ``fsio``,
``train.checkpoint``, ``train.loop``, ``train.rundir``, ``train.spec`` and
``train.trainable`` (Flax when it runs; ``safetensors`` for that format).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from nnlang.diagnostics import Diagnostic, NNError
from nnlang.fsio import Escape, confined
from nnlang.train.checkpoint import Checkpoints
from nnlang.train.loop import Engine
from nnlang.train.rundir import confine_run
from nnlang.train.spec import TrainSpec
from nnlang.train.trainable import param_path

FILES = (".npz", ".safetensors")


@dataclass
class Plan:
    """What `init_from` does, decided before any compute (see :func:`preflight`)."""

    source: str  # the source as the report names it
    arrays: dict[str, np.ndarray]  # path -> array, for every loaded path
    loaded: list[str]
    new: list[str]
    unused: list[str]
    conflicts: list[tuple[str, tuple[int, ...], tuple[int, ...]]]  # path, source, model
    shapes: dict[str, tuple[int, ...]]  # the model's, by path
    unused_shapes: dict[str, tuple[int, ...]]  # the source's, for unused paths

    def report(self, mismatched: str) -> str:
        """The preflight report, one line per layer and category."""
        n_conf = len(self.conflicts)
        lines = [
            f"init_from {self.source}: {len(self.loaded)} loaded, {len(self.new)} new, "
            f"{len(self.unused)} unused, {n_conf} shape conflict{'s' * (n_conf != 1)}"
        ]

        def rows(word: str, paths: list[str], shapes: dict[str, Any]) -> None:
            by_node: dict[str, list[str]] = {}
            for p in paths:
                node, _, name = p.partition(".")
                by_node.setdefault(node, []).append(f"{name} {list(shapes[p])}")
            for node, items in by_node.items():
                lines.append(f"  {word:<9}{node}: {', '.join(items)}")

        rows("loaded", self.loaded, self.shapes)
        rows("new", self.new, self.shapes)
        rows("unused", self.unused, self.unused_shapes)
        for p, a, m in self.conflicts:
            then = "initialised" if mismatched == "init" else "E502"
            lines.append(f"  conflict {p}: source {list(a)}, model {list(m)} ({then})")
        return "\n".join(lines)


def _flat(tree: Any, prefix: tuple[str, ...] = ()) -> dict[str, Any]:
    """A nested dict of arrays as {parameter path: array}."""
    out: dict[str, Any] = {}
    if isinstance(tree, dict):
        for k, v in tree.items():
            out.update(_flat(v, (*prefix, str(k))))
    elif tree is not None:
        out[param_path(prefix)] = tree
    return out


def _error(spec: TrainSpec, message: str, help: str | None = None) -> NNError:
    return NNError(Diagnostic("E503", message, spec.spans.get("init_from"), help=help))


def _read_file(spec: TrainSpec, root: Path) -> tuple[str, dict[str, Any]]:
    given = spec.init_from or ""
    try:
        path = confined(root, given)
    except Escape as e:
        raise _error(spec, f"`init_from`: {e}", "keep weight files beside the .nn file") from None
    if not path.is_file():
        raise _error(spec, f"`init_from`: no file `{given}` (looked in `{root}`)")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: np.asarray(z[k]) for k in z.files}
        else:
            from safetensors.numpy import load_file

            arrays = dict(load_file(str(path)))
    except Exception as e:  # noqa: BLE001 - any unreadable file is one diagnostic
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise _error(
            spec,
            f"`init_from`: `{given}` is not a readable {path.suffix} file of named arrays: {reason}",
            "write it with numpy.savez or safetensors.numpy.save_file (no pickled objects)",
        ) from None
    named = {k.removeprefix("layers.").replace("/layers/", "/"): v for k, v in arrays.items()}
    return f"`{given}`", named


def _read_run(spec: TrainSpec, root: Path) -> tuple[str, dict[str, Any]]:
    given = Path(spec.init_from or "")
    # like --out, a relative path is relative to the working directory; failing that,
    # to the .nn file's folder
    src = given if given.is_absolute() or (given / "checkpoints").is_dir() else root / given
    if not (src / "checkpoints").is_dir():
        raise _error(spec, f"`init_from`: no checkpoints in `{spec.init_from}`")
    try:
        confine_run(src, "`init_from` run directory")
    except NNError as e:
        e.diagnostics[0] = replace(e.diagnostics[0], span=spec.spans.get("init_from"))
        raise
    ck = Checkpoints(src / "checkpoints", create=False)
    step = ck.best() or ck.latest()
    if step is None:
        raise _error(spec, f"`init_from`: no checkpoints in `{spec.init_from}`")
    try:
        saved = ck.restore_raw(step)
    finally:
        ck.close()
    return f"`{spec.init_from}` (checkpoint {step})", _flat(saved)


def preflight(spec: TrainSpec, root: Path, abstract: Any, others: set[str]) -> Plan:
    """Compare the source of ``spec.init_from`` with the model, by path. ``abstract``
    maps the model's parameter and batch-statistic paths to shapes; ``others`` are the
    paths of the rest of its state (RNG counters), never loaded nor reported.
    :func:`check_plan` then says whether the run may go on."""
    reader = _read_file if Path(spec.init_from or "").suffix in FILES else _read_run
    source, arrays = reader(spec, root)
    arrays = {p: a for p, a in arrays.items() if p not in others}
    loaded, new, conflicts = [], [], []
    for p, shape in abstract.items():
        if p not in arrays:
            new.append(p)
        elif tuple(np.shape(arrays[p])) != tuple(shape):
            conflicts.append((p, tuple(np.shape(arrays[p])), tuple(shape)))
        else:
            loaded.append(p)
    unused = sorted(p for p in arrays if p not in abstract)
    plan = Plan(
        source,
        {p: arrays[p] for p in loaded},
        loaded,
        new,
        unused,
        conflicts,
        dict(abstract),
        {p: tuple(np.shape(arrays[p])) for p in unused},
    )
    return plan


def check_plan(plan: Plan, spec: TrainSpec) -> None:
    """E502 for a shape conflict unless ``mismatched = init``, and when nothing in the
    source matches the model (run after the report is printed)."""
    n = len(plan.conflicts)
    if not plan.loaded:
        raise NNError(
            Diagnostic(
                "E502",
                f"`init_from`: nothing in {plan.source} matches a parameter of the model",
                spec.spans.get("init_from"),
                help="array names are parameter paths such as `dense.kernel` "
                "(`nnlang summary` lists the layers)",
            )
        )
    if plan.conflicts and spec.mismatched != "init":
        raise NNError(
            Diagnostic(
                "E502",
                f"`init_from`: {n} parameter shape{'s' * (n != 1)} "
                f"in {plan.source} differ from the model's",
                spec.spans.get("init_from"),
                help="add `mismatched = init` to initialise them afresh (a new head), "
                "or fine-tune the model the source was trained with",
                notes=[
                    f"{p}: source {list(a)}, model {list(m)}" for p, a, m in plan.conflicts[:20]
                ],
            )
        )


def model_paths(graph: Any, seed: int) -> tuple[dict[str, tuple[int, ...]], set[str]]:
    """The model's parameter and batch-statistic shapes by path, and the paths of the
    rest of its state, from an abstract lowering (nothing is computed or compiled)."""
    from flax import nnx

    from nnlang.lower.network import lower

    net = nnx.eval_shape(lambda: lower(graph, seed))
    shapes, others = {}, set()
    for path, var in nnx.to_flat_state(nnx.state(net)):
        p = param_path(path)
        if isinstance(var, (nnx.Param, nnx.BatchStat)):
            shapes[p] = tuple(var.get_value().shape)
        else:
            others.add(p)
    return shapes, others


def prepare(spec: TrainSpec, root: Path, graph: Any) -> Plan:
    """:func:`preflight` for ``graph``, its report printed (stderr), then :func:`check_plan`."""
    plan = preflight(spec, root, *model_paths(graph, spec.seed))
    print(plan.report(spec.mismatched), file=sys.stderr)
    check_plan(plan, spec)
    return plan


def init_from(plan: Plan, state: Any, engine: Engine) -> Any:
    """The training state with the arrays ``plan`` loads put in; the optimizer starts
    fresh (over the parameters the run trains)."""
    import jax.numpy as jnp
    from flax import nnx

    net, opt = nnx.merge(engine.train_def, state)
    model_state = nnx.state(net)
    for path, var in nnx.to_flat_state(model_state):
        p = param_path(path)
        if p in plan.arrays:
            var.set_value(jnp.asarray(plan.arrays[p], dtype=var.get_value().dtype))
    nnx.update(net, model_state)
    if isinstance(opt, tuple):  # `step` blocks: one optimizer per step, each over its groups
        return nnx.state((net, tuple(nnx.Optimizer(net, o.tx, wrt=o.wrt) for o in opt)))
    fresh = nnx.Optimizer(net, opt.tx, wrt=engine.wrt)
    return nnx.state((net, fresh))
