"""``DataReader``: worker threads turn a format's chunks into ``Batch``es of exactly ``batch_size``.

The format-specific part is a *source* (``ParquetSource``; Norm and Raw plug in the same way):
it names its ``files`` and yields ``Chunk``s (label, dense, one CSR per sparse input) from one
file at a time. The generic part here cuts those chunks into batches, in threads, ahead of the
trainer. As HugeCTR: worker ``w`` of ``W`` reads files ``w, w+W, ...`` and cuts batches from its
own files; batches are handed out round-robin over the workers (one worker: file-list order).
In epoch mode (``repeat=False``) each worker's last batch may be partial; once every worker is
done ``next_batch()`` returns None and ``is_eof()`` is True until ``set_source()``.
"""

from __future__ import annotations

import os
import queue
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch

from ..distributed.batch_part import PartBatch, check_part, part_bounds
from ..enums import DataReaderType_t
from ..params import DataReaderParams, Input
from .batch import Batch
from .chunks import Chunk, ChunkSource, cut, sparse_batch, tensor
from .file_list import read_file_list

_MIN_CHUNK_ROWS = 16384  # fewer rows per read and pyarrow's per-read overhead shows
_POLL_SECONDS = 0.1  # every blocking wait wakes this often to check for shutdown or a dead thread


@dataclass(frozen=True)
class SourceOptions:
    """What a source needs besides the params: ``num_samples`` (Raw: the samples in the file,
    ``num_samples`` or ``eval_num_samples``; 0 = not given), ``seed`` (RawAsync ``shuffle``: the solver's
    seed), and from the ``DataReader`` itself ``batch_size`` and ``workers`` (Raw and RawAsync hand one
    lane of whole batches to each worker) and ``pinned`` (batches go to a GPU: Parquet then writes its
    chunks straight into pinned memory)."""

    num_samples: int = 0
    seed: int = 0
    batch_size: int = 0
    workers: int = 1
    pinned: bool = False


def open_source(reader_params: DataReaderParams, input: Input, source: str, i64_input_key: bool,
                options: SourceOptions | None = None) -> ChunkSource:
    """The source object for ``reader_params.data_reader_type`` reading ``source``.

    Imports are late: the Raw formats import ``SourceOptions`` from here.
    """
    kind, options = reader_params.data_reader_type, options or SourceOptions()
    if kind is DataReaderType_t.Parquet:
        from .parquet import ParquetSource

        return ParquetSource.from_file_list(source, input, reader_params.slot_size_array, i64_input_key,
                                            reader_params.data_source_params, pinned=options.pinned)
    if kind is DataReaderType_t.Norm:
        from .norm import NormSource

        return NormSource.from_file_list(source, input, reader_params.check_type, i64_input_key,
                                         reader_params.data_source_params)
    if kind is DataReaderType_t.Raw:
        from .raw import raw_source

        return raw_source(source, input, reader_params, i64_input_key, options)
    if kind is DataReaderType_t.RawAsync:
        from .raw_async import raw_async_source

        return raw_async_source(source, input, reader_params, i64_input_key, options)
    raise ValueError(f"DataReader: unknown data_reader_type {kind!r}; use one of {list(DataReaderType_t)}")


def parquet_worker_count(num_workers: int, source: str, num_local_gpus: int, data_source_params=None,
                         sequential: bool = False) -> int:
    """HugeCTR's Parquet worker count: ``min(num_workers, #files in source, #local GPUs)``, at least 1.

    ``sequential`` (``read_file_sequentially=True``): one worker reads the files in list order, so the
    batches follow the file list exactly; its chunks are still converted on every core.
    """
    if sequential:
        return 1
    return max(1, min(num_workers, len(read_file_list(source, data_source_params)), num_local_gpus))


class _Failure:
    """A worker's exception, carried through its queue to the caller."""

    def __init__(self, error: BaseException):
        self.error = error


_END = object()  # a worker has delivered its last batch


class DataReader:
    """Batches of ``batch_size`` samples from ``source`` (a file list), read ahead in threads.

    Args: ``reader_params`` (type, slot_size_array), ``input`` (the model's ``Input``),
    ``batch_size``, ``source``; ``repeat`` loops over the files forever (non-epoch mode);
    ``num_workers`` threads (HugeCTR's file round-robin); ``prefetch`` batches queued ahead;
    ``pin_memory`` pins batches for asynchronous copies (only when CUDA is available);
    ``source_options`` carry ``num_samples`` and the shuffle seed to the format's source;
    ``part=(rank, world)``: ``batch_size`` is global and each batch holds only this rank's contiguous
    part of it (a ``PartBatch`` that knows the global batch's size; ``hugectr.distributed.batch_part``).
    Use as a context manager or call ``close()``; dropping the reader also stops its threads.
    """

    def __init__(self, reader_params: DataReaderParams, input: Input, batch_size: int, source: str, *,
                 repeat: bool, i64_input_key: bool, num_workers: int = 1, prefetch: int = 4,
                 pin_memory: bool = False, source_options: SourceOptions | None = None,
                 part: tuple[int, int] | None = None):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"DataReader: batch_size must be a positive int, got {batch_size!r}")
        self.part = check_part(part, batch_size)
        if num_workers < 1 or prefetch < 1:
            raise ValueError(f"DataReader: num_workers and prefetch must be >= 1, got {num_workers}, {prefetch}")
        self.reader_params, self.input, self.batch_size = reader_params, input, batch_size
        self.repeat, self.i64_input_key = repeat, i64_input_key
        self.num_workers, self.prefetch = num_workers, prefetch
        self.pin_memory = pin_memory and torch.cuda.is_available()
        self.source = source
        self.source_options = replace(source_options or SourceOptions(), batch_size=batch_size, workers=num_workers,
                                      pinned=self.pin_memory)
        self._chunk_source = open_source(reader_params, input, source, i64_input_key, self.source_options)
        self._workers: list[_Worker] = []
        self._finalizer = None
        self._live: list[int] = []
        self._position = 0
        self._eof = False
        self._failure: BaseException | None = None
        self.generation = 0     # counts the sources named to set_source: what was read from an older one is stale

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker threads (``next_batch`` does it when needed); no-op when running."""
        if self._workers or self._eof or self._failure is not None:
            return
        files = self._chunk_source.files
        count = min(self.num_workers, len(files))
        depth = -(-self.prefetch // count)  # prefetch batches in all, spread over the workers
        top_names = [p.top_name for p in self.input.data_reader_sparse_param_array]
        self._workers = [_Worker(self._chunk_source, list(range(w, len(files), count)), self.batch_size, top_names,
                                 self.repeat, self.pin_memory, depth, self.part) for w in range(count)]
        for worker in self._workers:
            worker.thread.start()
        # Stops the threads when the reader is closed or garbage collected (threads never refer to it).
        self._finalizer = weakref.finalize(self, _stop_workers, list(self._workers))
        self._live, self._position = list(range(count)), 0

    def close(self) -> None:
        """Stop and join the worker threads; a later ``next_batch`` starts over from the first file."""
        if self._finalizer is not None:
            self._finalizer()
        self._finalizer, self._workers, self._live = None, [], []

    def __enter__(self) -> DataReader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __del__(self) -> None:
        finalizer = getattr(self, "_finalizer", None)
        if finalizer is not None:
            finalizer()

    def set_source(self, file_name: str = "") -> None:
        """Restart from the first file of ``file_name`` ("" = the current source); clears end-of-file.

        A named source is read again even when the name is unchanged (the list may have been rewritten).
        """
        self.close()
        if file_name:
            self._chunk_source = open_source(self.reader_params, self.input, file_name, self.i64_input_key,
                                             self.source_options)
            self.source = file_name
            self.generation += 1
        self._eof, self._failure = False, None
        self.start()

    def is_eof(self) -> bool:
        """True once ``next_batch`` has returned None (epoch mode), until ``set_source``."""
        return self._eof

    def is_started(self) -> bool:
        """Whether the reading threads run (``start``, ``set_source`` or the first batch started them)."""
        return bool(self._workers)

    def ready_to_collect(self) -> bool:
        """Whether the next batch in order (or the end of the data) is there already: taking it would not wait."""
        if self._eof or self._failure is not None:
            return True
        if not self._live:
            return False
        return not self._workers[self._live[self._position % len(self._live)]].queue.empty()

    # -- batches -----------------------------------------------------------------------------
    def next_batch(self) -> Batch | None:
        """The next batch in order, or None at the end of the data (epoch mode only)."""
        if self._failure is not None:
            raise self._failure
        if self._eof:
            return None
        self.start()
        while self._live:
            self._position %= len(self._live)
            worker = self._workers[self._live[self._position]]
            item = worker.get()
            if item is _END:
                del self._live[self._position]  # the next worker in turn moves into this place
                continue
            if isinstance(item, _Failure):
                self._failure = item.error
                self.close()
                raise item.error
            self._position += 1
            return item
        self._eof = True
        self.close()
        return None


def _stop_workers(workers: list[_Worker]) -> None:
    for worker in workers:
        worker.stop.set()
    for worker in workers:
        worker.drain()
        worker.thread.join(timeout=5.0)


class _Worker:
    """One reading thread: its files in order (forever when ``repeat``), cut into batches."""

    def __init__(self, source: ChunkSource, file_indices: list[int], batch_size: int, top_names: list[str],
                 repeat: bool, pin_memory: bool, depth: int, part: tuple[int, int] | None = None):
        self.source, self.file_indices, self.batch_size = source, file_indices, batch_size
        self.part = part
        self.top_names, self.repeat, self.pin_memory = top_names, repeat, pin_memory
        # Chunks of whole batches (at least _MIN_CHUNK_ROWS samples): only batches across files get copied.
        self.chunk_rows = batch_size * -(-_MIN_CHUNK_ROWS // batch_size)
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="hugectr-data-reader", daemon=True)

    def get(self):
        """The next item of this worker; raises if the thread died without saying why."""
        while True:
            try:
                return self.queue.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                if not self.thread.is_alive() and self.queue.empty():
                    raise RuntimeError("DataReader: a reader thread stopped without delivering its data") from None

    def drain(self) -> None:
        while True:
            try:
                self.queue.get_nowait()
            except queue.Empty:
                return

    def _put(self, item) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            self._read_all()
        except Exception as error:  # handed to the caller, who re-raises it
            self._put(_Failure(error))

    def _read_all(self) -> None:
        pending: list[Chunk] = []
        rows = 0
        while not self.stop.is_set():
            rows_this_pass = 0
            for index in self.file_indices:
                lacking = (self.batch_size - rows) % self.batch_size   # the pending batch's missing samples
                for chunk in _chunks_naming_file(self.source, index, self.chunk_rows, lacking):
                    if not chunk.rows:
                        continue
                    pending.append(chunk)
                    rows += chunk.rows
                    rows_this_pass += chunk.rows
                    while rows >= self.batch_size:
                        pending, rows, batch = cut(pending, rows, self.batch_size)
                        if not self._put(self._to_batch(batch)):
                            return
            if not self.repeat:
                break
            if rows_this_pass == 0:
                names = [os.path.basename(self.source.files[i]) for i in self.file_indices]
                raise ValueError(f"DataReader: the files {names} hold no samples; repeat mode needs data")
        if rows and not self.stop.is_set():
            self._put(self._to_batch(Chunk.concat(pending)))
        self._put(_END)

    def _to_batch(self, chunk: Chunk) -> Batch:
        """The batch of ``chunk`` (a global batch), or this rank's part of it (views until the tensors)."""
        rows = chunk.rows
        if self.part is not None:
            chunk = chunk.slice(*part_bounds(*self.part, self.batch_size, rows))
        sparse = {top_name: sparse_batch(bags, chunk.rows, self.pin_memory)
                  for top_name, bags in zip(self.top_names, chunk.sparse)}
        batch = Batch(tensor(chunk.label), tensor(chunk.dense), sparse)
        if self.part is not None:
            batch = PartBatch.of(batch, rows)
        # Tensors in pinned memory already (the source wrote them there) are kept as they are, others copied.
        return batch.pin_memory() if self.pin_memory else batch


def _chunks_naming_file(source: ChunkSource, index: int, rows: int, first: int = 0) -> Iterator[Chunk]:
    """The chunks of one file; an error that does not name the file gets its name added.

    A source that ``takes_first_rows`` makes its first chunk ``first`` rows (0: ``rows``), so that the
    chunks after it line up with the batches (sliced as views, never joined by a copy).
    """
    path = source.files[index]
    try:
        if first and getattr(source, "takes_first_rows", False):
            yield from source.read_file(index, rows, first)
        else:
            yield from source.read_file(index, rows)
    except (ValueError, TypeError, OSError) as error:
        if path in str(error) or os.path.basename(path) in str(error):
            raise
        # pyarrow reports damaged pages as OSError: keep the type, add the file.
        kind = type(error) if not isinstance(error, OSError) else OSError
        raise kind(f"DataReader: reading '{path}': {error}") from error
    except Exception as error:
        raise RuntimeError(f"DataReader: reading '{path}' failed: {type(error).__name__}: {error}") from error
