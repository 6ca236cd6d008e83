"""HugeCTR's Parquet format: data files + ``_metadata.json``, read as ``Chunk``s with pyarrow.

``_metadata.json`` (looked up in the folder of the FIRST file of the file list, as HugeCTR)
maps column *indices* to labels, conts and cats; names are informational. Within each group the
columns are used in ascending index order. Labels then conts form the float block: each column
is float32, or a fixed-width list<float32> whose width counts toward the dimension. Cats are
int32/uint32 (``i64_input_key=False``) or int64/uint64 (``True``), scalar (one-hot) or
list<int> (multi-hot, any length, empty allowed); the ``DataReaderSparseParam``s of the
``Input`` take them in order (the first ``slot_num`` cats go to the first param, ...), and
``slot_size_array`` adds ``sum(slot_size_array[:g])`` to the keys of global cat ``g``.
Files are read a few row groups at a time (decoded on pyarrow's threads), each chunk converted (``parquet_convert``) by a
handful of whole-array calls (each releases the GIL once, so reader threads scale); nulls are refused.
Remote files (``s3://``, ``gs://``, ``hdfs://``, or paths on ``DataReaderParams.data_source_params``:
``hugectr.io.fs``) are read by pyarrow through an fsspec file object, in blocks with read-ahead.
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
from .chunks import Buffers, Chunk
from .parquet_convert import ROWS_PER_READ, ChunkConversion, _is_list, _value_type

_READ_ROWS = 1 << 18  # about the rows decoded per pyarrow read (see _read_rows): bounded memory, few calls
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


class ParquetSource(ChunkConversion):
    """Chunks of the Parquet files of one file list, laid out for the model's ``Input``."""

    def __init__(self, files: list[str], input: Input, slot_size_array: list[int], i64_input_key: bool, *,
                 file_list: str = "", data_source_params=None, pinned: bool = False):
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
        self._tiled: dict[int, np.ndarray] = {}   # first global cat of a sparse input -> its tiled offsets
        self._buffers = Buffers()
        self.pinned = pinned   # chunks written straight into pinned memory (the reader's batches go to a GPU)
        self._check_widths(files[0])

    @classmethod
    def from_file_list(cls, file_list: str, input: Input, slot_size_array: list[int],
                       i64_input_key: bool, data_source_params=None, pinned: bool = False) -> ParquetSource:
        return cls(read_file_list(file_list, data_source_params), input, slot_size_array, i64_input_key,
                   file_list=file_list, data_source_params=data_source_params, pinned=pinned)

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

    def empty(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        """An output array of a chunk: recycled, or in pinned memory when ``pinned`` (``chunks.Buffers``)."""
        return self._buffers.empty(shape, dtype, self.pinned)

    # -- reading -----------------------------------------------------------------------------
    takes_first_rows = True   # read_file accepts ``first``: the reader aligns chunks with its batches

    def read_file(self, index: int, rows: int = ROWS_PER_READ, first: int = 0) -> Iterator[Chunk]:
        """The chunks of file ``index`` in row order: ``first`` samples in the first one (0: ``rows``), then
        ``rows`` each, fewer in the last. (A reader passes the samples its pending batch still lacks, so the
        chunks after the first are whole batches: no copy joins them.)

        pyarrow decodes whole row groups, about ``_READ_ROWS`` rows a read, across its own thread pool;
        the chunks of a read are converted in parallel on ``_conversion_pool()`` while pyarrow decodes the
        next read. Rows left over at the end of a read join the next one (zero-copy). One reader worker
        (HugeCTR gives Parquet one per GPU) thus uses the machine's cores: pyarrow and NumPy release the GIL
        for the bulk of the work.
        """
        path = self.files[index]
        with _open(path, self.data_source_params) as file:
            schema = file.schema_arrow    # built on each access
            self._check_schema(schema, path)
            self._check_rows(file, path)
            wanted = [i for g in _GROUPS for i, _ in getattr(self.metadata, g)]
            names = schema.names
            unique = len(set(names)) == len(names)
            # By name when names are unique (reads only those columns); else every column, picked by index.
            selected = [names[i] for i in sorted(wanted)] if unique else None
            keys = {i: names[i] if unique else i for i in wanted}
            pool, converting = _conversion_pool(), []
            for pieces in _pieces(_reads(file, selected, _read_rows(rows)), rows, first):
                submitted = [pool.submit(self._convert, piece, keys, path, start) for start, piece in pieces]
                yield from (future.result() for future in converting)   # converted while this read decoded
                converting = submitted
            yield from (future.result() for future in converting)


def _conversion_pool() -> ThreadPoolExecutor:
    """The process-wide pool that converts decoded record batches to chunks (one thread per core)."""
    with _POOL_LOCK:
        if not _POOL:
            _POOL.append(ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="hugectr-parquet"))
        return _POOL[0]


def _reads(file: pq.ParquetFile, columns: list[str] | None, target: int) -> Iterator[pa.Table]:
    """The file as tables of whole row groups, about ``target`` rows each, decoded on pyarrow's threads;
    a row group of more than 4 * ``target`` rows is read ``target`` rows at a time (bounded memory)."""
    groups, count = [], 0
    for group in range(file.metadata.num_row_groups):
        size = file.metadata.row_group(group).num_rows
        if size > 4 * target:
            if groups:
                yield file.read_row_groups(groups, columns=columns, use_threads=True)
                groups, count = [], 0
            for record_batch in file.iter_batches(batch_size=target, row_groups=[group], columns=columns):
                yield pa.Table.from_batches([record_batch])
            continue
        groups.append(group)
        count += size
        if count >= target:
            yield file.read_row_groups(groups, columns=columns, use_threads=True)
            groups, count = [], 0
    if groups:
        yield file.read_row_groups(groups, columns=columns, use_threads=True)


def _pieces(tables: Iterator[pa.Table], rows: int, first: int) -> Iterator[list[tuple[int, pa.Table]]]:
    """Per read, its pieces ``(first row in the file, rows)``: ``first`` rows (0: ``rows``), then ``rows``
    each; rows left at the end of a read open the next one (zero-copy), the file's last piece may be short.

    >>> tables = (pa.table({"x": list(range(n))}) for n in (5, 4))
    >>> [[(start, piece.num_rows) for start, piece in read] for read in _pieces(tables, 3, 2)]
    [[(0, 2), (2, 3)], [(5, 3)], [(8, 1)]]
    """
    size, done, carry = first or rows, 0, None
    for table in tables:
        table = table if carry is None else pa.concat_tables([carry, table])
        pieces, start = [], 0
        while table.num_rows - start >= size:
            pieces.append((done + start, table.slice(start, size)))
            start, size = start + size, rows
        carry = table.slice(start) if start < table.num_rows else None
        done += start
        yield pieces
    if carry is not None:
        yield [(done, carry)]


def _read_rows(rows: int, cores: int = 0) -> int:
    """Rows per pyarrow read: a whole number of ``rows`` chunks, about ``_READ_ROWS`` rows, and at least
    ``cores // 2`` chunks (up to 8): a lone worker (HugeCTR's one per GPU) then converts that many chunks at
    once while pyarrow decodes the next read on the other cores.

    >>> _read_rows(65536, 2), _read_rows(100000, 2), _read_rows(1 << 20, 2), _read_rows(65536, 16)
    (262144, 200000, 1048576, 524288)
    """
    cores = cores or os.cpu_count() or 1
    return rows * max(1, _READ_ROWS // rows, min(8, cores // 2))


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
