"""``nnlang time``: where a model's time goes, as Caffe's ``caffe time`` shows it.

Every layer call is compiled and timed alone on the values it gets in the model (one
eager pass of random inputs at the chosen batch, in training mode): its forward, and its
forward and backward (the gradient of the sum of its floating outputs with respect to its
parameters and floating inputs). Then the whole model's forward as one program, and when
the file has a train section for the model, the real training step (the guarded step of
:class:`~nnlang.train.loop.Engine` on the first batch of the training split) and, where
the fused loop applies, a whole epoch in one program. Each program reports its compile
time and the memory XLA's ``memory_analysis`` gives (arguments, outputs, temporaries,
generated code). Times are medians of ``runs`` calls after a warm-up call.

The per-layer times add up to more than the model's forward: alone, a layer cannot fuse
with its neighbours and pays a call's fixed cost. May import the stages before ``train``
and the ``train`` modules.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from nnlang.graph.graph import Graph
from nnlang.lower.network import Network, lower


@dataclass
class Program:
    """One compiled program's figures (seconds and bytes)."""

    name: str
    seconds: float
    compile_seconds: float
    memory: dict[str, int] = field(default_factory=dict)
    note: str = ""


@dataclass
class LayerTime:
    node: str
    kind: str
    output: str
    line: int
    forward: float
    backward: float | None  # forward + backward; None when nothing is differentiable


@dataclass
class Timing:
    model: str
    batch: int
    runs: int
    backend: str
    layers: list[LayerTime]
    programs: list[Program]

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "batch": self.batch,
            "runs": self.runs,
            "backend": self.backend,
            "layers": [vars(x) for x in self.layers],
            "programs": [vars(p) for p in self.programs],
        }


def _memory(compiled: Any) -> dict[str, int]:
    m = compiled.memory_analysis()
    if m is None:
        return {}
    keys = ("argument", "output", "temp", "generated_code")
    return {k: int(getattr(m, f"{k}_size_in_bytes", 0)) for k in keys}


def measure(fn: Any, args: tuple[Any, ...], runs: int, chain: bool = False) -> Program:
    """Compile ``fn`` for ``args``, call it once, then time ``runs`` calls. With
    ``chain`` the first output is fed back as the first argument (a donated state)."""
    if chain:  # the caller's first argument stays valid
        args = (jax.tree.map(jnp.copy, args[0]), *args[1:])
    t = time.perf_counter()
    compiled = jax.jit(fn, donate_argnums=(0,) if chain else ()).lower(*args).compile()
    compile_s = time.perf_counter() - t
    out = compiled(*args)
    jax.block_until_ready(out)
    times = []
    for _ in range(runs):
        if chain:
            args = (out[0], *args[1:])
        t = time.perf_counter()
        out = compiled(*args)
        jax.block_until_ready(out)
        times.append(time.perf_counter() - t)
    return Program("", statistics.median(times), compile_s, _memory(compiled))


def random_inputs(graph: Graph, model: Network, batch: int, seed: int = 0) -> dict[str, Any]:
    """Standard normal floats and small non-negative integers, one batch of each input."""
    rng = np.random.default_rng(seed)
    out = {}
    for p, dt in zip(graph.inputs, model.input_dtypes, strict=True):
        shape = (batch, *(int(d) for d in p.type.shape))
        if jnp.issubdtype(dt, jnp.floating):
            out[p.name] = jnp.asarray(rng.standard_normal(shape), dt)
        else:
            out[p.name] = jnp.asarray(rng.integers(0, 2, shape), dt)
    return out


def _is_float(x: Any) -> bool:
    return jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating)


def _float_sum(y: Any) -> Any:
    return sum(
        (jnp.sum(v.astype(jnp.float32)) for v in jax.tree.leaves(y) if _is_float(v)),
        jnp.zeros((), jnp.float32),
    )


def layer_times(graph: Graph, model: Network, inputs: dict[str, Any], runs: int) -> list[LayerTime]:
    model.train()
    env = model.values(**inputs)
    nodes = {n.id: n for n in graph.order()}
    out = []
    for node_id, owner, is_module, refs, _ in model.plan:
        node = nodes[node_id]
        xs = tuple(env[r] for r in refs) if refs else (env[(model.input_names[0], 0)],)
        floats = tuple(i for i, x in enumerate(xs) if _is_float(x))

        def put(xs: Any, fl: Any, floats: Any = floats) -> list[Any]:
            full = list(xs)
            for i, v in zip(floats, fl, strict=True):
                full[i] = v
            return full

        if is_module:
            gd, params, rest = nnx.split(model.layers[owner], nnx.Param, ...)

            def fwd(p: Any, r: Any, *xs: Any, gd: Any = gd) -> Any:
                return nnx.merge(gd, p, r)(*xs)

            def fwd_bwd(p: Any, r: Any, *xs: Any, gd: Any = gd, floats: Any = floats) -> Any:
                def loss(m: Any, fl: Any) -> Any:
                    return _float_sum(m(*put(xs, fl)))

                grad = nnx.grad(loss, argnums=(nnx.DiffState(0, nnx.Param), 1))
                return grad(nnx.merge(gd, p, r), tuple(xs[i] for i in floats))

            args: tuple[Any, ...] = (params, rest, *xs)
            has_params = bool(jax.tree.leaves(params))
        else:
            fn = model.functions[owner]

            def fwd(p: Any, r: Any, *xs: Any, fn: Any = fn) -> Any:
                return fn(*xs)

            def fwd_bwd(p: Any, r: Any, *xs: Any, fn: Any = fn, floats: Any = floats) -> Any:
                def loss(fl: Any) -> Any:
                    return _float_sum(fn(*put(xs, fl)))

                return jax.grad(loss)(tuple(xs[i] for i in floats))

            args = ({}, {}, *xs)
            has_params = False

        forward = measure(fwd, args, runs).seconds
        y = fwd(*args)
        differentiable = (has_params or floats) and any(_is_float(v) for v in jax.tree.leaves(y))
        backward = measure(fwd_bwd, args, runs).seconds if differentiable else None
        out.append(
            LayerTime(
                node_id,
                node.kind_name,
                ", ".join(str(t) for t in node.out_types),
                node.span.line,
                forward,
                backward,
            )
        )
    return out


def time_graph(
    graph: Graph, batch: int, runs: int, seed: int = 0, layers: bool = True
) -> tuple[Network, dict[str, Any], list[LayerTime], Program]:
    """The per-layer times and the whole model's forward in training mode."""
    model = lower(graph, seed)
    inputs = random_inputs(graph, model, batch, seed)
    per = layer_times(graph, model, inputs, runs) if layers else []
    model.train()
    gd, state = nnx.split(model)

    def forward(state: Any, inputs: Any) -> Any:
        return nnx.merge(gd, state)(**inputs)

    whole = measure(forward, (state, inputs), runs)
    whole.name = "model forward"
    return model, inputs, per, whole


def time_model(graph: Graph, batch: int, runs: int, layers: bool = True) -> Timing:
    """:class:`Timing` of a checked model without a train section: its layers and its
    forward."""
    _, _, per, whole = time_graph(graph, batch, runs, layers=layers)
    return Timing(graph.name, batch, runs, jax.default_backend(), per, [whole])


def time_training(
    file: str,
    model: str | None = None,
    sets: list[str] | None = None,
    batch: int | None = None,
    runs: int = 10,
    budget: Any = None,
    layers: bool = True,
) -> Timing:
    """:class:`Timing` of a model of ``file`` with its train section (at its batch, or
    ``batch``): the layers, the forward, the training step and the fused epoch."""
    from nnlang.train.run import setup

    overrides = list(sets or []) + ([f"batch={batch}"] if batch else [])
    s = setup(file, model, overrides, budget)
    b = s.spec.batch
    net, _, per, whole = time_graph(s.graph, b, runs, s.spec.seed, layers)
    steps = step_times(s, net, runs)
    return Timing(s.graph.name, b, runs, jax.default_backend(), per, [whole, *steps])


def step_times(s: Any, net: Network, runs: int) -> list[Program]:
    """The guarded training step on the first batch of the training split, and a whole
    epoch in one program where the fused loop applies, of ``net`` (the lowered model
    :func:`time_graph` timed; the engine splits it into the state it times)."""
    from nnlang.train.guard import Guard
    from nnlang.train.loop import load, make_engine

    data = load(s.graph, s.spec, s.program.root, grain=False)  # read whole, not streamed
    train = data.splits["train"]
    n = len(next(iter(train.values())))
    shapes = {p.name: tuple(p.type.shape) for p in s.graph.inputs}
    engine = make_engine(s.graph, s.spec, net, n, shapes)
    arrays = {k: jnp.asarray(v) for k, v in train.items()}
    perm = engine.permutation(np.int32(0))
    i32 = np.int32

    def step(state: Any, guard: Any, arrays: Any, perm: Any) -> Any:
        sums = engine.zero_sums()  # the training metrics' sums, carried as in the loop
        return engine._guarded_step(state, guard, sums, arrays, perm, i32(0), i32(0), i32(0))

    one = measure(step, (engine.state, Guard.zero(), arrays, perm), runs, chain=True)
    one.name = "train step"
    one.note = "forward, backward, update and guard, one program per step"
    out = [one]
    if engine.fused:
        steps = engine.steps_per_epoch

        def epoch(state: Any, guard: Any, arrays: Any) -> Any:
            sums = engine.zero_sums()
            return engine._run_chunk(state, guard, sums, arrays, i32(0), i32(0), i32(steps), i32(0))

        e = measure(epoch, (engine.state, Guard.zero(), arrays), max(1, min(runs, 5)), chain=True)
        e.name = "train epoch"
        e.note = f"{steps} steps in one program (the fused loop): {e.seconds / steps * 1e3:.3f} ms a step"
        out.append(e)
    return out
