"""The output files of a Criteo conversion, laid out as ``DataGenerator`` lays out its datasets.

Parquet and Norm: ``<output_dir>/train/gen_<k>`` and ``<output_dir>/val/gen_<k>`` files of ``rows_per_file``
samples (the last one fewer), file lists ``file_list.txt`` / ``file_list_test.txt``, and for Parquet a
``_metadata.json`` in each data folder (the generator's column names, each file's own row count). Raw:
``train_data.bin`` / ``test_data.bin``. The generator's writers encode the samples; every file appears
under its name only once complete (temp file + rename).
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..enums import Check_t, DataReaderType_t
from .criteo_text import DENSE_DIM, NUM_SLOT
from .file_list import write_file_list
from .generator import DataGeneratorParams, column_names, parquet_schema
from .norm import NormWriter
from .norm_records import NormLayout
from .raw import SampleLayout, SampleWriter

if TYPE_CHECKING:
    from .criteo import CriteoConversion


class SplitWriter:
    """The files of one split ('train' or 'val'): a new file every ``rows_per_file`` rows (Raw: one file)."""

    def __init__(self, config: CriteoConversion, split: str, slot_size_array: list[int]):
        self.config, self.split, self.kind = config, split, config.format
        self.offsets = np.concatenate([[0], np.cumsum(slot_size_array)[:-1]]).astype(np.int64)
        self.params = DataGeneratorParams(DataReaderType_t.Parquet, 1, DENSE_DIM, NUM_SLOT, config.i64_input_key,
                                          "-", "-", slot_size_array)   # the generator's Parquet schema and names
        self.folder = os.path.join(config.output_dir, "train" if split == "train" else "val")
        self.paths: list[str] = []
        self.rows: list[int] = []
        self._file = None

    def write(self, label: np.ndarray, dense: np.ndarray, ids: np.ndarray) -> None:
        """(n,) labels, (n, 13) dense values, (n, 26) slot-local ids, spread over files of rows_per_file."""
        start, limit = 0, label.shape[0]
        while start < limit:
            if self._file is None:
                self._open()
            room = limit - start if self.kind is DataReaderType_t.Raw else self.config.rows_per_file - self.rows[-1]
            stop = start + min(room, limit - start)
            self._file.write(label[start:stop], dense[start:stop], ids[start:stop])
            self.rows[-1] += stop - start
            start = stop
            if self.kind is not DataReaderType_t.Raw and self.rows[-1] == self.config.rows_per_file:
                self._file.close()
                self._file = None

    def _open(self) -> None:
        k = len(self.paths)
        if self.kind is DataReaderType_t.Raw:
            path = os.path.join(self.config.output_dir, "train_data.bin" if self.split == "train" else "test_data.bin")
            self._file = _RawFile(path, self.config, self.offsets)
        else:
            os.makedirs(self.folder, exist_ok=True)
            ext = "parquet" if self.kind is DataReaderType_t.Parquet else "data"
            path = os.path.join(self.folder, f"gen_{k}.{ext}")
            make = _ParquetFile if self.kind is DataReaderType_t.Parquet else _NormFile
            self._file = make(path, self.config, self.offsets, self.params)
        self.paths.append(path)
        self.rows.append(0)

    def close(self) -> str | None:
        """Finish the files; the source to read them by (file list or Raw file), None when nothing was written."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if not self.paths or self.kind is DataReaderType_t.Raw:
            return self.paths[0] if self.paths else None
        source = os.path.join(self.config.output_dir, "file_list.txt" if self.split == "train"
                              else "file_list_test.txt")
        write_file_list(source, self.paths)
        if self.kind is DataReaderType_t.Parquet:
            _write_metadata(self.folder, self.paths, self.rows, self.params)
        return source

    def abort(self) -> None:
        if self._file is not None:
            self._file.abort()
            self._file = None


class _ParquetFile:
    def __init__(self, path: str, config: CriteoConversion, offsets: np.ndarray, params: DataGeneratorParams):
        self.path, self.schema = path, parquet_schema(params)
        self.key = np.int64 if config.i64_input_key else np.uint32
        self.writer = pq.ParquetWriter(f"{path}.tmp", self.schema)

    def write(self, label: np.ndarray, dense: np.ndarray, ids: np.ndarray) -> None:
        columns = [label, *dense.T, *ids.astype(self.key).T]     # a column per field, as the schema lists them
        self.writer.write_table(pa.Table.from_arrays([pa.array(c) for c in columns], schema=self.schema))

    def close(self) -> None:
        self.writer.close()
        os.replace(f"{self.path}.tmp", self.path)

    def abort(self) -> None:
        self.writer.close()
        os.remove(f"{self.path}.tmp")


class _NormFile:
    def __init__(self, path: str, config: CriteoConversion, offsets: np.ndarray, params: DataGeneratorParams):
        layout = NormLayout(1, DENSE_DIM, NUM_SLOT, 8 if config.i64_input_key else 4,
                            config.check_type is Check_t.Sum)
        self.offsets = offsets
        self.writer = NormWriter(path, layout)   # the last file holds fewer rows: count patched on close

    def write(self, label: np.ndarray, dense: np.ndarray, ids: np.ndarray) -> None:
        floats = np.concatenate([label[:, None], dense], axis=1)             # (n, 1 + 13)
        self.writer.write(floats, np.ones(ids.shape, np.int64), ids + self.offsets[None, :])

    def close(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        self.writer.__exit__(ValueError, None, None)


class _RawFile:
    def __init__(self, path: str, config: CriteoConversion, offsets: np.ndarray):
        number = "<f4" if config.float_label_dense else "<i4"
        # HugeCTR's Raw reader reads 4-byte keys: int32 (sign-extended) with i64_input_key, else uint32.
        layout = SampleLayout(1, DENSE_DIM, number, number, "<i4" if config.i64_input_key else "<u4",
                              (1,) * NUM_SLOT, (NUM_SLOT,))
        self.offsets = offsets
        self.writer = SampleWriter(path, layout)

    def write(self, label: np.ndarray, dense: np.ndarray, ids: np.ndarray) -> None:
        self.writer.write(label[:, None], dense, ids + self.offsets[None, :])

    def close(self) -> None:
        self.writer.__exit__(None, None, None)

    def abort(self) -> None:
        self.writer.__exit__(ValueError, None, None)


def _write_metadata(folder: str, paths: list[str], rows: list[int], params: DataGeneratorParams) -> None:
    """The generator's ``_metadata.json``, with each file's own row count."""
    columns = [{"col_name": name, "index": i} for i, name in enumerate(column_names(params))]
    metadata = {"file_stats": [{"file_name": p, "num_rows": n} for p, n in zip(paths, rows)],
                "labels": columns[:1], "conts": columns[1:1 + DENSE_DIM], "cats": columns[1 + DENSE_DIM:]}
    path = os.path.join(folder, "_metadata.json")
    with open(f"{path}.tmp", "w", encoding="utf-8") as stream:
        json.dump(metadata, stream)
    os.replace(f"{path}.tmp", path)
