"""The data-parallel half of a many-GPU run: same start on every rank, summed gradients, global metrics.

HugeCTR's scheme (reference 4.3): each GPU's loss gradient is divided by the *global* batch, so the
sum of the GPUs' dense gradients (an all-reduce) is the gradient of the global mean loss; the
reported loss is the GPUs' losses summed and divided by their count. Here each rank's objective
is weighted by its share ``n_r / n`` of the global batch (``batch_part.share``), which is the same
for equal parts and counts every sample once for the last, partial one. Everything here is a no-op
on one rank, so single-GPU runs pay nothing.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from . import env


def _many() -> bool:
    return env.world_size() > 1


def same_on_all_ranks(value: int) -> int:
    """Rank 0's ``value`` (an int such as a random seed) on every rank.

    >>> same_on_all_ranks(7)
    7
    """
    if not _many():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return int(box[0])


@torch.no_grad()
def broadcast_dense(flat) -> None:
    """Rank 0's dense weights (a ``FlatParameters``) on every rank, so data-parallel ranks start equal."""
    if not _many() or flat.numel == 0:
        return
    dist.broadcast(flat.weights, src=0)
    flat.scatter_weights()


class GradientAllReduce:
    """Sums ``flat.grads`` over the ranks: ``start()`` after backward, ``wait()`` before the dense optimizer.

    The all-reduce runs while the embeddings update (their work does not touch the dense gradients),
    which hides it behind the sparse backward on GPUs.
    """

    def __init__(self, flat):
        self.flat = flat
        self.active = _many() and flat.numel > 0
        self._work = None

    def start(self) -> None:
        if self.active:
            self._work = dist.all_reduce(self.flat.grads, op=dist.ReduceOp.SUM, async_op=True)

    def wait(self) -> None:
        if self._work is not None:
            self._work.wait()
            self._work = None


def sum_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """``value`` summed over the ranks (a copy; ``value`` itself on one rank)."""
    if not _many():
        return value
    total = value.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total


def barrier() -> None:
    """Every rank waits for the others (e.g. until rank 0 has written a snapshot)."""
    if _many():
        dist.barrier()


class RankReducer:
    """What ``MetricsCollection.synchronize`` needs to combine its eval window over the ranks."""

    @staticmethod
    def sum(value: torch.Tensor) -> torch.Tensor:
        return sum_over_ranks(value)

    @staticmethod
    def gather_batches(parts: list[torch.Tensor]) -> torch.Tensor:
        """Every rank's per-batch ``(n_r, C)`` parts as one ``(n, C)`` tensor in the global sample order
        (batch by batch, rank by rank within a batch), the order one GPU would have seen."""
        return gather_batches(parts)


def gather_batches(parts: list[torch.Tensor]) -> torch.Tensor:
    """All ranks' per-batch row blocks, reassembled in global sample order (see ``RankReducer``)."""
    if not parts:
        raise ValueError("gather_batches: no batches to gather")
    world, device = env.world_size(), parts[0].device
    _check_same_batch_count(len(parts), device)
    counts_local = torch.tensor([part.shape[0] for part in parts], dtype=torch.int64, device=device)
    counts = _all_gather(counts_local).view(world, len(parts))                  # (world, batches)
    widest = int(counts.sum(1).max())                 # one host read, at finalize time only
    window = torch.cat(parts)
    padded = window.new_zeros((widest, *window.shape[1:]))
    padded[:window.shape[0]] = window
    gathered = _all_gather(padded).view(world * widest, *window.shape[1:])    # rank blocks, padded
    # Where each (rank, batch) block starts in `gathered`, listed batch-major, then its rows in order.
    starts = torch.arange(world, device=device)[:, None] * widest + (counts.cumsum(1) - counts)
    block_starts, lengths = starts.t().reshape(-1), counts.t().reshape(-1)
    before = lengths.cumsum(0) - lengths
    total = int(lengths.sum())
    rows = torch.repeat_interleave(block_starts - before, lengths, output_size=total)
    return gathered[rows + torch.arange(total, device=device)]


def _all_gather(tensor: torch.Tensor) -> torch.Tensor:
    """The ranks' equally shaped ``tensor``s concatenated along a new leading dimension, flattened."""
    pieces = [torch.empty_like(tensor) for _ in range(env.world_size())]
    dist.all_gather(pieces, tensor.contiguous())
    return torch.cat(pieces)


def _check_same_batch_count(batches: int, device: torch.device) -> None:
    counts = _all_gather(torch.tensor([batches], dtype=torch.int64, device=device))
    if bool((counts != batches).any()):
        raise RuntimeError(f"metrics: the ranks evaluated different numbers of batches ({counts.tolist()}); every "
                           "rank must call eval() the same number of times")


class _ExportedTable:
    """A table whose files content was taken once on every rank (a sharded export is a collective);
    everything else is the table's own."""

    def __init__(self, table):
        self._table = table
        self._export = table.export()
        self._states = table.optimizer_states()
        # LazyGlobal's per-key last steps: gathered here on every rank too (a collective).
        self._last_steps = table.last_steps() if callable(getattr(table, "last_steps", None)) else None

    def export(self):
        return self._export

    def optimizer_states(self):
        return self._states

    def last_steps(self):
        return self._last_steps

    def __getattr__(self, name):
        table = self.__dict__["_table"]
        if hasattr(table, name) or not hasattr(table, "shard"):
            return getattr(table, name)
        return getattr(table.shard, name)    # a sharded table's per-shard parts (its optimizer's step)


class SnapshotView:
    """The model as ``checkpoint.save_all`` reads it, with every table's content already collected."""

    def __init__(self, model):
        self._model = model
        self.embedding_tables = [_ExportedTable(table) for table in model.embedding_tables]

    def __getattr__(self, name):
        return getattr(self._model, name)


def snapshot_view(model):
    """``model`` itself on one rank; on several, a view whose tables were exported on every rank."""
    return SnapshotView(model) if _many() else model


def sharded_table_class():
    """The embedding table of a many-rank run (model-parallel: ``hugectr.distributed.sharded_embedding``)."""
    from .sharded_embedding import ShardedEmbeddingTable

    return ShardedEmbeddingTable
