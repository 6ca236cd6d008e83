"""HugeCTR's RawAsync format (the multi-hot "async" reader): one binary file of fixed-size samples.

A sample is ``int32 label[label_dim]`` (labels are always int: HugeCTR casts them to float),
``dense[dense_dim]`` (float32 with ``AsyncParam.is_dense_float``, else int32 read as ``log(x + 1)``),
then for every slot ``nnz_per_slot[k]`` keys (static hotness): uint32, or int64 with ``i64_input_key``.
No slot offsets are added. The file holds ``file size / sample size`` samples; a trailing partial
sample is an error here (HugeCTR ignores it). ``AsyncParam.shuffle`` permutes the order of the
batches (never the samples inside one), the same permutation every pass, seeded with the solver's
seed; HugeCTR draws it with ``std::mt19937`` + ``std::shuffle``, this uses NumPy's generator, so the
order differs from HugeCTR's but is just as fixed. A partial last batch stays last.
EXTENSION: HugeCTR needs exactly one sparse input (or the embedding collection); several
``DataReaderSparseParam``s take the key columns in order, as the Raw reader does.
"""

from __future__ import annotations

import numpy as np

from ..params import DataReaderParams, Input
from .raw import FixedSampleSource, SampleLayout, check_file, cut_off
from .reader import SourceOptions


def raw_async_layout(input: Input, is_dense_float: bool, i64_input_key: bool) -> SampleLayout:
    """The sample of the multi-hot async reader for ``input``."""
    params = input.data_reader_sparse_param_array
    nnz = tuple(n for p in params for n in p.nnz_per_slot)
    return SampleLayout(input.label_dim, input.dense_dim, "<i4", "<f4" if is_dense_float else "<i4",
                        "<i8" if i64_input_key else "<u4", nnz, tuple(p.slot_num for p in params))


def batch_order(batches: int, samples: int, batch_size: int, seed: int) -> np.ndarray:
    """The shuffled order of ``batches`` batches; a partial last batch (samples % batch_size) stays last.

    >>> batch_order(5, 10, 2, seed=3).tolist() == batch_order(5, 10, 2, seed=3).tolist()
    True
    >>> int(batch_order(5, 9, 2, seed=3)[-1])
    4
    """
    full = samples // batch_size
    order = np.random.default_rng(seed).permutation(full)
    return np.concatenate([order, np.arange(full, batches)]).astype(np.int64)


def raw_async_source(source: str, input: Input, reader_params: DataReaderParams, i64_input_key: bool,
                     options: SourceOptions) -> FixedSampleSource:
    """The RawAsync file ``source``, batches of ``options.batch_size`` in ``async_param``'s order."""
    async_param = reader_params.async_param
    if not async_param.multi_hot_reader and any(n != 1 for p in input.data_reader_sparse_param_array
                                                for n in p.nnz_per_slot):
        raise ValueError("RawAsync: AsyncParam(multi_hot_reader=False) reads one key per slot, but the Input's "
                         "DataReaderSparseParams have nnz_per_slot > 1; pass "
                         "async_param=hugectr.AsyncParam(..., multi_hot_reader=True)")
    layout = raw_async_layout(input, async_param.is_dense_float, i64_input_key)
    size = check_file(source, "RawAsync", reader_params.data_source_params)
    if size % layout.sample_bytes:
        raise ValueError(f"RawAsync: '{source}' has {size} bytes, not a multiple of the {layout.sample_bytes}-byte "
                         f"sample ({input.label_dim} int32 labels, {input.dense_dim} "
                         f"{'float32' if async_param.is_dense_float else 'int32'} dense values, {sum(layout.nnz)} "
                         f"{'int64' if i64_input_key else 'uint32'} keys for nnz_per_slot {list(layout.nnz)}): "
                         f"{cut_off(size, layout.sample_bytes)}. The file is truncated (re-copy or regenerate it) "
                         "or was written with another layout (check is_dense_float, i64_input_key and nnz_per_slot)")
    samples, batch_size = size // layout.sample_bytes, options.batch_size
    order = None
    if async_param.shuffle and batch_size > 0:
        order = batch_order(-(-samples // batch_size), samples, batch_size, options.seed)
    return FixedSampleSource(source, layout, samples, batch_size, options.workers, order,
                             data_source_params=reader_params.data_source_params)
