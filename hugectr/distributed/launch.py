"""One process per GPU for a plain ``python script.py`` whose ``vvgpu`` names several GPUs of this node.

The parent re-runs the same command (interpreter options, script and arguments) once per GPU with
torchrun's variables set (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``),
waits for the ranks, and exits with the worst exit code. The first rank that fails stops the others
(SIGTERM, then SIGKILL after a grace period), so a crash never leaves the rest waiting in a
collective. Several nodes need a launcher on every node (torchrun, mpirun): the parent cannot
start processes elsewhere.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

_POLL_SECONDS = 0.05
_GRACE_SECONDS = 10.0


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
               MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
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
