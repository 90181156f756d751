"""Data parallelism with `jax.sharding`: one mesh axis, `data`, over the run's devices.

With `devices = N` (N > 1) the run builds a 1-D :class:`jax.sharding.Mesh` over the
first N devices with the axis ``data``. The training state (parameters, optimizer
state, batch statistics, RNG keys) and the training split are placed replicated on it
(``PartitionSpec()``); inside the jitted step the gathered batch is constrained to be
split along its first axis (``PartitionSpec("data")``, by
:func:`jax.lax.with_sharding_constraint`) and the state the step returns to stay
replicated. XLA (GSPMD) then partitions the step: each device computes the forward and
backward pass of its share of the batch, and the mean over the batch becomes an
all-reduce of the gradients, so the update is the one the whole batch gives on one
device (up to the order of the sums). No ``pmap``, no collective written here.

With one device (the default) there is no mesh: :func:`data_parallel_for` returns None,
the engine adds no constraint and places its data with a plain ``jax.device_put``, so
the traced program is the one-device program, unchanged.

May import JAX, ``diagnostics`` and ``train.devices``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from nnlang.diagnostics import NNError
from nnlang.train.devices import batch_error, device_count

AXIS = "data"


@dataclass(frozen=True)
class DataParallel:
    """A 1-D mesh over the devices of a run, and the two shardings the loop uses."""

    mesh: Mesh

    @property
    def size(self) -> int:
        return self.mesh.size

    @property
    def replicated(self) -> NamedSharding:
        return NamedSharding(self.mesh, PartitionSpec())

    @property
    def split(self) -> NamedSharding:
        return NamedSharding(self.mesh, PartitionSpec(AXIS))

    def put(self, tree: Any) -> Any:
        """``tree``'s arrays placed replicated on the mesh (a no-op for those already so)."""
        return jax.device_put(tree, self.replicated)

    def split_batch(self, batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
        """Inside a traced step: each array of the batch split along its first axis."""
        return {k: jax.lax.with_sharding_constraint(v, self.split) for k, v in batch.items()}

    def keep_replicated(self, state: Any) -> Any:
        """Inside a traced step: the state it returns replicated, like the one it took."""
        return jax.lax.with_sharding_constraint(state, self.replicated)


def data_parallel(n: int) -> DataParallel | None:
    """A data-parallel mesh over the first ``n`` devices; None for one device."""
    if n <= 1:
        return None
    mesh = jax.make_mesh((n,), (AXIS,), (AxisType.Auto,), devices=jax.devices()[:n])
    return DataParallel(mesh)


def data_parallel_for(spec: Any) -> DataParallel | None:
    """The mesh a train spec's `devices` asks for: E425 when there are fewer devices,
    E424 when its batch cannot be split evenly over them."""
    n = device_count(spec, len(jax.devices()))
    d = batch_error(spec, n)
    if d is not None:
        raise NNError(d)
    return data_parallel(n)


def place(dp: DataParallel | None, arrays: dict[str, Any]) -> dict[str, Any]:
    """The training split on the device(s): replicated on the mesh, or on the default
    device as a one-device run has always put it."""
    if dp is None:
        return {k: jax.device_put(v) for k, v in arrays.items()}
    return dp.put(dict(arrays))


def describe(dp: DataParallel | None) -> str:
    """How a run's progress line names its devices."""
    if dp is None:
        return f"1 device ({jax.devices()[0].platform})"
    d = dp.mesh.devices.flat[0]
    return f"{dp.size} devices ({d.platform}, data parallel)"
