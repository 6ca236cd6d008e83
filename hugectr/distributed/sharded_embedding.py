"""``ShardedEmbeddingTable``: one ``SparseEmbedding`` spread over the ranks of a process group (model parallel).

The same interface as ``hugectr.embedding.sparse_embedding.SparseEmbeddingTable`` (``lookup``,
``update``, ``export``, ``load``, ``optimizer_states``, ...), so a training step uses either. Each rank
holds a shard: a ``SparseEmbeddingTable`` of HugeCTR's per-GPU capacity (``num_gpus`` = world size)
whose hash table, rows and optimizer state this class drives. Placement, as HugeCTR's (reference 4.7):

* ``DistributedSlotSparseEmbeddingHash``: key k lives on rank ``(uint64) k % world``;
* ``LocalizedSlotSparseEmbeddingHash``: every key of slot s lives on rank ``s % world``.

A lookup takes this rank's contiguous part of the global batch and runs, with no Python loop:

1. source: sort the keys by owner (stable, so each owner's keys stay in bag order) and cut them into
   *segments*: the keys of one bag that go to one owner. Counts of keys and segments per owner are
   exchanged (one tiny all-to-all and the lookup's one host sync: ``all_to_all_single`` needs split
   sizes on the host).
2. keys go to their owners in one all-to-all of (n, 3) int32: the key's two halves and a word
   holding the segment-start flag and, for Localized tables, the slot (2 * slot + flag).
3. owner: insert-or-find (training) and pool every segment with ``embedding_pool`` (sum, fp32); at
   evaluation the find runs inside the pool kernel and unseen keys add 0, as on one device.
4. the partial sums go back (one all-to-all of (segments, ev) fp32) and the source adds them into
   its (B * slots, ev) output, then divides by the bag's nnz for ``mean``.

Segments rather than per-key vectors: a Localized bag is one segment (its owner pools it whole), a
Distributed bag is at most ``world`` segments, so multi-hot traffic shrinks by up to the hotness; the
partial sums are sent in fp32 so the result equals the single-device pooling up to summation order.

``update`` sends each segment's gradient (divided by the bag's nnz for ``mean``) back the same way;
the owner applies the existing fused ``embedding_update`` to its shard, the segment standing for
the bag: duplicates are summed per row and Local / Global / LazyGlobal rules run per shard. Global
rules move every row of every shard, i.e. every row of the whole table, as on one GPU. No host sync
in ``update``: the split sizes are the lookup's.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ..embedding.capacity import is_localized
from ..embedding.hash_table import HashTableOverflowError
from ..embedding.sparse_batch import SparseBatch
from ..embedding.sparse_embedding import SparseEmbeddingTable, check_pooled_out
from ..kernels.embedding_pool import embedding_pool
from ..kernels.embedding_update import Occurrences, embedding_update
from ..params.graph import SparseEmbedding
from ..params.optimizer import OptParamsPy
from .exchange import all_to_all_rows, any_rank, as_rows_of, exchange_counts, group_world, unsigned_mod
from .sharded_files import ShardedFiles


class _Route(NamedTuple):
    """What ``update`` needs from the last training lookup (source side, then owner side)."""

    seg_send: list[int]            # segments this rank sent to each owner
    seg_recv: list[int]            # segments each source rank sent here
    seg_bags: torch.Tensor         # (segments sent,) local bag b * slots + s of each
    bag_scale: torch.Tensor | None  # (B * slots,) 1 / nnz for mean, None for sum
    shape: tuple[int, int]         # (B, slots) of the lookup
    unique_rows: torch.Tensor      # (U,) shard rows hit
    inverse: torch.Tensor          # (keys received,) index into unique_rows
    key_segments: torch.Tensor     # (keys received,) the received segment of each key
    groups: object                 # the insert's OccurrenceGroups (CUDA fixed-size path) or None


class _Outbound(NamedTuple):
    """The source side of a lookup: keys sorted by owner and cut into segments."""

    packed: torch.Tensor           # (nnz, 3) int32: key low/high words, 2 * slot + segment start
    key_send: list[int]
    key_recv: list[int]
    seg_send: list[int]
    seg_recv: list[int]
    seg_bags: torch.Tensor         # (segments sent,)


def key_owners(keys: SparseBatch, bag_ids: torch.Tensor, world: int, localized: bool) -> torch.Tensor:
    """(nnz,) the rank owning each key: ``key % world`` (Distributed) or ``slot % world`` (Localized).

    >>> sb = SparseBatch.from_bags([[[4, 5], [6]]])
    >>> key_owners(sb, sb.bag_ids(), 2, False).tolist(), key_owners(sb, sb.bag_ids(), 2, True).tolist()
    ([0, 1, 0], [0, 0, 1])
    """
    if localized:
        return (bag_ids % keys.num_slots) % world
    return unsigned_mod(keys.values, world)


def _outbound(keys: SparseBatch, bag_ids: torch.Tensor, owner: torch.Tensor, world: int, group) -> _Outbound:
    """Step 1 of the module docstring: sort by owner, cut segments, exchange the counts (one sync)."""
    order = torch.argsort(owner, stable=True)                          # (nnz,) owner-major, bag order kept
    sorted_owner, sorted_bag = owner[order], bag_ids[order]
    head = torch.ones_like(sorted_owner, dtype=torch.bool)            # a new segment starts here
    head[1:] = (sorted_owner[1:] != sorted_owner[:-1]) | (sorted_bag[1:] != sorted_bag[:-1])
    counts = torch.zeros(world, 2, dtype=torch.int64, device=owner.device)
    counts[:, 0].index_add_(0, sorted_owner, torch.ones_like(sorted_owner))
    counts[:, 1].index_add_(0, sorted_owner, head.long())
    send, recv = exchange_counts(counts, group)
    segment = torch.cumsum(head, 0) - 1                               # (nnz,) segment of each sorted key
    seg_bags = torch.empty(sum(send[1]), dtype=torch.int64, device=owner.device).scatter_(0, segment, sorted_bag)
    meta = head.to(torch.int32) + 2 * (sorted_bag % keys.num_slots).to(torch.int32)
    halves = as_rows_of(keys.values[order][:, None], torch.int32)             # (nnz, 2) the int64 keys' words
    packed = torch.cat([halves, meta[:, None]], dim=1)                 # (nnz, 3)
    return _Outbound(packed, send[0], recv[0], send[1], recv[1], seg_bags)


class ShardedEmbeddingTable(ShardedFiles, nn.Module):
    """One ``SparseEmbedding``'s table sharded over the ranks of ``group`` (see the module docstring).

    Without a process group (or with one rank) it is a ``SparseEmbeddingTable`` (the same rows, the
    lookup and update delegated to it), so a model may use it whatever the number of GPUs:

    >>> import hugectr
    >>> p = hugectr.SparseEmbedding(hugectr.Embedding_t.DistributedSlotSparseEmbeddingHash, 1, 4, "mean",
    ...                             "emb", "data")
    >>> opt = hugectr.CreateOptimizer(optimizer_type=hugectr.Optimizer_t.SGD)
    >>> table = ShardedEmbeddingTable(p, 2, opt, generator=torch.Generator().manual_seed(0), device="cpu")
    >>> out = table.lookup(SparseBatch.from_bags([[[5, 6], []]]), training=True)
    >>> tuple(out.shape), table.capacity, table.export()[0].tolist()
    ((1, 2, 4), 65536, [5, 6])
    >>> table.update(torch.ones(1, 2, 4), lr=0.1)
    """

    def __init__(self, params: SparseEmbedding, slot_num: int, optimizer: OptParamsPy, *,
                 generator: torch.Generator, device, num_gpus: int | None = None, rank: int | None = None,
                 group=None) -> None:
        super().__init__()
        self.group = group
        self.rank, self.world = group_world(group)
        if (num_gpus is not None and num_gpus != self.world) or (rank is not None and rank != self.rank):
            raise ValueError(f"SparseEmbedding '{params.sparse_embedding_name}': built for rank {rank} of {num_gpus} "
                             f"GPU(s) but this process is rank {self.rank} of {self.world}; vvgpu and the launch "
                             "disagree")
        self.localized = is_localized(params.embedding_type)
        self.shard = SparseEmbeddingTable(params, slot_num, optimizer, num_gpus=self.world,
                                          generator=self._shard_generator(generator), device=device,
                                          rank=self.rank)
        for name in ("name", "embedding_type", "combiner", "embedding_vec_size", "slot_num", "device", "capacity"):
            setattr(self, name, getattr(self.shard, name))
        self._init_files(params, optimizer)
        self._saved: _Route | None = None

    def _shard_generator(self, generator: torch.Generator) -> torch.Generator:
        """One rank: ``generator`` itself (same table as ``SparseEmbeddingTable``); else a per-rank stream.

        Every rank draws the same base seed (so the model's generator advances alike everywhere) and
        adds its rank: shards start from different random rows, as HugeCTR's GPUs do.
        """
        if self.world == 1:
            return generator
        seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator))
        return torch.Generator().manual_seed(seed + self.rank)

    @property
    def size(self) -> int:
        """Keys held by this rank's shard (``global_size()`` counts every rank's)."""
        return self.shard.size

    def extra_repr(self) -> str:
        return (f"'{self.name}', {self.embedding_type}, slots={self.slot_num}, ev={self.embedding_vec_size}, "
                f"combiner={self.combiner}, rank {self.rank} of {self.world}, capacity per rank={self.capacity}")

    # -- forward ------------------------------------------------------------------------------
    @torch.no_grad()
    def lookup(self, keys: SparseBatch, training: bool, out_dtype: torch.dtype = torch.float32,
               out: torch.Tensor | None = None) -> torch.Tensor:
        """(B_local, slots, ev) pooled vectors of this rank's samples; every rank must call it together.

        ``out``: a (B_local, slots, ev) tensor to write them into; it is returned itself.
        """
        if self.world == 1:                     # nothing to exchange: the shard is the whole table
            return self.shard.lookup(keys, training, out_dtype, out)
        if keys.num_slots != self.slot_num:
            raise ValueError(f"SparseEmbedding '{self.name}': the sparse input has {keys.num_slots} slot(s) per "
                             f"sample, the embedding was built for {self.slot_num}")
        check_pooled_out(self.name, out, (keys.batch_size, self.slot_num, self.embedding_vec_size), out_dtype)
        keys = keys.to(self.device)
        bag_ids = keys.bag_ids()                                                   # (nnz,)
        owners = key_owners(keys, bag_ids, self.world, self.localized)
        outbound = _outbound(keys, bag_ids, owners, self.world, self.group)
        received = all_to_all_rows(outbound.packed, outbound.key_send, outbound.key_recv, self.group)   # (keys here, 3)
        recv_keys = as_rows_of(received[:, :2], torch.int64).view(-1)          # (n,): a rank may get none
        meta = received[:, 2]
        key_segments = torch.cumsum(meta & 1, 0) - 1                               # (n,) received segment
        num_segments = sum(outbound.seg_recv)
        sizes = torch.zeros(num_segments, dtype=torch.int64, device=self.device)
        sizes.index_add_(0, key_segments, torch.ones_like(key_segments))
        offsets = torch.cat([sizes.new_zeros(1), torch.cumsum(sizes, 0)])          # (segments + 1,) CSR
        if training:
            unique_rows, inverse, groups = self._insert(recv_keys, (meta >> 1).to(torch.int64))
            partial = embedding_pool(self.shard.rows, unique_rows[inverse], offsets, combiner="sum")
        else:
            partial = embedding_pool(self.shard.rows, recv_keys, offsets, combiner="sum",
                                     hash_slots=self.shard.hash_table.slots())   # unseen keys add 0
        returned = all_to_all_rows(partial, outbound.seg_recv, outbound.seg_send, self.group)   # (segments sent, ev)
        num_bags = keys.batch_size * keys.num_slots
        pooled = torch.zeros(num_bags, self.embedding_vec_size, dtype=torch.float32, device=self.device)
        pooled.index_add_(0, outbound.seg_bags, returned)                               # (B * slots, ev)
        bag_scale = None
        if self.combiner == "mean":
            bag_scale = 1.0 / keys.bag_sizes().clamp(min=1).to(torch.float32)      # (B * slots,)
            pooled.mul_(bag_scale[:, None])
        if training:
            self._saved = _Route(outbound.seg_send, outbound.seg_recv, outbound.seg_bags, bag_scale,
                                 (keys.batch_size, keys.num_slots), unique_rows, inverse, key_segments, groups)
        pooled = pooled.view(keys.batch_size, keys.num_slots, self.embedding_vec_size)
        return pooled.to(out_dtype) if out is None else out.copy_(pooled)

    def _insert(self, keys: torch.Tensor, slots: torch.Tensor):
        """``(unique_rows, inverse, groups)`` of the received keys, inserting new ones into the shard.

        Keys arrive in global-batch order (source ranks hold consecutive samples, each sends in bag
        order), so new rows follow the global first-seen order, and a Localized key's recorded slot
        is that of its first occurrence in the global batch, as on one device. Where the insert
        raises at once (CPU, the torch path) every rank learns it (one flag all-reduce), so no rank
        waits forever on the next all-to-all; the sync-free CUDA insert defers errors to
        ``check_errors``.
        """
        table, error = self.shard.hash_table, None
        try:
            unique_rows, inverse, new_rows, first_seen, groups = table.insert_or_find_grouped(keys)
        except (HashTableOverflowError, ValueError) as exc:      # overflow, or the reserved key
            error = exc
        if not table.fixed_size and any_rank(error is not None, self.device, self.group):
            raise error or RuntimeError(f"SparseEmbedding '{self.name}': another rank's shard failed its insert "
                                        "(its error names the cause)")
        if error is not None:
            raise error
        if self.shard.row_slots is not None and keys.numel():
            first = first_seen.clamp(max=keys.numel() - 1)        # not-new entries write the scratch row
            self.shard.row_slots.scatter_(0, new_rows, slots.index_select(0, first))
        return unique_rows, inverse, groups

    # -- backward -----------------------------------------------------------------------------
    @torch.no_grad()
    def update(self, grad: torch.Tensor | None, lr: float, scaler: float = 1.0) -> None:
        """Route ``grad`` (B_local, slots, ev) of the last training lookup to the owners and apply the optimizer.

        ``grad`` is the gradient of the global objective for this rank's samples: the owners sum what
        every rank sends. ``None`` (output unused) counts as zeros; every rank must call it together.
        """
        if self.world == 1:
            return self.shard.update(grad, lr, scaler)
        if self._saved is None:
            raise RuntimeError(f"SparseEmbedding '{self.name}': update() needs a lookup(training=True) first")
        route, self._saved = self._saved, None
        (batch, slots), ev = route.shape, self.embedding_vec_size
        if grad is None:
            grad = torch.zeros(batch, slots, ev, device=self.device)
        if tuple(grad.shape) != (batch, slots, ev):
            raise ValueError(f"SparseEmbedding '{self.name}': gradient of shape {tuple(grad.shape)}, expected "
                             f"{(batch, slots, ev)} (the output of the last training lookup)")
        segment_grad = grad.reshape(batch * slots, ev).index_select(0, route.seg_bags)   # (segments sent, ev)
        if route.bag_scale is not None:
            segment_grad = segment_grad.float() * route.bag_scale.index_select(0, route.seg_bags)[:, None]
        received = all_to_all_rows(segment_grad, route.seg_send, route.seg_recv, self.group)  # (segments here, ev)
        occurrences = Occurrences(route.unique_rows, route.inverse, route.key_segments, None)
        optimizer = self.shard.sparse_optimizer
        step = optimizer.advance()
        embedding_update(received.view(-1, 1, ev), occurrences, self.shard.rows, optimizer, float(lr), step,
                         float(scaler), groups=route.groups)

    def check_errors(self) -> None:
        """Raise, on every rank, an overflow (or reserved key) that any rank's sync-free insert recorded."""
        error = None
        try:
            self.shard.check_errors()
        except ValueError as exc:
            error = exc
        if any_rank(error is not None, self.device, self.group):
            raise error or RuntimeError(f"SparseEmbedding '{self.name}': another rank's shard overflowed "
                                        "(its error names the capacity); raise workspace_size_per_gpu_in_mb")
