"""Several processes (hosts) training one run: ``jax.distributed`` started once.

``nnlang train --coordinator HOST:PORT --num-processes N --process-id I`` (or
``--distributed``: JAX finds the three itself under SLURM, Open MPI, Kubernetes or a
Cloud TPU pod, and ``JAX_COORDINATOR_ADDRESS`` names the coordinator) calls
:func:`start` before JAX makes its first array. Every process then sees the devices of
all of them (``jax.devices()``), the run's mesh spans them all, and every step is one
program all of them run (XLA's collectives between processes: Gloo on CPU, the
default of JAX 0.10; NCCL on GPUs).

What each process does: all of them load the data, build the same engine and run
every step, evaluation and checkpoint save (Orbax writes a checkpoint cooperatively:
each process its shards, the first one the metadata); only the first (process 0,
:func:`primary`) takes the run directory's lock and writes its logs: settings,
metrics, TensorBoard, the result and the progress display. The run directory must be
one folder all of them reach (a shared file system across machines), named by
``--out``.

Imports: JAX (inside :func:`start`) and the diagnostics.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from nnlang.diagnostics import Diagnostic, NNError


@dataclass(frozen=True)
class Processes:
    index: int = 0
    count: int = 1


_NOW = Processes()


def current() -> Processes:
    """This process's index and the count: :func:`start`'s, or JAX's once it runs (a
    program that called ``jax.distributed.initialize`` itself before
    :func:`nnlang.train.run.train`); 0 of 1 before JAX is imported."""
    jax = sys.modules.get("jax")
    if _NOW.count > 1 or jax is None:
        return _NOW
    return Processes(jax.process_index(), jax.process_count())


def primary() -> bool:
    """Whether this process writes the run's logs (the only one, or process 0)."""
    return current().index == 0


def start(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    auto: bool = False,
) -> Processes:
    """``jax.distributed.initialize`` with what is given (the rest detected by JAX);
    nothing without any of them. A failure to reach the coordinator is E706."""
    global _NOW
    if coordinator is None and num_processes is None and process_id is None and not auto:
        return _NOW
    import jax

    try:
        jax.distributed.initialize(coordinator, num_processes, process_id)
    except (RuntimeError, ValueError, TypeError) as e:
        raise NNError(
            Diagnostic(
                "E706",
                f"could not start the processes of a distributed run: {str(e)[:300]}",
                help="give --coordinator HOST:PORT (the same on every process, reachable from "
                "all), --num-processes N and a distinct --process-id 0..N-1 to each; under "
                "SLURM or Open MPI, --distributed alone",
            )
        ) from None
    _NOW = Processes(jax.process_index(), jax.process_count())
    return _NOW


def barrier(name: str) -> None:
    """Wait until every process reaches ``name`` (nothing for one process)."""
    if current().count > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def agree(stop: bool, due: bool) -> tuple[bool, bool]:
    """What every process does after a chunk, the same on all: stop when any process was
    asked to (a signal may reach one host only, or the hosts in different chunks), and
    save by time when process 0's clock says so. Each process deciding alone would
    leave some in Orbax's collective save, or stopped, while the others step on."""
    if current().count == 1:
        return stop, due
    import numpy as np
    from jax.experimental import multihost_utils

    votes = np.asarray(multihost_utils.process_allgather(np.array([stop, due], np.int32)))
    return bool(votes[:, 0].any()), bool(votes[0, 1])
