"""Run a function on several ranks of a real ``torch.distributed`` group: what the many-GPU tests share.

``run_ranks(world, fn, *args)`` starts ``world`` processes (spawned, so no state leaks from the
test process), joins them into one group (gloo on the CPU; NCCL with one GPU per rank when
``backend="nccl"``), calls ``fn(*args)`` in each and returns the ``world`` results in rank order.
A rank that raises fails the call with that rank's traceback; a rank that hangs fails it after
``timeout`` seconds instead of hanging the test run.

``fn`` must be importable by name (a module-level function), and its arguments and result
picklable. Results travel as bytes (``torch.save``), so tensors in them arrive intact even after
the rank's process (and its shared memory) is gone; CUDA tensors come back on the CPU.
"""

from __future__ import annotations

import io
import os
import socket
import time
import traceback

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def free_port() -> int:
    """A TCP port nobody listens on now (the rendezvous of one group)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, backend: str, fn, args, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    if backend == "nccl":
        torch.cuda.set_device(rank)
    else:
        os.environ.setdefault("HUGECTR_DEVICE", "cpu")
        torch.set_num_threads(1)      # the ranks share the machine's cores
    try:
        dist.init_process_group(backend, rank=rank, world_size=world)
        results.put((rank, "ok", _to_bytes(fn(*args))))
    except BaseException:             # every failure goes back to the test, named by its rank
        results.put((rank, "error", traceback.format_exc()))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def run_ranks(world: int, fn, *args, backend: str = "gloo", timeout: float = 300.0) -> list:
    """``[fn(*args) on rank 0, ..., on rank world-1]``, each run in its own process of one group."""
    context = mp.get_context("spawn")
    results = context.SimpleQueue()
    port = free_port()
    processes = [context.Process(target=_rank_main, args=(rank, world, port, backend, fn, args, results))
                 for rank in range(world)]
    for process in processes:
        process.start()
    outcomes = {}
    try:
        for _ in range(world):
            outcomes.update(_next_result(results, processes, timeout))
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    errors = [f"rank {rank}:\n{value}" for rank, (status, value) in sorted(outcomes.items()) if status == "error"]
    if errors:
        raise RuntimeError("a rank failed\n" + "\n".join(errors))
    return [_from_bytes(outcomes[rank][1]) for rank in range(world)]


def _to_bytes(result) -> bytes:
    buffer = io.BytesIO()
    torch.save(result, buffer)
    return buffer.getvalue()


def _from_bytes(data: bytes):
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)


def _next_result(results, processes, timeout: float) -> dict:
    """One rank's ``{rank: (status, value)}``; raises when the ranks die silently or time out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not results.empty():
            rank, status, value = results.get()
            return {rank: (status, value)}
        if all(not p.is_alive() for p in processes) and results.empty():
            codes = [p.exitcode for p in processes]
            raise RuntimeError(f"every rank exited without a result (exit codes {codes})")
        time.sleep(0.01)
    raise TimeoutError(f"the ranks gave no result within {timeout} s: a collective is probably waiting on a "
                       "rank that never joins it")
