"""Data-parallel training on forced host devices, run by tests/test_devices.py in a
subprocess (XLA_FLAGS must be set before JAX starts, so not in the test process).

    XLA_FLAGS=--xla_force_host_platform_device_count=4 python tests/devices_run.py DIR [mesh]

Trains a small MLP on the digits on 1 and on 4 devices (same global batch, same seed),
then resumes each one's checkpoint of epoch 1 on the other device count, and
prints one JSON line: the largest relative difference of each against the 1-device
run, whether the 4-device step was partitioned (an all-reduce in its compiled program),
and the codes of the batch and device-count mistakes. With ``mesh`` the 4 devices are
a 2×2 mesh (`mesh = {data: 2, model: 2}`): parameters and optimizer state sharded over
`model`, and "partitioned" says that they were.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sys
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from nnlang import cli
from nnlang.diagnostics import NNError
from nnlang.train.checkpoint import Checkpoints
from nnlang.train.loop import load, make_engine
from nnlang.train.run import setup, train

SRC = """\
model Tiny(hidden: int = 16) {
    input  image: f32[8, 8, 1]
    output logits = image -> flatten -> dense(hidden) -> relu -> dropout(0.1) -> dense(10)
}
train Tiny {
    data      = digits(test = 0.2, seed = 0)
    loss      = cross_entropy(logits, label)
    optimizer = adam(lr = 3e-3)
    batch     = 32
    epochs    = 2
    seed      = 0
    checkpoint_every = 1
}
"""


def params(model: nnx.Module) -> dict[str, np.ndarray]:
    flat = jax.tree_util.tree_flatten_with_path(nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    return {jax.tree_util.keystr(k): np.asarray(v) for k, v in flat[0]}


def rel(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    """The largest relative difference of two parameter sets, array by array."""
    assert a.keys() == b.keys()
    return max(float(np.linalg.norm(a[k] - b[k]) / np.linalg.norm(b[k])) for k in a)


MESH = "mesh={data: 2, model: 2}"


def run(
    src: Path, out: Path, devices: int, mesh: bool = False, **kw: object
) -> dict[str, np.ndarray]:
    sets = [MESH] if mesh else [f"devices={devices}"]
    r = train(src, out=out, sets=sets, progress=False, **kw)  # type: ignore[arg-type]
    assert r.extra["devices"] == devices, r.extra
    return params(r.model)


def cli_resume(src: Path, out: Path, devices: int, mesh: bool = False) -> dict[str, np.ndarray]:
    """`nnlang train --resume --devices N` (or `--set mesh=...`); the parameters of the
    run's last checkpoint."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = cli.main(
            ["train", str(src), "--out", str(out), "--resume", "--json"]
            + (["--set", MESH] if mesh else ["--devices", str(devices)])
        )
    assert rc == 0 and json.loads(buf.getvalue())["devices"] == devices, buf.getvalue()
    ck = Checkpoints(out / "checkpoints", create=False)
    raw = ck.restore_raw(ck.latest())  # the model's arrays, as saved
    ck.close()
    flat = jax.tree_util.tree_flatten_with_path(raw)[0]
    got = {jax.tree_util.keystr(k): np.asarray(v) for k, v in flat}
    return {k: got[k] for k in got if "kernel" in k or "bias" in k}


def code(src: Path, sets: list[str]) -> str | None:
    try:
        s = setup(src, sets=sets)
        make_engine(s.graph, s.spec, None, 1000, {})  # type: ignore[arg-type]
    except NNError as e:
        return e.diagnostics[0].code
    return None


def partitioned(src: Path, mesh: bool = False) -> bool:
    s = setup(src, sets=[MESH] if mesh else ["devices=4"])
    data = load(s.graph, s.spec, s.program.root)
    from nnlang.lower.network import lower

    e = make_engine(s.graph, s.spec, lower(s.graph, 0), data.size("train"), {})
    from nnlang.train import sharding
    from nnlang.train.guard import Guard

    arrays = sharding.place(e.dp, data.splits["train"])  # the split: whole on every device
    whole = all(a.sharding.is_fully_replicated for a in arrays.values())

    args = (e.state, Guard.zero(), e.zero_sums(), arrays, np.int32(0), np.int32(0), np.int32(2), 0)
    text = e.run_chunk.lower(*args).compile().as_text()
    leaves = jax.tree.leaves(e.state)
    on_four = len(leaves[0].sharding.device_set) == 4
    if mesh:  # every parameter and moment split over `model` (2 divides an axis of each)
        specs = [x.sharding.spec for x in leaves if x.ndim]
        split = sum("model" in tuple(sp) for sp in specs)
        return whole and on_four and split == len(specs) == 12 and "all-gather" in text
    return whole and "all-reduce" in text and on_four


def main(tmp: Path, mesh: bool = False) -> None:
    assert len(jax.devices()) == 4, jax.devices()
    src = tmp / "tiny.nn"
    src.write_text(SRC, "utf-8")
    one = run(src, tmp / "one", 1)
    four = run(src, tmp / "four", 4, mesh)
    for name in ("one", "four"):  # their checkpoints of epoch 1, resumed on the other count
        shutil.copytree(tmp / name, tmp / f"{name}_resumed")
        last = max(int(p.name) for p in (tmp / name / "checkpoints").iterdir() if p.name.isdigit())
        shutil.rmtree(tmp / f"{name}_resumed" / "checkpoints" / str(last))
    four_then_one = run(src, tmp / "four_resumed", 1, resume=True)
    one_then_four = cli_resume(src, tmp / "one_resumed", 4, mesh)
    out = {
        "four": rel(four, one),
        "four_then_one": rel(four_then_one, one),
        "one_then_four": rel(one_then_four, one),
        "partitioned": partitioned(src, mesh),
        "batch_30_all": code(src, ["devices=all", "batch=30"]),
        "devices_8": code(src, ["devices=8"]),
        "mesh_8": code(src, ["mesh={data: 4, model: 2}"]),
        "mesh_batch_30": code(src, ["mesh={data: 4}", "batch=30"]),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main(Path(sys.argv[1]).absolute(), sys.argv[2:] == ["mesh"])
