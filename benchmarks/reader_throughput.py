"""Samples/s of each data reader on Criteo-shaped files, against a plain pyarrow / NumPy read of the same bytes.

    python benchmarks/reader_throughput.py                          # 4M samples, 1..16 workers (as cores allow)
    python benchmarks/reader_throughput.py --samples 262144 --batch-size 16384     # small: ~1 minute on 2 cores
    python benchmarks/reader_throughput.py --readers Parquet Raw --workers 1 2 4 8 16    # some readers only

Writes Criteo-shaped data (1 label, 13 dense, 26 one-hot slots of the Criteo-Kaggle cardinalities) with
``hugectr.tools.DataGenerator``: Parquet and Norm (Check_t.Sum, fixed nnz = 1) as one file per worker of the
largest worker count, and one Raw file (int label / dense, uint32 keys) that both the Raw and the RawAsync
(is_dense_float=False) readers read. Each reader then delivers every batch of the data through
``DataReader`` with 1, 2, 4, 8, 16 workers (those the machine has cores for), as training gets them
(pinned when CUDA is there, unless --no-pin). The plain read decodes the same files with the same number
of threads into float32 label / dense and int64 keys with nothing else: pyarrow ``read_table`` per file,
NumPy structured views of Norm records, of Raw records (with Raw's log(x + 1) of the int dense values).
Prints one table and, per reader, the workers needed for 2x the H100 training rate of the DLRM workload
(the best of README's last H100 runs, 9.44 M samples/s). The Model itself gives Parquet
min(num_workers, #files, #GPUs) workers, as HugeCTR does: one per GPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

import hugectr
from hugectr import Check_t, DataReaderType_t, Distribution_t
from hugectr.data.file_list import read_file_list
from hugectr.data.reader import DataReader, SourceOptions
from hugectr.tools import DataGenerator, DataGeneratorParams

sys.path.insert(0, str(Path(__file__).parent))
from workloads import KAGGLE_CARDINALITIES  # noqa: E402

H100_DLRM_SAMPLES_PER_S = 9.44e6      # README: best of the last H100 runs of train_throughput.py (bf16, batch 65536)
DENSE, SLOTS = 13, 26
READERS = ("Parquet", "Norm", "Raw", "RawAsync")


def generate(folder: Path, samples: int, files: int, slot_sizes: list[int]) -> dict[str, str]:
    """The datasets, generated once per folder: {reader: source}."""
    per_file = -(-samples // files)
    sources = {}
    for kind, name in ((DataReaderType_t.Parquet, "parquet"), (DataReaderType_t.Norm, "norm"),
                       (DataReaderType_t.Raw, "raw")):
        raw = kind is DataReaderType_t.Raw
        source = str(folder / name / ("train.bin" if raw else "file_list.txt"))
        eval_source = str(folder / name / ("eval.bin" if raw else "file_list_test.txt"))
        if not os.path.exists(source):
            DataGenerator(DataGeneratorParams(
                kind, 1, DENSE, SLOTS, False, source, eval_source, slot_sizes, check_type=Check_t.Sum,
                dist_type=Distribution_t.Uniform, num_files=files, eval_num_files=1, num_samples_per_file=per_file,
                num_samples=per_file * files, eval_num_samples=1, num_threads=os.cpu_count() or 1,
                seed=0)).generate()
        sources[name] = source
    return {"Parquet": sources["parquet"], "Norm": sources["norm"], "Raw": sources["raw"],
            "RawAsync": sources["raw"]}


def make_reader(kind: str, source: str, workers: int, batch_size: int, samples: int, slot_sizes: list[int],
                pin: bool) -> DataReader:
    async_param = hugectr.AsyncParam(num_threads=workers, num_batches_per_thread=4, shuffle=False,
                                     is_dense_float=False, multi_hot_reader=True)
    params = hugectr.DataReaderParams(
        data_reader_type=getattr(DataReaderType_t, kind), source=[source], eval_source=source,
        check_type=Check_t.Sum if kind == "Norm" else Check_t.Non, num_samples=samples, eval_num_samples=samples,
        float_label_dense=False, num_workers=workers, slot_size_array=slot_sizes if kind == "Parquet" else [],
        async_param=async_param)
    model_input = hugectr.Input(label_dim=1, label_name="label", dense_dim=DENSE, dense_name="dense",
                                data_reader_sparse_param_array=[hugectr.DataReaderSparseParam("data", 1, True, SLOTS)])
    return DataReader(params, model_input, batch_size, source, repeat=False, i64_input_key=False,
                      num_workers=workers, pin_memory=pin, source_options=SourceOptions(num_samples=samples))


def time_reader(kind: str, source: str, workers: int, batch_size: int, samples: int, slot_sizes: list[int],
                pin: bool) -> float:
    """Samples/s of one pass through every batch."""
    reader = make_reader(kind, source, workers, batch_size, samples, slot_sizes, pin)
    delivered = 0
    start = time.perf_counter()
    with reader:
        while (batch := reader.next_batch()) is not None:
            delivered += batch.size
    elapsed = time.perf_counter() - start
    if delivered != samples:
        raise RuntimeError(f"{kind}: the reader delivered {delivered} samples, the data holds {samples}")
    return delivered / elapsed


# -- plain reads: the same bytes decoded to float32 label / dense and int64 keys, nothing more -------------
def _plain_parquet(path: str) -> int:
    table = pq.read_table(path, use_threads=False)
    floats = np.stack([table.column(i).to_numpy() for i in range(1 + DENSE)], axis=1)     # (n, 14)
    keys = np.stack([table.column(i).to_numpy().astype(np.int64) for i in range(1 + DENSE, table.num_columns)],
                    axis=1)                                                                 # (n, 26)
    return min(len(floats), len(keys))


def _norm_record() -> np.dtype:
    slot = np.dtype([("nnz", "<i4"), ("key", "<u4")])
    return np.dtype([("length", "<i4"), ("floats", "<f4", (1 + DENSE,)), ("slots", slot, (SLOTS,)), ("sum", "u1")])


def _plain_norm(path: str) -> int:
    data = np.fromfile(path, np.uint8)
    records = data[69:].view(_norm_record())          # a Check_t.Sum header record is 4 + 64 + 1 bytes
    floats = np.ascontiguousarray(records["floats"])
    keys = records["slots"]["key"].astype(np.int64)
    return min(len(floats), len(keys))


def _raw_record() -> np.dtype:
    return np.dtype([("label", "<i4", (1,)), ("dense", "<i4", (DENSE,)), ("keys", "<u4", (SLOTS,))])


def _plain_raw(part: tuple[str, int, int]) -> int:
    path, start, stop = part
    records = np.memmap(path, _raw_record(), mode="r")[start:stop]
    label = records["label"].astype(np.float32)
    dense = np.log(records["dense"].astype(np.float32) + np.float32(1))
    keys = records["keys"].astype(np.int64)
    return min(len(label), len(dense), len(keys))


def time_plain(kind: str, source: str, workers: int, samples: int) -> float:
    """Samples/s of a plain read with ``workers`` threads: one file each (Parquet, Norm), or a range of the
    one Raw file each."""
    if kind in ("Parquet", "Norm"):
        work, read = read_file_list(source), (_plain_parquet if kind == "Parquet" else _plain_norm)
    else:
        bounds = np.linspace(0, samples, workers + 1).astype(int)
        work, read = [(source, a, b) for a, b in zip(bounds[:-1], bounds[1:])], _plain_raw
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        delivered = sum(pool.map(read, work))
    elapsed = time.perf_counter() - start
    if delivered != samples:
        raise RuntimeError(f"plain {kind}: read {delivered} samples, the data holds {samples}")
    return delivered / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=1 << 22, help="samples in each dataset")
    parser.add_argument("--batch-size", type=int, default=65536)
    parser.add_argument("--workers", type=int, nargs="*", default=None,
                        help="worker counts (default: 1, 2, 4, 8, 16 up to the number of cores)")
    parser.add_argument("--repeats", type=int, default=3, help="passes per measurement; the best one counts")
    parser.add_argument("--data-dir", default=None, help="keep the generated data here (default: a temp folder)")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="never pin batches")
    parser.add_argument("--readers", nargs="*", choices=READERS, default=list(READERS),
                        help="the readers to time (default: all)")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    workers = args.workers or [w for w in (1, 2, 4, 8, 16) if w <= cores]
    slot_sizes = list(KAGGLE_CARDINALITIES)
    pin = args.pin and torch.cuda.is_available()
    os.environ.setdefault("HUGECTR_LOG_LEVEL", "0")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(args.data_dir or scratch)
        samples = max(workers) * -(-args.samples // max(workers))      # whole files for every worker
        started = time.perf_counter()
        sources = generate(folder, samples, max(workers), slot_sizes)
        print(f"# {samples:,} Criteo-shaped samples per format ({DENSE} dense, {SLOTS} one-hot slots), "
              f"batch {args.batch_size}, {cores} cores, pinned: {pin}; generated in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        rows = []
        for kind in args.readers:
            time_reader(kind, sources[kind], 1, args.batch_size, samples, slot_sizes, pin)   # warm-up, untimed
            for count in workers:
                ours, plain = 0.0, 0.0
                for _ in range(args.repeats):    # alternate the two, so a busy moment hurts both alike
                    ours = max(ours, time_reader(kind, sources[kind], count, args.batch_size, samples, slot_sizes,
                                                 pin))
                    plain = max(plain, time_plain(kind, sources[kind], count, samples))
                rows.append((kind, count, ours, plain))
    print_table(rows, args.readers)


def print_table(rows: list[tuple[str, int, float, float]], readers=READERS) -> None:
    target = 2 * H100_DLRM_SAMPLES_PER_S
    print(f"{'reader':<9} {'workers':>7} {'hugectr M samples/s':>20} {'plain M samples/s':>18} {'ratio':>6}")
    for kind, count, ours, plain in rows:
        print(f"{kind:<9} {count:>7} {ours / 1e6:>20.2f} {plain / 1e6:>18.2f} {ours / plain:>6.2f}")
    print(f"target: 2 x {H100_DLRM_SAMPLES_PER_S / 1e6:.2f} M = {target / 1e6:.2f} M samples/s (README's H100 "
          "DLRM runs)")
    for kind in readers:
        mine = [(count, ours) for k, count, ours, _ in rows if k == kind]
        reached = [count for count, ours in mine if ours >= target]
        best_count, best = max(mine, key=lambda item: item[1])
        print(f"  {kind:<9} " + (f"reaches it with {reached[0]} workers" if reached else
                                  f"not reached: best {best / 1e6:.2f} M samples/s with {best_count} workers"))


if __name__ == "__main__":
    main()
