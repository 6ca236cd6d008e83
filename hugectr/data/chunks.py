"""What a data source hands the reader: ``Chunk``s of samples, their ``Bags`` of keys, and the
conversion of a cut batch into tensors (``sparse_batch``, ``tensor``).

Every format (Parquet, Norm, Raw) yields ``Chunk``s from one file at a time; ``DataReader``
(``reader.py``) cuts them into batches with ``cut`` and turns each into a ``Batch``.
"""

from __future__ import annotations

import sys
import threading
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


def to_sample_major(lengths: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorder slot-major bags (bag s*n+i, sizes ``lengths`` (slots, n)) to sample-major (bag i*slots+s).

    >>> v, o = to_sample_major(np.array([[1, 0], [2, 1]]), np.array([10, 20, 21, 30]))
    >>> v.tolist(), o.tolist()
    ([10, 20, 21, 30], [0, 1, 3, 3, 4])
    """
    slots, rows = lengths.shape
    sample_major = lengths.T.reshape(-1)                  # (n * slots,)
    offsets = np.zeros(sample_major.size + 1, dtype=np.int64)
    np.cumsum(sample_major, out=offsets[1:])
    flat = lengths.reshape(-1)                            # (slots * n,) slot-major sizes
    source_start = np.cumsum(flat) - flat
    target_start = offsets[:-1].reshape(rows, slots).T.reshape(-1)  # target start of slot-major bag s*n+i
    out = np.empty_like(values)
    out[np.arange(values.size) + np.repeat(target_start - source_start, flat)] = values
    return out, offsets


class ChunkSource(Protocol):
    """What a format provides: its data files and the chunks of one of them.

    ``read_file`` is called from several threads at once and yields chunks of ``rows`` samples
    (fewer at the end of the file), so batches cut from a chunk are views.
    """

    files: list[str]

    def read_file(self, index: int, rows: int) -> Iterator[Chunk]: ...


_FIXED_OFFSETS: dict[tuple[int, bool], torch.Tensor] = {}   # (hotness, pinned) -> the longest 0, h, 2h, ... so far


def _fixed_offsets(hotness: int, count: int, pinned: bool = False) -> torch.Tensor:
    """(count,) offsets ``0, h, 2h, ...``: a view of one cached tensor (a batch's are 0.5 MB at 65536 x 26).

    The pinned one is shared by every batch: safe, as nothing ever writes it.
    """
    cached = _FIXED_OFFSETS.get((hotness, pinned))
    if cached is None or cached.numel() < count:
        # Threads may race here: each builds a correct tensor, and the last one stays.
        cached = torch.arange(0, max(count, 1 << 20) * hotness, hotness, dtype=torch.int64)
        _FIXED_OFFSETS[(hotness, pinned)] = cached.pin_memory() if pinned else cached
    return cached[:count]


def sparse_batch(bags: Bags, rows: int, pinned: bool = False) -> SparseBatch:
    """``SparseBatch`` of ``bags``; hotness set when every bag has the same (non-zero) size."""
    if bags.offsets is None:
        offsets = _fixed_offsets(bags.hotness, bags.values.size // bags.hotness + 1, pinned)
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


class Buffers:
    """Output arrays of a source, recycled once nothing refers to them (nor to a view of them) any more.

    A fresh 10 MB array costs more in page faults than the copy that fills it; a recycled one is already
    mapped. Batches in use hold references, so their arrays are never handed out again. Pinned arrays are
    NumPy views of fresh pinned tensors: CUDA's caching host allocator recycles those, and also waits for the
    copies to the GPU that read them. Thread-safe.

    >>> buffers = Buffers()
    >>> a = buffers.empty((2, 3), np.int64)
    >>> b = buffers.empty((2, 3), np.int64)    # a is in use: a second array
    >>> address = a.__array_interface__["data"][0]
    >>> del a
    >>> buffers.empty((2, 3), np.int64).__array_interface__["data"][0] == address
    True
    """

    LIMIT = 64  # arrays kept per (shape, dtype); more in use at once are simply allocated

    def __init__(self):
        self._arrays: dict[tuple, list[np.ndarray]] = {}
        self._lock = threading.Lock()
        # Reference counts tell whether an array is in use (free-threaded builds would need another test).
        self._recycle = getattr(sys, "_is_gil_enabled", lambda: True)()

    def empty(self, shape: tuple[int, ...], dtype, pinned: bool = False) -> np.ndarray:
        if pinned:
            return torch.empty(shape, dtype=_TORCH_DTYPES[np.dtype(dtype)], pin_memory=True).numpy()
        if not self._recycle:
            return np.empty(shape, dtype)
        with self._lock:
            arrays = self._arrays.setdefault((tuple(shape), np.dtype(dtype).str), [])
            for array in arrays:
                if sys.getrefcount(array) == 3:   # the list, ``array`` and getrefcount's argument: free
                    return array
            array = np.empty(shape, dtype)
            if len(arrays) < self.LIMIT:
                arrays.append(array)
            return array


_TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.int64): torch.int64, np.dtype(np.int32): torch.int32}


def tensor(array: np.ndarray) -> torch.Tensor:
    """``array`` as a tensor: shared memory; a view of the owning tensor when a tensor owns the memory.

    A view of the owner (not ``torch.from_numpy``) keeps the owner's storage, so a pinned buffer stays
    known to CUDA's host allocator, which then waits for the copies reading it before reusing it.

    >>> owner = torch.arange(12)
    >>> view = tensor(owner.numpy().reshape(3, 4)[1:])
    >>> view.tolist(), view.untyped_storage().data_ptr() == owner.untyped_storage().data_ptr()
    ([[4, 5, 6, 7], [8, 9, 10, 11]], True)
    """
    owner = array.base
    while isinstance(owner, np.ndarray):
        owner = owner.base
    if isinstance(owner, torch.Tensor) and owner.dtype == _TORCH_DTYPES.get(array.dtype) and owner.is_contiguous():
        item = array.itemsize
        start = array.__array_interface__["data"][0] - owner.data_ptr()
        if start % item == 0 and all(stride % item == 0 for stride in array.strides):
            return owner.as_strided(array.shape, [stride // item for stride in array.strides],
                                    owner.storage_offset() + start // item)
    if not array.flags.writeable:  # torch wants writable memory; sources normally hand over their own arrays
        array = array.copy()
    return torch.from_numpy(np.ascontiguousarray(array))
