"""Embedding forward: gather each key's row and pool every (sample, slot) bag, in one pass.

``out[bag] = sum of weights[row] over the bag's keys``; ``mean`` divides by the bag size when it is
more than 1. A key whose row is -1 (absent at evaluation, or padding) adds 0 but still counts in the
bag size, as HugeCTR's lookup does; an empty bag gives zeros. Rows come either ready (training:
insert-or-find ran before, and ``update`` reuses them) or from the keys and the hash table's slots
(evaluation: the find runs inside the kernel, so no (nnz,) row tensor is written and read back).

Triton design: one program per (block of BLOCK_B bags, block of BLOCK_D columns). For every key
position j of its bags it loads BLOCK_B row ids (one per bag; bags shorter than j masked), gathers a
(BLOCK_B, BLOCK_D) tile of weights with int64 offsets (D a compile-time constant, so rows are
known 16-byte aligned and the loads vectorise) and accumulates in fp32; the tile is stored once in
the output dtype. Fixed hotness skips the offsets. Streams read once (ids, offsets, output) are
marked evict-first so L2 keeps the weight rows that repeat (small, hot tables).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .dispatch import next_power_of_2, tl, triton, triton_enabled
from .hash_find import HashSlots, hash_find_reference, load_max_probe, probe_args, probe_rows

COMBINERS = ("sum", "mean")
_OUT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_MAX_BLOCK_D = 256
_TILE_ELEMENTS = 4096        # BLOCK_B * BLOCK_D: 16 KiB of fp32 per gathered tile


def _check(weights, indices, offsets, hotness, combiner, out_dtype, out=None) -> int:
    """Validates the arguments; returns the number of bags."""
    if combiner not in COMBINERS:
        raise ValueError(f"embedding_pool: combiner {combiner!r}, expected one of {COMBINERS}")
    if out_dtype not in _OUT_DTYPES:
        raise TypeError(f"embedding_pool: out_dtype {out_dtype}, expected one of {_OUT_DTYPES}")
    if weights.dim() != 2:
        raise ValueError(f"embedding_pool: weights must be (rows, dim), got shape {tuple(weights.shape)}")
    if indices.dtype != torch.int64:
        raise TypeError(f"embedding_pool: indices must be int64, got {indices.dtype}")
    if offsets is None and not hotness:
        raise ValueError("embedding_pool: give the CSR offsets (num_bags + 1,) or a fixed hotness >= 1")
    if offsets is not None:
        num_bags = offsets.numel() - 1
    elif indices.numel() % hotness:
        raise ValueError(f"embedding_pool: {indices.numel()} indices is not a multiple of hotness {hotness}")
    else:
        num_bags = indices.numel() // hotness
    if out is not None:
        expected = (num_bags, weights.shape[1])
        if tuple(out.shape) != expected or out.dtype != out_dtype or not out.is_contiguous():
            raise ValueError(f"embedding_pool: out must be a contiguous {expected} {out_dtype} tensor, got "
                             f"{tuple(out.shape)} {out.dtype}")
    return num_bags


# -- reference ------------------------------------------------------------------------------------
def embedding_pool_reference(weights: torch.Tensor, indices: torch.Tensor, offsets: torch.Tensor | None, *,
                             hotness: int | None = None, combiner: str = "sum",
                             hash_slots: HashSlots | None = None,
                             out_dtype: torch.dtype = torch.float32, out: torch.Tensor | None = None) -> torch.Tensor:
    """(num_bags, D) pooled rows in plain torch (``F.embedding_bag`` with per-key weights).

    >>> w = torch.arange(6, dtype=torch.float32).view(3, 2)
    >>> embedding_pool_reference(w, torch.tensor([0, 2, -1, 1]), torch.tensor([0, 3, 3, 4]), combiner="mean")
    tensor([[1.3333, 2.0000],
            [0.0000, 0.0000],
            [2.0000, 3.0000]])
    """
    num_bags = _check(weights, indices, offsets, hotness, combiner, out_dtype, out)
    indices = indices.reshape(-1)
    if offsets is None:
        offsets = torch.arange(0, indices.numel() + 1, hotness, dtype=torch.int64, device=indices.device)
    rows = indices if hash_slots is None else hash_find_reference(indices, hash_slots)
    per_key = (rows >= 0).to(torch.float32)                                  # absent rows add 0
    if combiner == "mean":
        sizes = (offsets[1:] - offsets[:-1]).clamp(min=1).to(torch.float32)   # (num_bags,)
        bag_of_key = torch.repeat_interleave(torch.arange(num_bags, device=indices.device),
                                             offsets[1:] - offsets[:-1], output_size=indices.numel())
        per_key = per_key / sizes[bag_of_key]
    pooled = F.embedding_bag(rows.clamp(min=0), weights, offsets, mode="sum", per_sample_weights=per_key,
                             include_last_offset=True)                         # (num_bags, D) fp32
    return pooled.to(out_dtype) if out is None else out.copy_(pooled)


# -- Triton ---------------------------------------------------------------------------------------
@triton.jit
def _pool_kernel(weights_ptr, indices_ptr, offsets_ptr, out_ptr, num_bags,
                 slot_keys_ptr, slot_rows_ptr, slot_mask, probe_ptr, probe_int,
                 D: tl.constexpr, HOTNESS: tl.constexpr, MEAN: tl.constexpr, FIND: tl.constexpr,
                 PROBE_FROM_PTR: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_D: tl.constexpr):
    bags = tl.program_id(0).to(tl.int64) * BLOCK_B + tl.arange(0, BLOCK_B)     # (BLOCK_B,) int64
    bag_ok = bags < num_bags
    cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)                   # (BLOCK_D,)
    col_ok = cols < D
    if HOTNESS > 0:
        starts = bags * HOTNESS
        lengths = tl.where(bag_ok, HOTNESS, 0)
        steps = HOTNESS
    else:
        starts = tl.load(offsets_ptr + bags, mask=bag_ok, other=0, eviction_policy="evict_first")
        ends = tl.load(offsets_ptr + bags + 1, mask=bag_ok, other=0, eviction_policy="evict_first")
        lengths = ends - starts
        steps = tl.max(lengths, 0)
    if FIND:
        max_probe = load_max_probe(probe_ptr, probe_int, PROBE_FROM_PTR)
    acc = tl.zeros([BLOCK_B, BLOCK_D], dtype=tl.float32)
    for j in range(0, steps):
        key_ok = j < lengths
        ids = tl.load(indices_ptr + starts + j, mask=key_ok, other=-1, eviction_policy="evict_first")
        if FIND:
            ids = probe_rows(ids, key_ok, slot_keys_ptr, slot_rows_ptr, slot_mask, max_probe)
        row_ok = key_ok & (ids >= 0)
        tile = tl.load(weights_ptr + ids[:, None] * D + cols[None, :],
                       mask=row_ok[:, None] & col_ok[None, :], other=0.0)        # (BLOCK_B, BLOCK_D)
        acc += tile.to(tl.float32)
    if MEAN:
        acc = acc / tl.maximum(lengths, 1).to(tl.float32)[:, None]
    tl.store(out_ptr + bags[:, None] * D + cols[None, :], acc.to(out_ptr.dtype.element_ty),
             mask=bag_ok[:, None] & col_ok[None, :], eviction_policy="evict_first")


def launch_config(dim: int) -> tuple[int, int, int]:
    """``(BLOCK_B, BLOCK_D, num_warps)`` for embedding dim ``dim``: ~4K elements a tile, whole rows.

    >>> launch_config(128), launch_config(16)
    ((32, 128, 8), (256, 16, 4))
    """
    block_d = min(next_power_of_2(dim), _MAX_BLOCK_D)
    block_b = max(1, min(256, _TILE_ELEMENTS // block_d))
    return block_b, block_d, 8 if block_d >= 128 else 4


def embedding_pool_triton(weights: torch.Tensor, indices: torch.Tensor, offsets: torch.Tensor | None, *,
                          hotness: int | None = None, combiner: str = "sum", hash_slots: HashSlots | None = None,
                          out_dtype: torch.dtype = torch.float32, out: torch.Tensor | None = None) -> torch.Tensor:
    """(num_bags, D) pooled rows, one fused Triton kernel (find included when ``hash_slots`` is given)."""
    num_bags = _check(weights, indices, offsets, hotness, combiner, out_dtype, out)
    dim = weights.shape[1]
    weights, indices = weights.contiguous(), indices.reshape(-1).contiguous()
    if out is None:
        out = torch.empty(num_bags, dim, dtype=out_dtype, device=weights.device)
    if num_bags == 0 or dim == 0:
        return out
    if offsets is None:
        offsets = indices             # never read: HOTNESS > 0
    else:
        offsets, hotness = offsets.contiguous(), None
    if hash_slots is None:
        find_args = (indices, indices, 0, indices, 0, False)   # unread placeholders
    else:
        find_args = probe_args(hash_slots)
    block_b, block_d, num_warps = launch_config(dim)
    grid = (triton.cdiv(num_bags, block_b), triton.cdiv(dim, block_d))
    _pool_kernel[grid](weights, indices, offsets, out, num_bags, *find_args[:5], D=dim, HOTNESS=hotness or 0,
                       MEAN=combiner == "mean", FIND=hash_slots is not None, PROBE_FROM_PTR=find_args[5],
                       BLOCK_B=block_b, BLOCK_D=block_d, num_warps=num_warps)
    return out


def embedding_pool(weights: torch.Tensor, indices: torch.Tensor, offsets: torch.Tensor | None, *,
                   hotness: int | None = None, combiner: str = "sum", hash_slots: HashSlots | None = None,
                   out_dtype: torch.dtype = torch.float32, out: torch.Tensor | None = None) -> torch.Tensor:
    """(num_bags, D) bags of ``weights`` rows pooled with ``combiner`` (Triton on CUDA).

    Args:
        weights: (rows, D) table (fp32).
        indices: (nnz,) int64 rows (-1: adds 0), or keys when ``hash_slots`` is given.
        offsets: (num_bags + 1,) CSR offsets into ``indices``; None with ``hotness`` (every bag has
            ``hotness`` keys; when both are given the offsets win).
        combiner: ``"sum"`` or ``"mean"`` (divides by the bag size, absent keys included, when > 1).
        hash_slots: the table to find ``indices`` in (evaluation); None when they are rows already.
        out_dtype: float32, float16 or bfloat16; the sum is always accumulated in fp32.
        out: a contiguous (num_bags, D) ``out_dtype`` tensor to write into (and return) instead of a new
            one: a buffer at a fixed address, which a CUDA graph reads without copying it first.
    """
    pool = embedding_pool_triton if triton_enabled(weights.device) else embedding_pool_reference
    return pool(weights, indices, offsets, hotness=hotness, combiner=combiner, hash_slots=hash_slots,
                out_dtype=out_dtype, out=out)
