"""Rank, world size and device: the only module that asks ``torch.distributed`` who this process is.

``HUGECTR_DEVICE=cpu`` forces the CPU even where CUDA is present (tests, debugging);
otherwise the GPU that ``vvgpu`` names for this process is used when CUDA is available.

``init_ranks(vvgpu)`` (called by ``Model()``, where HugeCTR builds its resource manager) places the
process: under torchrun (``RANK``/``WORLD_SIZE``/``LOCAL_RANK``) or mpirun (Open MPI's
``OMPI_COMM_WORLD_*``, MPICH's ``PMI_RANK``/``PMI_SIZE``) it joins the launcher's ranks in one
process group (NCCL on CUDA, gloo on the CPU); in a plain ``python script.py`` whose ``vvgpu``
names several GPUs it starts one process per GPU itself (``hugectr.distributed.launch``).
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .launch import speak_if_rank_zero

# (rank, world size, local rank) variables of each launcher, in the order they are trusted.
_LAUNCHER_VARIABLES = (
    ("torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK"),
    ("Open MPI", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"),
    ("MPICH/PMI", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"),
)
_DEFAULT_PORT = "29500"   # torchrun's default rendezvous port


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0")) if is_distributed() else 0


def cuda_wanted() -> bool:
    """CUDA is used when present, unless ``HUGECTR_DEVICE=cpu``."""
    choice = os.environ.get("HUGECTR_DEVICE", "").strip().lower()
    if choice not in ("", "cpu", "cuda"):
        raise ValueError(f"HUGECTR_DEVICE must be 'cpu' or 'cuda', got {choice!r}")
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("HUGECTR_DEVICE=cuda but PyTorch sees no CUDA GPU; unset it to run on the CPU")
    return choice != "cpu" and torch.cuda.is_available()


def select_device(vvgpu: list[list[int]]) -> torch.device:
    """This process's device: the GPU ``vvgpu`` assigns to it, or the CPU."""
    if not cuda_wanted():
        return torch.device("cpu")
    return _gpu_of(vvgpu, rank(), local_rank())


def _gpu_of(vvgpu: list[list[int]], global_rank: int, local: int) -> torch.device:
    node_gpus = vvgpu[min(global_rank // max(len(vvgpu[0]), 1), len(vvgpu) - 1)]
    gpu = node_gpus[local % len(node_gpus)]
    if gpu >= torch.cuda.device_count():
        raise ValueError(f"vvgpu names GPU {gpu} but this machine has {torch.cuda.device_count()} GPU(s) "
                         f"(ids 0..{torch.cuda.device_count() - 1}); fix vvgpu in CreateSolver")
    return torch.device("cuda", gpu)


@dataclass(frozen=True)
class LaunchedRank:
    """Who a launcher says this process is."""

    launcher: str
    rank: int
    world: int
    local_rank: int | None


def launcher_rank() -> LaunchedRank | None:
    """The rank a launcher (torchrun, mpirun) gave this process, or None for a plain process.

    >>> launcher_rank() is None or launcher_rank().world >= 1
    True
    """
    for launcher, rank_name, world_name, local_name in _LAUNCHER_VARIABLES:
        if rank_name in os.environ and world_name in os.environ:
            try:
                values = int(os.environ[rank_name]), int(os.environ[world_name])
                local = int(os.environ[local_name]) if local_name in os.environ else None
            except ValueError as error:
                raise ValueError(f"{launcher} rank variables {rank_name}={os.environ[rank_name]!r}, "
                                 f"{world_name}={os.environ[world_name]!r} are not integers") from error
            return LaunchedRank(launcher, values[0], values[1], local)
    return None


def num_gpus_of(vvgpu: list[list[int]]) -> int:
    return sum(len(node) for node in vvgpu)


def init_ranks(vvgpu: list[list[int]]) -> None:
    """Join (or start) the ranks ``vvgpu`` asks for; a no-op for one GPU in a plain process.

    Raises ValueError when the launch and ``vvgpu`` disagree on the number of GPUs.
    """
    gpus = num_gpus_of(vvgpu)
    if is_distributed():
        _check_world(world_size(), gpus, "the process group")
        return
    launched = launcher_rank()
    if launched is None:
        if gpus > 1:
            from .launch import launch_local_ranks_and_exit   # the parent never returns from here

            launch_local_ranks_and_exit(vvgpu)
        return
    _check_world(launched.world, gpus, launched.launcher)
    if launched.world == 1:
        return
    local = launched.local_rank if launched.local_rank is not None else launched.rank % len(vvgpu[0])
    _publish(launched, local)
    if cuda_wanted():
        torch.cuda.set_device(_gpu_of(vvgpu, launched.rank, local))
        dist.init_process_group("nccl", rank=launched.rank, world_size=launched.world)
    else:
        dist.init_process_group("gloo", rank=launched.rank, world_size=launched.world)
    speak_if_rank_zero(launched.rank)          # a relaunched rank: rank 0 prints from here on
    # The group is ours: close it when the script ends. A process that exits with gloo's or NCCL's
    # threads still running can abort in their destructors (exit code 134 after a clean run).
    atexit.register(_close_group)


def _close_group() -> None:
    if is_distributed():
        dist.destroy_process_group()


def _check_world(world: int, gpus: int, launcher: str) -> None:
    if world != gpus:
        raise ValueError(f"vvgpu names {gpus} GPU(s) in all but {launcher} started {world} process(es); "
                         f"start one process per GPU of vvgpu (e.g. torchrun --nproc_per_node={gpus}) or make "
                         f"CreateSolver(vvgpu=...) name {world} GPU(s)")


def _publish(launched: LaunchedRank, local: int) -> None:
    """The torchrun variables, so that ``init_process_group`` and ``local_rank()`` find them under mpirun too."""
    os.environ.update(RANK=str(launched.rank), WORLD_SIZE=str(launched.world), LOCAL_RANK=str(local))
    if "MASTER_ADDR" in os.environ and "MASTER_PORT" in os.environ:
        return
    address = _address_from_mpi()
    if address is None:
        # One node without mpi4py: rank 0 listens on the loopback at torchrun's default port.
        address = (os.environ.get("MASTER_ADDR", "127.0.0.1"), os.environ.get("MASTER_PORT", _DEFAULT_PORT))
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = address


def _address_from_mpi() -> tuple[str, str] | None:
    """Rank 0's host name and a free port, broadcast over MPI (HugeCTR scripts import mpi4py anyway)."""
    try:
        from mpi4py import MPI
    except ImportError:
        return None
    comm = MPI.COMM_WORLD
    address = None
    if comm.Get_rank() == 0:
        import socket

        from .launch import free_port

        address = (socket.gethostbyname(socket.gethostname()), str(free_port()))
    return comm.bcast(address, root=0)
