"""HugeCTR's Parquet format: data files + ``_metadata.json``, read as ``Chunk``s with pyarrow.

``_metadata.json`` (looked up in the folder of the FIRST file of the file list, as HugeCTR)
maps column *indices* to labels, conts and cats; names are informational. Within each group the
columns are used in ascending index order. Labels then conts form the float block: each column
is float32, or a fixed-width list<float32> whose width counts toward the dimension. Cats are
int32/uint32 (``i64_input_key=False``) or int64/uint64 (``True``), scalar (one-hot) or
list<int> (multi-hot, any length, empty allowed); the ``DataReaderSparseParam``s of the
``Input`` take them in order (the first ``slot_num`` cats go to the first param, ...), and
``slot_size_array`` adds ``sum(slot_size_array[:g])`` to the keys of global cat ``g``.
Files are read record batch by record batch; nulls are refused. Remote files (``s3://``, ``gs://``,
``hdfs://``, or paths on ``DataReaderParams.data_source_params``: ``hugectr.io.fs``) are read by pyarrow
through an fsspec file object, in blocks with read-ahead.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..io import fs
from ..params import Input
from .file_list import read_file_list
from .chunks import Bags, Chunk

ROWS_PER_READ = 65536  # default rows per chunk handed to the reader
_READ_ROWS = 1 << 18  # rows decoded per pyarrow read (then converted in parallel): bounded memory, few calls
_POOL_LOCK = threading.Lock()
_POOL: list[ThreadPoolExecutor] = []  # one conversion pool for every source: threads bounded by the cores
_KEY_TYPES = {False: (pa.int32(), pa.uint32()), True: (pa.int64(), pa.uint64())}
_GROUPS = ("labels", "conts", "cats")


@dataclass(frozen=True)
class ParquetMetadata:
    """``_metadata.json``: rows per file (by base name) and the column indices of each group, ascending."""

    path: str
    num_rows: dict[str, int]
    labels: list[tuple[int, str]]
    conts: list[tuple[int, str]]
    cats: list[tuple[int, str]]

    @classmethod
    def load(cls, path: str, file_list: str = "", data_source_params=None) -> ParquetMetadata:
        where = f" (file list '{file_list}')" if file_list else ""
        if not fs.is_file(path, data_source_params):
            raise ValueError(f"Parquet: '{path}' not found{where}; HugeCTR reads _metadata.json from the folder of "
                             "the first listed data file: put it there (NVTabular writes it beside the data)")
        try:
            config = json.loads(fs.read_text(path, data_source_params))
            missing = [key for key in ("file_stats", *_GROUPS) if key not in config]
            if missing:
                raise ValueError(f"missing key(s) {missing}; it needs file_stats, labels, conts and cats")
            rows = {os.path.basename(entry["file_name"]): int(entry["num_rows"]) for entry in config["file_stats"]}
            groups = {g: sorted((int(c["index"]), str(c["col_name"])) for c in config[g]) for g in _GROUPS}
        except (KeyError, TypeError, json.JSONDecodeError) as error:
            raise ValueError(f"Parquet: '{path}' is not a valid _metadata.json: {type(error).__name__}: {error}; "
                             "expected {\"file_stats\": [{\"file_name\", \"num_rows\"}], \"labels\"/\"conts\"/"
                             "\"cats\": [{\"col_name\", \"index\"}]}") from None
        except ValueError as error:
            raise ValueError(f"Parquet: '{path}': {error}") from None
        indices = [i for g in _GROUPS for i, _ in groups[g]]
        if len(set(indices)) != len(indices) or min(indices, default=0) < 0:
            listed = {g: [i for i, _ in groups[g]] for g in _GROUPS}
            raise ValueError(f"Parquet: '{path}': column indices must be distinct and >= 0, got {listed}")
        return cls(path, rows, groups["labels"], groups["conts"], groups["cats"])


class ParquetSource:
    """Chunks of the Parquet files of one file list, laid out for the model's ``Input``."""

    def __init__(self, files: list[str], input: Input, slot_size_array: list[int], i64_input_key: bool, *,
                 file_list: str = "", data_source_params=None):
        self.files, self.file_list = files, file_list
        self.i64_input_key, self.data_source_params = i64_input_key, data_source_params
        self.metadata = ParquetMetadata.load(fs.join(fs.parent(files[0]), "_metadata.json"), file_list,
                                             data_source_params)
        self.slots = [p.slot_num for p in input.data_reader_sparse_param_array]
        self.label_dim, self.dense_dim = input.label_dim, input.dense_dim
        self._check_against_input(slot_size_array)
        offsets = np.concatenate([[0], np.cumsum(slot_size_array, dtype=np.int64)[:-1]]) if slot_size_array else None
        self.slot_offsets = offsets if offsets is not None else np.zeros(len(self.metadata.cats), np.int64)
        self.slot_sizes = np.asarray(slot_size_array, np.int64) if slot_size_array else None
        self._widths: dict[int, int] = {}
        self._check_widths(files[0])

    @classmethod
    def from_file_list(cls, file_list: str, input: Input, slot_size_array: list[int],
                       i64_input_key: bool, data_source_params=None) -> ParquetSource:
        return cls(read_file_list(file_list, data_source_params), input, slot_size_array, i64_input_key,
                   file_list=file_list, data_source_params=data_source_params)

    # -- checks ------------------------------------------------------------------------------
    def _check_against_input(self, slot_size_array: list[int]) -> None:
        meta, total_slots = self.metadata, sum(self.slots)
        if len(meta.cats) != total_slots:
            raise ValueError(f"Parquet: '{meta.path}' lists {len(meta.cats)} cats but the model's Input has "
                             f"{total_slots} slots (slot_num of {self.slots}); make them equal (edit the cats of "
                             "_metadata.json or the DataReaderSparseParams)")
        if slot_size_array and len(slot_size_array) != total_slots:
            raise ValueError(f"DataReaderParams: slot_size_array has {len(slot_size_array)} entries but '{meta.path}' "
                             f"lists {total_slots} cats; give one size per cat column, in ascending column index order")
        for group, want, what in (("labels", self.label_dim, "label_dim"), ("conts", self.dense_dim, "dense_dim")):
            if not getattr(meta, group) and want:
                raise ValueError(f"Parquet: '{meta.path}' lists no {group} but the model's Input has {what}={want}")

    def _check_widths(self, path: str) -> None:
        """Widths of the float columns (list<float> counts its length) against label_dim / dense_dim."""
        with _open(path, self.data_source_params) as file:
            schema = file.schema_arrow
            self._check_schema(schema, path)
            floats = [i for g in ("labels", "conts") for i, _ in getattr(self.metadata, g)]
            self._widths = _first_row_widths(file, floats)
        for group, want, what in (("labels", self.label_dim, "label_dim"), ("conts", self.dense_dim, "dense_dim")):
            columns = [i for i, _ in getattr(self.metadata, group)]
            found = sum(self._widths[i] for i in columns)
            if found != want:
                raise ValueError(f"Parquet: the {group} of '{self.metadata.path}' (columns {columns}) give {found} "
                                 f"values per sample in '{path}' but the model's Input has {what}={want}; make them "
                                 "agree (list<float> columns count their length)")

    def _check_schema(self, schema: pa.Schema, path: str) -> None:
        groups = {g: getattr(self.metadata, g) for g in _GROUPS}
        absent = [(g, i, n) for g in _GROUPS for i, n in groups[g] if i >= len(schema)]
        if absent:
            listed = ", ".join(f"{g} '{n}' (index {i})" for g, i, n in absent)
            raise ValueError(f"Parquet: '{self.metadata.path}' names columns absent from '{path}', which has "
                             f"{len(schema)} columns {schema.names}: {listed}; fix the indices in _metadata.json")
        for group in ("labels", "conts"):
            for index, name in groups[group]:
                if _value_type(schema.field(index).type) != pa.float32():
                    raise ValueError(f"Parquet: '{path}' column {index} ('{name}', {group}) has type "
                                     f"{schema.field(index).type}; label and dense columns must be float32 or "
                                     "list<float32>: cast them to float32")
        for index, name in groups["cats"]:
            found, allowed = _value_type(schema.field(index).type), _KEY_TYPES[self.i64_input_key]
            if found not in allowed:
                raise ValueError(
                    f"Parquet key type error: '{path}' column {index} ('{name}') has keys of type {found} but "
                    f"i64_input_key={self.i64_input_key} expects {' or '.join(map(str, allowed))}; set "
                    f"CreateSolver(i64_input_key={not self.i64_input_key}) if the width is right, or cast the "
                    f"column to {allowed[0]}")

    def _check_rows(self, file: pq.ParquetFile, path: str) -> None:
        name = os.path.basename(path)
        if name not in self.metadata.num_rows:
            raise ValueError(f"Parquet: '{path}' has no entry in the file_stats of '{self.metadata.path}'; add "
                             f"{{\"file_name\": \"{name}\", \"num_rows\": {file.metadata.num_rows}}}")
        if self.metadata.num_rows[name] != file.metadata.num_rows:
            raise ValueError(f"Parquet: '{path}' holds {file.metadata.num_rows} rows but '{self.metadata.path}' says "
                             f"num_rows={self.metadata.num_rows[name]}; fix file_stats")

    # -- reading -----------------------------------------------------------------------------
    def read_file(self, index: int, rows: int = ROWS_PER_READ) -> Iterator[Chunk]:
        """The chunks of file ``index`` in row order: ``rows`` samples each, fewer in the last.

        pyarrow decodes several chunks at once (about ``_READ_ROWS`` rows, on its own thread pool); the
        chunks of that read are converted in parallel on ``_conversion_pool()`` while pyarrow decodes the
        next read. So one reader worker (HugeCTR gives Parquet one per GPU) uses the
        machine's cores: pyarrow and NumPy release the GIL for the bulk of the work.
        """
        path = self.files[index]
        with _open(path, self.data_source_params) as file:
            self._check_schema(file.schema_arrow, path)
            self._check_rows(file, path)
            wanted = [i for g in _GROUPS for i, _ in getattr(self.metadata, g)]
            names = file.schema_arrow.names
            unique = len(set(names)) == len(names)
            # By name when names are unique (reads only those columns); else every column, picked by index.
            selected = [names[i] for i in sorted(wanted)] if unique else None
            pool, converting, first_row = _conversion_pool(), [], 0
            for record_batch in file.iter_batches(batch_size=_read_rows(rows), columns=selected):
                count = record_batch.num_rows
                submitted = []
                for start in range(0, count, rows):
                    piece = record_batch.slice(start, min(rows, count - start))     # zero-copy
                    columns = {i: piece.column(names[i] if unique else i) for i in wanted}
                    submitted.append(pool.submit(self._convert, columns, piece.num_rows, path, first_row + start))
                first_row += count
                yield from (future.result() for future in converting)   # converted while this read decoded
                converting = submitted
            yield from (future.result() for future in converting)

    def _convert(self, columns: dict[int, pa.Array], rows: int, path: str, first_row: int = 0) -> Chunk:
        meta = self.metadata
        for index, array in columns.items():
            if array.null_count or (_is_list(array.type) and array.flatten().null_count):
                raise ValueError(f"Parquet: '{path}' row {first_row + _first_null_row(array)}, column {index} holds "
                                 "nulls; HugeCTR refuses missing values: fill them (e.g. 0 for dense, a reserved key "
                                 "for cats)")
        label = self._float_block(columns, meta.labels, rows, self.label_dim, path)
        dense = self._float_block(columns, meta.conts, rows, self.dense_dim, path)
        sparse, first = [], 0
        for slots in self.slots:
            group = range(first, first + slots)
            arrays = [columns[meta.cats[g][0]] for g in group]
            if self.slot_sizes is not None:
                self._check_key_range(arrays, group, path, first_row)
            sparse.append(_bags(arrays, self.slot_offsets[first:first + slots]))
            first += slots
        return Chunk(label, dense, sparse)

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

    def _float_block(self, columns, group, rows: int, width: int, path: str) -> np.ndarray:
        block = np.empty((rows, width), dtype=np.float32)  # (n, label_dim) or (n, dense_dim)
        start = 0
        for index, name in group:
            array, size = columns[index], self._widths[index]
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


def _conversion_pool() -> ThreadPoolExecutor:
    """The process-wide pool that converts decoded record batches to chunks (one thread per core)."""
    with _POOL_LOCK:
        if not _POOL:
            _POOL.append(ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="hugectr-parquet"))
        return _POOL[0]


def _read_rows(rows: int) -> int:
    """Rows per pyarrow read: a whole number of ``rows`` chunks, about ``_READ_ROWS`` (reads cross row groups).

    >>> _read_rows(65536), _read_rows(100000), _read_rows(1 << 20)
    (262144, 200000, 1048576)
    """
    return rows * max(1, _READ_ROWS // rows)


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
    rows = len(arrays[0])
    if not any(_is_list(a.type) for a in arrays):  # one-hot: (n, slots) keys, no offsets needed
        # Interleave the columns at their own width (4 bytes for 32-bit keys: half the strided traffic), then
        # widen and add the offsets in one contiguous pass: ~25% faster than writing int64 columns into
        # (n, slots) one by one. (The interleave itself is the cost; a slot-major batch would avoid it.)
        keys = np.stack([_key_numpy(array) for array in arrays], axis=1)           # (n, slots), native width
        return Bags(np.add(keys, offsets, dtype=np.int64).reshape(-1), None, len(arrays), 1)
    lengths = np.empty((len(arrays), rows), dtype=np.int64)  # (slots, n), slot-major
    values = []
    for slot, (array, offset) in enumerate(zip(arrays, offsets)):
        if _is_list(array.type):
            lengths[slot] = pc.list_value_length(array).to_numpy(zero_copy_only=False)
            array = array.flatten()
        else:
            lengths[slot] = 1
        values.append(array.to_numpy(zero_copy_only=False).astype(np.int64) + offset)
    return Bags(*_to_sample_major(lengths, np.concatenate(values)), len(arrays))


def _key_numpy(array: pa.Array) -> np.ndarray:
    """The keys of a scalar cat column as NumPy; uint64 viewed as int64 (keys are 64-bit ints either way), so
    stacking it with int64 columns never promotes to float64."""
    keys = array.to_numpy(zero_copy_only=False)
    return keys.view(np.int64) if keys.dtype == np.uint64 else keys


def _to_sample_major(lengths: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorder slot-major bags (bag s*n+i, sizes ``lengths`` (slots, n)) to sample-major (bag i*slots+s).

    >>> v, o = _to_sample_major(np.array([[1, 0], [2, 1]]), np.array([10, 20, 21, 30]))
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


@contextmanager
def _open(path: str, data_source_params=None) -> Iterator[pq.ParquetFile]:
    """The Parquet file at ``path``; a remote one is read through an fsspec file object, closed on exit."""
    remote = fs.is_remote(path, data_source_params)
    handle = fs.open_input(path, data_source_params) if remote else None
    try:
        try:
            # Local files are memory-mapped: pages are decoded straight from the page cache, no read copies.
            file = pq.ParquetFile(handle if remote else path, memory_map=not remote)
        except (OSError, ValueError, pa.ArrowException) as error:   # a damaged footer can fail to decode
            raise ValueError(f"Parquet: cannot open '{path}' as a Parquet file: {error}. The file is damaged, "
                             "truncated or not Parquet: re-copy or regenerate it") from error
        yield file
    finally:
        if handle is not None:
            handle.close()


def _is_list(kind: pa.DataType) -> bool:
    return pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)


def _value_type(kind: pa.DataType) -> pa.DataType:
    return kind.value_type if _is_list(kind) else kind


def _first_row_widths(file: pq.ParquetFile, indices: list[int]) -> dict[int, int]:
    """Values per sample of each float column: 1, the fixed list size, or the first row's list length."""
    schema = file.schema_arrow
    widths = {i: 1 for i in indices if not _is_list(schema.field(i).type)}
    widths.update({i: schema.field(i).type.list_size for i in indices
                   if pa.types.is_fixed_size_list(schema.field(i).type)})
    variable = [i for i in indices if i not in widths]
    if variable:  # every later row is checked against this width on read
        names = schema.names
        unique = len(set(names)) == len(names)
        probe = next(file.iter_batches(batch_size=1, columns=[names[i] for i in variable] if unique else None), None)
        for i in variable:
            column = probe.column(names[i] if unique else i) if probe is not None else None
            widths[i] = int(pc.list_value_length(column)[0].as_py() or 0) if column is not None else 0
    return widths
