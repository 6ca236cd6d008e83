"""One process per GPU for a plain ``python script.py`` whose ``vvgpu`` names several GPUs of this node.

The parent re-runs the same command (interpreter options, script and arguments) once per GPU with
torchrun's variables set (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``)
and ``HUGECTR_RELAUNCHED=1``, waits for the ranks, and exits with the worst exit code.

The parent has run the script up to ``Model(...)`` when it starts the ranks, so what comes before
that already happened once, as in HugeCTR's one process per node: in the ranks, the standard output
stays quiet until ``Model(...)`` has joined them and then only rank 0 prints (``quiet_until_joined``,
``speak_if_rank_zero``), and ``DataGenerator.generate()`` before ``Model(...)`` is skipped
(``once_across_ranks``) instead of every rank racing to write the same files.

The first rank that fails stops the others (SIGTERM, then SIGKILL after a grace period), so a crash
never leaves the rest waiting in a collective. Several nodes need a launcher on every node (torchrun,
mpirun): the parent cannot start processes elsewhere.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable

import torch.distributed

_POLL_SECONDS = 0.05
_GRACE_SECONDS = 10.0
RELAUNCHED = "HUGECTR_RELAUNCHED"       # set in the ranks that a plain ``python script.py`` started
_saved_stdout = None


def relaunched() -> bool:
    """Whether this process is a rank that a plain ``python script.py`` (the parent) started."""
    return os.environ.get(RELAUNCHED) == "1"


class _Discard(io.TextIOBase):
    """A text stream that drops what is written to it."""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return len(text)


def quiet_until_joined() -> None:
    """In a relaunched rank, drop standard output until ``Model(...)`` joins the ranks: the parent has
    printed it already (it ran the script that far). Standard error is left alone."""
    global _saved_stdout
    if relaunched() and _saved_stdout is None:
        _saved_stdout, sys.stdout = sys.stdout, _Discard()


def speak_if_rank_zero(rank: int) -> None:
    """Once the ranks are joined: rank 0 prints from here on (as HugeCTR's one process), the others stay quiet."""
    global _saved_stdout
    if _saved_stdout is not None and rank == 0:
        sys.stdout, _saved_stdout = _saved_stdout, None


def once_across_ranks(action: Callable[[], None]) -> None:
    """Run a side effect that writes shared files (data generation) once for all ranks.

    Before ``Model(...)`` in a relaunched rank it is skipped: the parent ran it before starting the
    ranks. Once the ranks are joined, rank 0 runs it and the others wait for it at a barrier.
    Elsewhere (one process, or ranks of torchrun / mpirun before ``Model(...)``) it simply runs.
    """
    from . import env      # here, not at the top: env imports this module

    if env.is_distributed():
        if env.rank() == 0:
            action()
        torch.distributed.barrier()
    elif not relaunched():          # a relaunched rank before Model(...): the parent ran it already
        action()


def free_port() -> int:
    """A TCP port nobody listens on now (the rendezvous of one group)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


def relaunch_command() -> list[str]:
    """The command line that started this process, to run it again (raises where there is none)."""
    argv = list(getattr(sys, "orig_argv", []) or [])
    if len(argv) < 2 or sys.argv[0] in ("", "-"):
        raise RuntimeError("vvgpu names several GPUs but this Python session was not started from a script, so "
                           "hugectr cannot start one process per GPU; run the script with python, torchrun "
                           "or mpirun")
    return [sys.executable, *argv[1:]]


def rank_environment(base: dict[str, str], rank: int, world: int, port: int) -> dict[str, str]:
    """``base`` plus torchrun's variables for local rank ``rank`` of ``world``.

    >>> env = rank_environment({"PATH": "/bin"}, 1, 2, 29500)
    >>> env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"], env["MASTER_PORT"]
    ('1', '2', '1', '29500')
    """
    env = dict(base)
    env.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
               MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), **{RELAUNCHED: "1"})
    return env


def launch_local_ranks_and_exit(vvgpu: list[list[int]]) -> None:
    """Start the ranks of ``vvgpu`` (one node) running this command, wait, and exit with their status."""
    if len(vvgpu) > 1:
        raise ValueError(f"vvgpu {vvgpu} names {len(vvgpu)} nodes; start the script on every node with a launcher "
                         f"(torchrun --nnodes={len(vvgpu)} --nproc_per_node={len(vvgpu[0])}, or mpirun)")
    if "PYTEST_CURRENT_TEST" in os.environ:
        # Relaunching would start pytest again in every rank.
        raise RuntimeError(f"vvgpu {vvgpu} names several GPUs but this test process has no process group; "
                           "use hugectr.testing.ranks.run_ranks(world, fn)")
    command = relaunch_command()
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(run_local_ranks(command, len(vvgpu[0])))


def run_local_ranks(command: list[str], world: int, env: dict[str, str] | None = None) -> int:
    """Run ``command`` as ranks 0..world-1; the worst exit code (0 when all succeed)."""
    port = free_port()
    base = dict(os.environ if env is None else env)
    processes = [subprocess.Popen(command, env=rank_environment(base, rank, world, port)) for rank in range(world)]
    try:
        return _wait_all(processes)
    except KeyboardInterrupt:
        _stop(processes)
        return 130
    finally:
        _stop(processes)


def _wait_all(processes: list[subprocess.Popen]) -> int:
    """Wait until every rank exits; the first failure stops the rest and gives the exit code."""
    while True:
        codes = [process.poll() for process in processes]
        failed = [code for code in codes if code not in (None, 0)]
        if failed:
            _stop(processes)
            return _exit_status(failed[0])
        if all(code == 0 for code in codes):
            return 0
        time.sleep(_POLL_SECONDS)


def _exit_status(code: int) -> int:
    """A child's return code as a shell reports it (killed by signal N -> 128 + N)."""
    return 128 - code if code < 0 else code


def _stop(processes: list[subprocess.Popen]) -> None:
    """SIGTERM the ranks still running, then SIGKILL those that outlive the grace period."""
    running = [p for p in processes if p.poll() is None]
    for process in running:
        process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + _GRACE_SECONDS
    for process in running:
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
