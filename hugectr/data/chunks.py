"""What a data source hands the reader: ``Chunk``s of samples, their ``Bags`` of keys, and the
conversion of a cut batch into tensors (``sparse_batch``, ``tensor``).

Every format (Parquet, Norm, Raw) yields ``Chunk``s from one file at a time; ``DataReader``
(``reader.py``) cuts them into batches with ``cut`` and turns each into a ``Batch``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from ..embedding.sparse_batch import SparseBatch


@dataclass
class Bags:
    """Keys of ``rows`` samples x ``slots`` bags, sample-major (bag ``i * slots + s``).

    Either every bag holds ``hotness`` keys (``offsets`` None: one-hot data needs no offsets),
    or ``offsets`` (rows * slots + 1,) int64 delimit the bags (CSR). ``values`` are int64.
    """

    values: np.ndarray
    offsets: np.ndarray | None
    slots: int
    hotness: int | None = None

    def bag_offsets(self) -> np.ndarray:
        if self.offsets is not None:
            return self.offsets
        return np.arange(0, self.values.size + 1, self.hotness, dtype=np.int64)

    def slice(self, start: int, stop: int) -> Bags:
        """Samples ``[start, stop)`` (views)."""
        if self.offsets is None:
            width = self.slots * self.hotness
            return Bags(self.values[start * width:stop * width], None, self.slots, self.hotness)
        window = self.offsets[start * self.slots:stop * self.slots + 1]
        return Bags(self.values[window[0]:window[-1]], window - window[0], self.slots)

    @staticmethod
    def concat(parts: list[Bags]) -> Bags:
        values = np.concatenate([b.values for b in parts])
        if all(b.offsets is None and b.hotness == parts[0].hotness for b in parts):
            return Bags(values, None, parts[0].slots, parts[0].hotness)
        sizes = np.concatenate([np.diff(b.bag_offsets()) for b in parts])
        offsets = np.zeros(sizes.size + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        return Bags(values, offsets, parts[0].slots)


@dataclass
class Chunk:
    """Consecutive samples of one file: ``label`` (n, label_dim) and ``dense`` (n, dense_dim) float32,
    ``sparse[i]`` the ``Bags`` of sparse input i (the ``Input``'s DataReaderSparseParam order)."""

    label: np.ndarray
    dense: np.ndarray
    sparse: list[Bags]

    @property
    def rows(self) -> int:
        return self.label.shape[0]

    def slice(self, start: int, stop: int) -> Chunk:
        """Samples ``[start, stop)`` (views)."""
        return Chunk(self.label[start:stop], self.dense[start:stop], [b.slice(start, stop) for b in self.sparse])

    @staticmethod
    def concat(chunks: list[Chunk]) -> Chunk:
        if len(chunks) == 1:
            return chunks[0]
        sparse = [Bags.concat([c.sparse[i] for c in chunks]) for i in range(len(chunks[0].sparse))]
        return Chunk(np.concatenate([c.label for c in chunks]), np.concatenate([c.dense for c in chunks]), sparse)


class ChunkSource(Protocol):
    """What a format provides: its data files and the chunks of one of them.

    ``read_file`` is called from several threads at once and yields chunks of ``rows`` samples
    (fewer at the end of the file), so batches cut from a chunk are views.
    """

    files: list[str]

    def read_file(self, index: int, rows: int) -> Iterator[Chunk]: ...


_FIXED_OFFSETS: dict[int, torch.Tensor] = {}      # hotness -> the longest 0, h, 2h, ... made so far


def _fixed_offsets(hotness: int, count: int) -> torch.Tensor:
    """(count,) offsets ``0, h, 2h, ...``: a view of one cached tensor (a batch's are 13 MB at 65536 x 26)."""
    cached = _FIXED_OFFSETS.get(hotness)
    if cached is None or cached.numel() < count:
        # Threads may race here: each builds a correct tensor, and the last one stays.
        cached = torch.arange(0, max(count, 1 << 20) * hotness, hotness, dtype=torch.int64)
        _FIXED_OFFSETS[hotness] = cached
    return cached[:count]


def sparse_batch(bags: Bags, rows: int) -> SparseBatch:
    """``SparseBatch`` of ``bags``; hotness set when every bag has the same (non-zero) size."""
    if bags.offsets is None:
        offsets = _fixed_offsets(bags.hotness, bags.values.size // bags.hotness + 1)
        return SparseBatch(tensor(bags.values), offsets, rows, bags.slots, bags.hotness)
    sizes = np.diff(bags.offsets)
    fixed = sizes.size > 0 and sizes[0] > 0 and bool((sizes == sizes[0]).all())
    return SparseBatch(tensor(bags.values), tensor(bags.offsets), rows, bags.slots,
                       int(sizes[0]) if fixed else None)


def cut(pending: list[Chunk], rows: int, size: int) -> tuple[list[Chunk], int, Chunk]:
    """Take the first ``size`` samples of ``pending``; return (the rest, its rows, the batch)."""
    taken, need = [], size
    while need:
        head = pending[0]
        if head.rows <= need:
            taken.append(pending.pop(0))
            need -= head.rows
        else:
            taken.append(head.slice(0, need))
            pending[0] = head.slice(need, head.rows)
            need = 0
    return pending, rows - size, Chunk.concat(taken)


def tensor(array: np.ndarray) -> torch.Tensor:
    if not array.flags.writeable:  # torch wants writable memory; sources normally hand over their own arrays
        array = array.copy()
    return torch.from_numpy(np.ascontiguousarray(array))
