"""Decoded Parquet record batches to ``Chunk``s: the conversion half of ``ParquetSource``.

Each chunk is made by a handful of whole-array calls (each releases the GIL once, so reader threads
scale): one copy of a sparse input's key columns into a slot-major block, one range check against
``slot_size_array``, one transposing widen that adds the slot offsets; the float columns likewise.
List (multi-hot, or list<float>) columns take the general per-column path. Nulls are refused.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .chunks import Bags, Chunk, to_sample_major

ROWS_PER_READ = 65536  # default rows per chunk handed to the reader


class ChunkConversion:
    """Conversion methods of ``ParquetSource`` (which provides metadata, slots, slot_sizes, slot_offsets,
    label_dim, dense_dim, ``_widths``, ``_tiled`` and ``empty``)."""

    def _convert(self, piece: pa.Table, keys: dict[int, str | int], path: str, first_row: int = 0) -> Chunk:
        """The chunk of ``piece``; its record batches (one, or two where a piece spans reads) fill one output."""
        rows = piece.num_rows
        # [(row of the segment in the piece, {column index: array})]: all columns share the segment bounds.
        segments, start = [], 0
        for record_batch in piece.to_batches():
            if record_batch.num_rows:
                segments.append((start, {i: record_batch.column(key) for i, key in keys.items()}))
                start += record_batch.num_rows
        for start, columns in segments:
            _check_nulls(columns, path, first_row + start)
        label, dense = self._float_blocks(segments, rows, path)
        sparse, first = [], 0
        for slots in self.slots:
            sparse.append(self._sparse_input(segments, range(first, first + slots), rows, path, first_row))
            first += slots
        return Chunk(label, dense, sparse)

    def _sparse_input(self, segments, group: range, rows: int, path: str, first_row: int) -> Bags:
        """The bags of the sparse input made of global cats ``group``."""
        cats = [self.metadata.cats[g][0] for g in group]
        types = {columns[i].type for _, columns in segments for i in cats}
        if len(types) == 1 and not _is_list(next(iter(types))):
            return Bags(self._one_hot(segments, cats, group, rows, path, first_row), None, len(group), 1)
        if self.slot_sizes is not None:
            for start, columns in segments:
                self._check_key_range([columns[i] for i in cats], group, path, first_row + start)
        return _bags([_combined(segments, i) for i in cats], self.slot_offsets[group.start:group.stop])

    def _one_hot(self, segments, cats: list[int], group: range, rows: int, path: str, first_row: int) -> np.ndarray:
        """(rows * slots,) int64 keys, sample-major, slot offsets added, keys checked against slot_size_array.

        A few whole-array calls per segment, each releasing the GIL once (a call per column would make
        every reader thread queue for the GIL again after each column: that is what stops scaling):
        one copy of the columns into one slot-major block, one range check on it, one transposing widen
        that adds the slot offsets.
        """
        keys = self.empty((rows, len(cats)), np.int64)                           # (n, slots)
        offset = bool(self.slot_offsets[group.start:group.stop].any())
        for start, columns in segments:
            arrays = [columns[i] for i in cats]
            by_slot = _by_column(arrays)                                                   # (slots, n)
            if self.slot_sizes is not None and by_slot.size:
                sizes = self.slot_sizes[group.start:group.stop]
                signed = by_slot.dtype.kind == "i"
                if (by_slot.max(axis=1) >= sizes).any() or (signed and (by_slot.min(axis=1) < 0).any()):
                    self._check_key_range(arrays, group, path, first_row + start)   # raises, naming the row
            if by_slot.dtype == np.uint64:
                by_slot = by_slot.view(np.int64)    # keys are 64-bit ints either way
            stop = start + by_slot.shape[1]
            if offset:   # one pass: transpose, widen (sign- or zero-extends as the column type says), add
                np.add(by_slot.T, self._tiled_offsets(group, rows)[start:stop], out=keys[start:stop], dtype=np.int64)
            else:
                np.copyto(keys[start:stop], by_slot.T)
        return keys.reshape(-1)

    def _tiled_offsets(self, group: range, rows: int) -> np.ndarray:
        """(rows, slots) slot offsets of ``group``, repeated per row: built once, a view per chunk."""
        tiled = self._tiled.get(group.start)
        if tiled is None or len(tiled) < rows:
            # Threads may race here: each builds a correct array, and the last one stays.
            tiled = np.tile(self.slot_offsets[group.start:group.stop], (max(rows, ROWS_PER_READ), 1))
            self._tiled[group.start] = tiled
        return tiled[:rows]

    def _check_key_range(self, arrays: list[pa.Array], group: range, path: str, first_row: int) -> None:
        """Keys of global cat ``g`` must lie in [0, slot_size_array[g]): else they would land in the offset
        range of the next cat and silently share its embedding rows."""
        for array, g in zip(arrays, group):
            keys = (array.flatten() if _is_list(array.type) else array).to_numpy(zero_copy_only=False)
            size = int(self.slot_sizes[g])
            if not keys.size or (int(keys.max()) < size and int(keys.min()) >= 0):
                continue
            bad = np.flatnonzero((keys < 0) | (keys >= size))[0]
            row = int(np.searchsorted(_list_offsets(array), bad, side="right")) - 1 if _is_list(array.type) else bad
            index, name = self.metadata.cats[g]
            raise ValueError(f"Parquet: '{path}' row {first_row + row}, column {index} ('{name}', cat {g}): key "
                             f"{int(keys[bad])} is outside [0, {size}) = [0, slot_size_array[{g}]); the keys of a cat "
                             "column must be below its slot_size_array entry: give the column's cardinality (max key "
                             "+ 1) there, or re-map the keys to 0..size-1")

    def _float_blocks(self, segments, rows: int, path: str) -> tuple[np.ndarray, np.ndarray]:
        """(n, label_dim) labels and (n, dense_dim) dense values; scalar columns (the usual case) take one
        block copy of all of them and two transposing copies (few GIL releases: see ``_one_hot``)."""
        meta = self.metadata
        if any(_is_list(segments[0][1][index].type) for index, _ in meta.labels + meta.conts):
            return (self._float_block(segments, meta.labels, rows, self.label_dim, path),
                    self._float_block(segments, meta.conts, rows, self.dense_dim, path))
        label, dense = self.empty((rows, self.label_dim), np.float32), self.empty((rows, self.dense_dim), np.float32)
        for start, columns in segments:
            if meta.labels or meta.conts:
                by_column = _by_column([columns[i] for i, _ in meta.labels + meta.conts])    # (labels + conts, n)
                stop = start + by_column.shape[1]
                np.copyto(label[start:stop], by_column[:len(meta.labels)].T)
                np.copyto(dense[start:stop], by_column[len(meta.labels):].T)
        return label, dense

    def _float_block(self, segments, group, rows: int, width: int, path: str) -> np.ndarray:
        """The float block of ``group`` when some of its columns are lists (general path, a copy per column)."""
        block = self.empty((rows, width), np.float32)  # (n, label_dim) or (n, dense_dim)
        start = 0
        for index, name in group:
            array, size = _combined(segments, index), self._widths[index]
            if _is_list(array.type):
                lengths = pc.list_value_length(array).to_numpy()
                if (lengths != size).any():
                    raise ValueError(f"Parquet: '{path}' column {index} ('{name}') has lists of length "
                                     f"{sorted(set(lengths.tolist()))[:5]}; dense list columns need the same width "
                                     f"({size}) in every row")
                block[:, start:start + size] = array.flatten().to_numpy(zero_copy_only=False).reshape(rows, size)
            else:
                block[:, start] = array.to_numpy(zero_copy_only=False)
            start += size
        return block


def _check_nulls(columns: dict[int, pa.Array], path: str, first_row: int) -> None:
    """Refuse nulls (a list column: also inside its lists), naming the first row that holds one."""
    for index, array in columns.items():
        if array.null_count or (_is_list(array.type) and array.flatten().null_count):
            raise ValueError(f"Parquet: '{path}' row {first_row + _first_null_row(array)}, column {index} holds "
                             "nulls; HugeCTR refuses missing values: fill them (e.g. 0 for dense, a reserved key "
                             "for cats)")


def _by_column(arrays: list[pa.Array]) -> np.ndarray:
    """(columns, n) values of same-typed primitive columns without nulls: one copy joins them (none for one).

    Read through the buffer protocol: ``to_numpy`` would release and re-take the GIL once more.

    >>> _by_column([pa.array([1, 2, 3], pa.uint32()).slice(1), pa.array([4, 5], pa.uint32())]).tolist()
    [[2, 3], [4, 5]]
    """
    joined = arrays[0] if len(arrays) == 1 else pa.concat_arrays(arrays)
    dtype = np.dtype(joined.type.to_pandas_dtype())
    values = np.frombuffer(joined.buffers()[1], dtype, count=len(joined), offset=joined.offset * dtype.itemsize)
    return values.reshape(len(arrays), -1)


def _combined(segments: list[tuple[int, dict[int, pa.Array]]], index: int) -> pa.Array:
    """Column ``index`` over all segments: the array itself, or a copy joining them (slow paths only)."""
    arrays = [columns[index] for _, columns in segments]
    return arrays[0] if len(arrays) == 1 else pa.concat_arrays(arrays)


def _first_null_row(array: pa.Array) -> int:
    """The first row of ``array`` that is null or (a list) holds a null (error path only)."""
    nulls = array.is_null().to_numpy(zero_copy_only=False)
    if _is_list(array.type):
        values = array.flatten().is_null().to_numpy(zero_copy_only=False)
        if values.any():
            first = int(np.searchsorted(_list_offsets(array), np.flatnonzero(values)[0], side="right")) - 1
            nulls[first] = True
    return int(np.flatnonzero(nulls)[0])


def _list_offsets(array: pa.Array) -> np.ndarray:
    """(n + 1,) positions of each row's first value in ``array.flatten()`` (a sliced array starts at 0)."""
    offsets = array.offsets.to_numpy() if not pa.types.is_fixed_size_list(array.type) else \
        np.arange(len(array) + 1) * array.type.list_size
    return offsets - offsets[0]


def _bags(arrays: list[pa.Array], offsets: np.ndarray) -> Bags:
    """The sample-major bags of one sparse input from its columns (one per slot)."""
    rows = len(arrays[0])   # (one-hot groups come here only when their key types differ)
    lengths = np.empty((len(arrays), rows), dtype=np.int64)  # (slots, n), slot-major
    values = []
    for slot, (array, offset) in enumerate(zip(arrays, offsets)):
        if _is_list(array.type):
            lengths[slot] = pc.list_value_length(array).to_numpy(zero_copy_only=False)
            array = array.flatten()
        else:
            lengths[slot] = 1
        values.append(array.to_numpy(zero_copy_only=False).astype(np.int64) + offset)
    return Bags(*to_sample_major(lengths, np.concatenate(values)), len(arrays))


def _is_list(kind: pa.DataType) -> bool:
    return pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)


def _value_type(kind: pa.DataType) -> pa.DataType:
    return kind.value_type if _is_list(kind) else kind
