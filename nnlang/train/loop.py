"""The training loop: data on the device, whole chunks of steps in one compiled program.

The lowered module and its optimizer are split once into a graph definition and a
state pytree; every step is a pure function of that state, traced once. When the data
fits in device memory (the usual case here) it stays there, and a whole epoch — the
shuffle by ``jax.random`` included — runs as one ``lax.while_loop`` in one XLA program.
Every step is guarded (:mod:`nnlang.train.guard`): an update whose loss or gradients
are not finite is never applied, and the loop stops before it (or skips and counts it,
``nonfinite = skip``); the state a chunk ends with is checked once, so weights made
non-finite are never saved.

Exact resume: the data order of an epoch is a function of (seed, epoch), augmentation
and dropout keys of (seed, step), and the optimizer step count lives in its state. A
checkpoint stores all of it, so resuming from any checkpoint replays exactly what an
uninterrupted run would have done (bitwise on CPU).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from nnlang.diagnostics import ArgError, Diagnostic, NNError
from nnlang.graph.graph import Graph
from nnlang.lower.network import Network
from nnlang.train import augment as augment_lib
from nnlang.train import multistep, optim, sharding, trainable
from nnlang.train import rules as rules_lib
from nnlang.train.dataload import Data, arg_error, load  # noqa: F401  (re-exported)
from nnlang.train.guard import Chunk, Guard, all_finite, keep_if, packed_while_loop
from nnlang.train.metrics import BoundMetric, metric_from, metric_labels
from nnlang.train.objective import evaluate_loss
from nnlang.train.spec import CallSpec, TrainSpec

EVAL_BATCH = 1024
#: Layer families whose XLA CPU kernels lose an order of magnitude inside a rolled loop
#: (measured: a small CNN step takes 3 ms jitted alone, 50-110 ms inside lax.scan or
#: while_loop). Graphs with them run one jitted step per batch on CPU instead of a
#: whole fused epoch; bench/README.md has the numbers.
SLOW_IN_CPU_LOOPS = frozenset({"convolution", "pooling"})


def fused_epochs(graph: Graph) -> bool:
    """Whether to run whole epochs as one compiled loop (see SLOW_IN_CPU_LOOPS)."""
    if jax.default_backend() != "cpu":
        return True
    return not any(n.kind is not None and n.kind.family in SLOW_IN_CPU_LOOPS for n in graph.order())


# ------------------------------------------------------------------ the compiled parts
@dataclass
class Engine:
    """Pure, jitted functions over the split state of (model, optimizer)."""

    graph: Graph
    spec: TrainSpec
    model: Network
    optimizer: nnx.Optimizer
    metrics: list[BoundMetric]
    steps_per_epoch: int
    n_train: int
    input_names: tuple[str, ...]
    augment: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] | None  # by input
    parts: trainable.Parts | None = None  # `freeze` and `lr_groups` (None: train all)
    #: the `rule_schedule` (a multiplier of the rule's parameter) by optimizer step
    rule_schedule: Callable[[jax.Array], jax.Array] | None = None
    dp: sharding.DataParallel | None = None  # `devices` > 1: the data-parallel mesh

    def __post_init__(self) -> None:
        self.rule_sites = rules_lib.sites(self.graph)
        #: the metrics also measured on the training batches, in the fused loop: none
        #: for `step` blocks (each step its own outputs) or with `train_metrics =
        #: false`; no rule metric (a rule's statistics are for evaluation only)
        self.train_metrics = (
            []
            if self.spec.steps or not self.spec.train_metrics
            else [m for m in self.metrics if not m._rule_stat]
        )
        self.model.train()
        self.wrt = nnx.Param if self.parts is None else self.parts.wrt
        for n in () if self.parts is None else self.parts.frozen_norms:
            self.model.layers[n].use_running_average = True  # a frozen batch_norm
        self.train_def, self.state = nnx.split((self.model, self.optimizer))
        if self.dp is not None:
            self.state = self.dp.put(self.state)
        self.model.eval()  # Flax NNX's inference-mode switch (not Python's eval)
        self.eval_def, _ = nnx.split((self.model, self.optimizer))
        self.model.train()
        key = jax.random.key(self.spec.seed)
        self.data_key, self.aug_key = jax.random.split(jax.random.fold_in(key, 1))
        self.fused = fused_epochs(self.graph)
        self.pack = True  # the carry's small leaves in one array (guard.pack_scalars)
        self.filters = tuple(multistep.step_filter(self.graph, st.update) for st in self.spec.steps)
        self.run_chunk = jax.jit(self._run_checked, donate_argnums=(0,))
        self.one_step = jax.jit(self._guarded_step, donate_argnums=(0,))
        self.epoch_order = jax.jit(self.permutation)
        self.state_finite = jax.jit(all_finite)
        self.eval_batch = jax.jit(self._eval_batch)

    # one step -------------------------------------------------------------------
    def _step(
        self, state: Any, batch: dict[str, jax.Array], key: jax.Array, it: Any = 0
    ) -> tuple[Any, jax.Array, jax.Array, dict[str, Any]]:
        """One update, not yet applied. Returns (updated state, loss, why, the batch's
        statistics of the training metrics (:attr:`train_metrics`), measured on the
        outputs the loss saw): ``why`` is 0
        when the loss and the gradients are finite, else which was not (a key of
        :data:`BAD`); the caller keeps the updated state only when it is 0
        (:func:`keep_if`). Checking the gradients rather than the updated state lets XLA
        fuse the select into the update (measured: no cost in the fused MLP loop, where
        a reduction over the updated state cost 20-40%); an update that overflows the
        weights from finite gradients is caught once per chunk (:meth:`run`)."""
        # merge a copy: updating the merged module rebinds the Variables of the state it
        # was merged from, and ``state`` must stay what it was for a step not applied
        model, opt = nnx.merge(self.train_def, jax.tree.map(lambda x: x, state))
        if self.augment is not None:  # the floating inputs it names, each with its own key
            for i, name in enumerate(self.input_names):
                f = self.augment.get(name)
                if f is not None and jnp.issubdtype(batch[name].dtype, jnp.floating):
                    batch = {**batch, name: f(jax.random.fold_in(key, i), batch[name])}
        b = self.spec.batch
        if self.spec.noise:
            batch = {**batch, **multistep.noise(self.graph, self.spec.noise, key, b)}
        if self.spec.steps:  # `step` blocks: each its own loss, parameters and optimizer
            loss, ok = multistep.run_steps(
                self.spec,
                model,
                opt,
                lambda x: {n: x[n] for n in self.input_names},
                batch,
                self.filters,
                it,
            )
            return nnx.state((model, opt)), loss, jnp.where(ok, 0, 2), {}

        ctx = rules_lib.context_at(self.rule_sites, self.rule_schedule, opt, key, train=True)

        def loss_fn(m: Network) -> tuple[jax.Array, dict[str, jax.Array]]:
            outs = rules_lib.run(m, {n: batch[n] for n in self.input_names}, self.rule_sites, ctx)
            params = nnx.state(m, nnx.Param)
            return jnp.mean(evaluate_loss(self.spec.loss, {**batch, **outs}, params, b)), outs

        (loss, outs), grads = nnx.value_and_grad(
            loss_fn, argnums=nnx.DiffState(0, self.wrt), has_aux=True
        )(model)
        opt.update(model, grads)
        new = nnx.state((model, opt))
        why = jnp.where(jnp.isfinite(loss), jnp.where(all_finite(grads), 0, 2), 1)
        env, ones = {**batch, **outs}, jnp.ones((b,), jnp.float32)
        stats = {label(m): rules_lib.metric_stats(m, env, ones) for m in self.train_metrics}
        return new, loss, why, stats

    def _guarded_step(
        self,
        state: Any,
        guard: Guard,
        sums: dict[str, Any],
        arrays: dict[str, jax.Array],
        perm: jax.Array,
        epoch: jax.Array,
        i: jax.Array,
        allowed: jax.Array,
    ) -> tuple[Any, Guard, dict[str, Any]]:
        """Step ``i`` of an epoch whose data order is ``perm``, under the run's
        `nonfinite` policy. Once ``guard.why`` is set (a non-finite step under `stop`, or
        more than ``allowed`` skipped under `skip`) every later call changes nothing, so
        the state stays the last good one without the host looking at every step.
        ``sums``: the training metrics' statistics of the applied steps so far."""
        b = self.spec.batch
        idx = jax.lax.dynamic_slice(perm, (i * b,), (b,))
        batch = {k: jnp.take(v, idx, axis=0) for k, v in arrays.items()}
        return self.guarded_batch(state, guard, sums, batch, epoch, i, allowed)

    def guarded_batch(
        self,
        state: Any,
        guard: Guard,
        sums: dict[str, Any],
        batch: dict[str, jax.Array],
        epoch: jax.Array,
        i: jax.Array,
        allowed: jax.Array,
    ) -> tuple[Any, Guard, dict[str, Any]]:
        """Step ``i`` of ``epoch`` on ``batch`` (:meth:`_guarded_step`'s, or one a
        streamed run read from disk, :mod:`nnlang.train.stream`)."""
        if self.dp is not None:  # each device its share of the batch (train.sharding)
            batch = self.dp.split_batch(batch)
        key = jax.random.fold_in(self.aug_key, epoch * self.steps_per_epoch + i)
        live = guard.why == 0
        new, loss, why, stats = self._step(state, batch, key, epoch * self.steps_per_epoch + i)
        good = why == 0
        state = keep_if(live & good, new, state)
        applied = live & good
        sums = jax.tree.map(lambda a, s: a + jnp.where(applied, s, 0), sums, stats)
        if self.dp is not None:
            state = self.dp.keep_placed(state)
        skip = self.spec.nonfinite == "skip"
        skipped = guard.skipped + (live & ~good & skip).astype(jnp.int32)
        halt = live & ~good & ((not skip) | (skipped > allowed))
        return (
            state,
            Guard.of(
                done=guard.done + (live & ~halt).astype(jnp.int32),
                skipped=jnp.where(halt, guard.skipped, skipped),
                why=jnp.where(halt, why, guard.why),
                last=jnp.where(live & good, i, guard.last),
                total=guard.total + jnp.where(live & good, loss, 0.0),
                bad_loss=jnp.where(halt | (live & ~good), loss, guard.bad_loss),
                last_loss=jnp.where(live & good, loss, guard.last_loss),
            ),
            sums,
        )

    def permutation(self, epoch: Any) -> jax.Array:
        return jax.random.permutation(jax.random.fold_in(self.data_key, epoch), self.n_train)

    def run(
        self,
        state: Any,
        arrays: dict[str, jax.Array],
        epoch: int,
        start: int,
        end: int,
        allowed: int = 0,
    ) -> tuple[Any, Chunk]:
        """Steps [start, end) of ``epoch`` with the strategy chosen for this graph, under
        the `nonfinite` policy (``allowed``: how many more steps may be skipped in this
        epoch). A step whose loss or gradients are not finite is never applied; under
        `stop` the chunk ends before it (:attr:`Chunk.why`). The state the chunk ends
        with is checked too (one reduction per chunk): if an update made the weights
        non-finite from finite gradients, the chunk reports it (``why`` 3) and the
        caller must not save that state."""
        guard, sums = Guard.zero(), self.zero_sums()
        if self.dp is not None:  # a state made elsewhere (initialisers, a phase before)
            state = self.dp.put(state)
        if self.fused:
            state, guard, sums, finite = self.run_chunk(
                state,
                guard,
                sums,
                arrays,
                np.int32(epoch),
                np.int32(start),
                np.int32(end),
                allowed,
            )
        else:
            perm = self.epoch_order(np.int32(epoch))
            a = np.int32(allowed)
            for n, i in enumerate(range(start, end), 1):
                state, guard, sums = self.one_step(
                    state, guard, sums, arrays, perm, np.int32(epoch), np.int32(i), a
                )
                if n % 32 == 0 and int(guard.why):  # halted: the rest would be no-ops
                    break
            finite = self.state_finite(state)
        return self.chunk_of(state, guard, sums, start, finite)

    def chunk_of(
        self, state: Any, guard: Guard, sums: dict[str, Any], start: int, finite: Any = None
    ) -> tuple[Any, Chunk]:
        """What a chunk of steps from ``start`` did (``sums``: its training metrics'
        statistics), with the check of the state it ends with (see :meth:`run`;
        ``finite``: that check when already made)."""
        if finite is None:
            finite = self.state_finite(state)
        # one transfer of the counters (each read of a device scalar costs a dispatch)
        guard, sums, finite = jax.device_get((guard, sums, finite))
        why, bad, bad_loss = int(guard.why), start + int(guard.done), float(guard.bad_loss)
        if not bool(finite):  # the last applied update made it so
            why, bad, bad_loss = 3, max(int(guard.last), start), float(guard.last_loss)
        return state, Chunk(
            int(guard.done),
            int(guard.skipped),
            why,
            float(guard.total),
            bad,
            bad_loss,
            sums,
        )

    def _run_checked(self, state: Any, *args: Any) -> tuple[Any, Guard, Any, jax.Array]:
        """:meth:`_run_chunk`, and whether the state it ends with is finite (one program:
        no second dispatch per chunk)."""
        state, guard, sums = self._run_chunk(state, *args)
        return state, guard, sums, all_finite(state)

    def zero_sums(self) -> dict[str, Any]:
        """Zero statistics of the training metrics, by label."""
        return {label(m): m.init() for m in self.train_metrics}

    def _run_chunk(
        self,
        state: Any,
        guard: Guard,
        sums: dict[str, Any],
        arrays: dict[str, jax.Array],
        epoch: jax.Array,
        start: jax.Array,
        end: jax.Array,
        allowed: jax.Array,
    ) -> tuple[Any, Guard, dict[str, Any]]:
        """Steps [start, end) of ``epoch`` in one ``lax.while_loop``; ends early when
        the guard halts."""
        perm = self.permutation(epoch)

        def cond(c: tuple[Any, ...]) -> jax.Array:
            i, _, g, _ = c
            return (i < end) & (g.why == 0)

        def body(c: tuple[Any, ...]) -> tuple[Any, ...]:
            i, st, g, s = c
            st, g, s = self._guarded_step(st, g, s, arrays, perm, epoch, i, allowed)
            return i + 1, st, g, s

        _, state, guard, sums = packed_while_loop(
            cond, body, (start, state, guard, sums), pack=self.pack
        )
        return state, guard, sums

    # evaluation ----------------------------------------------------------------
    def _eval_batch(
        self, state: Any, batch: dict[str, jax.Array], mask: jax.Array
    ) -> dict[str, Any]:
        model, opt = nnx.merge(self.eval_def, state)
        if self.spec.noise:
            batch = {
                **batch,
                **multistep.noise(self.graph, self.spec.noise, self.aug_key, len(mask)),
            }
        ctx = rules_lib.context_at(self.rule_sites, self.rule_schedule, opt, self.aug_key)
        outs = rules_lib.run(model, {n: batch[n] for n in self.input_names}, self.rule_sites, ctx)
        params = nnx.state(model, nnx.Param)
        env = {**batch, **outs}
        per = evaluate_loss(self.spec.loss, env, params, mask.shape[0])
        stats: dict[str, Any] = {"loss_sum": jnp.sum(per * mask), "count": jnp.sum(mask)}
        for m in self.metrics:
            stats[label(m)] = rules_lib.metric_stats(m, env, mask)
        return stats

    def check_traces(self, shapes: dict[str, Any], spec: TrainSpec) -> None:
        """Trace one training step abstractly (nothing runs): a loss or augmentation
        that does not fit the model's outputs is reported now, at its setting, before
        the run directory is made."""
        batch = {
            k: jax.ShapeDtypeStruct((spec.batch, *v.shape[1:]), v.dtype) for k, v in shapes.items()
        }
        try:
            jax.eval_shape(self._step, self.state, batch, jax.random.key(0))
        except ArgError as e:
            setting = (
                "augment"
                if e.code == "E403" and spec.augment and "augment" in e.message
                else "loss"
            )
            raise arg_error(e, spec.spans.get(setting)) from None

    def evaluate(self, state: Any, arrays: dict[str, np.ndarray]) -> dict[str, float]:
        n = len(next(iter(arrays.values())))
        size = min(EVAL_BATCH, n)
        totals: dict[str, Any] | None = None
        for lo in range(0, n, size):
            chunk = {k: v[lo : lo + size] for k, v in arrays.items()}
            m = len(next(iter(chunk.values())))
            mask = np.zeros(size, np.float32)
            mask[:m] = 1.0
            if m < size:  # pad to one batch shape: one compiled program for every batch
                chunk = {
                    k: np.concatenate([v, np.repeat(v[-1:], size - m, axis=0)])
                    for k, v in chunk.items()
                }
            stats = self.eval_batch(state, chunk, jnp.asarray(mask))
            totals = stats if totals is None else jax.tree.map(jnp.add, totals, stats)
        assert totals is not None
        out = {"loss": float(totals["loss_sum"] / totals["count"])}
        for m in self.metrics:
            out[label(m)] = float(m.finalize(totals[label(m)]))
        return out

    def _infer(self, state: Any, inputs: dict[str, jax.Array]) -> dict[str, jax.Array]:
        model, _ = nnx.merge(self.eval_def, state)
        return model(**inputs)

    def predict(self, state: Any, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The model's outputs in eval mode: a pure jitted function of the state, so a
        call costs no module-graph walk."""
        fn = self.__dict__.setdefault("_infer_jit", jax.jit(self._infer))
        n = len(next(iter(inputs.values())))
        parts: dict[str, list[np.ndarray]] = {}
        for lo in range(0, n, EVAL_BATCH):
            out = fn(state, {k: v[lo : lo + EVAL_BATCH] for k, v in inputs.items()})
            for k, v in out.items():
                parts.setdefault(k, []).append(np.asarray(v))
        return {k: np.concatenate(v) for k, v in parts.items()}


def bind_metrics(spec: TrainSpec) -> list[BoundMetric]:
    """Bound metrics with the tensors they compare. Two metrics that would share a
    column name (`accuracy` of two outputs) are named after their prediction too."""
    out = []
    names = metric_labels([(c.name, c.args, c.tensors) for c in spec.metrics])
    for c, name in zip(spec.metrics, names, strict=True):
        m = metric_from(c.entry, c.args)
        object.__setattr__(m, "_tensors", c.tensors)
        object.__setattr__(m, "_rule_stat", c.entry.extra.get("rule_stat"))
        if name != m.label:
            object.__setattr__(m, "_label", name)
        out.append(m)
    return out


def label(m: BoundMetric) -> str:
    return getattr(m, "_label", m.label)


def make_engine(
    graph: Graph,
    spec: TrainSpec,
    model: Network,
    n_train: int,
    sample_shapes: dict[str, tuple[int, ...]],
) -> Engine:
    if n_train < spec.batch:
        raise NNError(
            Diagnostic(
                "E407",
                f"the training split has {n_train} examples, fewer than one batch of {spec.batch}",
                spec.spans.get("batch", spec.data.span),
                help="lower `batch` or use more data",
            )
        )
    dp = sharding.data_parallel_for(spec)  # E424/E425; None on one device
    steps_per_epoch = n_train // spec.batch
    total = steps_per_epoch * spec.epochs
    opt_call: CallSpec = spec.optimizer
    try:
        schedule = optim.schedule_from(
            spec.schedule.entry, spec.schedule.args, opt_call.args["lr"], total, steps_per_epoch
        )
        tx = optim.optimizer_from(opt_call.entry, opt_call.args, schedule, spec.clip)
    except ArgError as e:
        raise arg_error(e, spec.optimizer.span) from None
    parts = trainable.parts_of(spec, model) if spec.freeze or spec.lr_groups else None
    if parts is not None and parts.scale is not None:
        tx = optax.chain(tx, parts.scale)
    rule_schedule = rules_lib.prepare(graph, spec, total, steps_per_epoch)
    aug = None
    if spec.augment:
        try:
            aug = augment_lib.per_input(
                [(c.entry, c.args) for c in spec.augment],
                {n: s for n, s in sample_shapes.items() if n not in spec.noise},
            )
        except ArgError as e:
            raise arg_error(e, spec.spans.get("augment")) from None
    optimizer: Any = nnx.Optimizer(model, tx, wrt=nnx.Param if parts is None else parts.wrt)
    if spec.steps:

        def make_tx(call: CallSpec) -> Any:
            lr = optim.schedule_from(
                spec.schedule.entry, spec.schedule.args, call.args["lr"], total, steps_per_epoch
            )
            return optim.optimizer_from(call.entry, call.args, lr, spec.clip)

        optimizer = multistep.optimizers(model, spec, graph, make_tx)
    return Engine(
        graph,
        spec,
        model,
        optimizer,
        bind_metrics(spec),
        steps_per_epoch,
        n_train,
        tuple(p.name for p in graph.inputs),
        aug,
        parts,
        rule_schedule,
        dp,
    )


def current_lr(engine: Engine, state: Any) -> float | None:
    """The learning rate the last update used (optax.inject_hyperparams state)."""
    _, opt = nnx.merge(engine.train_def, state)
    opt = opt[0] if isinstance(opt, tuple) else opt  # steps: the first step's
    try:
        return float(optim.current_lr(opt.opt_state))
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
