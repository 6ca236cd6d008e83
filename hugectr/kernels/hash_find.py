"""Find-only lookup of int64 keys in the hash table's slot arrays: the torch reference and a Triton kernel.

The layout (``HashTable`` in ``hugectr/embedding/hash_table.py`` owns it): ``slot_keys`` and
``slot_rows`` of a power-of-two length, ``EMPTY_KEY`` marking a free slot, a key stored ``d`` slots
after its home slot ``mix64(key) & (num_slots - 1)`` with no free slot in between, ``d <= max_probe``.
Both versions walk exactly that: a key stops at its match (its row), at a free slot or after
``max_probe + 1`` slots (-1). The Triton kernel gives each lane one key; a program stops as soon as
its last lane has, and reads ``max_probe`` from device memory when given a tensor (no host sync).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .dispatch import tl, triton, triton_enabled

EMPTY_KEY = torch.iinfo(torch.int64).max
_SPLITMIX_M1 = 0xBF58476D1CE4E5B9 - (1 << 64)   # the constants as signed int64
_SPLITMIX_M2 = 0x94D049BB133111EB - (1 << 64)
_FIND_BLOCK = 128


class HashSlots(NamedTuple):
    """The arrays a lookup reads: ``slot_keys`` (num_slots,) int64, ``slot_rows`` (num_slots,) int32 or int64
    and the probe bound; lookups return int64 rows either way.

    ``max_probe`` is an int, or a (1,) int64 tensor on the slots' device (then the Triton kernels read
    it in place; the reference reads it with one host sync).
    """

    slot_keys: torch.Tensor
    slot_rows: torch.Tensor
    max_probe: int | torch.Tensor


def _shift_right_logical(z: torch.Tensor, bits: int) -> torch.Tensor:
    # torch's >> on int64 is arithmetic; masking the sign-extended bits makes it logical.
    return (z >> bits) & ((1 << (64 - bits)) - 1)


def mix64(keys: torch.Tensor) -> torch.Tensor:
    """splitmix64's finaliser on int64 keys (bit pattern of the unsigned result, as int64).

    >>> mix64(torch.tensor([0, 1])).tolist()
    [0, 6238072747940578789]
    """
    z = keys
    z = (z ^ _shift_right_logical(z, 30)) * _SPLITMIX_M1
    z = (z ^ _shift_right_logical(z, 27)) * _SPLITMIX_M2
    return z ^ _shift_right_logical(z, 31)


# -- reference ------------------------------------------------------------------------------------
def hash_find_reference(keys: torch.Tensor, slots: HashSlots) -> torch.Tensor:
    """(n,) rows of ``keys`` (-1 where absent) in torch rounds, at most ``max_probe + 1`` of them.

    Each round looks at one slot for every key still walking and drops those that met their key or a
    free slot, so the work is the keys' total walk (about 2.5 slots a key in a full table), not
    ``n x (max_probe + 1)``: a table near three quarters full has walks of a hundred slots and more.
    Dropping keys reads their count on the host (a sync on CUDA); the Triton kernel never does.

    >>> keys = torch.full((4,), EMPTY_KEY); rows = torch.full((4,), -1)
    >>> home = int(mix64(torch.tensor([9]))) & 3
    >>> keys[home], rows[home] = 9, 0
    >>> hash_find_reference(torch.tensor([9, 5]), HashSlots(keys, rows, 0)).tolist()
    [0, -1]
    """
    slot_keys, slot_rows, max_probe = slots
    keys = keys.reshape(-1)
    mask = slot_keys.numel() - 1
    rows = torch.full_like(keys, -1)
    walking = torch.nonzero(keys != EMPTY_KEY).squeeze(1)         # the sentinel is never stored
    pos = mix64(keys[walking]) & mask
    for _ in range(int(max_probe) + 1):
        if walking.numel() == 0:
            break
        seen = slot_keys[pos]
        hit = seen == keys[walking]
        rows[walking[hit]] = slot_rows[pos[hit]].long()
        going = ~hit & (seen != EMPTY_KEY)
        walking, pos = walking[going], (pos[going] + 1) & mask
    return rows


# -- Triton ---------------------------------------------------------------------------------------
@triton.jit
def mix64_triton(keys):
    """splitmix64's finaliser; uint64 arithmetic wraps and shifts logically, as the reference's."""
    z = keys.to(tl.uint64, bitcast=True)
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB
    z = z ^ (z >> 31)
    return z.to(tl.int64, bitcast=True)


@triton.jit
def probe_rows(keys, valid, slot_keys_ptr, slot_rows_ptr, slot_mask, max_probe):
    """Rows (BLOCK,) int64 of ``keys`` (BLOCK,) int64, -1 where absent or not ``valid``."""
    empty = 0x7FFFFFFFFFFFFFFF
    pos = mix64_triton(keys) & slot_mask
    rows = tl.zeros_like(keys) - 1
    active = valid & (keys != empty)         # the sentinel is never stored
    distance = 0
    # Stops when every lane is done or the bound is passed (a key further on was never stored).
    while (tl.max(active.to(tl.int32), 0) > 0) & (distance <= max_probe):
        seen = tl.load(slot_keys_ptr + pos, mask=active, other=empty)
        hit = active & (seen == keys)
        rows = tl.where(hit, tl.load(slot_rows_ptr + pos, mask=hit, other=-1).to(tl.int64), rows)
        active = active & (seen != keys) & (seen != empty)
        pos = (pos + 1) & slot_mask
        distance += 1
    return rows


@triton.jit
def load_max_probe(probe_ptr, probe_int, PROBE_FROM_PTR: tl.constexpr):
    """The probe bound: read from device memory (tables kept on the GPU) or given as an int."""
    if PROBE_FROM_PTR:
        return tl.load(probe_ptr)
    else:
        return probe_int


@triton.jit
def _find_kernel(keys_ptr, rows_ptr, n, slot_keys_ptr, slot_rows_ptr, slot_mask, probe_ptr, probe_int,
                 PROBE_FROM_PTR: tl.constexpr, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    valid = offsets < n
    keys = tl.load(keys_ptr + offsets, mask=valid, other=0, eviction_policy="evict_first")
    max_probe = load_max_probe(probe_ptr, probe_int, PROBE_FROM_PTR)
    rows = probe_rows(keys, valid, slot_keys_ptr, slot_rows_ptr, slot_mask, max_probe)
    tl.store(rows_ptr + offsets, rows, mask=valid)


def probe_args(slots: HashSlots) -> tuple:
    """``(slot_keys, slot_rows, slot_mask, probe_ptr, probe_int, PROBE_FROM_PTR)`` for a kernel launch."""
    slot_keys, slot_rows, max_probe = slots
    from_ptr = isinstance(max_probe, torch.Tensor)
    probe_ptr = max_probe if from_ptr else slot_keys       # any int64 tensor when unused
    return slot_keys, slot_rows, slot_keys.numel() - 1, probe_ptr, 0 if from_ptr else int(max_probe), from_ptr


def hash_find_triton(keys: torch.Tensor, slots: HashSlots) -> torch.Tensor:
    """(n,) rows of ``keys`` (-1 where absent), one lane per key; no host sync."""
    keys = keys.reshape(-1).contiguous()
    rows = torch.empty_like(keys)
    if keys.numel():
        slot_keys, slot_rows, slot_mask, probe_ptr, probe_int, from_ptr = probe_args(slots)
        grid = (triton.cdiv(keys.numel(), _FIND_BLOCK),)
        _find_kernel[grid](keys, rows, keys.numel(), slot_keys, slot_rows, slot_mask, probe_ptr, probe_int,
                           PROBE_FROM_PTR=from_ptr, BLOCK=_FIND_BLOCK, num_warps=4)
    return rows


def hash_find(keys: torch.Tensor, slots: HashSlots) -> torch.Tensor:
    """(n,) int64 rows of ``keys`` in the table ``slots``, -1 where absent (Triton on CUDA)."""
    if triton_enabled(keys.device):
        return hash_find_triton(keys, slots)
    return hash_find_reference(keys, slots)
