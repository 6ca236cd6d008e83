"""HugeCTR's Raw format: ONE binary file of fixed-size samples, no header (``source`` is the file itself).

A sample is ``label[label_dim]`` and ``dense[dense_dim]`` (float32 with ``float_label_dense=True``,
else int32), then one int32 key per slot (one-hot; all slots of all sparse inputs, in order).
Int labels become floats, int dense values ``log(x + 1)`` (in float32, as HugeCTR's
``log(x + 1.f)``); keys are used as written (uint32, or int32 widened with its sign under
``i64_input_key``). The file size must be ``num_samples`` x the sample size.

The machinery here (``SampleLayout``, ``FixedSampleSource``) also reads RawAsync (``raw_async.py``):
the file is memory-mapped and read as whole batches of ``batch_size`` samples (a remote file, on
``s3://``, ``gs://``, ``hdfs://`` or ``data_source_params`` (``hugectr.io.fs``), by ranged reads
instead). Batch ``b`` goes to lane ``b % lanes`` and every lane is one entry of ``files``; with one
lane per ``DataReader`` worker they decode in parallel while its round-robin hands the batches out in
file order, as HugeCTR's Raw workers do. (In repeat mode lanes restart on their own, so after the
first pass the order of batches can differ from HugeCTR's, which wraps around the whole file.)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..io import fs
from ..io.remote_arrays import RemoteRecords
from ..params import DataReaderParams, Input
from .chunks import Bags, Chunk
from .reader import SourceOptions


@dataclass(frozen=True)
class SampleLayout:
    """One fixed-size sample: label, dense and key dtypes, keys per slot (all slots in order), slots per input."""

    label_dim: int
    dense_dim: int
    label_dtype: str        # '<i4', '<f4' (or '<i8': HugeCTR's generator with i64_input_key)
    dense_dtype: str
    key_dtype: str          # '<u4', '<i4' (sign-extended) or '<i8'
    nnz: tuple[int, ...]
    groups: tuple[int, ...]

    @property
    def record(self) -> np.dtype:
        """The packed structured dtype of one sample (fields of zero width are left out)."""
        fields = [(name, dtype, (count,)) for name, dtype, count in
                  (("label", self.label_dtype, self.label_dim), ("dense", self.dense_dtype, self.dense_dim),
                   ("keys", self.key_dtype, sum(self.nnz))) if count]
        return np.dtype(fields)

    @property
    def sample_bytes(self) -> int:
        return self.record.itemsize

    def encode(self, label: np.ndarray, dense: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """Structured records of (n, label_dim) labels, (n, dense_dim) dense values and (n, total nnz) keys."""
        out = np.zeros(len(label), self.record)
        for name, values in (("label", label), ("dense", dense), ("keys", keys)):
            if name in out.dtype.names:
                out[name] = np.asarray(values).reshape(len(label), -1)
        return out

    def decode(self, records: np.ndarray) -> Chunk:
        """A ``Chunk`` of structured ``records`` (a memory-mapped slice or a gathered copy)."""
        rows = records.shape[0]
        label = records["label"].astype(np.float32)                               # (n, label_dim)
        if self.dense_dim:
            dense = records["dense"]
            dense = dense.astype(np.float32) if dense.dtype.kind == "f" else _log1p_like_hugectr(dense)
        else:
            dense = np.zeros((rows, 0), np.float32)
        keys = records["keys"].astype(np.int64) if sum(self.nnz) else np.zeros((rows, 0), np.int64)
        sparse, slot, first = [], 0, 0
        for slots in self.groups:
            nnz = np.array(self.nnz[slot:slot + slots], np.int64)
            width = int(nnz.sum())
            values = np.ascontiguousarray(keys[:, first:first + width]).reshape(-1)   # sample-major bags
            sparse.append(_bags(values, nnz, rows, slots))
            slot, first = slot + slots, first + width
        return Chunk(label, dense, sparse)


def _log1p_like_hugectr(values: np.ndarray) -> np.ndarray:
    """log(x + 1) as HugeCTR computes it for int data: float(x) + 1.f, then a float32 log."""
    shifted = values.astype(np.float32)
    shifted += np.float32(1.0)
    with np.errstate(invalid="ignore", divide="ignore"):   # negative ints give NaN / -inf, as in HugeCTR
        return np.log(shifted)


def _bags(values: np.ndarray, nnz: np.ndarray, rows: int, slots: int) -> Bags:
    if nnz.size and (nnz == nnz[0]).all() and nnz[0] > 0:
        return Bags(values, None, slots, int(nnz[0]))
    offsets = np.zeros(rows * slots + 1, np.int64)
    np.cumsum(np.tile(nnz, rows), out=offsets[1:])
    return Bags(values, offsets, slots)


class FixedSampleSource:
    """The samples of one file of fixed-size records, as whole batches spread over lanes.

    ``order`` is the batch order (None: file order); a partial last batch must stay last.
    """

    def __init__(self, path: str, layout: SampleLayout, samples: int, batch_size: int, lanes: int,
                 order: np.ndarray | None = None, data_source_params=None):
        self.path, self.layout, self.samples = path, layout, samples
        self.data_source_params = data_source_params
        self.batch_size = batch_size if batch_size > 0 else 1      # unknown: any sample boundary will do
        self.batches = -(-samples // self.batch_size)
        self.order = order
        self.lanes = max(1, min(lanes, self.batches)) if batch_size > 0 else 1
        self.files = [path] * self.lanes

    def read_file(self, index: int, rows: int = 65536) -> Iterator[Chunk]:
        """The batches of lane ``index`` (b = index, index + lanes, ...), several to a chunk."""
        if self.samples == 0:
            return
        if fs.is_remote(self.path, self.data_source_params):
            records = RemoteRecords(self.path, self.layout.record, self.samples, self.data_source_params)
        else:
            records = np.memmap(self.path, dtype=self.layout.record, mode="r", shape=(self.samples,))
        size = self.batch_size
        per_chunk = max(1, rows // size)
        if self.order is None and self.lanes == 1:          # the whole file in order: zero-copy slices
            for start in range(0, self.samples, per_chunk * size):
                yield self.layout.decode(records[start:start + per_chunk * size])
            return
        mine = np.arange(index, self.batches, self.lanes) if self.order is None else self.order[index::self.lanes]
        for start in range(0, mine.size, per_chunk):
            samples = (mine[start:start + per_chunk, None] * size + np.arange(size)).reshape(-1)
            yield self.layout.decode(records[samples[samples < self.samples]])


def check_file(path: str, what: str, data_source_params=None) -> int:
    """The size of the data file ``path``; ValueError naming it if it is missing or empty."""
    if not fs.is_file(path, data_source_params):
        where = "" if fs.is_remote(path, data_source_params) else f" (working directory: {os.getcwd()})"
        raise ValueError(f"{what}: data file '{path}' not found{where}; {what} reads ONE binary file: pass its path "
                         "as source / eval_source")
    size = fs.file_size(path, data_source_params)
    if size == 0:
        raise ValueError(f"{what}: data file '{path}' is empty; regenerate it")
    return size


def raw_layout(input: Input, float_label_dense: bool, i64_input_key: bool) -> SampleLayout:
    """HugeCTR's Raw reader: one int32 key per slot, label and dense both int32 or both float32."""
    kind = "<f4" if float_label_dense else "<i4"
    slots = [p.slot_num for p in input.data_reader_sparse_param_array]
    return SampleLayout(input.label_dim, input.dense_dim, kind, kind, "<i4" if i64_input_key else "<u4",
                        (1,) * sum(slots), tuple(slots))


def raw_source(source: str, input: Input, reader_params: DataReaderParams, i64_input_key: bool,
               options: SourceOptions) -> FixedSampleSource:
    """The Raw file ``source`` with ``options.num_samples`` samples (num_samples / eval_num_samples)."""
    layout = raw_layout(input, reader_params.float_label_dense, i64_input_key)
    location = reader_params.data_source_params
    size = check_file(source, "Raw", location)
    expected = options.num_samples * layout.sample_bytes
    if options.num_samples <= 0 or size != expected:
        raise ValueError(_size_message(source, size, layout, options.num_samples, input, i64_input_key, location))
    return FixedSampleSource(source, layout, options.num_samples, options.batch_size, options.workers,
                             data_source_params=location)


def _size_message(path: str, size: int, layout: SampleLayout, num_samples: int, input: Input,
                  i64_input_key: bool, data_source_params=None) -> str:
    sample = layout.sample_bytes
    head = (f"Raw: '{path}' has {size} bytes, but num_samples={num_samples} samples of {sample} bytes "
            f"({input.label_dim} label + {input.dense_dim} dense values, {sum(layout.nnz)} int32 keys) make "
            f"{num_samples * sample}")
    if num_samples <= 0:
        head = (f"Raw: num_samples is {num_samples}; HugeCTR's Raw reader needs DataReaderParams(num_samples=..., "
                f"eval_num_samples=...) for '{path}'")
    hints = []
    # HugeCTR's generator with i64_input_key: int labels / dense and keys all 8 bytes wide
    widened = 4 * (input.label_dim + input.dense_dim) if layout.label_dtype == "<i4" else 0
    wide = sample + widened + 4 * sum(layout.nnz)
    if i64_input_key and num_samples > 0 and size == num_samples * wide:
        hints.append("that is the size of HugeCTR's generator output for i64_input_key=True (8-byte labels, dense "
                     "values and keys), which its Raw reader (4-byte keys) cannot read either: generate the data "
                     "with i64_input_key=False")
    elif size % sample == 0:
        hints.append(f"the file holds {size // sample} such samples: set num_samples (eval_num_samples for the "
                     f"eval source) to {size // sample}")
    start = fs.read_bytes(path, data_source_params, 0, min(64, size))
    if start[:1].isdigit() and b"\n" in start:
        hints.append("it looks like a text file list; Raw reads one binary file, not a file list")
    if hints:
        return head + "; " + "; ".join(hints)
    return (head + f"; {cut_off(size, sample)}. The file is truncated (re-copy or regenerate it) or was written with "
            "another label_dim / dense_dim / slot count / float_label_dense (make the Input and DataReaderParams "
            "match the writer's)")


def cut_off(size: int, sample: int) -> str:
    """Where a file of ``size`` bytes of ``sample``-byte records stops: the record cut off, if any.

    >>> cut_off(50, 24)
    'record 2 (0-based) is cut off after 2 of its 24 bytes'
    """
    if size % sample == 0:
        return f"it holds {size // sample} whole records of {sample} bytes"
    return f"record {size // sample} (0-based) is cut off after {size % sample} of its {sample} bytes"


class SampleWriter:
    """Writes fixed-size samples to ``path`` block by block; the file appears on ``close()`` (temp + rename).

    >>> import tempfile
    >>> layout = SampleLayout(1, 1, "<i4", "<i4", "<u4", (1,), (1,))
    >>> path = os.path.join(tempfile.mkdtemp(), "train.bin")
    >>> with SampleWriter(path, layout) as writer:
    ...     writer.write(np.array([[1]]), np.array([[3]]), np.array([[7]]))
    >>> np.fromfile(path, np.int32).tolist()
    [1, 3, 7]
    """

    def __init__(self, path: str, layout: SampleLayout):
        self.path, self.layout = path, layout
        self._temporary = f"{path}.tmp"
        self._stream = open(self._temporary, "wb")

    def write(self, label: np.ndarray, dense: np.ndarray, keys: np.ndarray) -> None:
        self._stream.write(self.layout.encode(label, dense, keys).tobytes())

    def __enter__(self) -> SampleWriter:
        return self

    def __exit__(self, kind, error, trace) -> None:
        self._stream.close()
        if kind is None:
            os.replace(self._temporary, self.path)
        else:
            os.remove(self._temporary)
