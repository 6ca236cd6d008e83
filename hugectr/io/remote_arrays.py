"""Remote files sliced like ``numpy.memmap``: ranged reads where memory mapping is impossible.

The readers decode a window of bytes (Norm) or a run of fixed-size records (Raw, RawAsync) at a time;
on the local disk those windows are slices of a memory map, on remote storage (``hugectr.io.fs``)
each is one ranged read, so memory stays bounded and nothing is downloaded twice.
"""

from __future__ import annotations

import os

import numpy as np

from .fs import file_size, resolve


class RemoteBytes:
    """The bytes of a remote file, read on demand: ``data[a:b]`` is one ranged read (a read-only uint8 array).

    Stands in for ``numpy.memmap(path, uint8)`` where memory mapping is impossible. The first
    ``HEAD_BYTES`` are fetched once and kept, so the small reads of a file header cost one request.
    """

    HEAD_BYTES = 4096

    def __init__(self, path, data_source_params=None):
        self.path = os.fspath(path)
        self._fs, self._inner = resolve(self.path, data_source_params)
        self.size = file_size(self.path, data_source_params)
        self._head: np.ndarray | None = None

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            index = int(key) + (self.size if key < 0 else 0)
            if not 0 <= index < self.size:
                raise IndexError(f"RemoteBytes('{self.path}'): byte {key} is outside the file's {self.size} bytes")
            return self[index:index + 1][0]
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError(f"RemoteBytes('{self.path}'): only bytes and [start:stop] slices are supported, "
                            f"got {key!r}")
        start, stop, _ = key.indices(self.size)
        if stop <= start:
            return np.zeros(0, np.uint8)
        if stop <= self.HEAD_BYTES:
            if self._head is None:
                self._head = self._read(0, min(self.HEAD_BYTES, self.size))
            return self._head[start:stop]
        return self._read(start, stop)

    def _read(self, start: int, stop: int) -> np.ndarray:
        return np.frombuffer(self._fs.cat_file(self._inner, start=start, end=stop), np.uint8)


class RemoteRecords:
    """Fixed-size records of a remote file: ``records[a:b]`` and ``records[int array]`` as structured arrays.

    An index array is read as one ranged read per run of consecutive records (batches are runs).
    Stands in for ``numpy.memmap(path, dtype, shape=(count,))``.
    """

    def __init__(self, path, dtype: np.dtype, count: int, data_source_params=None):
        self.path, self.dtype, self.count = os.fspath(path), np.dtype(dtype), count
        self._fs, self._inner = resolve(self.path, data_source_params)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, key) -> np.ndarray:
        size = self.dtype.itemsize
        if isinstance(key, slice):
            start, stop, step = key.indices(self.count)
            if step != 1:
                raise TypeError(f"RemoteRecords('{self.path}'): slices need step 1, got {key!r}")
            if stop <= start:
                return np.zeros(0, self.dtype)
            return np.frombuffer(self._fs.cat_file(self._inner, start=start * size, end=stop * size), self.dtype)
        index = np.asarray(key, np.int64).reshape(-1)
        if index.size == 0:
            return np.zeros(0, self.dtype)
        breaks = np.flatnonzero(np.diff(index) != 1) + 1          # starts of runs of consecutive records
        firsts = index[np.concatenate([[0], breaks])]
        lasts = index[np.concatenate([breaks - 1, [index.size - 1]])] + 1
        blobs = self._fs.cat_ranges([self._inner] * firsts.size, (firsts * size).tolist(), (lasts * size).tolist())
        for blob in blobs:
            if isinstance(blob, BaseException):
                raise blob
        return np.frombuffer(b"".join(blobs), self.dtype)
