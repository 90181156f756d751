"""The training step's guard: whether a tree is finite, keeping an update only when it
is, and what a chunk of guarded steps carries and reports.

A step whose loss or gradients are not finite is never applied (:func:`keep_if`, a
select fused into the update); under ``nonfinite = "stop"`` the chunk halts there,
under ``"skip"`` the step is counted and the chunk goes on, up to a cap (see
``train.loop.Engine._guarded_step``). Why not ``optax.apply_if_finite``: it checks the
gradients only, like this, but keeps its counters in the optimizer state, which would
change every checkpoint's tree (runs written before it would no longer resume), and it
has no "stop" policy; the counters here live in the chunk's carry and the epoch's
progress record instead.

May import JAX and NumPy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

#: What :attr:`Guard.why` says about the step that halted a chunk.
BAD = {1: "loss", 2: "gradients", 3: "parameters or optimizer state"}


def all_finite(tree: Any) -> jax.Array:
    """Whether every floating leaf of ``tree`` is finite, as one traced scalar.

    ``sum(x * 0)`` is 0 exactly when every element is finite (``inf * 0`` and ``nan * 0``
    are NaN, and NaN survives the sum), and XLA fuses the multiply into the reduction:
    one read of each leaf, where ``all(isfinite(x))`` measured about four times the
    cost in the fused MLP loop."""
    total = jnp.zeros((), jnp.float32)
    for x in jax.tree.leaves(tree):
        if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jnp.inexact):
            total = total + jnp.sum(x * 0).astype(jnp.float32)
    return total == 0


def keep_if(ok: jax.Array, new: Any, old: Any) -> Any:
    """``new`` where ``ok``, else ``old``, leaf by leaf (a select XLA fuses into the
    update when ``ok`` is known before it): a bad update is never applied."""
    return jax.tree.map(lambda n, o: jax.lax.select(ok, n, o), new, old)


@jax.tree_util.register_dataclass
@dataclass
class Guard:
    """What a chunk of steps carries on the device: steps done (applied or skipped),
    steps skipped, why it halted (0: it did not; else a key of :data:`BAD`), the sum of
    the applied steps' losses, the loss of the last non-finite step, and the index and
    loss of the last applied step.

    Packed into one ``int32[4]`` and one ``float32[3]`` array: a step's update of the
    seven counters is then two fused kernels instead of one per counter, a third of
    the time of a step as small as a self-organising map's (measured: 12.1 against 8.0
    ms per epoch of the digits SOM, one sample per step; no change for the MLP)."""

    ints: jax.Array  # done, skipped, why, last
    floats: jax.Array  # total, bad_loss, last_loss

    @classmethod
    def zero(cls) -> Guard:
        return cls(np.asarray([0, 0, 0, -1], np.int32), np.zeros(3, np.float32))

    @classmethod
    def of(
        cls,
        done: Any,
        skipped: Any,
        why: Any,
        last: Any,
        total: Any,
        bad_loss: Any,
        last_loss: Any,
    ) -> Guard:
        ints = jnp.stack([jnp.asarray(v, jnp.int32) for v in (done, skipped, why, last)])
        floats = jnp.stack([jnp.asarray(v, jnp.float32) for v in (total, bad_loss, last_loss)])
        return cls(ints, floats)

    done = property(lambda self: self.ints[0])
    skipped = property(lambda self: self.ints[1])
    why = property(lambda self: self.ints[2])
    last = property(lambda self: self.ints[3])
    total = property(lambda self: self.floats[0])
    bad_loss = property(lambda self: self.floats[1])
    last_loss = property(lambda self: self.floats[2])


@dataclass(frozen=True)
class Chunk:
    """A chunk's outcome on the host (see :class:`Guard`). ``done`` counts the steps the
    position advanced by. When ``why`` is set, ``bad`` is the 0-based index in the epoch
    of the step at fault and ``bad_loss`` its loss: for a non-finite loss or gradients
    (1, 2) the step the chunk stopped before, whose update was not applied; for
    non-finite weights (3) the last applied step, whose update made them so."""

    done: int
    skipped: int
    why: int
    loss_sum: float
    bad: int = -1
    bad_loss: float = 0.0
    #: the training metrics' statistics of the chunk's applied steps, by label (host arrays)
    metrics: dict[str, Any] = field(default_factory=dict)


#: dtypes of the scalars :func:`pack_scalars` puts into one array (bitcast to uint32)
_PACKED = (np.dtype(np.int32), np.dtype(np.uint32), np.dtype(np.float32))


def pack_scalars(tree: Any) -> tuple[list[Any], jax.Array | None, Any]:
    """A loop carry's small leaves as one ``uint32`` vector: every 32-bit scalar (the
    optimizer's step counters, an injected learning rate, the loop index) and small
    32-bit vector (the :class:`Guard`'s) bitcast and concatenated, the other leaves as
    they are. XLA:CPU runs a kernel per output array of a loop body, at a fixed cost of
    each: a step's updates of many counters become one kernel instead of one each
    (the digits SOM, one sample per step: see bench/README.md). Bitcasts are exact;
    :func:`unpack_scalars` gives back the same tree."""
    leaves, treedef = jax.tree.flatten(tree)
    small, rest, where = [], [], []
    for x in leaves:
        dt = getattr(x, "dtype", None)
        plain = dt is not None and not jnp.issubdtype(dt, jax.dtypes.extended)
        if plain and np.dtype(dt) in _PACKED and np.ndim(x) <= 1 and np.size(x) <= 8:
            where.append((len(small), np.shape(x), np.dtype(dt)))
            small.append(jax.lax.bitcast_convert_type(jnp.reshape(x, (-1,)), jnp.uint32))
        else:
            where.append((None, len(rest)))
            rest.append(x)
    packed = jnp.concatenate(small) if small else None
    return rest, packed, (treedef, tuple(where))


def unpack_scalars(rest: list[Any], packed: jax.Array | None, layout: Any) -> Any:
    """The tree :func:`pack_scalars` packed."""
    treedef, where = layout
    sizes = [int(np.prod(w[1])) for w in where if w[0] is not None]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    leaves = []
    for w in where:
        if w[0] is None:
            leaves.append(rest[w[1]])
        else:
            k, shape, dt = w
            part = packed[offsets[k] : offsets[k + 1]]  # type: ignore[index]
            leaves.append(jnp.reshape(jax.lax.bitcast_convert_type(part, dt), shape))
    return jax.tree.unflatten(treedef, leaves)


def packed_while_loop(cond: Any, body: Any, init: Any, *, pack: bool = True) -> Any:
    """``jax.lax.while_loop(cond, body, init)`` with the carry's small leaves in one
    array (:func:`pack_scalars`) around every iteration; the same values."""
    if not pack:
        return jax.lax.while_loop(cond, body, init)
    rest, packed, layout = pack_scalars(init)

    def packed_cond(c: tuple[Any, Any]) -> jax.Array:
        return cond(unpack_scalars(*c, layout))

    def packed_body(c: tuple[Any, Any]) -> tuple[Any, Any]:
        rest, packed, new = pack_scalars(body(unpack_scalars(*c, layout)))
        if new != layout:  # at trace time: a leaf changed dtype or shape (a bug in the body)
            raise TypeError(f"the loop body changed its carry's layout: {new} != {layout}")
        return rest, packed

    return unpack_scalars(*jax.lax.while_loop(packed_cond, packed_body, (rest, packed)), layout)
