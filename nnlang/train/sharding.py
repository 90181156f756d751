"""Several devices with `jax.sharding`: a `data` mesh axis, and a `model` one for FSDP.

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

With a `mesh` that has a ``model`` axis (``mesh = {data: 2, model: 2}``) the mesh is 2-D
and the state is sharded FSDP-style instead of replicated: each array of the parameters
and the optimizer state is split over ``model`` along its largest axis that the
``model`` size divides (the first of equal ones), or kept whole when none does or a
`shard` rule says ``none`` (:func:`partition`; rules are matched by
:func:`nnlang.train.parts.select`'s rule on the parameter path, and an optimizer
state array follows the parameter it mirrors). The step's state is constrained to the
same shardings, so XLA all-gathers a layer's weights where it needs them and
reduce-scatters the gradients; the batch is still split over ``data`` only.

With one device (the default) there is no mesh: :func:`data_parallel_for` returns None,
the engine adds no constraint and places its data with a plain ``jax.device_put``, so
the traced program is the one-device program, unchanged.

May import JAX, ``diagnostics``, ``train.devices``, ``train.parts`` and ``train.trainable``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from nnlang.diagnostics import NNError
from nnlang.train.devices import AXES, batch_error, device_count
from nnlang.train.parts import matches
from nnlang.train.trainable import param_path

AXIS, MODEL = AXES  # "data": the batch is split over it; "model": the parameters are


def partition(shape: tuple[int, ...], n: int) -> PartitionSpec:
    """FSDP-style: split the largest axis that ``n`` divides over `model`, else whole."""
    fits = [i for i, d in enumerate(shape) if n > 1 and d >= n and d % n == 0]
    if not fits:
        return PartitionSpec()
    i = max(fits, key=lambda j: (shape[j], -j))
    return PartitionSpec(*(MODEL if j == i else None for j in range(len(shape))))


def state_path(path: tuple[Any, ...]) -> str | None:
    """The parameter path (``enc/dense.kernel``) a state array belongs to, for the model's
    arrays and the optimizer state arrays that mirror them; None for the rest."""
    names = [str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path]
    if "layers" not in names:
        return None
    at = len(names) - 1 - names[::-1].index("layers")
    return param_path(tuple(names[at:]))


@dataclass(frozen=True)
class DataParallel:
    """The mesh over the devices of a run, and the shardings the loop uses."""

    mesh: Mesh
    rules: tuple[tuple[str, str | None], ...] = ()  # `shard`: (pattern, "model" or None)

    @property
    def size(self) -> int:
        return self.mesh.size

    @property
    def model(self) -> int:
        """The size of the `model` axis (1: the state is replicated)."""
        return int(dict(self.mesh.shape).get(MODEL, 1))

    def spec_of(self, path: tuple[Any, ...], shape: tuple[int, ...]) -> PartitionSpec:
        """Where one state array lives: see :func:`partition` and the `shard` rules."""
        if self.model <= 1:
            return PartitionSpec()
        p = state_path(path)
        for pattern, rule in self.rules if p is not None else ():
            if matches(pattern, p):
                return PartitionSpec() if rule is None else partition(shape, self.model)
        return partition(shape, self.model)

    def shardings(self, tree: Any) -> Any:
        """A tree of :class:`NamedSharding` for ``tree``'s arrays (the state)."""
        if self.model <= 1:
            return jax.tree.map(lambda _: self.replicated, tree)
        return jax.tree_util.tree_map_with_path(
            lambda p, x: NamedSharding(self.mesh, self.spec_of(p, tuple(x.shape))), tree
        )

    @property
    def replicated(self) -> NamedSharding:
        return NamedSharding(self.mesh, PartitionSpec())

    @property
    def split(self) -> NamedSharding:
        """The batch: split over `data` (whole on each device of a mesh without one)."""
        on = AXIS in self.mesh.axis_names
        return NamedSharding(self.mesh, PartitionSpec(AXIS) if on else PartitionSpec())

    def put(self, tree: Any, *, replicate: bool = False) -> Any:
        """``tree``'s arrays placed on the mesh: the state by :meth:`shardings`
        (replicated, or split over a `model` axis; a no-op for those already so), or,
        with ``replicate``, whole on every device (the training split, which each
        step gathers its batch from). With several processes (:mod:`nnlang.train.hosts`)
        each one gives the shards of its own devices, cut from its copy of the whole
        array (every process holds the same one)."""
        where = jax.tree.map(lambda _: self.replicated, tree) if replicate else self.shardings(tree)
        if jax.process_count() == 1:
            return jax.device_put(tree, where)
        return jax.tree.map(_global, tree, where)

    def split_batch(self, batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
        """Inside a traced step: each array of the batch split along its first axis."""
        return {k: jax.lax.with_sharding_constraint(v, self.split) for k, v in batch.items()}

    def keep_placed(self, state: Any) -> Any:
        """Inside a traced step: the state it returns placed like the one it took."""
        return jax.lax.with_sharding_constraint(state, self.shardings(state))


def _global(x: Any, s: NamedSharding) -> Any:
    """One array of a process placed on a mesh spanning several processes."""
    if isinstance(x, jax.Array) and x.sharding == s:
        return x
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return jax.device_put(x, s)  # already global: XLA moves it
    if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        data = _global(jax.random.key_data(x), NamedSharding(s.mesh, PartitionSpec()))
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, s, lambda idx: host[idx])


def data_parallel(
    n: int, mesh: dict[str, int] | None = None, rules: tuple[Any, ...] = ()
) -> DataParallel | None:
    """A mesh over the first ``n`` devices (1-D `data`, or the `mesh` setting's axes);
    None for one device."""
    if n <= 1:
        return None
    axes = mesh or {AXIS: n}
    m = jax.make_mesh(
        tuple(axes.values()),
        tuple(axes),
        (AxisType.Auto,) * len(axes),
        devices=jax.devices()[:n],
    )
    return DataParallel(m, tuple(rules))


def data_parallel_for(spec: Any) -> DataParallel | None:
    """The mesh a train spec's `devices` or `mesh` asks for: E425 when there are fewer
    devices, E424 when its batch cannot be split evenly over them."""
    n = device_count(spec, len(jax.devices()))
    d = batch_error(spec, n)
    if d is not None:
        raise NNError(d)
    return data_parallel(n, getattr(spec, "mesh", None), getattr(spec, "shard", ()))


def place(dp: DataParallel | None, arrays: dict[str, Any]) -> dict[str, Any]:
    """The training split on the device(s): replicated on the mesh, or on the default
    device as a one-device run has always put it."""
    if dp is None:
        return {k: jax.device_put(v) for k, v in arrays.items()}
    return dp.put(dict(arrays), replicate=True)


def describe(dp: DataParallel | None) -> str:
    """How a run's progress line names its devices."""
    if dp is None:
        return f"1 device ({jax.devices()[0].platform})"
    d = dp.mesh.devices.flat[0]
    if dp.model > 1:
        axes = " × ".join(f"{v} {k}" for k, v in dict(dp.mesh.shape).items())
        return f"{dp.size} devices ({d.platform}, mesh {axes}: parameters sharded over model)"
    return f"{dp.size} devices ({d.platform}, data parallel)"
