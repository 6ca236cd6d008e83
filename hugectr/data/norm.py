"""HugeCTR's Norm format: a file list of binary files, each a 64-byte header and then its records.

Header (8 little-endian int64): ``error_check`` (0 = Check_t.Non, 1 = Check_t.Sum), ``number_of_records``,
``label_dim``, ``dense_dim``, ``slot_num`` (all slots of all sparse inputs), 3 reserved. A record is
``float32 label[label_dim]``, ``float32 dense[dense_dim]``, then per slot ``int32 nnz`` and ``nnz`` keys
(uint32, or int64 with ``i64_input_key``). Under Check_t.Sum every record, the header included, is
``int32 L``, ``L`` bytes and an ``int8`` checksum (the wrapping byte sum). Keys and dense values are used
as written (no slot offset, no log). Files are memory-mapped and decoded a window of records at a time
(``norm_records``); remote files (``s3://``, ``gs://``, ``hdfs://``, or paths on ``data_source_params``:
``hugectr.io.fs``) are read the same way, one ranged read per window. As HugeCTR: a record whose
checksum fails is dropped (counted in ``skipped_records``, with a warning naming the file and the
record); ``number_of_records`` records are read per file. Unlike HugeCTR, which logs and skips such a
file, a header that disagrees with the model or with ``check_type`` is an error naming the file, the
field, both values and the fix.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from ..enums import Check_t
from ..io import fs
from ..io.remote_arrays import RemoteBytes
from ..params import Input
from .file_list import read_file_list
from .norm_records import NormLayout, Walk, decode, walk, wrapping_prefix_sums
from .chunks import Bags, Chunk

HEADER_BYTES = 64
_PROBE_RECORDS = 64          # records parsed at construction to diagnose a wrong key width
_MIN_WINDOW = 1 << 16        # bytes: the smallest window of records decoded at once


class NormDataWarning(UserWarning):
    """Samples of a Norm file were skipped: a bad checksum, a broken or truncated file."""


@dataclass(frozen=True)
class NormHeader:
    """The header of one file; ``size`` is the bytes it takes (64, or 69 as a Check_t.Sum record)."""

    error_check: int
    number_of_records: int
    label_dim: int
    dense_dim: int
    slot_num: int
    size: int

    @classmethod
    def parse(cls, path: str, data: np.ndarray) -> NormHeader:
        """The header at the start of ``data`` (the file's bytes); ValueError naming ``path`` if it is not one."""
        if data.size < HEADER_BYTES:
            what = "is empty" if data.size == 0 else f"has {data.size} bytes"
            raise ValueError(f"Norm: '{path}' {what}; a Norm file starts with a {HEADER_BYTES}-byte header. The file "
                             "is truncated or not a Norm file: regenerate it")
        framed = data.size >= HEADER_BYTES + 5 and int(data[:4].view("<i4")[0]) == HEADER_BYTES
        body = data[4:4 + HEADER_BYTES] if framed else data[:HEADER_BYTES]
        if framed and int(body.sum()) % 256 != int(data[4 + HEADER_BYTES]):
            raise ValueError(f"Norm: '{path}': the checksum of the header record does not match; the header is "
                             "corrupt: regenerate or re-copy the file")
        fields = [int(v) for v in np.ascontiguousarray(body).view("<i8")[:5]]
        header = cls(*fields, size=HEADER_BYTES + 5 if framed else HEADER_BYTES)
        if header.error_check not in (0, 1) or header.error_check != int(framed):
            raise ValueError(f"Norm: '{path}': header error_check={header.error_check} with "
                             f"{'a' if framed else 'no'} Check_t.Sum record frame; expected 1 with the frame or 0 "
                             "without it. The file is not a Norm file or its header is corrupt")
        if header.number_of_records < 0 or min(fields[2:]) < 0:
            raise ValueError(f"Norm: '{path}': header holds negative counts {fields[1:]}; the header is corrupt")
        return header


def map_file(path: str, data_source_params=None) -> np.ndarray | RemoteBytes:
    """The bytes of ``path``, memory-mapped (an empty array for an empty file); ValueError if unreadable.

    A remote file gives a ``RemoteBytes``: slicing it reads that range (the decoder only slices).
    """
    if fs.is_remote(path, data_source_params):
        try:
            return RemoteBytes(path, data_source_params)
        except OSError as error:
            raise ValueError(f"Norm: cannot read '{path}': {error}") from error
    try:
        if os.path.getsize(path) == 0:
            return np.zeros(0, np.uint8)
        return np.memmap(path, dtype=np.uint8, mode="r")
    except OSError as error:
        raise ValueError(f"Norm: cannot read '{path}': {error}") from error


class NormSource:
    """Chunks of the Norm files of one file list, laid out for the model's ``Input``."""

    def __init__(self, files: list[str], input: Input, check_type: Check_t, i64_input_key: bool, *,
                 file_list: str = "", data_source_params=None):
        self.files, self.file_list, self.data_source_params = files, file_list, data_source_params
        self.input, self.check_type, self.i64_input_key = input, check_type, i64_input_key
        self.groups = [p.slot_num for p in input.data_reader_sparse_param_array]
        max_features = sum(p.max_feature_num for p in input.data_reader_sparse_param_array)
        # A slot with more keys than this is taken for a broken record: far above HugeCTR's own buffer
        # (max_feature_num per sample), and a tight bound finds record starts faster.
        self.layout = NormLayout(input.label_dim, input.dense_dim, sum(self.groups), 8 if i64_input_key else 4,
                                 check_type is Check_t.Sum, max_nnz=max(4096, 64 * max_features))
        self.skipped_records = 0
        self._lock = threading.Lock()
        self._probe(files[0])

    @classmethod
    def from_file_list(cls, file_list: str, input: Input, check_type: Check_t, i64_input_key: bool,
                       data_source_params=None) -> NormSource:
        return cls(read_file_list(file_list, data_source_params), input, check_type, i64_input_key,
                   file_list=file_list, data_source_params=data_source_params)

    # -- checks ------------------------------------------------------------------------------
    def header(self, path: str, data: np.ndarray) -> NormHeader:
        """The checked header of ``path``: framing as ``check_type``, counts as the model's ``Input``."""
        header = NormHeader.parse(path, data)
        written = Check_t.Sum if header.error_check else Check_t.Non
        if written is not self.check_type:
            raise ValueError(f"Norm: '{path}' was written with {written} (header error_check={header.error_check}) "
                             f"but DataReaderParams has check_type={self.check_type}; set "
                             f"check_type=hugectr.{written}")
        for field, found, want, fix in (
                ("label_dim", header.label_dim, self.input.label_dim, "Input(label_dim=...)"),
                ("dense_dim", header.dense_dim, self.input.dense_dim, "Input(dense_dim=...)"),
                ("slot_num", header.slot_num, self.layout.slots,
                 f"the slot_num of the DataReaderSparseParams (now {self.groups}, summed)")):
            if found != want:
                raise ValueError(f"Norm: '{path}': header {field}={found} but the model's Input has {field}={want}; "
                                 f"make {fix} match the data, or regenerate the data")
        return header

    def _probe(self, path: str) -> None:
        """Read the first records of the first file: a wrong i64_input_key is named here, not mid-training."""
        data = map_file(path, self.data_source_params)
        header = self.header(path, data)
        window = data[header.size:header.size + (1 << 20)]
        records = min(_PROBE_RECORDS, header.number_of_records)
        if not records or _parses(window, self.layout, records):
            return
        other = replace(self.layout, key_bytes=12 - self.layout.key_bytes)
        if _parses(window, other, records):
            raise ValueError(f"Norm: the records of '{path}' do not parse with {self.layout.key_bytes}-byte keys "
                             f"(i64_input_key={self.i64_input_key}) but do with {other.key_bytes}-byte keys; set "
                             f"CreateSolver(i64_input_key={not self.i64_input_key})")

    # -- reading -----------------------------------------------------------------------------
    def read_file(self, index: int, rows: int = 16384) -> Iterator[Chunk]:
        """The chunks of file ``index`` in record order; records with a bad checksum are left out."""
        path = self.files[index]
        data = map_file(path, self.data_source_params)
        header = self.header(path, data)
        position, done, total = header.size, 0, header.number_of_records
        record_size = self.layout.record_bytes(0) + self.layout.key_bytes * sum(
            p.max_feature_num for p in self.input.data_reader_sparse_param_array)
        window = max(_MIN_WINDOW, int(rows * record_size * 1.25))
        while done < total:
            buf = data[position:position + window]
            found = walk(buf, self.layout, min(rows, total - done))
            if found.count == 0 and not found.broken:
                if position + buf.size >= data.size:
                    self._warn(f"Norm: '{path}' ends after {done} of the {total} records its header announces "
                               f"(record {done} is cut off at byte {position}); the file is truncated: the rest "
                               "is skipped. Regenerate or re-copy it")
                    return
                window *= 2          # a record larger than the window
                continue
            if found.count:
                yield from self._chunk(path, buf, found, done)
            done, position = done + found.count, position + found.stop
            if found.broken:
                self._warn(f"Norm: '{path}', record {done} (byte {position}): {found.broken}; the remaining "
                           f"{total - done} records of this file are skipped. The file is damaged, or was written "
                           f"with other settings: check i64_input_key ({self.layout.key_bytes}-byte keys expected) "
                           f"and check_type ({self.check_type})")
                return
            window = max(window, int(rows * found.stop / max(found.count, 1) * 1.1) + 64)
        if position < data.size:
            self._warn(f"Norm: '{path}' has {data.size - position} bytes after its {total} records (header "
                       f"number_of_records={total}); they are ignored, as HugeCTR does")

    def _chunk(self, path: str, buf: np.ndarray, found: Walk, first_record: int) -> Iterator[Chunk]:
        """The good records of ``found`` as one chunk; those with a bad checksum are counted and named."""
        bad = np.flatnonzero(~found.good)
        if bad.size:
            with self._lock:
                self.skipped_records += int(bad.size)
            listed = ", ".join(str(first_record + int(i)) for i in bad[:10]) + (", ..." if bad.size > 10 else "")
            self._warn(f"Norm: '{path}': skipped {bad.size} record(s) whose checksum does not match (record "
                       f"{listed}); HugeCTR drops them too. The file is damaged: regenerate or re-copy it")
        if bad.size == found.count:
            return
        floats, groups = decode(buf, self.layout, found, self.groups)
        label_dim = self.layout.label_dim
        sparse = [_bags(values, sizes, hotness, slots) for (values, sizes, hotness), slots in zip(groups, self.groups)]
        yield Chunk(np.ascontiguousarray(floats[:, :label_dim]), np.ascontiguousarray(floats[:, label_dim:]), sparse)

    @staticmethod
    def _warn(message: str) -> None:
        warnings.warn(message, NormDataWarning, stacklevel=2)


def _parses(window: np.ndarray, layout: NormLayout, records: int) -> bool:
    found = walk(window, layout, records)
    return not found.broken and found.count > 0 and bool(found.good.mean() > 0.5)


def _bags(values: np.ndarray, sizes: np.ndarray | None, hotness: int | None, slots: int) -> Bags:
    if sizes is None:
        return Bags(values, None, slots, hotness)
    offsets = np.zeros(sizes.size + 1, np.int64)
    np.cumsum(sizes, out=offsets[1:])
    return Bags(values, offsets, slots)


class NormWriter:
    """Writes one Norm file: the header, then ``write()`` blocks of records.

    ``number_of_records`` is checked on ``close()``; None when the count is known only at the end (a
    converter's last file): the header is then patched with the count on ``close()``. The file appears
    complete under its name only on ``close()`` (temp file + rename).

    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.data")
    >>> with NormWriter(path, NormLayout(1, 1, 1, 4, checksum=False), 1) as writer:
    ...     writer.write(np.array([[1.0, 2.0]]), np.array([[1]]), np.array([5]))
    >>> os.path.getsize(path)
    80
    >>> with NormWriter(path, NormLayout(1, 1, 1, 4, checksum=True)) as writer:   # count patched at close
    ...     writer.write(np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[1], [1]]), np.array([5, 6]))
    >>> int(np.fromfile(path, "<i8", count=2, offset=4)[1])
    2
    """

    def __init__(self, path: str, layout: NormLayout, number_of_records: int | None = None):
        self.path, self.layout, self.expected, self.written = path, layout, number_of_records, 0
        self._temporary = f"{path}.tmp"
        self._stream = open(self._temporary, "wb")
        # An open-ended file starts with a zero count: a reader of a crashed write sees no records.
        self._stream.write(encode_header(layout, number_of_records or 0))

    def write(self, floats: np.ndarray, nnz: np.ndarray, keys: np.ndarray) -> None:
        """Records: ``floats`` (n, label_dim + dense_dim), ``nnz`` (n, slots), ``keys`` sample-major."""
        self._stream.write(encode(self.layout, floats, nnz, keys).tobytes())
        self.written += len(nnz)

    def close(self) -> None:
        if self.expected is None:
            self._stream.seek(0)   # the header has a fixed size: rewrite it in place with the final count
            self._stream.write(encode_header(self.layout, self.written))
        self._stream.close()
        if self.expected is not None and self.written != self.expected:
            os.remove(self._temporary)
            raise ValueError(f"NormWriter: '{self.path}' got {self.written} records but its header says "
                             f"{self.expected}; write exactly that many, or pass number_of_records=None to have "
                             "the header patched with the count on close()")
        os.replace(self._temporary, self.path)

    def __enter__(self) -> NormWriter:
        return self

    def __exit__(self, kind, error, trace) -> None:
        if kind is None:
            self.close()
        else:
            self._stream.close()
            os.remove(self._temporary)


def encode(layout: NormLayout, floats: np.ndarray, nnz: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """The bytes of ``n`` records: ``floats`` (n, label_dim + dense_dim), ``nnz`` (n, slots), ``keys``
    sample-major (sample after sample, slot after slot), framed and check-summed as ``layout`` says.

    >>> layout = NormLayout(1, 0, 1, 4, checksum=True)
    >>> encode(layout, np.array([[1.0]]), np.array([[1]]), np.array([7])).tolist()
    [12, 0, 0, 0, 0, 0, 128, 63, 1, 0, 0, 0, 7, 0, 0, 0, 199]
    """
    n, slots, width = nnz.shape[0], layout.slots, layout.key_bytes
    sizes = np.asarray(nnz, np.int64).reshape(n, slots)
    payload = 4 * (layout.floats + slots) + width * sizes.sum(axis=1)
    starts = np.concatenate([[0], np.cumsum(layout.prefix + payload + layout.suffix)]).astype(np.int64)
    out = np.zeros(int(starts[-1]), np.uint8)
    starts = starts[:-1]
    if layout.checksum:
        _put(out, starts, payload.astype("<i4"))
    _put(out, starts + layout.prefix, np.asarray(floats, "<f4").reshape(n, layout.floats))
    slot_bytes = 4 + width * sizes                                              # (n, slots)
    nnz_at = (starts + layout.prefix + 4 * layout.floats)[:, None] + np.cumsum(slot_bytes, axis=1) - slot_bytes
    _put(out, nnz_at, sizes.astype("<i4"))
    key_at = np.repeat((nnz_at + 4).reshape(-1), sizes.reshape(-1))
    total = key_at.size
    within = np.arange(total) - np.repeat(np.cumsum(sizes.reshape(-1)) - sizes.reshape(-1), sizes.reshape(-1))
    _put(out, key_at + width * within, np.asarray(keys).astype(layout.key_dtype).reshape(total))
    if layout.checksum:
        sums = wrapping_prefix_sums(out)
        end = starts + 4 + payload
        out[end] = sums[end] - sums[starts + 4]
    return out


def _put(out: np.ndarray, at: np.ndarray, values: np.ndarray) -> None:
    """Write the little-endian bytes of ``values`` (``at.shape`` + trailing dims) from byte offsets ``at``."""
    raw = np.ascontiguousarray(values).view(np.uint8).reshape(*at.shape, -1)
    out[at[..., None] + np.arange(raw.shape[-1])] = raw


def encode_header(layout: NormLayout, number_of_records: int) -> bytes:
    """HugeCTR's 64-byte ``DataSetHeader`` (as a framed, check-summed record under Check_t.Sum)."""
    fields = np.array([int(layout.checksum), number_of_records, layout.label_dim, layout.dense_dim, layout.slots,
                       0, 0, 0], "<i8").view(np.uint8)
    if not layout.checksum:
        return fields.tobytes()
    return np.int32(64).astype("<i4").tobytes() + fields.tobytes() + bytes([int(fields.sum()) % 256])
