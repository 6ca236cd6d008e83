"""Training throughput of hugectr against a plain-PyTorch model of the same shape, in one process.

    python benchmarks/train_throughput.py --precision bf16      # GPU: the DESIGN.md workloads, full size
    python benchmarks/train_throughput.py --cpu-scale           # CPU: batch 1024, tables capped at 20k rows, fp32

Both sides train on the same pre-generated batches already on the device, so this measures the
training step (embedding lookup + dense net + backward + optimizers), not data reading
(``reader_throughput.py`` measures that). hugectr uses Adam with ``Update_t.Local``; the plain
model uses SparseAdam (also lazy) and fused Adam. Prints one table: samples/s, ratio, peak GPU
memory against what the tables, optimizer state and activations need, and the fraction of the
roofline ceiling (``roofline.py``).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from plain_torch import PlainTrainer  # noqa: E402
from roofline import ceiling_samples_per_s, dense_layers  # noqa: E402
from workloads import DCN, DLRM, adam_table_bytes, build_hugectr_model, make_batches  # noqa: E402


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(step, batches, warmup: int, steps: int, windows: int, device) -> list[float]:
    """Samples per second of each of ``windows`` windows of ``steps`` steps, after ``warmup`` untimed ones.

    Several windows show the spread: a step that the host only just keeps up with varies with the
    host's load, so one short window can land high or low.
    """
    for i in range(warmup):
        step(batches[i % len(batches)])
    _sync(device)
    rates = []
    for _ in range(windows):
        start = time.perf_counter()
        for i in range(steps):
            step(batches[i % len(batches)])
        _sync(device)
        rates.append(steps * batches[0].size / (time.perf_counter() - start))
    return rates


def _peak_and_reset(device) -> float:
    if device.type != "cuda":
        return float("nan")
    peak = torch.cuda.max_memory_allocated(device) / 2**30
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    return peak


def needed_gib(w, precision: str) -> float:
    """Tables + Adam state (fp32) + an estimate of one step's activations and gradients."""
    tables = adam_table_bytes(sum(w.cardinalities), w.embedding_dim)
    activation = 2 if precision in ("fp16", "bf16") else 4
    widths = sum(k + n for k, n, _ in dense_layers(w)) + 3 * w.slots * w.embedding_dim
    return (tables + 2 * w.batch_size * widths * activation) / 2**30


def run_hugectr(w, batches, args, device) -> tuple[list[float], float]:
    model = build_hugectr_model(w, args.precision)
    engine = model.engine
    lrs = {name: 0.001 for name in engine.tables}
    rates = _timed(lambda b: engine.train_step(b, 0.001, lrs), batches, args.warmup, args.steps, args.windows,
                   device)
    del model, engine
    return rates, _peak_and_reset(device)


def run_plain(w, batches, args, device) -> tuple[list[float], float]:
    torch.backends.cuda.matmul.allow_tf32 = args.precision == "tf32"
    trainer = PlainTrainer(w, device, args.precision, compile_model=not args.no_compile and device.type == "cuda")
    rates = _timed(trainer.step, batches, args.warmup, args.steps, args.windows, device)
    del trainer
    return rates, _peak_and_reset(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-scale", action="store_true", help="small batch and tables (for CPUs)")
    parser.add_argument("--workloads", default="DLRM,DCN")
    parser.add_argument("--steps", type=int, default=None, help="steps per timed window")
    parser.add_argument("--windows", type=int, default=5, help="timed windows; the table shows their median")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--precision", choices=["fp32", "tf32", "fp16", "bf16"], default=None,
                        help="default: bf16 on a GPU, fp32 on a CPU (hugectr's mixed precision is GPU-only, as "
                             "HugeCTR's, so a half precision on a CPU would time the plain model alone in it)")
    parser.add_argument("--no-compile", action="store_true", help="do not torch.compile the plain model")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu_scale else "cpu")
    args.precision = args.precision or ("bf16" if device.type == "cuda" else "fp32")
    if device.type == "cpu" and args.precision in ("fp16", "bf16"):
        print(f"note: on a CPU hugectr trains in fp32 (mixed precision needs a GPU); the plain model runs "
              f"{args.precision} autocast")
    args.steps = args.steps or (20 if device.type == "cuda" else 5)
    args.warmup = args.warmup or (8 if device.type == "cuda" else 2)
    rows = []
    for name in args.workloads.split(","):
        w = {"DLRM": DLRM, "DCN": DCN}[name]
        if args.cpu_scale:
            w = w.scaled(batch_size=1024, max_cardinality=20000)
        batches = make_batches(w, 4, device)
        ours, our_peak = run_hugectr(w, batches, args, device)
        plain, plain_peak = run_plain(w, batches, args, device)
        rows.append((w, ours, plain, our_peak, plain_peak))
        del batches
    print(f"\ndevice: {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}, precision: "
          f"{args.precision}, timed: median of {args.windows} windows of {args.steps} steps, plain model compiled: "
          f"{not args.no_compile and device.type == 'cuda'}, "
          "optimizer: Adam (hugectr Update_t.Local; plain SparseAdam + fused Adam)")
    print(f"{'workload':9}{'batch':>7}{'hugectr/s':>13}{'plain/s':>12}{'ratio':>7}{'roofline/s':>12}"
          f"{'of roofline':>12}{'peak GiB':>10}{'needed GiB':>11}{'plain GiB':>10}")
    for w, ours, plain, our_peak, plain_peak in rows:
        # The ceilings are H100 figures: meaningless for a CPU run.
        ceiling = ceiling_samples_per_s(w, args.precision) if device.type == "cuda" else float("nan")
        mine, theirs = statistics.median(ours), statistics.median(plain)
        print(f"{w.name:9}{w.batch_size:>7}{mine:>13,.0f}{theirs:>12,.0f}{mine / theirs:>7.2f}{ceiling:>12,.0f}"
              f"{mine / ceiling:>12.1%}{our_peak:>10.2f}{needed_gib(w, args.precision):>11.2f}{plain_peak:>10.2f}")
    print("windows (M samples/s):")
    for w, ours, plain, _, _ in rows:
        print(f"  {w.name:6} hugectr {' '.join(f'{r / 1e6:.3g}' for r in ours)} | "
              f"plain {' '.join(f'{r / 1e6:.3g}' for r in plain)}")


if __name__ == "__main__":
    main()
