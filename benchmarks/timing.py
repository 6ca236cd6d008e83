"""The timer the kernel benchmarks share: median seconds per call, CUDA events on a GPU."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def median_seconds(device: torch.device, fn: Callable[[], object], iters: int, warmup: int) -> float:
    """Median seconds per call over ``iters`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            begin = time.perf_counter()
            fn()
            times.append(time.perf_counter() - begin)
    return statistics.median(times)


def graph_seconds(fn: Callable[[], object], reps: int = 20) -> float:
    """GPU seconds per call of ``fn``: ``reps`` calls captured in one CUDA graph and replayed, so no host time
    (Python, launches) is in the number, unlike ``median_seconds`` of a call that is cheap on the GPU."""
    fn()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(reps):
            fn()
    graph.replay()                                   # warm: the first replay uploads the graph
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    graph.replay()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1e3 / reps
