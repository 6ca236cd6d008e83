"""Store distinct, absent int64 keys with given rows in the hash table's slots: torch rounds or Triton CAS.

``HashTable.insert_or_find_unique`` does the rest of insert-or-find (dedup, find, the overflow check,
rows in first-occurrence order) and calls ``hash_insert`` for the new keys only. The keys being
distinct and absent, a key never meets itself, so a slot is claimed by exactly one key:

* reference: probing rounds; keys on an empty slot race with a scatter-min (the smallest key wins,
  deterministic), the others move one slot on;
* Triton: one lane per key walks its probe sequence and claims the first empty slot with
  ``tl.atomic_cas`` (whichever lane gets there first wins, so the slot layout may differ from the
  reference; rows and every ``find`` result are the same). The longest walk goes into the table's
  device-side ``max_probe`` with ``tl.atomic_max``: no host sync.
"""

from __future__ import annotations

import torch

from .dispatch import tl, triton, triton_enabled
from .hash_find import EMPTY_KEY, HashSlots, mix64, mix64_triton

_INSERT_BLOCK = 128


def hash_insert_reference(keys: torch.Tensor, rows: torch.Tensor, slots: HashSlots) -> int:
    """Place ``keys`` (n,) with ``rows`` (n,) in probing rounds; returns the longest displacement.

    Entries with a negative row are skipped. ``slots.max_probe`` (a (1,) tensor) is raised to the
    longest displacement as well. One host sync per round.

    >>> slots = HashSlots(torch.full((8,), EMPTY_KEY), torch.full((8,), -1), torch.zeros(1, dtype=torch.int64))
    >>> hash_insert_reference(torch.tensor([4, -4]), torch.tensor([0, 1]), slots) >= 0
    True
    >>> sorted(slots.slot_rows[slots.slot_keys != EMPTY_KEY].tolist())
    [0, 1]
    """
    slot_keys, slot_rows, probe_bound = slots
    keep = rows >= 0                                      # negative rows mark entries to skip
    keys, rows = keys[keep], rows[keep]
    mask = slot_keys.numel() - 1
    pos = mix64(keys) & mask
    active = torch.arange(keys.numel(), device=keys.device)
    displacement = largest = 0
    while active.numel():
        largest = displacement
        slot = pos[active]
        is_empty = slot_keys[slot] == EMPTY_KEY
        slot_keys.scatter_reduce_(0, slot[is_empty], keys[active[is_empty]], "amin")
        won = is_empty & (slot_keys[slot] == keys[active])
        slot_rows[slot[won]] = rows[active[won]].to(slot_rows.dtype)
        active = active[~won]
        pos[active] = (pos[active] + 1) & mask
        displacement += 1
    probe_bound.clamp_(min=largest)
    return largest


@triton.jit
def _insert_kernel(keys_ptr, rows_ptr, n, slot_keys_ptr, slot_rows_ptr, slot_mask, probe_ptr,
                   BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    valid = offsets < n
    empty = tl.full([BLOCK], 0x7FFFFFFFFFFFFFFF, tl.int64)
    keys = tl.load(keys_ptr + offsets, mask=valid, other=0x7FFFFFFFFFFFFFFF)
    rows = tl.load(rows_ptr + offsets, mask=valid, other=-1)
    pos = mix64_triton(keys) & slot_mask
    distance = tl.zeros([BLOCK], tl.int32)
    active = valid & (rows >= 0)          # a negative row marks an entry to skip (fixed-size callers)
    while tl.max(active.to(tl.int32), 0) > 0:
        # tl.atomic_cas takes no mask: done lanes swap EMPTY for EMPTY on their own (now full) slot,
        # which fails and writes nothing; lanes past n do it on some slot, which changes nothing.
        previous = tl.atomic_cas(slot_keys_ptr + pos, empty, tl.where(active, keys, empty))
        won = active & (previous == empty)
        tl.store(slot_rows_ptr + pos, rows, mask=won)
        active = active & ~won
        pos = tl.where(active, (pos + 1) & slot_mask, pos)
        distance = tl.where(active, distance + 1, distance)
    tl.atomic_max(probe_ptr, tl.max(distance, 0).to(tl.int64))


def hash_insert_triton(keys: torch.Tensor, rows: torch.Tensor, slots: HashSlots) -> None:
    """Place ``keys`` (n,) with ``rows`` (n,): one lane per key claims a slot with an atomic CAS.

    Entries whose row is negative are skipped, so callers can pass fixed-size arrays (no host sync).
    """
    slot_keys, slot_rows, probe_bound = slots
    keys, rows = keys.reshape(-1).contiguous(), rows.reshape(-1).contiguous()
    if keys.numel():
        grid = (triton.cdiv(keys.numel(), _INSERT_BLOCK),)
        _insert_kernel[grid](keys, rows, keys.numel(), slot_keys, slot_rows, slot_keys.numel() - 1, probe_bound,
                             BLOCK=_INSERT_BLOCK, num_warps=4)


def hash_insert(keys: torch.Tensor, rows: torch.Tensor, slots: HashSlots) -> int | None:
    """Store distinct keys absent from ``slots`` with their ``rows``; the table must keep a free slot.

    ``slots.max_probe`` must be the table's (1,) int64 device tensor: it is raised in place to the
    longest displacement. Returns that displacement when the host knows it without a sync (the
    reference), None otherwise (Triton).
    """
    if not isinstance(slots.max_probe, torch.Tensor):
        raise TypeError(f"hash_insert: max_probe must be the table's (1,) int64 tensor, got {type(slots.max_probe)}")
    if triton_enabled(keys.device):
        hash_insert_triton(keys, rows, slots)
        return None
    return hash_insert_reference(keys, rows, slots)
