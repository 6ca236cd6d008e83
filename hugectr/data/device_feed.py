"""``DeviceFeed``: batches copied to the GPU on a side stream, one step ahead of training.

The reader's threads leave each batch in pinned host memory. After a step's kernels are queued,
``prefetch()`` takes the next batch and copies it on the feed's own CUDA stream while the GPU
runs the step; the compute stream waits on an event (not the host) before using it. In epoch
mode the feed does not read ahead, so a ``set_source`` between passes never sees a batch of the
old source.

``cache_batches = N > 0`` is HugeCTR's ``cache_eval_data``: the first N batches stay on the device
and from then on the feed replays them in a cycle without reading again (an end of the data met
before N batches is kept as one more entry, so every replayed pass ends there too). Naming a new
source to the reader's ``set_source`` drops the cache.
"""

from __future__ import annotations

import torch

from .batch import Batch


def _record_on(batch: Batch, stream) -> None:
    """Tell the caching allocator these tensors are used on ``stream`` (they were made on another)."""
    tensors = [batch.label, batch.dense]
    for sparse in batch.sparse.values():
        tensors += [sparse.values, sparse.offsets]
    for tensor in tensors:
        tensor.record_stream(stream)


class DeviceFeed:
    """``next_batch()`` -> the reader's next batch on ``device`` (None at the end of an epoch)."""

    def __init__(self, reader, device: torch.device, read_ahead: bool, cache_batches: int = 0):
        self.reader = reader
        self.device = device
        self.cache_batches = cache_batches
        self.read_ahead = read_ahead and device.type == "cuda" and not cache_batches
        self._stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        self._pending: tuple[Batch | None, object] | None = None
        self._cache: list[Batch | None] = []
        self._cache_full = False
        self._replayed = 0
        self._generation = reader.generation

    def _copy(self, batch: Batch | None):
        if batch is None or self._stream is None:
            return (batch.to(self.device) if batch is not None else None), None
        with torch.cuda.stream(self._stream):
            moved = batch.to(self.device, non_blocking=True)
            event = torch.cuda.Event()
            event.record(self._stream)
        return moved, event

    def next_batch(self) -> Batch | None:
        if not self.cache_batches:
            return self._read_batch()
        generation = self.reader.generation
        if generation != self._generation:          # a new source: the cached batches are another data set's
            self._cache, self._cache_full, self._replayed, self._generation = [], False, 0, generation
        if self._cache_full:
            batch = self._cache[self._replayed % len(self._cache)]
            self._replayed += 1
            return batch
        batch = self._read_batch()
        self._cache.append(batch)
        self._cache_full = batch is None or len(self._cache) == self.cache_batches
        if self._cache_full:
            self.reader.close()                     # nothing more to read: its threads would only read ahead
        return batch

    def _read_batch(self) -> Batch | None:
        pending = self._pending if self._pending is not None else self._copy(self.reader.next_batch())
        self._pending = None
        batch, event = pending
        if event is not None:
            current = torch.cuda.current_stream(self.device)
            current.wait_event(event)
            _record_on(batch, current)
        return batch

    def prefetch(self) -> None:
        """Start copying the next batch (call it once the current step's kernels are queued)."""
        if self.read_ahead and self._pending is None:
            self._pending = self._copy(self.reader.next_batch())

    def reset(self) -> None:
        """Drop a batch read ahead (the source changed)."""
        self._pending = None
