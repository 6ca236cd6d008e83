"""``hugectr.tools.DataGeneratorParams`` / ``DataGenerator``: synthetic datasets in HugeCTR's layouts.

Parquet (as HugeCTR's generator): ``<dir(source)>/train/gen_<k>.parquet`` and
``<dir(eval_source)>/val/gen_<k>.parquet``, file lists at ``source`` / ``eval_source``, and a
``_metadata.json`` in each data folder: labels ``label<i>`` at index i, dense ``C<i>`` and cats
``C<i>`` at their column index i. Labels and dense are U[0, 1) float32 (soft labels), keys are
slot-local in [0, slot_size) (uint32, or int64 with ``i64_input_key``), uniform or power law;
a slot with ``nnz_array[k] > 1`` is a list column with 1 + rand() % nnz keys per sample.
The data columns carry the names that ``_metadata.json`` gives them.

Norm (as HugeCTR's): ``<dir(source)>/train/gen_<k>.data`` (``num_files``) and
``<dir(eval_source)>/val/gen_<k>.data`` (``eval_num_files``), ``num_samples_per_file`` records each,
file lists at ``source`` / ``eval_source``; ``check_type`` frames the records (Check_t.Sum: length,
payload, checksum, the header included). Labels and dense U[0, 1) float32; exactly ``nnz_array[k]``
keys in slot k, *globally* offset: in [sum(slot_size_array[:k]), sum(slot_size_array[:k + 1])).

Raw (as HugeCTR's): one file at ``source`` (``num_samples`` samples) and one at ``eval_source``
(``eval_num_samples``), no header, ``check_type`` forced to Non. Sample i: label_dim labels i % 2,
dense_dim values j (the column index), both float32 with ``float_label_dense`` else ints of the key
width, then ``nnz_array[k]`` slot-local keys per slot, uint32 or int64 (``i64_input_key``). So with
``i64_input_key=True`` labels, dense values and keys are 8 bytes wide, which HugeCTR's own Raw
reader (4-byte keys) cannot read either; that reader checks the size and says so.

EXTENSIONS (keyword-only, not in HugeCTR): ``seed`` makes the data reproducible (HugeCTR seeds
from ``std::random_device``; None keeps that behaviour) and ``planted_signal`` draws the labels
from a hidden model (see ``planted.py``; Norm and Raw store no ``true_probability``).
HugeCTR's Norm file list names every file twice (a bug: N, the N paths, then the N paths again);
the list written here has each path once.
"""

from __future__ import annotations

import copy
import json
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .. import log
from ..distributed import launch
from .._checks import (bind_arguments, reject_unknown_keywords, require_bool, require_int, require_int_list,
                       require_number, require_str)
from ..enums import Check_t, DataReaderType_t, Distribution_t, PowerLaw_t, coerce
from .file_list import write_file_list
from .norm import NormWriter
from .norm_records import NormLayout
from .planted import PROBABILITY_COLUMN, PlantedSignal
from .raw import SampleLayout, SampleWriter

_NAMES = ["format", "label_dim", "dense_dim", "num_slot", "i64_input_key", "source", "eval_source", "slot_size_array",
          "nnz_array", "check_type", "dist_type", "power_law_type", "alpha", "num_files", "eval_num_files",
          "num_samples_per_file", "num_samples", "eval_num_samples", "float_label_dense", "num_threads"]
_DEFAULTS = {"nnz_array": list, "check_type": Check_t.Sum, "dist_type": Distribution_t.PowerLaw,
             "power_law_type": PowerLaw_t.Specific, "alpha": 1.2, "num_files": 128, "eval_num_files": 32,
             "num_samples_per_file": 40960, "num_samples": 5242880, "eval_num_samples": 1310720,
             "float_label_dense": False, "num_threads": 1}
_EXTENSIONS = {"planted_signal": None, "seed": None}
_ALPHAS = {PowerLaw_t.Long: 0.9, PowerLaw_t.Medium: 1.1, PowerLaw_t.Short: 1.3}
ROWS_PER_PIECE = 1 << 17  # rows generated and written at a time: bounded memory for big files


class DataGeneratorParams:
    """What to generate; HugeCTR's positional order and defaults, every field a read/write attribute.

    >>> p = DataGeneratorParams(DataReaderType_t.Parquet, 1, 2, 3, False, "d/list.txt", "d/test.txt", [5, 6, 7])
    >>> p.nnz_array, p.alpha, p.num_files
    ([1, 1, 1], 1.2, 128)
    """

    def __init__(self, *args, **kwargs):
        extensions = {name: kwargs.pop(name, default) for name, default in _EXTENSIONS.items()}
        try:
            bound = bind_arguments("DataGeneratorParams", _NAMES, args, kwargs, _DEFAULTS)
        except TypeError as error:
            if "unknown keyword" in str(error):  # list the extensions among the valid keywords too
                reject_unknown_keywords("DataGeneratorParams", kwargs, [*_NAMES, *_EXTENSIONS])
            raise
        self.__dict__.update(bound)
        self.__dict__.update(extensions)
        self.validate()

    def validate(self) -> None:
        """HugeCTR's checks (also run by ``generate()``, since every field can be reassigned)."""
        owner = "DataGeneratorParams"
        self.format = coerce(DataReaderType_t, self.format, f"{owner}: format")
        self.check_type = coerce(Check_t, self.check_type, f"{owner}: check_type")
        self.dist_type = coerce(Distribution_t, self.dist_type, f"{owner}: dist_type")
        self.power_law_type = coerce(PowerLaw_t, self.power_law_type, f"{owner}: power_law_type")
        require_int(owner, "label_dim", self.label_dim, minimum=1)
        require_int(owner, "dense_dim", self.dense_dim, minimum=0)
        require_int(owner, "num_slot", self.num_slot, minimum=1)
        for name in ("num_files", "eval_num_files", "num_samples_per_file", "num_samples", "eval_num_samples",
                     "num_threads"):
            require_int(owner, name, getattr(self, name), minimum=1)
        for name in ("i64_input_key", "float_label_dense"):
            setattr(self, name, require_bool(owner, name, getattr(self, name)))
        for name in ("source", "eval_source"):
            require_str(owner, name, getattr(self, name), allow_empty=False)
        self.alpha = require_number(owner, "alpha", self.alpha)
        self.slot_size_array = require_int_list(owner, "slot_size_array", self.slot_size_array)
        self.nnz_array = require_int_list(owner, "nnz_array", self.nnz_array) or [1] * self.num_slot
        for name in ("slot_size_array", "nnz_array"):
            values = getattr(self, name)
            if len(values) != self.num_slot or any(v < 1 for v in values):
                raise ValueError(f"{owner}: {name} must hold num_slot={self.num_slot} positive ints (one per slot), "
                                 f"got {values}")
        if self.dist_type is Distribution_t.PowerLaw and self.power_law_type is PowerLaw_t.Specific \
                and (self.alpha <= 0 or abs(self.alpha - 1.0) < 1e-6):
            raise ValueError(f"{owner}: alpha must be > 0 and != 1.0 for a PowerLaw_t.Specific power law, "
                             f"got {self.alpha}")
        if self.planted_signal is not None and not isinstance(self.planted_signal, PlantedSignal):
            raise TypeError(f"{owner}: planted_signal must be a PlantedSignal or None, got {self.planted_signal!r}")
        if self.seed is not None:
            require_int(owner, "seed", self.seed, minimum=0)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in [*_NAMES, *_EXTENSIONS])
        return f"DataGeneratorParams({fields})"


class DataGenerator:
    """``DataGenerator(data_generator_params).generate()`` writes the dataset the params describe."""

    def __init__(self, data_generator_params: DataGeneratorParams):
        if not isinstance(data_generator_params, DataGeneratorParams):
            raise TypeError(f"DataGenerator: expected a DataGeneratorParams, got {data_generator_params!r}")
        self.data_generator_params = copy.deepcopy(data_generator_params)  # HugeCTR keeps a copy
        if self.data_generator_params.format is DataReaderType_t.Raw:
            self.data_generator_params.check_type = Check_t.Non  # as HugeCTR: Raw has no checksums

    def generate(self) -> None:
        params = self.data_generator_params
        params.validate()
        writer = _WRITERS.get(params.format)
        if writer is None:
            raise ValueError(f"DataGenerator: HugeCTR's generator writes Norm, Raw and Parquet, not {params.format}; "
                             "write RawAsync data as Raw")
        # Once for all ranks: a plain script with several GPUs runs in every rank (hugectr.distributed.launch).
        launch.once_across_ranks(lambda: writer(params))


def power_law_alpha(params: DataGeneratorParams) -> float | None:
    """The power-law exponent the params ask for, or None for uniform keys."""
    if params.dist_type is not Distribution_t.PowerLaw:
        return None
    return _ALPHAS.get(params.power_law_type, params.alpha)


def sample_keys(rng: np.random.Generator, count: int, slot_size: int, alpha: float | None) -> np.ndarray:
    """``count`` slot-local keys in [0, slot_size): uniform, or HugeCTR's power law.

    HugeCTR inverts the CDF of p(y) ~ y^-alpha on [1, slot_size] and rounds:
    key = round(((slot_size^(1-a) - 1) * x + 1)^(1/(1-a))) - 1 with x ~ U[0, 1).
    """
    if alpha is None:
        return rng.integers(0, slot_size, size=count, dtype=np.int64)
    x = rng.random(count)
    exponent = 1.0 - alpha
    y = ((float(slot_size) ** exponent - 1.0) * x + 1.0) ** (1.0 / exponent)
    return np.clip(np.floor(y + 0.5).astype(np.int64) - 1, 0, slot_size - 1)  # C++ round: half away from 0


def _write_file_sets(params: DataGeneratorParams, extension: str, write_file, finish=None) -> None:
    """The train and eval sets: ``{folder}/gen_{k}.{extension}`` written by ``write_file(path, seed)`` in
    ``num_threads`` threads (each file its own seed, so the bytes do not depend on the thread count), then
    the file list and ``finish(folder, paths)`` if given."""
    train_seeds, eval_seeds = np.random.SeedSequence(params.seed).spawn(2)
    for file_list, folder, count, seeds in ((params.source, "train", params.num_files, train_seeds),
                                            (params.eval_source, "val", params.eval_num_files, eval_seeds)):
        prefix = os.path.join(os.path.dirname(file_list), folder, "gen_")
        os.makedirs(os.path.dirname(prefix), exist_ok=True)
        paths = [f"{prefix}{k}.{extension}" for k in range(count)]
        jobs = list(zip(paths, seeds.spawn(count)))
        with ThreadPoolExecutor(max_workers=params.num_threads) as pool:
            list(pool.map(lambda job: write_file(*job), jobs))
        write_file_list(file_list, paths)
        if finish is not None:
            finish(os.path.dirname(prefix), paths)
        log.info(f"{file_list} done!")


def _write_parquet(params: DataGeneratorParams) -> None:
    alpha = power_law_alpha(params)
    log.info("Generate Parquet dataset")
    log.info(f"train data folder: {os.path.dirname(params.source)}, eval data folder: "
             f"{os.path.dirname(params.eval_source)}, slot_size_array: {params.slot_size_array}, nnz array: "
             f"{params.nnz_array}, #files for train: {params.num_files}, #files for eval: {params.eval_num_files}, "
             f"#samples per file: {params.num_samples_per_file}, Use power law distribution: {alpha is not None}, "
             f"alpha of power law: {alpha or 0.0}")
    _write_file_sets(params, "parquet", lambda path, seed: _write_parquet_file(params, alpha, path, seed),
                     finish=lambda folder, paths: _write_metadata(folder, paths, params))


def _write_parquet_file(params: DataGeneratorParams, alpha: float | None, path: str,
                        seed: np.random.SeedSequence) -> None:
    rng = np.random.default_rng(seed)
    schema = parquet_schema(params)
    temporary = f"{path}.tmp"
    with pq.ParquetWriter(temporary, schema) as writer:
        for start in range(0, params.num_samples_per_file, ROWS_PER_PIECE):
            rows = min(ROWS_PER_PIECE, params.num_samples_per_file - start)
            writer.write_table(_sample_table(params, alpha, rng, rows, schema))
    os.replace(temporary, path)  # a crash never leaves a truncated gen_<k>.parquet


def parquet_schema(params: DataGeneratorParams) -> pa.Schema:
    """The generator's Parquet schema: float32 labels and dense, then one key column per slot (a list if nnz > 1).

    >>> p = DataGeneratorParams(DataReaderType_t.Parquet, 1, 1, 2, False, "l.txt", "t.txt", [4, 5], [1, 3])
    >>> [str(f.type) for f in parquet_schema(p)]
    ['float', 'float', 'uint32', 'list<item: uint32>']
    """
    key = pa.int64() if params.i64_input_key else pa.uint32()
    names, floats = column_names(params), params.label_dim + params.dense_dim
    fields = [pa.field(name, pa.float32(), nullable=False) for name in names[:floats]]
    for name, nnz in zip(names[floats:], params.nnz_array):
        fields.append(pa.field(name, key if nnz == 1 else pa.list_(key), nullable=False))
    if params.planted_signal is not None:
        fields += [pa.field(name, pa.float32(), nullable=False) for name in _probability_names(params.label_dim)]
    return pa.schema(fields)


def _sample_table(params: DataGeneratorParams, alpha: float | None, rng: np.random.Generator, rows: int,
                  schema: pa.Schema) -> pa.Table:
    labels = rng.random((params.label_dim, rows), dtype=np.float32)  # (label_dim, n)
    dense = rng.random((params.dense_dim, rows), dtype=np.float32)   # (dense_dim, n)
    slots = []  # (bag sizes or None, keys) per slot
    for size, nnz in zip(params.slot_size_array, params.nnz_array):
        sizes = None if nnz == 1 else 1 + rng.integers(0, nnz, size=rows)  # 1 + rand() % nnz
        slots.append((sizes, sample_keys(rng, rows if sizes is None else int(sizes.sum()), size, alpha)))
    columns = list(labels) + list(dense)
    if params.planted_signal is not None:
        probabilities = params.planted_signal.probabilities(dense, slots, params.label_dim)
        labels = (rng.random(probabilities.shape) < probabilities).astype(np.float32)
        columns = list(labels) + list(dense)
    first_cat = len(columns)
    for (sizes, keys), field in zip(slots, [schema.field(first_cat + s) for s in range(params.num_slot)]):
        kind = field.type if sizes is None else field.type.value_type
        values = pa.array(keys.astype(kind.to_pandas_dtype()), type=kind)
        if sizes is not None:
            offsets = np.zeros(rows + 1, dtype=np.int32)
            np.cumsum(sizes, out=offsets[1:])
            values = pa.ListArray.from_arrays(pa.array(offsets), values)
        columns.append(values)
    if params.planted_signal is not None:
        columns += [p.astype(np.float32) for p in probabilities]
    return pa.Table.from_arrays([pa.array(c) if isinstance(c, np.ndarray) else c for c in columns], schema=schema)


def column_names(params: DataGeneratorParams) -> list[str]:
    """HugeCTR's names: label<i> for the labels, C<i> (i = column index) for dense and cats."""
    labels = [f"label{i}" for i in range(params.label_dim)]
    return labels + [f"C{i}" for i in range(params.label_dim, params.label_dim + params.dense_dim + params.num_slot)]


def _probability_names(label_dim: int) -> list[str]:
    return [PROBABILITY_COLUMN] + [f"{PROBABILITY_COLUMN}_{j}" for j in range(1, label_dim)]


def _write_metadata(folder: str, paths: list[str], params: DataGeneratorParams) -> None:
    names = column_names(params)
    first_cat = params.label_dim + params.dense_dim
    columns = [{"col_name": name, "index": i} for i, name in enumerate(names)]
    metadata = {"file_stats": [{"file_name": path, "num_rows": params.num_samples_per_file} for path in paths],
                "labels": columns[:params.label_dim], "conts": columns[params.label_dim:first_cat],
                "cats": columns[first_cat:]}
    path = os.path.join(folder, "_metadata.json")
    with open(f"{path}.tmp", "w", encoding="utf-8") as stream:
        json.dump(metadata, stream)
    os.replace(f"{path}.tmp", path)


def _keys_per_sample(params: DataGeneratorParams, alpha: float | None, rng: np.random.Generator, rows: int,
                     offsets: np.ndarray) -> tuple[np.ndarray, list]:
    """(rows, sum(nnz_array)) keys, exactly nnz_array[k] in slot k, plus ``offsets[k]``; and the slot-local
    (None, keys) pairs a planted signal reads."""
    blocks, slots = [], []
    for size, nnz, offset in zip(params.slot_size_array, params.nnz_array, offsets):
        local = sample_keys(rng, rows * nnz, size, alpha)
        slots.append((None if nnz == 1 else np.full(rows, nnz), local))
        blocks.append(local.reshape(rows, nnz) + offset)
    return np.concatenate(blocks, axis=1), slots


def _labels(params: DataGeneratorParams, rng: np.random.Generator, dense: np.ndarray, slots: list,
            default: np.ndarray) -> np.ndarray:
    """(rows, label_dim) labels: ``default``, or drawn from the planted model when there is one."""
    if params.planted_signal is None:
        return default
    probabilities = params.planted_signal.probabilities(dense.T, slots, params.label_dim)  # (label_dim, n)
    return (rng.random(probabilities.shape) < probabilities).T.astype(default.dtype)


def _write_norm(params: DataGeneratorParams) -> None:
    alpha = power_law_alpha(params)
    log.info("Generate Norm dataset")
    log.info(f"train data folder: {os.path.dirname(params.source)}, eval data folder: "
             f"{os.path.dirname(params.eval_source)}, slot_size_array: {params.slot_size_array}, nnz array: "
             f"{params.nnz_array}, #files for train: {params.num_files}, #files for eval: {params.eval_num_files}, "
             f"#threads: {params.num_threads}, #samples per file: {params.num_samples_per_file}, Use power law "
             f"distribution: {alpha is not None}, alpha of power law: {alpha or 0.0}")
    layout = NormLayout(params.label_dim, params.dense_dim, params.num_slot, 8 if params.i64_input_key else 4,
                        params.check_type is Check_t.Sum)
    _write_file_sets(params, "data", lambda path, seed: _write_norm_file(params, layout, alpha, path, seed))


def _write_norm_file(params: DataGeneratorParams, layout: NormLayout, alpha: float | None, path: str,
                     seed: np.random.SeedSequence) -> None:
    rng = np.random.default_rng(seed)
    offsets = np.concatenate([[0], np.cumsum(params.slot_size_array, dtype=np.int64)[:-1]])
    nnz = np.array(params.nnz_array, np.int64)
    with NormWriter(path, layout, params.num_samples_per_file) as writer:
        for start in range(0, params.num_samples_per_file, ROWS_PER_PIECE):
            rows = min(ROWS_PER_PIECE, params.num_samples_per_file - start)
            floats = rng.random((rows, params.label_dim + params.dense_dim), dtype=np.float32)
            keys, slots = _keys_per_sample(params, alpha, rng, rows, offsets)
            floats[:, :params.label_dim] = _labels(params, rng, floats[:, params.label_dim:], slots,
                                                   floats[:, :params.label_dim])
            writer.write(floats, np.broadcast_to(nnz, (rows, nnz.size)), keys)


def _write_raw(params: DataGeneratorParams) -> None:
    alpha = power_law_alpha(params)
    log.info("Generate Raw dataset")
    log.info(f"train data folder: {os.path.dirname(params.source)}, eval data folder: "
             f"{os.path.dirname(params.eval_source)}, slot_size_array: {params.slot_size_array}, nnz array: "
             f"{params.nnz_array}, Number of train samples: {params.num_samples}, Number of eval samples: "
             f"{params.eval_num_samples}, Use power law distribution: {alpha is not None}, alpha of power law: "
             f"{alpha or 0.0}")
    key = "<i8" if params.i64_input_key else "<u4"
    number = "<f4" if params.float_label_dense else key     # HugeCTR writes int labels / dense as the key type
    layout = SampleLayout(params.label_dim, params.dense_dim, number, number, key, tuple(params.nnz_array),
                          (params.num_slot,))
    seeds = np.random.SeedSequence(params.seed).spawn(2)
    for path, count, seed in ((params.source, params.num_samples, seeds[0]),
                              (params.eval_source, params.eval_num_samples, seeds[1])):
        if os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        rng = np.random.default_rng(seed)
        with SampleWriter(path, layout) as writer:
            for start in range(0, count, ROWS_PER_PIECE):
                rows = min(ROWS_PER_PIECE, count - start)
                index = np.arange(start, start + rows)
                dense = np.broadcast_to(np.arange(params.dense_dim, dtype=np.float32), (rows, params.dense_dim))
                keys, slots = _keys_per_sample(params, alpha, rng, rows, np.zeros(params.num_slot, np.int64))
                labels = np.repeat((index % 2)[:, None], params.label_dim, axis=1)
                # Raw dense values are the column indices, the same in every sample: they would only shift
                # the planted logit (far, as they are not in [0, 1)), so the planted model sees the keys alone.
                writer.write(_labels(params, rng, dense[:, :0], slots, labels), dense, keys)
        log.info(f"{path} done!")


# One writer per format.
_WRITERS = {DataReaderType_t.Parquet: _write_parquet, DataReaderType_t.Norm: _write_norm,
            DataReaderType_t.Raw: _write_raw}
