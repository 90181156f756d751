"""The fused loop's carry with its small leaves packed into one array
(guard.pack_scalars): the same tree back, and the same training, bit for bit."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from nnlang.lower.network import lower
from nnlang.train.guard import Guard, pack_scalars, unpack_scalars
from nnlang.train.loop import load, make_engine
from nnlang.train.run import setup

SOM = Path(__file__).resolve().parents[1] / "examples" / "som.nn"


def _plain(x):  # noqa: ANN001, ANN202
    if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        return np.asarray(jax.random.key_data(x))
    return np.asarray(x)


def test_round_trip_is_exact() -> None:
    tree = {
        "i": jnp.int32(-7),
        "step": jnp.uint32(2**32 - 1),
        "lr": jnp.float32(np.nan),
        "tiny": jnp.float32(-0.0),
        "guard": Guard.of(1, 2, 3, -1, 0.5, np.inf, -np.inf),
        "key": jax.random.key(3),
        "w": jnp.arange(12.0).reshape(3, 4),
        "half": jnp.float16(1.5),
    }
    rest, packed, layout = pack_scalars(tree)
    assert packed.dtype == jnp.uint32 and packed.shape == (4 + 4 + 3,)
    back = unpack_scalars(rest, packed, layout)
    for a, b in zip(jax.tree.leaves(tree), jax.tree.leaves(back), strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert _plain(a).tobytes() == _plain(b).tobytes()


def test_packed_loop_trains_bitwise_alike() -> None:
    s = setup(SOM, sets=["epochs=1"])
    data = load(s.graph, s.spec, s.program.root)
    arrays = {k: jax.device_put(v) for k, v in data.splits["train"].items()}
    out = []
    for pack in (False, True):
        e = make_engine(s.graph, s.spec, lower(s.graph, 0), data.size("train"), {})
        e.pack = pack
        state, chunk = e.run(e.state, arrays, 0, 0, 200)
        state, chunk = e.run(state, arrays, 0, 200, 300)  # a chunk from mid-epoch
        out.append(([_plain(x) for x in jax.tree.leaves(state)], chunk))
    (a, ca), (b, cb) = out
    assert ca == cb
    assert all(x.tobytes() == y.tobytes() for x, y in zip(a, b, strict=True))
