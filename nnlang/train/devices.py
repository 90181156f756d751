"""How many devices a run trains on, how they are arranged, and the batch-size rule
that follows: no JAX here.

The `devices` setting is `all` or a number (default 1). With N devices the global
`batch` is split evenly along its first axis, one share per device, so it must be a
multiple of N (E424, with the nearest multiples). A number is checked by `nnlang check`
(:func:`nnlang.train.spec.build_spec`); `all` and a number larger than the devices
present (E425) are checked when the run starts and knows them
(:func:`nnlang.train.sharding.data_parallel_for`).

The `mesh` setting, ``{data: 2, model: 2}``, arranges the devices in named axes (AXES):
the batch is split over ``data`` (so `batch` must be a multiple of its size), the
parameters and optimizer state over ``model`` (:mod:`nnlang.train.sharding`); the
devices a run takes are the product of the sizes. `shard = {pattern: model | none}`
says which parameters are split over ``model`` (the first pattern selecting one
decides; the rest split FSDP-style). :func:`mesh_setting` and :func:`shard_setting`
read both from the syntax tree with located errors.

Imports: the diagnostics, the syntax tree, the graph and :mod:`nnlang.train.parts`
(``nnlang check`` runs without JAX).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from nnlang.diagnostics import Diagnostic, NNError, Span, did_you_mean
from nnlang.graph.graph import Graph
from nnlang.syntax import ast as A
from nnlang.train import parts

#: the mesh axes a run knows: the batch is split over `data`, parameters over `model`
AXES = ("data", "model")
#: how a problem is reported: (code, message, span, help=...)
Err = Callable[..., None]


def nearest_batches(batch: int, n: int) -> list[int]:
    """The multiples of ``n`` nearest ``batch``: the one below (if any) and the one above."""
    below = batch // n * n
    return [b for b in (below, below + n) if b >= n]


def data_size(spec: Any, n: int) -> int:
    """How many ways the batch is split: the `mesh`'s `data` axis, else all ``n`` devices."""
    mesh = getattr(spec, "mesh", None)
    return int(mesh.get("data", 1)) if mesh else n


def batch_error(spec: Any, n: int) -> Diagnostic | None:
    """E424 when ``spec.batch`` cannot be split evenly over ``n`` devices (the `mesh`'s
    `data` axis when there is one), at `batch` (or at `devices`/`mesh` when the batch is
    the default)."""
    n = data_size(spec, n)
    if n <= 1 or spec.batch % n == 0:
        return None
    sizes = " or ".join(f"`batch = {b}`" for b in nearest_batches(spec.batch, n))
    over = f"the mesh's `data` axis of {n}" if getattr(spec, "mesh", None) else f"{n} devices"
    return Diagnostic(
        "E424",
        f"`batch = {spec.batch}` cannot be split evenly over {over} "
        f"({spec.batch} is not a multiple of {n})",
        spec.spans.get("batch", spec.spans.get("mesh", spec.spans.get("devices"))),
        help=f"use {sizes}: each device takes batch / {n} examples of every step",
    )


def mesh_devices(mesh: dict[str, int] | None) -> int | None:
    return math.prod(mesh.values()) if mesh else None


def device_count(spec: Any, available: int) -> int:
    """The number of devices `devices` (or the `mesh`) asks for; E425 when more than
    ``available``, E403 when `devices = all` is not the mesh's count."""
    mesh = getattr(spec, "mesh", None)
    want = available if spec.devices == "all" else int(spec.devices)
    if mesh:
        if spec.devices == "all" and mesh_devices(mesh) != available:
            raise NNError(conflict(spec, available))
        want = mesh_devices(mesh) or 1
    if want > available:
        raise NNError(
            Diagnostic(
                "E425",
                f"`{'mesh' if mesh else 'devices'} = {_show(mesh) if mesh else want}` "
                f"asks for more devices than the {available} present",
                spec.spans.get("mesh" if mesh else "devices"),
                help=f"use `devices = all` or a number up to {available}; on a CPU, "
                f"XLA_FLAGS=--xla_force_host_platform_device_count={want} makes {want} "
                "host devices (they share the same cores)",
            )
        )
    return want


def _show(mesh: dict[str, int]) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in mesh.items()) + "}"


def conflict(spec: Any, devices: int) -> Diagnostic:
    """E403: `devices` and `mesh` name different device counts."""
    n = mesh_devices(spec.mesh)
    given = f"`devices = all` ({devices})" if spec.devices == "all" else f"`devices = {devices}`"
    return Diagnostic(
        "E403",
        f"{given} differs from the {n} devices of `mesh = {_show(spec.mesh)}`",
        spec.spans.get("devices", spec.spans.get("mesh")),
        help=f"leave `devices` out with a `mesh` (it takes {n} devices), or make the "
        "product of the mesh's sizes the device count",
    )


def mesh_setting(err: Err, e: A.Expr, value: Any) -> dict[str, int] | None:
    """`mesh = {data: 2, model: 2}` checked: a `{...}` of known axes (E202 with a
    did-you-mean) with integer sizes >= 1 (E201/E202). None after reporting a problem."""
    if not isinstance(e, A.DictExpr) or not isinstance(value, dict) or not value:
        err(
            "E201",
            "`mesh` is a `{axis: size, ...}` of the axes `data` and `model`, "
            "e.g. `mesh = {data: 2, model: 2}`",
            e.span,
        )
        return None
    out: dict[str, int] = {}
    for en in e.entries:
        size = value[en.key]
        if en.key not in AXES:
            err(
                "E202",
                f"unknown mesh axis `{en.key}`",
                en.key_span,
                help=did_you_mean(en.key, AXES)
                or "the axes are `data` (the batch is split "
                "over it) and `model` (the parameters are)",
            )
            return None
        if isinstance(size, bool) or not isinstance(size, int):
            err("E201", f"a mesh axis size is an integer, got {size!r}", en.value.span)
            return None
        if size < 1:
            err("E202", f"a mesh axis size must be >= 1, got {size}", en.value.span)
            return None
        out[en.key] = size
    return {a: out[a] for a in AXES if a in out}  # in mesh order: data, then model


def shard_setting(
    err: Err, e: A.Expr, graph: Graph | None
) -> tuple[tuple[str, str | None], ...] | None:
    """`shard = {"enc*": model, head: none}`: each key a layer or block name or a quoted
    glob over parameter paths (:func:`nnlang.train.parts.select`, E404 when it selects
    no parameter), each value `model` (split over the `model` axis) or `none`
    (replicated). None after reporting a problem."""
    if not isinstance(e, A.DictExpr) or not e.entries:
        err(
            "E201",
            '`shard` is a `{pattern: model or none, ...}`, e.g. `shard = {"enc*": model, '
            "head: none}`",
            e.span,
        )
        return None
    out: list[tuple[str, str | None]] = []
    spans: list[Span] = []
    for en in e.entries:
        v = en.value
        word = v.id if isinstance(v, A.Name) else v.value if isinstance(v, A.Str) else None
        if word not in ("model", "none"):
            err(
                "E202",
                "a `shard` rule's value is `model` (split over the mesh's `model` axis) or "
                "`none` (a whole copy on every device)",
                v.span,
            )
            return None
        out.append((en.key, "model" if word == "model" else None))
        spans.append(en.key_span)
    if graph is not None:
        paths = sorted({f"{n.owner}.*" for n in graph.order() if n.params > 0})
        found = parts.select(paths, [p for p, _ in out])
        for i in found.unmatched():
            err(
                "E404",
                f"`shard`: `{out[i][0]}` matches no layer or block with parameters",
                spans[i],
                help=did_you_mean(out[i][0], parts.names_near(out[i][0], paths))
                or f"layers with parameters: {', '.join(parts.node_of(p) for p in paths)}",
            )
        if found.unmatched():
            return None
    return tuple(out)


def read_setting(
    err: Err, kind: str, e: A.Expr, value_of: Callable[[A.Expr], Any], graph: Graph | None, bad: Any
) -> Any:
    """`mesh` or `shard` read; ``bad`` after a problem (reported here or by ``value_of``)."""
    if kind == "shard":
        got = shard_setting(err, e, graph)
    else:
        v = value_of(e)
        got = None if v is bad else mesh_setting(err, e, v)
    return bad if got is None else got
