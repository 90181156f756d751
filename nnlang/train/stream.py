"""Streaming the training split through Grain (``stream``): batches read from the data
source on the host while the device trains, instead of the whole split on the device.

An epoch is a Grain pipeline: the row indices ``0..N-1`` shuffled by Grain's
deterministic global shuffle, seeded by (``seed``, epoch); every JAX process takes its
own stride of them (``grain.sharding.ShardByJaxProcess``: per-host sharding, one share
of each global batch); batched; each batch read by one fancy index into the arrays
(rows of a memory-mapped ``.npy`` are read from disk then, normalised and cast as they
are read, :class:`nnlang.train.data.Rows`); and prefetched by Grain's reader threads.
The step is the fused loop's own (:meth:`Engine.guarded_batch`), jitted alone and fed
one host batch at a time, so augmentation, dropout keys, the finiteness guard and the
optimizer are those of an in-memory run; only the data order differs (Grain's shuffle,
not ``jax.random.permutation``).

Exact resume: the iterator's position (``get_state()``, with the epoch and step it is
at) is part of the progress record saved with every checkpoint; a resumed run builds the
epoch's pipeline again and ``set_state``\\s it, so it continues with the batch the
killed run would have read next (bitwise equal on CPU).

Imports Grain (the optional ``stream`` extra: :func:`nnlang.train.dataload.streams`
refuses to stream without it, E705), JAX, NumPy and ``train.loop``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import grain
import jax
import numpy as np

from nnlang.diagnostics import Diagnostic, NNError
from nnlang.train.guard import Chunk, Guard
from nnlang.train.loop import Engine

#: batches Grain reads ahead of the step, and the threads that read them
PREFETCH = 4
READ_THREADS = 2


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of Grain's shuffle in ``epoch``: one per (run seed, epoch), the same on
    every host (each then takes its own stride of one global order)."""
    return int(np.random.SeedSequence([seed, epoch, 0x5EED]).generate_state(1)[0] >> 1)


class _Reader:
    """One batch of rows read from the split (Grain's map; its repr is what Grain shows
    of it: the arrays' repr would read them)."""

    def __init__(self, arrays: dict[str, Any]) -> None:
        self.arrays = arrays

    def __call__(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        return {k: np.asarray(v[rows]) for k, v in self.arrays.items()}

    def __repr__(self) -> str:
        return f"read rows of {', '.join(self.arrays)}"


@dataclass(repr=False)
class Feed:
    """The training split of a streamed run, as Grain batches, and the jitted step they
    go through; :meth:`run` stands in for :meth:`Engine.run`."""

    engine: Engine
    arrays: dict[str, Any]  # the training split: arrays, or rows on disk
    _it: Any = None
    _at: tuple[int, int, int] | None = None  # (epoch, step, first batch) of the live iterator
    _step: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._step = jax.jit(self.engine.guarded_batch, donate_argnums=(0,))
        self.shard = grain.sharding.ShardByJaxProcess(drop_remainder=True)
        self._check_processes()

    def _check_processes(self) -> None:
        """E403 at `stream` for a distributed run whose processes cannot each read their
        own share of every batch: each process reads ``batch / processes`` rows, which
        make one global batch only when the devices split it over `data` alone, each
        process holding whole `data` shards."""
        count, dp, spec = self.shard.shard_count, self.engine.dp, self.engine.spec
        if count <= 1:
            return
        data = dict(dp.mesh.shape).get("data", 1) if dp is not None else 1
        if dp is not None and dp.model <= 1 and data % count == 0:
            return
        raise NNError(
            Diagnostic(
                "E403",
                f"streaming over {count} processes needs a data-parallel mesh whose "
                f"`data` axis is a multiple of {count} (this run: "
                + ("one device" if dp is None else f"mesh {dict(dp.mesh.shape)}")
                + ")",
                spec.spans.get("stream", spec.data.span),
                help="train data parallel (`devices = all`) or hold the data in memory "
                "(`stream = off`)",
            )
        )

    def pipeline(self, epoch: int, first: int = 0) -> Any:
        """The batches of ``epoch`` from batch ``first`` on, as a Grain IterDataset."""
        spec, shard = self.engine.spec, self.shard
        n = len(next(iter(self.arrays.values())))
        ds = grain.MapDataset.range(n).shuffle(seed=epoch_seed(spec.seed, epoch))
        ds = ds.slice(slice(shard.shard_index, None, shard.shard_count))
        ds = ds.batch(spec.batch // shard.shard_count, drop_remainder=True)
        ds = ds.slice(slice(first, self.engine.steps_per_epoch)).map(_Reader(self.arrays))
        options = grain.ReadOptions(num_threads=READ_THREADS, prefetch_buffer_size=PREFETCH)
        return ds.to_iter_dataset(options)

    def _placed(self, batch: dict[str, np.ndarray]) -> Any:
        """A host batch as the step takes it: as it is on one device; split over the
        mesh with `devices`; with several processes, each one's share made one global
        batch (``jax.make_array_from_process_local_data``)."""
        dp = self.engine.dp
        if dp is None:
            return batch
        if self.shard.shard_count > 1:
            return {
                k: jax.make_array_from_process_local_data(dp.split, v) for k, v in batch.items()
            }
        return jax.device_put(batch, dp.split)

    def place(self) -> dict[str, Any] | None:
        """Where the iterator stands, for the progress record of a checkpoint."""
        if self._at is None:
            return None
        epoch, step, first = self._at
        state = self._it.get_state() if self._it is not None else None
        return {"epoch": epoch, "step": step, "first": first, "iterator": state}

    def _seek(self, epoch: int, start: int, saved: dict[str, Any] | None) -> None:
        """The iterator at step ``start`` of ``epoch``: the live one if it is there, else
        the saved one restored (a resumed run), else a new one from that batch."""
        if self._at is not None and self._at[:2] == (epoch, start):
            return
        if (
            saved is not None
            and saved.get("epoch") == epoch
            and saved.get("step") == start
            and saved.get("iterator") is not None
        ):
            first = int(saved.get("first", 0))
            it = iter(self.pipeline(epoch, first))
            it.set_state(saved["iterator"])
        else:
            first = start
            it = iter(self.pipeline(epoch, first))
        self._it, self._at = it, (epoch, start, first)

    def run(
        self,
        state: Any,
        epoch: int,
        start: int,
        end: int,
        allowed: int = 0,
        saved: dict[str, Any] | None = None,
    ) -> tuple[Any, Chunk]:
        """Steps [start, end) of ``epoch`` on streamed batches, like :meth:`Engine.run`;
        ``saved`` is the iterator's place from the checkpoint a run resumed from."""
        engine = self.engine
        self._seek(epoch, start, saved)
        guard, sums = Guard.zero(), engine.zero_sums()
        if engine.dp is not None:  # a state made elsewhere (initialisers, a phase before)
            state = engine.dp.put(state)
        e, a = np.int32(epoch), np.int32(allowed)
        i = start
        for n, i in enumerate(range(start, end), 1):
            batch = self._placed(next(self._it))
            state, guard, sums = self._step(state, guard, sums, batch, e, np.int32(i), a)
            if n % 32 == 0 and int(guard.why):  # halted: the run stops here
                break
        assert self._at is not None
        self._at = (epoch, end, self._at[2])
        if end >= engine.steps_per_epoch:  # the epoch's pipeline is done
            self._it, self._at = None, None
        return engine.chunk_of(state, guard, sums, start)
