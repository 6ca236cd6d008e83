"""Where one training step of a workload spends its time (GPU): torch.profiler's top kernels.

    python benchmarks/profile_step.py --workload DLRM --precision bf16
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).parent))
from workloads import DCN, DLRM, build_hugectr_model, make_batches  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="DLRM")
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rows", type=int, default=30)
    parser.add_argument("--host-profile", action="store_true", help="also cProfile the host side of the steps")
    parser.add_argument("--after", type=int, default=8,
                        help="untimed steps first (a large value profiles the steady state of a long run)")
    parser.add_argument("--shapes", action="store_true", help="also list the ops by input shape")
    parser.add_argument("--name-width", type=int, default=60, help="characters of each kernel's name shown")
    args = parser.parse_args()
    w = {"DLRM": DLRM, "DCN": DCN}[args.workload]
    device = torch.device("cuda")
    model = build_hugectr_model(w, args.precision)
    batches = make_batches(w, 4, device)
    lrs = {name: 0.001 for name in model.engine.tables}
    for i in range(args.after):
        model.engine.train_step(batches[i % 4], 0.001, lrs)
    torch.cuda.synchronize()
    report_host_bound(model, batches, lrs, 20)
    if args.host_profile:
        profile_host(model, batches, lrs, 20, args.rows)
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], record_shapes=args.shapes) as prof:
        for i in range(args.steps):
            model.engine.train_step(batches[i % 4], 0.001, lrs)
        torch.cuda.synchronize()
    elapsed = (time.perf_counter() - start) / args.steps
    print(f"{args.workload} {args.precision}: {elapsed * 1e3:.2f} ms/step under the profiler "
          f"({w.batch_size / elapsed:,.0f} samples/s)")
    events = prof.key_averages()
    # Kernels and copies only: under CUDA graphs a replayed graph is also a host-side event with
    # device time, which would count its kernels twice.
    on_gpu = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA]
    kernels = sum(e.count for e in on_gpu)
    busy = sum(e.self_device_time_total for e in on_gpu) / 1e3   # us -> ms
    print(f"{kernels / args.steps:.0f} GPU kernels and copies per step; the GPU is busy {busy / args.steps:.2f} ms "
          "a step (the step's floor once the host keeps up)")
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=args.rows, max_name_column_width=args.name_width))
    if args.shapes:
        print(prof.key_averages(group_by_input_shape=True).table(sort_by="cuda_time_total", row_limit=args.rows,
                                                                 max_name_column_width=40, max_shapes_column_width=80))


def profile_host(model, batches, lrs, steps: int, rows: int) -> None:
    """cProfile of ``steps`` steps: which Python functions the host's time per step goes to."""
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(steps):
        model.engine.train_step(batches[i % len(batches)], 0.001, lrs)
    torch.cuda.synchronize()
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(rows)
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(rows)


def report_host_bound(model, batches, lrs, steps: int) -> None:
    """Step time against the host's time to queue a step: equal means the CPU, not the GPU, sets the pace.

    The queueing time is taken behind a long GPU sleep, so the host never waits for the GPU (a step
    with a host synchronisation would show up as queueing time equal to the sleep). Only 3 steps are
    queued so: CUDA's launch queue holds about a thousand kernels before the host has to wait.
    """
    step = lambda i: model.engine.train_step(batches[i % len(batches)], 0.001, lrs)  # noqa: E731
    torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(steps):
        step(i)
    torch.cuda.synchronize()
    step_seconds = (time.perf_counter() - start) / steps
    torch.cuda._sleep(int(2e9))                      # ~1 s of GPU cycles queued ahead of the steps
    start = time.perf_counter()
    for i in range(3):
        step(i)
    queue_seconds = (time.perf_counter() - start) / 3
    torch.cuda.synchronize()
    print(f"step {step_seconds * 1e3:.2f} ms; host time to queue a step {queue_seconds * 1e3:.2f} ms "
          f"({'host-bound' if queue_seconds > 0.9 * step_seconds else 'GPU-bound'})")


if __name__ == "__main__":
    main()
