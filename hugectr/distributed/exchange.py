"""The collectives a model-parallel embedding needs: owner placement, counts, all-to-all, gathers.

Every function takes the process ``group`` (None: the default group) and degrades to the identity
when no group is initialised or it holds one rank, so a sharded table also runs in a plain
single-process script. Tensors stay on their device: gloo moves CPU tensors, NCCL CUDA ones.

Host syncs: ``exchange_counts`` reads the split sizes on the host (``all_to_all_single`` needs
them as Python ints: the one sync of a sharded lookup); ``all_gather_rows`` reads every rank's row
count (files only, never in a step); ``any_rank`` returns a Python bool.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist

_TWO_TO_64 = 1 << 64


def group_world(group=None) -> tuple[int, int]:
    """``(rank, world_size)`` in ``group``; ``(0, 1)`` without an initialised process group.

    >>> group_world()
    (0, 1)
    """
    if not (dist.is_available() and dist.is_initialized()):
        return 0, 1
    return dist.get_rank(group), dist.get_world_size(group)


def unsigned_mod(keys: torch.Tensor, world: int) -> torch.Tensor:
    """``(uint64) key % world`` for int64 keys: HugeCTR's owner of a key (negative keys wrap as uint64).

    torch's ``%`` is a floor modulo, which differs for negative keys; adding ``2**64 % world`` to them
    gives the unsigned result.

    >>> unsigned_mod(torch.tensor([7, -1, -2, 0]), 3).tolist()   # 2**64 - 1 is divisible by 3
    [1, 0, 2, 0]
    """
    owner = keys % world
    wrap = _TWO_TO_64 % world
    if wrap:
        owner = torch.where(keys < 0, (owner + wrap) % world, owner)
    return owner


def exchange_counts(send: torch.Tensor, group=None) -> tuple[list[list[int]], list[list[int]]]:
    """Tell every rank how much this rank sends it; returns ``(send, recv)`` as host lists.

    ``send`` is (world, k) int64: row r holds the k counts this rank sends to rank r. The result's
    ``send[j]`` / ``recv[j]`` are the j-th counts per peer (split sizes of one all-to-all). One
    all-to-all of world * k ints and one host sync for both directions.
    """
    _, world = group_world(group)
    recv = torch.empty_like(send)
    if world == 1:
        recv.copy_(send)
    else:
        dist.all_to_all_single(recv, send.contiguous(), group=group)
    both = torch.stack([send, recv]).transpose(1, 2).tolist()     # (2, k, world): one sync
    return both[0], both[1]


def as_rows_of(matrix: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``matrix`` (rows, w) reinterpreted as ``dtype``: (rows, w * old size / new size); zero rows too
    (a 2-D ``view`` to another element size refuses an empty tensor's strides).

    >>> as_rows_of(torch.zeros(0, 4, dtype=torch.int32), torch.int64).shape
    torch.Size([0, 2])
    >>> as_rows_of(torch.tensor([[1, 0]], dtype=torch.int32), torch.int64).tolist()
    [[1]]
    """
    rows, width = matrix.shape
    new_width = width * matrix.element_size() // torch.empty(0, dtype=dtype).element_size()
    return matrix.contiguous().reshape(-1).view(dtype).reshape(rows, new_width)


def all_to_all_rows(tensor: torch.Tensor, send_splits: list[int], recv_splits: list[int],
                    group=None) -> torch.Tensor:
    """Rows ``tensor[sum(send_splits[:r]) : ...]`` go to rank r; returns the rows received, by source rank."""
    _, world = group_world(group)
    if world == 1:
        return tensor
    out = tensor.new_empty((sum(recv_splits), *tensor.shape[1:]))
    dist.all_to_all_single(out, tensor.contiguous(), output_split_sizes=recv_splits,
                           input_split_sizes=send_splits, group=group)
    return out


def gather_counts(count: int, device, group=None) -> list[int]:
    """Every rank's ``count`` in rank order (one all-gather and a host sync).

    >>> gather_counts(5, "cpu")
    [5]
    """
    _, world = group_world(group)
    if world == 1:
        return [int(count)]
    mine = torch.tensor([count], dtype=torch.int64, device=device)
    counts = [torch.empty_like(mine) for _ in range(world)]
    dist.all_gather(counts, mine, group=group)
    return torch.cat(counts).tolist()


def all_gather_rows(tensor: torch.Tensor, group=None) -> tuple[torch.Tensor, list[int]]:
    """Every rank's rows concatenated in rank order (on every rank), and each rank's row count.

    Ranks may hold different row counts: the counts are gathered first (a host sync), the
    tensors padded to the largest and trimmed after the gather.
    """
    _, world = group_world(group)
    if world == 1:
        return tensor, [tensor.shape[0]]
    counts = gather_counts(tensor.shape[0], tensor.device, group)
    padded = tensor.new_zeros((max(counts), *tensor.shape[1:]))
    padded[:tensor.shape[0]] = tensor
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded, group=group)
    return torch.cat([part[:n] for part, n in zip(parts, counts)]), counts


def all_gather_packed(tensors: list[torch.Tensor], group=None) -> tuple[list[torch.Tensor], list[int]]:
    """``all_gather_rows`` of several tensors with the same row count, in one gather.

    The rows are bit-cast to int32 words side by side (itemsize 4 or 8: int64 keys, fp32 vectors)
    and cut apart after the gather, so a file export costs two collectives, not two per tensor.

    >>> (keys, vectors), counts = all_gather_packed([torch.tensor([5, -6]), torch.ones(2, 3)])
    >>> keys.tolist(), tuple(vectors.shape), counts
    ([5, -6], (2, 3), [2])
    """
    rows = tensors[0].shape[0]
    words = [as_rows_of(t.reshape(rows, math.prod(t.shape[1:])), torch.int32) for t in tensors]   # (rows, w_i)
    gathered, counts = all_gather_rows(torch.cat(words, dim=1), group)
    parts, start = [], 0
    for tensor, word in zip(tensors, words):
        part = as_rows_of(gathered[:, start:start + word.shape[1]], tensor.dtype)
        parts.append(part.reshape(-1, *tensor.shape[1:]))
        start += word.shape[1]
    return parts, counts


def any_rank(flag: bool, device, group=None) -> bool:
    """True on every rank when ``flag`` is True on any (so that all ranks raise together, none hangs)."""
    _, world = group_world(group)
    if world == 1:
        return bool(flag)
    value = torch.tensor([int(bool(flag))], dtype=torch.int64, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX, group=group)
    return bool(value.item())
