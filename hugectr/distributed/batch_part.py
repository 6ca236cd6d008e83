"""This rank's contiguous part of a global batch, and the global batch's size.

As HugeCTR (reference 4.6): a global batch of ``batch_size`` samples is split in ``world`` equal parts
of ``b = batch_size / world``; rank r gets samples ``[r*b, min((r+1)*b, n))`` of a batch of n samples
(the last, partial one may leave a rank none). The loss and the metrics weigh each rank by its share
``n_r / n`` so every sample counts once, whatever the split.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..data.batch import Batch


def part_bounds(rank: int, world: int, batch_size: int, rows: int) -> tuple[int, int]:
    """``[start, stop)`` of rank ``rank``'s samples in a global batch of ``rows`` (<= batch_size) samples.

    >>> part_bounds(1, 2, 8, 8), part_bounds(1, 2, 8, 5), part_bounds(1, 2, 8, 3)
    ((4, 8), (4, 5), (3, 3))
    """
    per_rank = batch_size // world
    start = min(rank * per_rank, rows)
    return start, min(start + per_rank, rows)


def check_part(part: tuple[int, int] | None, batch_size: int) -> tuple[int, int] | None:
    """A reader's ``part=(rank, world)`` validated; None when it delivers whole batches (no part, one rank).

    >>> check_part((1, 2), 8), check_part((0, 1), 8), check_part(None, 8)
    ((1, 2), None, None)
    """
    if part is None:
        return None
    rank, world = part
    if not 0 <= rank < world:
        raise ValueError(f"DataReader: part must be (rank, world) with 0 <= rank < world, got {part!r}")
    if batch_size % world:
        raise ValueError(f"DataReader: the global batch size {batch_size} must divide by the number of ranks {world}")
    return None if world == 1 else (rank, world)


@dataclass
class PartBatch(Batch):
    """A ``Batch`` holding one rank's part; ``global_size`` is the samples of the whole global batch."""

    global_size: int = 0

    def to(self, device, non_blocking: bool = False) -> PartBatch:
        return PartBatch.of(super().to(device, non_blocking), self.global_size)

    def pin_memory(self) -> PartBatch:
        return PartBatch.of(super().pin_memory(), self.global_size)

    @staticmethod
    def of(batch: Batch, global_size: int) -> PartBatch:
        return PartBatch(batch.label, batch.dense, batch.sparse, global_size)


def global_size(batch: Batch) -> int:
    """The samples of the global batch ``batch`` belongs to (its own size for a whole batch)."""
    return batch.global_size if isinstance(batch, PartBatch) else batch.size


def share(batch: Batch) -> float:
    """This rank's share of the global batch, ``n_r / n`` (1.0 for a whole batch; 0.0 for an empty one)."""
    total = global_size(batch)
    return batch.size / total if total else 0.0
