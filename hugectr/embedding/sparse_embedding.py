"""``SparseEmbeddingTable``: one ``SparseEmbedding`` layer's table on one device (reference 4.7, 3.6, 3.8).

Keys -> rows through a ``HashTable``; rows of a preallocated, fully initialised ``(capacity, ev)``
fp32 ``weights`` tensor; a ``SparseOptimizer`` beside it. ``lookup`` pools each (sample, slot) bag
with the combiner; ``update`` turns the pooled output's gradient into one summed gradient per hit
row and applies HugeCTR's sparse update. No dense ``capacity x ev`` gradient is ever built.

HugeCTR facts reproduced: training inserts unseen keys (rows in first-seen order), evaluation only
finds (an unseen key contributes 0); ``mean`` divides by the bag's nnz when nnz > 1, an empty bag
gives zeros; initial values are Distributed U(-0.05, 0.05), Localized U(-0.05, 0.05) or, with
``slot_size_array``, rows of slot i (in slot order) U(+-sqrt(1 / slot_size_i)).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..kernels.embedding_pool import embedding_pool
from ..kernels.embedding_update import Occurrences, embedding_update
from ..params.graph import SparseEmbedding
from ..params.optimizer import OptParamsPy
from .capacity import is_localized, max_vocabulary_size_per_gpu
from .hash_table import HashTable
from .sparse_batch import SparseBatch
from .sparse_optimizers import SparseOptimizer

_DEFAULT_BOUND = 0.05


def initial_weights(params: SparseEmbedding, capacity: int, generator: torch.Generator, device, *,
                    num_gpus: int = 1, rank: int = 0) -> torch.Tensor:
    """(capacity, ev) fp32 initial table, drawn from ``generator`` (deterministic in its seed).

    CPU tables draw from ``generator`` itself; other devices draw on the device from a generator
    seeded by it (no multi-GB host tensor to copy). Localized tables with ``slot_size_array`` give
    the rows of the slots this rank owns (slot i on rank i % num_gpus) their own range; rows past
    those (ranks owning less than the largest share) get U(-0.05, 0.05).

    >>> p = SparseEmbedding("LocalizedSlotSparseEmbeddingHash", 0, 2, "sum", "e", "d", [4, 100])
    >>> w = initial_weights(p, 104, torch.Generator().manual_seed(0), "cpu")
    >>> bool(w[:4].abs().max() <= 0.5), bool(w[4:].abs().max() <= 0.1), bool(w[:4].abs().max() > 0.1)
    (True, True, True)
    """
    device = torch.device(device)
    if device.type != generator.device.type:
        seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator))
        generator = torch.Generator(device=device).manual_seed(seed)
    weights = torch.empty(capacity, params.embedding_vec_size, dtype=torch.float32, device=device)
    if not (is_localized(params.embedding_type) and params.slot_size_array):
        return weights.uniform_(-_DEFAULT_BOUND, _DEFAULT_BOUND, generator=generator)
    owned = params.slot_size_array[rank::num_gpus]
    bounds = torch.tensor([math.sqrt(1.0 / size) if size else 0.0 for size in owned] + [_DEFAULT_BOUND],
                          dtype=torch.float32, device=device)
    repeats = torch.tensor(owned + [capacity - sum(owned)], dtype=torch.int64, device=device)
    row_bounds = bounds.repeat_interleave(repeats, output_size=capacity)        # (capacity,)
    return weights.uniform_(-1.0, 1.0, generator=generator).mul_(row_bounds[:, None])


def checked_key_file(name: str, keys, vectors, slot_ids, ev: int, localized: bool, device):
    """``(keys (n,) int64, vectors (n, ev) fp32, slot_ids (n,) int64 or None)`` on ``device``, their sizes
    checked against each other (a Localized table needs a slot id per key); errors name the embedding."""
    keys = torch.as_tensor(keys).reshape(-1).to(device, torch.int64)
    vectors = torch.as_tensor(vectors).to(device, torch.float32)
    n = keys.numel()
    if vectors.numel() != n * ev:
        raise ValueError(f"SparseEmbedding '{name}': {n} keys but {vectors.numel()} vector values; "
                         f"expected {n} x embedding_vec_size {ev} = {n * ev}")
    if not localized:
        return keys, vectors.reshape(n, ev), None
    if slot_ids is None:
        raise ValueError(f"SparseEmbedding '{name}': a Localized embedding needs the slot_id of every key (the "
                         "model folder has no slot_id file)")
    slot_ids = torch.as_tensor(slot_ids).reshape(-1).to(device, torch.int64)
    if slot_ids.numel() != n:
        raise ValueError(f"SparseEmbedding '{name}': {n} keys but {slot_ids.numel()} slot ids")
    return keys, vectors.reshape(n, ev), slot_ids


def check_pooled_out(name: str, out: torch.Tensor | None, shape: tuple[int, int, int], dtype: torch.dtype) -> None:
    """A caller's ``lookup(out=)`` buffer must be the pooled output's shape and dtype (no silent cast)."""
    if out is not None and (tuple(out.shape) != shape or out.dtype != dtype):
        raise ValueError(f"SparseEmbedding '{name}': out is {tuple(out.shape)} {out.dtype}, the batch needs "
                         f"{shape} {dtype}")


class SparseEmbeddingTable(nn.Module):
    """The table, hash map and optimizer state of one ``SparseEmbedding`` on one device.

    >>> import hugectr
    >>> p = hugectr.SparseEmbedding(hugectr.Embedding_t.DistributedSlotSparseEmbeddingHash, 1, 4, "mean",
    ...                             "emb", "data")
    >>> opt = hugectr.CreateOptimizer(optimizer_type=hugectr.Optimizer_t.SGD)
    >>> table = SparseEmbeddingTable(p, 2, opt, generator=torch.Generator().manual_seed(0), device="cpu")
    >>> out = table.lookup(SparseBatch.from_bags([[[5, 6], []]]), training=True)
    >>> tuple(out.shape), table.capacity, table.export()[0].tolist()
    ((1, 2, 4), 65536, [5, 6])
    >>> table.update(torch.ones(1, 2, 4), lr=0.1)
    """

    def __init__(self, params: SparseEmbedding, slot_num: int, optimizer: OptParamsPy, *, num_gpus: int = 1,
                 generator: torch.Generator, device, rank: int = 0) -> None:
        super().__init__()
        self.name = params.sparse_embedding_name
        self.embedding_type = params.embedding_type
        self.combiner = params.combiner
        self.embedding_vec_size = params.embedding_vec_size
        self.slot_num = slot_num
        self.device = torch.device(device)
        self.capacity = max_vocabulary_size_per_gpu(params, optimizer, num_gpus)
        # Every per-row tensor has one row more than the capacity: the hash table's scratch row, where
        # fixed-size (sync-free) lookups send their padding. It is never exported or saved.
        rows = self.capacity + 1
        # The optimizer first: it refuses unsupported types before gigabytes are allocated.
        self.sparse_optimizer = SparseOptimizer(optimizer, rows, self.embedding_vec_size, self.device, self.name)
        self.hash_table = HashTable(self.capacity, self.device, name=self.name)
        self.rows = initial_weights(params, rows, generator, self.device, num_gpus=num_gpus, rank=rank)
        self.weights = self.rows[:self.capacity]       # (capacity, ev): the table without its scratch row
        # Localized tables write a slot_id file: the slot in which each row's key was first seen.
        self.row_slots = (torch.zeros(rows, dtype=torch.int64, device=self.device)
                          if is_localized(self.embedding_type) else None)
        self._saved = None   # what update() needs from the last training lookup

    @property
    def size(self) -> int:
        """Keys (rows) in use."""
        return self.hash_table.size

    def extra_repr(self) -> str:
        return (f"'{self.name}', {self.embedding_type}, slots={self.slot_num}, ev={self.embedding_vec_size}, "
                f"combiner={self.combiner}, capacity={self.capacity}, size={self.size}")

    # -- forward ------------------------------------------------------------------------------
    @torch.no_grad()
    def lookup(self, keys: SparseBatch, training: bool, out_dtype: torch.dtype = torch.float32,
               out: torch.Tensor | None = None) -> torch.Tensor:
        """(B, slots, ev) pooled vectors in ``out_dtype``. Training inserts unseen keys; eval gives them 0.

        Pooling is ``hugectr.kernels.embedding_pool`` (one Triton kernel on CUDA, accumulating in
        fp32; at evaluation the hash find runs inside it), the torch reference elsewhere. ``out``: a
        contiguous (B, slots, ev) tensor to pool into; it is returned itself.
        """
        if keys.num_slots != self.slot_num:
            raise ValueError(f"SparseEmbedding '{self.name}': the sparse input has {keys.num_slots} slot(s) per "
                             f"sample, the embedding was built for {self.slot_num}")
        keys = keys.to(self.device)
        offsets = None if keys.hotness else keys.offsets              # fixed hotness: no offsets to read
        shape = (keys.batch_size, keys.num_slots, self.embedding_vec_size)
        check_pooled_out(self.name, out, shape, out_dtype)
        flat_out = None if out is None else out.view(-1, self.embedding_vec_size)
        pool_args = dict(hotness=keys.hotness or None, combiner=self.combiner, out_dtype=out_dtype, out=flat_out)
        if training:
            unique_rows, inverse, new_rows, first_seen, groups = self.hash_table.insert_or_find_grouped(keys.values)
            rows = unique_rows[inverse]                                # (nnz,)
            bag_ids = keys.bag_ids()                                   # (nnz,)
            if self.row_slots is not None and rows.numel():
                # The slot of each new key's first occurrence; keys that were not new write the scratch row.
                first = first_seen.clamp(max=rows.numel() - 1)
                self.row_slots.scatter_(0, new_rows, bag_ids.index_select(0, first) % self.slot_num)
            self._saved = (unique_rows, inverse, bag_ids, self._key_scale(keys, bag_ids),
                           (keys.batch_size, keys.num_slots), groups)
            pooled = embedding_pool(self.rows, rows, offsets, **pool_args)               # (B * slots, ev)
        else:
            pooled = embedding_pool(self.rows, keys.values, offsets, hash_slots=self.hash_table.slots(),
                                    **pool_args)                       # unseen keys: row -1, add 0
        return pooled.view(shape) if out is None else out

    def _key_scale(self, keys: SparseBatch, bag_ids: torch.Tensor) -> torch.Tensor | None:
        """Mean combiner: 1 / nnz of each key's bag (nnz <= 1 leaves the sum as it is)."""
        if self.combiner != "mean":
            return None
        bag_scale = 1.0 / keys.bag_sizes().clamp(min=1).to(torch.float32)   # (B * slots,)
        return bag_scale.index_select(0, bag_ids)

    # -- backward -----------------------------------------------------------------------------
    @torch.no_grad()
    def update(self, grad: torch.Tensor | None, lr: float, scaler: float = 1.0) -> None:
        """Apply the sparse optimizer with ``grad`` (B, slots, ev) of the last training lookup's output.

        ``grad=None`` (output unused by the loss) counts as zeros: Global rules still move every row.
        """
        if self._saved is None:
            raise RuntimeError(f"SparseEmbedding '{self.name}': update() needs a lookup(training=True) first")
        unique_rows, inverse, bag_ids, scale, (batch, slots), groups = self._saved
        self._saved = None
        ev = self.embedding_vec_size
        if grad is None:
            grad = torch.zeros(batch, slots, ev, device=self.device)
        if tuple(grad.shape) != (batch, slots, ev):
            raise ValueError(f"SparseEmbedding '{self.name}': gradient of shape {tuple(grad.shape)}, expected "
                             f"{(batch, slots, ev)} (the output of the last training lookup)")
        # Triton on CUDA (dedup'd rows summed and updated in one pass), the torch reference otherwise.
        occurrences = Occurrences(unique_rows, inverse, bag_ids, scale)
        step = self.sparse_optimizer.advance()
        embedding_update(grad, occurrences, self.rows, self.sparse_optimizer, float(lr), step, float(scaler),
                         groups=groups)

    # -- files --------------------------------------------------------------------------------
    def export(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(keys (n,) int64, vectors (n, ev) fp32, slot_ids (n,) int64 or None)`` in row order."""
        n = self.size
        slot_ids = None if self.row_slots is None else self.row_slots[:n].clone()
        return self.hash_table.export(), self.weights[:n].clone(), slot_ids

    def load(self, keys: torch.Tensor, vectors: torch.Tensor, slot_ids: torch.Tensor | None = None) -> None:
        """Replace the keys and their vectors (key i -> row i); other rows and optimizer state stay."""
        keys, vectors, slot_ids = checked_key_file(self.name, keys, vectors, slot_ids, self.embedding_vec_size,
                                                   self.row_slots is not None, self.device)
        n, ev = keys.numel(), self.embedding_vec_size
        self.hash_table.import_keys(keys)      # raises on overflow / duplicates before changing anything
        self.weights[:n] = vectors.reshape(n, ev)
        if self.row_slots is not None:
            self.row_slots[:n] = slot_ids
        self._saved = None

    def optimizer_states(self) -> list[torch.Tensor]:
        """The whole ``(capacity, ev)`` state tensors in HugeCTR's file order (Adam m, v; others one)."""
        return [state[:self.capacity] for state in self.sparse_optimizer.states]

    def load_optimizer_states(self, states: list[torch.Tensor]) -> None:
        """Copy states (as ``optimizer_states`` orders them, any shape with the right count) in."""
        self.sparse_optimizer.load_states(states, rows=self.capacity)

    def check_errors(self) -> None:
        """Raise an overflow (or reserved key) that a sync-free training lookup recorded; syncs."""
        self.hash_table.check_errors()
