"""Embedding kernel micro-benchmark: achieved bandwidth against a device-to-device copy in the same run.

    python benchmarks/embedding_kernels.py                # GPU: B=65536, 26 one-hot slots, Criteo-Kaggle tables
    python benchmarks/embedding_kernels.py --cpu-smoke    # CPU: tiny sizes, only to exercise the code

Forward: the fused pool kernel (rows given, as in training; keys + fused hash find, as in
evaluation) and, for comparison, torch's ``F.embedding_bag`` on the same rows. Keys are uniform
within each slot (the worst case for L2; real data is skewed and hits L2 more). GB/s counts the
bytes a kernel must move at least once: ids, gathered fp32 rows, the pooled output, and for the
fused find one slot key and one slot row per key. "% copy" compares with ``dst.copy_(src)``
(read + write) measured here, so it reads as a fraction of the roofline.

Backward: ``measure_update_adam_local``, the fused gradient reduction + Adam Local update (one-hot
keys, so rows repeat only through the batch's duplicates), with and without the grouping sort, and
the torch reference; GB/s counts the pooled gradient read once and w, m, v read + written once per
unique row.

Each measurement is a function ``(Setup) -> list[Row]`` in ``MEASUREMENTS``; add more by
appending functions: they all print in one table.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from timing import median_seconds  # noqa: E402
from workloads import KAGGLE_CARDINALITIES  # noqa: E402
from hugectr.embedding.hash_table import HashTable  # noqa: E402
from hugectr.kernels.dispatch import triton_enabled  # noqa: E402
from hugectr.kernels.embedding_pool import embedding_pool  # noqa: E402
from hugectr.kernels.embedding_update import (  # noqa: E402
    Occurrences, embedding_update_reference, embedding_update_triton, group_occurrences)
from hugectr.embedding.sparse_optimizers import SparseOptimizer  # noqa: E402
import hugectr  # noqa: E402


class Row(NamedTuple):
    """One line of the table: what ran, its time per call and the bytes it must move."""

    name: str
    dim: int | None
    dtype: str
    seconds: float
    bytes_moved: float


@dataclass
class Setup:
    """Shared inputs: the device, the batch shape and the tables (built lazily, once per dim)."""

    device: torch.device
    batch: int
    cardinalities: list[int]
    dims: list[int]
    iters: int
    warmup: int
    copy_bytes: int
    _cache: dict = field(default_factory=dict)

    @property
    def slots(self) -> int:
        return len(self.cardinalities)

    @property
    def rows(self) -> int:
        return sum(self.cardinalities)

    def keys(self) -> torch.Tensor:
        """(batch * slots,) one-hot keys: slot-local uniform, offset by the slot's first row."""
        if "keys" not in self._cache:
            gen = torch.Generator(device=self.device).manual_seed(0)
            sizes = torch.tensor(self.cardinalities, device=self.device)
            starts = torch.cumsum(sizes, 0) - sizes
            local = torch.rand(self.batch, self.slots, device=self.device, generator=gen)
            self._cache["keys"] = (starts + (local * sizes).long().clamp(max=sizes - 1)).reshape(-1)
        return self._cache["keys"]

    def hash_table(self) -> HashTable:
        """Every row's key (key = row) stored, so the probe runs are those of a full Criteo table."""
        if "table" not in self._cache:
            table = HashTable(self.rows, self.device)
            table.import_keys(torch.arange(self.rows, device=self.device))
            self._cache["table"] = table
        return self._cache["table"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(setup: Setup, fn: Callable[[], object]) -> float:
    """Median seconds per call over ``setup.iters`` calls after ``setup.warmup`` untimed ones."""
    return median_seconds(setup.device, fn, setup.iters, setup.warmup)


# -- measurements --------------------------------------------------------------------------------
def measure_copy(setup: Setup) -> list[Row]:
    """Device-to-device copy: the bandwidth every other row is compared with."""
    src = torch.empty(setup.copy_bytes // 4, dtype=torch.float32, device=setup.device).fill_(1.0)
    dst = torch.empty_like(src)
    return [Row("copy (read + write)", None, "fp32", time_call(setup, lambda: dst.copy_(src)), 2.0 * src.nbytes)]


def _pool_bytes(setup: Setup, dim: int, out_dtype: torch.dtype, find: bool) -> float:
    nnz = setup.batch * setup.slots
    out_bytes = nnz * dim * torch.empty(0, dtype=out_dtype).element_size()
    return nnz * 8 + nnz * dim * 4 + out_bytes + (nnz * 16 if find else 0)


def measure_pool_forward(setup: Setup) -> list[Row]:
    """Fused pool, rows given (training forward) and keys with the hash find fused (evaluation)."""
    rows_out, keys = [], setup.keys()
    kind = "triton" if triton_enabled(setup.device) else "torch ref"
    for dim in setup.dims:
        weights = torch.empty(setup.rows, dim, device=setup.device).uniform_(-0.05, 0.05)
        for out_dtype, label in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
            seconds = time_call(setup, lambda: embedding_pool(weights, keys, None, hotness=1, out_dtype=out_dtype))
            rows_out.append(Row(f"pool, rows given ({kind})", dim, label, seconds,
                                _pool_bytes(setup, dim, out_dtype, False)))
        slots = setup.hash_table().slots()
        seconds = time_call(setup, lambda: embedding_pool(weights, keys, None, hotness=1, hash_slots=slots,
                                                          out_dtype=torch.bfloat16))
        rows_out.append(Row(f"find + pool, keys ({kind})", dim, "bf16", seconds,
                            _pool_bytes(setup, dim, torch.bfloat16, True)))
        offsets = torch.arange(keys.numel() + 1, device=setup.device)
        seconds = time_call(setup, lambda: F.embedding_bag(keys, weights, offsets, mode="sum",
                                                           include_last_offset=True))
        rows_out.append(Row("F.embedding_bag (torch)", dim, "fp32", seconds, _pool_bytes(setup, dim, torch.float32,
                                                                                          False)))
        del weights
    return rows_out


def _update_problem(setup: Setup, dim: int):
    """The backward's inputs for one-hot keys: unique rows scattered over a table, an Adam Local optimizer."""
    keys = setup.keys()
    unique, inverse = torch.unique(keys, return_inverse=True)                     # (U,), (nnz,)
    # Capped so w, m, v stay within ~6 GiB at any dim; rows random, as a trained hash table's are.
    capacity = max(unique.numel(), min(setup.rows, 6 * 2**30 // (12 * dim)))
    gen = torch.Generator(device=setup.device).manual_seed(1)
    unique_rows = torch.randperm(capacity, device=setup.device, generator=gen)[:unique.numel()]
    occurrences = Occurrences(unique_rows, inverse, None, None, hotness=1)
    params = hugectr.CreateOptimizer(optimizer_type=hugectr.Optimizer_t.Adam, update_type=hugectr.Update_t.Local)
    optimizer = SparseOptimizer(params, capacity, dim, setup.device, "bench")
    weights = torch.empty(capacity, dim, device=setup.device).uniform_(-0.05, 0.05)
    return occurrences, optimizer, weights


def measure_update_adam_local(setup: Setup) -> list[Row]:
    """Backward + Adam Local, fused (sort included; then with rows pre-grouped) and the torch reference.

    Bytes counted: the pooled gradient read once, and w, m, v read and written once per unique row.
    """
    rows_out, nnz = [], setup.batch * setup.slots
    fused = triton_enabled(setup.device)
    for dim in setup.dims:
        occ, optimizer, weights = _update_problem(setup, dim)
        row_bytes = 6 * occ.unique_rows.numel() * dim * 4
        for grad_dtype, label in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
            grad = torch.randn(setup.batch, setup.slots, dim, device=setup.device).to(grad_dtype)
            moved = nnz * dim * grad.element_size() + row_bytes
            if fused:
                seconds = time_call(setup, lambda: embedding_update_triton(grad, occ, weights, optimizer, 1e-3, 5))
                rows_out.append(Row("bwd + Adam Local (triton)", dim, label, seconds, moved))
                groups = group_occurrences(occ.inverse)
                seconds = time_call(setup, lambda: embedding_update_triton(grad, occ, weights, optimizer, 1e-3, 5,
                                                                           groups=groups))
                rows_out.append(Row("  same, rows pre-grouped (no sort)", dim, label, seconds, moved))
                with_bags = occ._replace(bag_ids=torch.arange(nnz, device=setup.device), hotness=None)
                seconds = time_call(setup, lambda: embedding_update_triton(grad, with_bags, weights, optimizer, 1e-3,
                                                                           5))
                rows_out.append(Row("  same, bag per key read (update())", dim, label, seconds, moved))
            seconds = time_call(setup, lambda: embedding_update_reference(grad, occ, weights, optimizer, 1e-3, 5))
            rows_out.append(Row("bwd + Adam Local (torch ref)", dim, label, seconds, moved))
        del occ, optimizer, weights, grad
    return rows_out


def measure_hash_find(setup: Setup) -> list[Row]:
    """Find-only lookup of the batch's keys in the full table: key in, row out, one slot key + row read."""
    table, keys = setup.hash_table(), setup.keys()
    seconds = time_call(setup, lambda: table.find(keys))
    return [Row(f"hash find, {keys.numel():,} keys", None, "i64", seconds, keys.numel() * 32.0)]


MEASUREMENTS: list[Callable[[Setup], list[Row]]] = [measure_copy, measure_hash_find, measure_pool_forward,
                                                     measure_update_adam_local]


def print_table(rows: list[Row], setup: Setup) -> None:
    copy = next(r for r in rows if r.name.startswith("copy"))
    copy_bandwidth = copy.bytes_moved / copy.seconds
    print(f"device: {torch.cuda.get_device_name(setup.device) if setup.device.type == 'cuda' else 'cpu'}; "
          f"batch {setup.batch} x {setup.slots} one-hot slots, {setup.rows:,} table rows")
    print(f"{'measurement':36} {'D':>5} {'out':>5} {'time (us)':>11} {'GB/s':>9} {'% copy':>7}")
    for r in rows:
        bandwidth = r.bytes_moved / r.seconds
        print(f"{r.name:36} {r.dim or '':>5} {r.dtype:>5} {r.seconds * 1e6:>11.1f} {bandwidth / 1e9:>9.1f} "
              f"{100 * bandwidth / copy_bandwidth:>6.1f}%")


def parse_setup(argv: list[str] | None = None) -> Setup:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU, to exercise the code")
    parser.add_argument("--batch", type=int, default=65536)
    parser.add_argument("--dims", type=int, nargs="+", default=[16, 128])
    parser.add_argument("--iters", type=int, default=20)
    args = parser.parse_args(argv)
    if args.cpu_smoke:
        return Setup(torch.device("cpu"), 64, [min(c, 500) for c in KAGGLE_CARDINALITIES], [4, 16], 2, 1, 1 << 20)
    if not torch.cuda.is_available():
        parser.error("no CUDA device: use --cpu-smoke")
    return Setup(torch.device("cuda"), args.batch, list(KAGGLE_CARDINALITIES), args.dims, args.iters, 3, 1 << 30)


def main(argv: list[str] | None = None) -> None:
    setup = parse_setup(argv)
    rows = [row for measure in MEASUREMENTS for row in measure(setup)]
    print_table(rows, setup)


if __name__ == "__main__":
    main()
