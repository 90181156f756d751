"""How many devices a run trains on, and the batch-size rule that follows: no JAX here.

The `devices` setting is `all` or a number (default 1). With N devices the global
`batch` is split evenly along its first axis, one share per device, so it must be a
multiple of N (E424, with the nearest multiples). A number is checked by `nnlang check`
(:func:`nnlang.train.spec.build_spec`); `all` and a number larger than the devices
present (E425) are checked when the run starts and knows them
(:func:`nnlang.train.sharding.data_parallel_for`).

Imports: the diagnostics only (``nnlang check`` runs without JAX).
"""

from __future__ import annotations

from typing import Any

from nnlang.diagnostics import Diagnostic, NNError


def nearest_batches(batch: int, n: int) -> list[int]:
    """The multiples of ``n`` nearest ``batch``: the one below (if any) and the one above."""
    below = batch // n * n
    return [b for b in (below, below + n) if b >= n]


def batch_error(spec: Any, n: int) -> Diagnostic | None:
    """E424 when ``spec.batch`` cannot be split evenly over ``n`` devices, at `batch`
    (or at `devices` when the batch is the default)."""
    if n <= 1 or spec.batch % n == 0:
        return None
    sizes = " or ".join(f"`batch = {b}`" for b in nearest_batches(spec.batch, n))
    return Diagnostic(
        "E424",
        f"`batch = {spec.batch}` cannot be split evenly over {n} devices "
        f"({spec.batch} is not a multiple of {n})",
        spec.spans.get("batch", spec.spans.get("devices")),
        help=f"use {sizes}: each device takes batch / devices examples of every step",
    )


def device_count(spec: Any, available: int) -> int:
    """The number of devices `devices` asks for; E425 when more than ``available``."""
    want = available if spec.devices == "all" else int(spec.devices)
    if want > available:
        raise NNError(
            Diagnostic(
                "E425",
                f"`devices = {want}` asks for more devices than the {available} present",
                spec.spans.get("devices"),
                help=f"use `devices = all` or a number up to {available}; on a CPU, "
                f"XLA_FLAGS=--xla_force_host_platform_device_count={want} makes {want} "
                "host devices (they share the same cores)",
            )
        )
    return want
