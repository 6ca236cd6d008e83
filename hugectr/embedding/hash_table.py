"""``HashTable``: int64 key -> table row, open addressing, vectorised (torch on CPU, Triton on CUDA).

Layout: a power-of-two array of slots (``slot_keys`` int64, ``slot_rows`` int32 unless a table has
2**31 rows or more) at most three quarters full when the table is, so probe runs stay short (about
2.5 slots for a hit on average at that load) while the slots cost 16-32 bytes a row (an fp32 row of
dim 16 with Adam is 192; a half-full int64 layout cost 32-64); ``row_keys[r]`` is the key that owns
row ``r``. Rows are handed out 0, 1, 2, ... in
the order keys first appear, as HugeCTR's ``get_insert`` does, so the row order is the file order of
the sparse model's ``key`` file.

Hashing: the splitmix64 finaliser in int64 arithmetic (multiplication wraps modulo 2**64 as in
two's complement; logical shifts are emulated with a mask), then ``& (num_slots - 1)``. Linear
probing: a key sits ``d`` slots after its home slot with nothing empty in between; ``max_probe`` is
the largest ``d`` stored so far, which lets ``find`` run a fixed number of rounds with no host sync.
It lives on the device too (``probe_bound``): the Triton insert raises it there and the Triton find
reads it there, so the host copy is only refreshed (one sync) when something asks for it.

The slot walks themselves are ``hugectr.kernels.hash_find`` / ``hash_insert`` (a Triton kernel on
CUDA, the torch reference elsewhere or with ``HUGECTR_KERNELS=torch``); this class keeps the
semantics both share: dedup, rows in first-occurrence order, the overflow check before any change.

The empty sentinel is ``INT64_MAX`` (HugeCTR's ``numeric_limits<key>::max()``): inserting it raises
``ValueError``; every other int64 (negative ones too) is an ordinary key.
"""

from __future__ import annotations

import torch

from ..kernels.dispatch import triton_enabled
from ..kernels.embedding_update import OccurrenceGroups
from ..kernels.hash_find import EMPTY_KEY, HashSlots, hash_find, mix64
from ..kernels.hash_insert import hash_insert

__all__ = ["EMPTY_KEY", "HashTable", "HashTableOverflowError", "mix64"]


def _positions(mask: torch.Tensor, count: int) -> torch.Tensor:
    """(count,) indices where ``mask`` is True, in order, with ``count`` known: no host sync (nonzero syncs).

    >>> _positions(torch.tensor([False, True, True, False, True]), 3).tolist()
    [1, 2, 4]
    """
    target = torch.where(mask, torch.cumsum(mask, 0) - 1, count)          # misses go to a scratch entry
    index = torch.arange(mask.numel(), device=mask.device)
    return torch.empty(count + 1, dtype=torch.int64, device=mask.device).scatter_(0, target, index)[:count]


class HashTableOverflowError(ValueError):
    """More distinct keys than the table's capacity; the table is left as it was."""


class HashTable:
    """Maps int64 keys to rows ``0..capacity-1`` in first-insertion order.

    >>> t = HashTable(8, "cpu")
    >>> t.insert_or_find(torch.tensor([7, -3, 7, 42])).tolist()
    [0, 1, 0, 2]
    >>> t.find(torch.tensor([42, 5, -3])).tolist(), t.size, t.export().tolist()
    ([2, -1, 1], 3, [7, -3, 42])
    """

    def __init__(self, capacity: int, device, *, name: str = "", fixed_size: bool | None = None) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"HashTable '{name}': capacity must be a positive int, got {capacity!r}")
        self.capacity = capacity
        self.name = name
        self.device = torch.device(device)
        num_slots = 1 << max(1, (-(-4 * capacity // 3) - 1).bit_length())   # power of two >= capacity / 0.75
        self.mask = num_slots - 1
        # Rows 0..capacity (the scratch row included) fit int32 for any table under 2**31 rows.
        row_dtype = torch.int32 if capacity < torch.iinfo(torch.int32).max else torch.int64
        self.slot_keys = torch.full((num_slots,), EMPTY_KEY, dtype=torch.int64, device=self.device)
        self.slot_rows = torch.full((num_slots,), -1, dtype=row_dtype, device=self.device)
        # Row ``capacity`` is a scratch row: fixed-size (sync-free) inserts send their padding there.
        self.row_keys = torch.empty(capacity + 1, dtype=torch.int64, device=self.device)
        self._size = 0                                         # keys stored, when known on the host
        self._size_on_device = torch.zeros(1, dtype=torch.int64, device=self.device)
        self._size_on_host = True
        self._errors = _DeferredErrors(self.device)
        # Fixed-size (sync-free) inserts by default where the device runs ahead of the host: CUDA + Triton.
        self.fixed_size = (self.device.type == "cuda" and triton_enabled(self.device)) if fixed_size is None \
            else fixed_size
        # Longest displacement from a home slot among stored keys: on the device (always current) and
        # on the host (current unless a Triton insert raised the device copy since the last read).
        self.probe_bound = torch.zeros(1, dtype=torch.int64, device=self.device)
        self._max_probe = 0
        self._max_probe_on_host = True

    @property
    def num_slots(self) -> int:
        return self.mask + 1

    @property
    def scratch_row(self) -> int:
        """The row index that fixed-size results use for padding (never a key's row)."""
        return self.capacity

    @property
    def size(self) -> int:
        """Keys stored (a host sync when a sync-free insert changed it)."""
        if not self._size_on_host:
            self._size, self._size_on_host = int(self._size_on_device), True
        return self._size

    def _set_size(self, size: int) -> None:
        self._size, self._size_on_host = size, True
        self._size_on_device.fill_(size)

    def check_errors(self) -> None:
        """Raise what a sync-free insert recorded on the device (overflow, the reserved key); syncs."""
        self._errors.raise_if_set(self, block=True)

    @property
    def max_probe(self) -> int:
        """Longest displacement of a stored key (a host sync when a Triton insert changed it)."""
        if not self._max_probe_on_host:
            self._max_probe, self._max_probe_on_host = int(self.probe_bound), True
        return self._max_probe

    def slots(self) -> HashSlots:
        """The arrays a lookup kernel reads; the probe bound as a host int when current, else the tensor."""
        bound = self._max_probe if self._max_probe_on_host else self.probe_bound
        return HashSlots(self.slot_keys, self.slot_rows, bound)

    def _as_keys(self, keys: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(keys).reshape(-1).to(self.device, torch.int64)

    def clear(self) -> None:
        """Forget every key (rows restart at 0)."""
        self.slot_keys.fill_(EMPTY_KEY)
        self.slot_rows.fill_(-1)
        self._set_size(0)
        self.probe_bound.zero_()
        self._max_probe, self._max_probe_on_host = 0, True

    # -- lookups ------------------------------------------------------------------------------
    def find(self, keys: torch.Tensor) -> torch.Tensor:
        """(n,) rows of ``keys``, -1 where a key is absent. Never inserts; no host sync with Triton.

        Walks at most ``max_probe + 1`` slots per key: every stored key is found within them, and an
        absent key stops at an empty slot or runs out of slots (the sentinel key is simply absent).
        """
        keys = self._as_keys(keys)
        if self._size_on_host and self._size == 0:
            return torch.full_like(keys, -1)
        return hash_find(keys, self.slots())

    def insert_or_find(self, keys: torch.Tensor) -> torch.Tensor:
        """(n,) rows of ``keys``; new keys get the next free rows in first-occurrence order."""
        unique_rows, inverse = self.insert_or_find_unique(keys)
        return unique_rows[inverse]

    def insert_or_find_unique(self, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(unique_rows (U,), inverse (n,))`` with ``rows = unique_rows[inverse]``.

        The backward pass reuses ``inverse`` to sum gradients per row without another unique.
        With Triton on CUDA this never waits for the device: ``U`` is then ``n`` (padding entries
        hold ``scratch_row``) and an overflow is raised by the next call or ``check_errors()``,
        the table left unchanged. Otherwise (CPU, the torch reference) overflow raises
        ``HashTableOverflowError`` right here, before anything changes.
        """
        return self.insert_or_find_new(keys)[:2]

    def insert_or_find_new(self, keys: torch.Tensor):
        """``(unique_rows, inverse, new_rows, first_seen)``: ``insert_or_find_unique`` plus, per unique
        entry, the row it was just given (``scratch_row`` if it was not new) and the position of its
        first occurrence in ``keys`` (for callers that record where new keys came from)."""
        return self.insert_or_find_grouped(keys)[:4]

    def insert_or_find_grouped(self, keys: torch.Tensor):
        """``insert_or_find_new``'s four tensors and the occurrences grouped by unique entry.

        The fifth item is an ``OccurrenceGroups`` (what the fused backward sorts for) when the
        fixed-size path sorted the keys anyway, else None.
        """
        keys = self._as_keys(keys)
        if self.fixed_size:
            self._errors.raise_if_set(self, block=False)
            return self._insert_fixed_size(keys)
        return (*self._insert_with_syncs(keys), None)

    def _insert_with_syncs(self, keys: torch.Tensor):
        """The exact-size path: ``torch.unique`` and the new-key count are read on the host."""
        unique, inverse = torch.unique(keys, return_inverse=True)   # (U,) sorted, (n,)
        rows = self.find(unique)
        missing = rows < 0
        # One transfer: the new-key count and whether the sentinel (the largest int64, so the
        # last unique key) was given.
        num_new, has_sentinel = torch.stack([missing.sum(), (unique[-1:] == EMPTY_KEY).sum()]).tolist()
        if has_sentinel:
            raise self.sentinel_error()
        first_seen = torch.full_like(unique, keys.numel()).scatter_reduce_(
            0, inverse, torch.arange(keys.numel(), device=self.device), "amin")
        new_rows = torch.full_like(rows, self.scratch_row)
        if num_new:
            self._check_room(num_new)
            missing_index = _positions(missing, num_new)                # (num_new,)
            order = torch.argsort(first_seen[missing_index])             # first occurrence first
            placed = torch.empty_like(missing_index)
            placed[order] = torch.arange(self.size, self.size + num_new, device=self.device)
            self._place(unique[missing_index], placed)
            rows[missing_index] = placed
            new_rows[missing_index] = placed
        return rows, inverse, new_rows, first_seen

    def _insert_fixed_size(self, keys: torch.Tensor):
        """Insert-or-find with every array of size n: no host sync (see ``insert_or_find_unique``).

        One stable sort of the keys gives everything: unique entries in key order, each one's first
        occurrence (its run's head, the sort being stable), the rank of each new key in
        first-occurrence order (a running count over occurrence positions) and the grouping the
        backward pass needs.
        """
        n, device = keys.numel(), self.device
        if n == 0:
            empty = torch.empty(0, dtype=torch.int64, device=device)
            return empty, empty, empty, empty, OccurrenceGroups(empty.to(torch.int32), empty)
        sorted_keys, order = torch.sort(keys, stable=True)
        head = torch.ones(n, dtype=torch.bool, device=device)
        head[1:] = sorted_keys[1:] != sorted_keys[:-1]
        ids = torch.cumsum(head, 0) - 1                                  # (n,) unique index, sorted order
        inverse = torch.empty_like(ids).scatter_(0, order, ids)
        # Padding entries hold EMPTY_KEY, which find never finds (-1) and insert never stores, like the
        # reserved key itself: masks on ``unique != EMPTY_KEY`` and ``rows >= 0`` cover both.
        unique = torch.full_like(keys, EMPTY_KEY).scatter_(0, ids, sorted_keys)   # (n,) padded
        rows = hash_find(unique, self.slots())
        missing = (rows < 0) & (unique != EMPTY_KEY)
        # Heads write their unique entry's first occurrence; the others write a scratch entry n.
        first_seen = torch.full((n + 1,), n, dtype=torch.int64, device=device).scatter_(
            0, torch.where(head, ids, n), order)[:n]
        # Occurrence p starts a new key's run: counting those up to p ranks new keys by first occurrence.
        starts = torch.empty_like(ids).scatter_(0, order, (head & missing.index_select(0, ids)).long())
        rank = (torch.cumsum(starts, 0) - 1).index_select(0, first_seen.clamp(max=n - 1))
        attempted = self._size_on_device + missing.sum()                # (1,)
        fits = attempted <= self.capacity
        insert = missing & fits
        new_rows = torch.where(insert, self._size_on_device + rank, self.scratch_row)
        hash_insert(unique, torch.where(insert, new_rows, -1), HashSlots(self.slot_keys, self.slot_rows,
                                                                          self.probe_bound))
        self._max_probe_on_host = False
        self.row_keys.scatter_(0, new_rows, unique)                      # padding lands on the scratch row
        self._size_on_device.copy_(torch.where(fits, attempted, self._size_on_device))
        self._size_on_host = False
        # The reserved key is the largest int64: given, it sorts last.
        self._errors.record(torch.where(fits, 0, attempted), sorted_keys[-1:] == EMPTY_KEY)
        rows = torch.where(insert, new_rows, torch.where(rows >= 0, rows, self.scratch_row))
        return rows, inverse, new_rows, first_seen, OccurrenceGroups(ids.to(torch.int32), order)

    # -- insertion ----------------------------------------------------------------------------
    def _check_room(self, num_new: int) -> None:
        if self.size + num_new > self.capacity:
            raise self.overflow_error(self.size + num_new)

    def overflow_error(self, attempted: int) -> HashTableOverflowError:
        return HashTableOverflowError(
            f"Runtime vocabulary size ({attempted}) exceeds max_vocabulary_size_per_gpu "
            f"({self.capacity}) of embedding '{self.name}'; raise workspace_size_per_gpu_in_mb (or the "
            "slot_size_array sizes of a Localized embedding) so the table holds every distinct key")

    def sentinel_error(self) -> ValueError:
        return ValueError(f"HashTable '{self.name}': key {EMPTY_KEY} (INT64_MAX) is reserved as the empty "
                          "slot marker and cannot be stored; remap it in the data")

    def _place(self, keys: torch.Tensor, rows: torch.Tensor) -> None:
        """Store distinct, absent ``keys`` with their ``rows`` (the table has room: checked before).

        ``hash_insert`` claims the slots (torch rounds, or one Triton CAS walk per key) and raises
        ``probe_bound``; the host copy of ``max_probe`` follows when the reference reports it.
        """
        largest = hash_insert(keys, rows, HashSlots(self.slot_keys, self.slot_rows, self.probe_bound))
        if largest is not None and self._max_probe_on_host:
            self._max_probe = max(self._max_probe, largest)
        else:
            self._max_probe_on_host = False
        self.row_keys[rows] = keys
        self._set_size(self.size + keys.numel())

    # -- files --------------------------------------------------------------------------------
    def export(self) -> torch.Tensor:
        """(size,) the keys in row order (row r holds key ``export()[r]``)."""
        return self.row_keys[:self.size].clone()

    def import_keys(self, keys: torch.Tensor) -> None:
        """Replace the contents with ``keys``: key i gets row i. Duplicates or overflow raise first."""
        keys = self._as_keys(keys)
        if keys.numel() > self.capacity:
            self._check_room(keys.numel() - self.size)
        distinct = torch.unique(keys).numel()
        if distinct != keys.numel():
            raise ValueError(f"HashTable '{self.name}': the key file holds {keys.numel() - distinct} duplicate "
                             f"key(s) among {keys.numel()}; each key must appear once")
        if keys.numel() and bool(keys.max() == EMPTY_KEY):
            raise ValueError(f"HashTable '{self.name}': key {EMPTY_KEY} (INT64_MAX) is reserved and cannot be "
                             "loaded")
        self.clear()
        if keys.numel():
            self._place(keys, torch.arange(keys.numel(), device=self.device))


class _DeferredErrors:
    """Errors a sync-free insert found on the device, read back without stalling the stream.

    ``record`` folds this insert's findings into device tensors and starts a non-blocking copy
    to pinned host memory; ``raise_if_set(block=False)`` raises once that copy has landed (the
    next insert, a step later), ``block=True`` waits for it.
    """

    def __init__(self, device: torch.device):
        self.overflow = torch.zeros(1, dtype=torch.int64, device=device)   # largest size attempted past capacity
        self.sentinel = torch.zeros(1, dtype=torch.bool, device=device)
        pinned = device.type == "cuda"
        self._host = torch.zeros(2, dtype=torch.int64, pin_memory=pinned)
        self._event = torch.cuda.Event() if pinned else None
        self._pending = False

    def record(self, attempted: torch.Tensor, sentinel: torch.Tensor) -> None:
        torch.maximum(self.overflow, attempted, out=self.overflow)
        self.sentinel |= sentinel
        self._host.copy_(torch.cat([self.overflow, self.sentinel.long()]), non_blocking=True)
        if self._event is not None:
            self._event.record()
        self._pending = True

    def raise_if_set(self, table: HashTable, block: bool) -> None:
        if not self._pending or (not block and self._event is not None and not self._event.query()):
            return
        if self._event is not None:
            self._event.synchronize()
        attempted, sentinel = self._host.tolist()
        if sentinel:
            raise table.sentinel_error()
        if attempted:
            raise table.overflow_error(attempted)
