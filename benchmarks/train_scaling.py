"""Many-GPU scaling of the training step: samples/s on 1..G GPUs of one node with the same per-GPU
batch, the efficiency against G x the 1-GPU rate, and what the step's collectives cost.

    python benchmarks/train_scaling.py --gpus 1 2 --workload DLRM      # NCCL, one process per GPU
    python benchmarks/train_scaling.py --cpu-scale --gpus 1 2          # gloo ranks on the CPU
    python benchmarks/train_scaling.py --gpus 4 8 --embedding-dim 512  # a table no single GPU holds

Each rank trains on its own pre-generated part of every global batch (already on its device), so
this measures the step: embedding all-to-all, dense network, gradient all-reduce, updates. The
collective costs are measured alone, at the sizes one step moves: the all-reduce of the flat dense
gradient, and the all-to-alls of the embedding (keys out, pooled vectors back, gradients out).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).parent))
from workloads import DCN, DLRM, adam_table_bytes, build_hugectr_model, make_batches  # noqa: E402

from hugectr.distributed.batch_part import PartBatch  # noqa: E402
from hugectr.testing.ranks import run_ranks  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_seconds(fn, device: torch.device, repeats: int = 10) -> float:
    """Median wall time of ``fn`` (synchronised, after one untimed call); every rank calls it together."""
    fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        dist.barrier()
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _collective_costs(model, w_local, device: torch.device) -> tuple[float, float]:
    """(all-reduce s, all-to-all s) per step at the step's sizes, each measured alone."""
    world = dist.get_world_size()
    flat = torch.zeros(model.engine.flat.numel, device=device)
    all_reduce = _median_seconds(lambda: dist.all_reduce(flat), device)
    keys = w_local.batch_size * w_local.slots                              # one-hot: a key per bag
    per_rank = -(-keys // world)
    key_rows = torch.zeros(per_rank * world, 3, dtype=torch.int32, device=device)      # key + segment word
    vectors = torch.zeros(per_rank * world, w_local.embedding_dim, device=device)
    out_keys, out_vectors = torch.empty_like(key_rows), torch.empty_like(vectors)

    def exchange():
        dist.all_to_all_single(out_keys, key_rows)        # keys to their owners
        dist.all_to_all_single(out_vectors, vectors)      # pooled partial sums back
        dist.all_to_all_single(out_vectors, vectors)      # gradients to the owners
    return all_reduce, _median_seconds(exchange, device)


def rank_measure(w, per_gpu_batch: int, precision: str, steps: int, warmup: int, backend: str) -> dict:
    """On every rank: the step's rate over the group (global samples/s) and the collective costs."""
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
    w_global = replace(w, batch_size=per_gpu_batch * world)
    w_local = replace(w, batch_size=per_gpu_batch)
    model = build_hugectr_model(w_global, precision, gpus=world)
    engine = model.engine
    lrs = {name: 0.001 for name in engine.tables}
    batches = [PartBatch.of(b, w_global.batch_size) for b in make_batches(w_local, 4, device, seed=rank)]
    for i in range(warmup):
        engine.train_step(batches[i % 4], 0.001, lrs)
    _sync(device)
    dist.barrier()
    start = time.perf_counter()
    for i in range(steps):
        engine.train_step(batches[i % 4], 0.001, lrs)
    _sync(device)
    dist.barrier()
    seconds = time.perf_counter() - start
    all_reduce, all_to_all = _collective_costs(model, w_local, device) if world > 1 else (0.0, 0.0)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0
    peaks = [None] * world
    dist.all_gather_object(peaks, peak)
    return {"rate": steps * w_global.batch_size / seconds, "step": seconds / steps,
            "all_reduce": all_reduce, "all_to_all": all_to_all, "peak": max(peaks),
            "table_gib": adam_table_bytes(model.embedding_tables[0].capacity, w.embedding_dim) / 2**30}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--workload", choices=["DLRM", "DCN"], default="DLRM")
    parser.add_argument("--per-gpu-batch", type=int, default=None, help="default: the workload's batch")
    parser.add_argument("--precision", choices=["fp32", "tf32", "fp16", "bf16"], default="bf16")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--embedding-dim", type=int, default=None, help="default: the workload's (DLRM 128)")
    parser.add_argument("--cpu-scale", action="store_true", help="gloo ranks on the CPU, small batch and tables")
    args = parser.parse_args()
    w = {"DLRM": DLRM, "DCN": DCN}[args.workload]
    if args.embedding_dim:   # DLRM's bottom MLP ends in the embedding dim (the interaction needs it)
        bottom = w.bottom_mlp[:-1] + (args.embedding_dim,) if w.bottom_mlp else ()
        w = replace(w, embedding_dim=args.embedding_dim, bottom_mlp=bottom)
    backend = "gloo" if args.cpu_scale else "nccl"
    if args.cpu_scale:
        w = w.scaled(batch_size=256, max_cardinality=20000)
    elif max(args.gpus) > torch.cuda.device_count():
        parser.error(f"--gpus {max(args.gpus)} but this machine has {torch.cuda.device_count()} GPU(s)")
    per_gpu = args.per_gpu_batch or w.batch_size
    steps = args.steps or (5 if args.cpu_scale else 20)
    rows = []
    for gpus in args.gpus:
        result = run_ranks(gpus, rank_measure, w, per_gpu, "fp32" if args.cpu_scale else args.precision, steps,
                           2 if args.cpu_scale else 8, backend, backend=backend, timeout=900)[0]
        rows.append((gpus, result))
    base = next((r["rate"] for g, r in rows if g == 1), None)
    print(f"\n{args.workload}, embedding dim {w.embedding_dim}, per-GPU batch {per_gpu}, {backend}, precision "
          f"{'fp32' if args.cpu_scale else args.precision}; collectives measured alone at one step's sizes; "
          f"table = weights + Adam state of one GPU's rows, whole table {_whole_table_gib(w):.1f} GiB")
    print(f"{'GPUs':>5}{'samples/s':>14}{'per GPU':>12}{'efficiency':>11}{'step ms':>9}{'all-reduce ms':>15}"
          f"{'all-to-all ms':>15}{'table GiB/GPU':>15}{'peak GiB':>10}")
    for gpus, r in rows:
        efficiency = r["rate"] / (gpus * base) if base else float("nan")
        print(f"{gpus:>5}{r['rate']:>14,.0f}{r['rate'] / gpus:>12,.0f}{efficiency:>11.1%}{r['step'] * 1e3:>9.2f}"
              f"{r['all_reduce'] * 1e3:>15.2f}{r['all_to_all'] * 1e3:>15.2f}{r['table_gib']:>15.1f}"
              f"{r['peak']:>10.1f}")


def _whole_table_gib(w) -> float:
    """Weights + Adam's two states of every row, fp32."""
    return adam_table_bytes(sum(w.cardinalities), w.embedding_dim) / 2**30


if __name__ == "__main__":
    main()
