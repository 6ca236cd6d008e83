"""A sharded table's files: the whole table gathered on every rank, and re-sharded on load.

``export()`` returns on every rank the full ``(keys, vectors, slot_ids)``: rank 0's shard in row order,
then rank 1's, ... (HugeCTR's own multi-GPU dump also concatenates the GPUs), so the existing
checkpoint writer on rank 0 writes the same ``key`` / ``emb_vector`` / ``slot_id`` files a single GPU
writes for those keys. ``load()`` gives every rank the full arrays; each keeps the keys it owns
(``key % world``, or ``slot % world`` for Localized), so a checkpoint from G ranks loads on any number.

Optimizer states: HugeCTR writes each GPU's raw state buffers one after another, which ties the file
to the number of GPUs and to each GPU's row numbering. Here the file is keyed like the key file:
``optimizer_states()`` gives, per state, ``(R, ev)`` rows where row i is the state of key i of
``export()`` and the rows past the keys hold the untouched value (0; AdaGrad's memset fill), exactly
what a single device writes for the same keys in the same order (its row i is key i). R is the graph
JSON's ``max_vocabulary_size_global`` (per-GPU capacity x ranks, or the sum of ``slot_size_array``):
HugeCTR's file size for that many GPUs, and the single-device file size on one rank.
``load_optimizer_states()`` reads row i as the state of key i of the key file last given to ``load()``
(of ``export()``'s order when nothing was loaded), whatever number of ranks wrote it, and accepts any
R that covers the keys. LazyGlobal Adam's per-row last update step (not in HugeCTR's files; the
checkpoint code keeps it in a side file) follows the same rule: ``last_steps()`` / ``load_last_steps()``.
"""

from __future__ import annotations

import torch

from ..embedding.capacity import max_vocabulary_size_global
from ..embedding.hash_table import EMPTY_KEY
from ..embedding.sparse_embedding import checked_key_file
from ..enums import Optimizer_t
from ..optimizers.dense import memset_float
from .exchange import all_gather_packed, gather_counts, unsigned_mod


class ShardedFiles:
    """``export`` / ``load`` / ``optimizer_states`` / ``load_optimizer_states`` of ``ShardedEmbeddingTable``.

    The table supplies ``shard`` (its ``SparseEmbeddingTable``), ``rank``, ``world``, ``group``,
    ``localized``, ``name``, ``embedding_vec_size``, ``device``. Every method is collective: call it
    on every rank.
    """

    def _init_files(self, params, optimizer) -> None:
        self.state_rows = max_vocabulary_size_global(params, optimizer, self.world)   # R of the state file
        self._state_fill = (memset_float(optimizer.initial_accu_value)
                            if optimizer.optimizer_type is Optimizer_t.AdaGrad else 0.0)
        self._file_rows: torch.Tensor | None = None     # file position of each loaded shard row
        self._file_keys = 0                              # keys in the last loaded key file

    def global_size(self) -> int:
        """Keys held over all ranks (collective)."""
        return sum(gather_counts(self.shard.size, self.device, self.group))

    def export(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The full table on every rank: ``(keys (n,), vectors (n, ev), slot_ids (n,) or None)``, rank by rank."""
        keys, vectors, slot_ids = self.shard.export()
        parts = all_gather_packed([keys, vectors] + ([] if slot_ids is None else [slot_ids]), self.group)[0]
        return parts[0], parts[1], (parts[2] if slot_ids is not None else None)

    def _owners(self, keys: torch.Tensor, slot_ids: torch.Tensor | None) -> torch.Tensor:
        return unsigned_mod(slot_ids if self.localized else keys, self.world)

    def load(self, keys: torch.Tensor, vectors: torch.Tensor, slot_ids: torch.Tensor | None = None) -> None:
        """Load the full key file (every rank gets all of it); each rank keeps the keys it owns.

        Every check runs on the full arrays, identically on every rank, so all ranks raise together.
        """
        keys, vectors, slot_ids = checked_key_file(self.name, keys, vectors, slot_ids, self.embedding_vec_size,
                                                   self.localized, self.device)
        n, ev = keys.numel(), self.embedding_vec_size
        owner = self._owners(keys, slot_ids)
        self._check_load(keys, owner)
        mine = torch.nonzero(owner == self.rank).view(-1)          # file positions of this rank's keys
        self.shard.load(keys[mine], vectors.reshape(n, ev)[mine], None if slot_ids is None else slot_ids[mine])
        self._file_rows, self._file_keys = mine, n
        self._saved = None

    def _check_load(self, keys: torch.Tensor, owner: torch.Tensor) -> None:
        if torch.unique(keys).numel() != keys.numel():
            raise ValueError(f"SparseEmbedding '{self.name}': the key file holds duplicate keys; each key must "
                             "appear once")
        if keys.numel() and bool(keys.max() == EMPTY_KEY):
            raise ValueError(f"SparseEmbedding '{self.name}': key {EMPTY_KEY} (INT64_MAX) is reserved and cannot be "
                             "loaded")
        per_rank = torch.zeros(self.world, dtype=torch.int64, device=self.device)
        per_rank.index_add_(0, owner, torch.ones_like(owner))
        fullest = int(per_rank.argmax())
        if int(per_rank[fullest]) > self.capacity:
            raise ValueError(f"SparseEmbedding '{self.name}': the key file gives rank {fullest} "
                             f"{int(per_rank[fullest])} keys, more than max_vocabulary_size_per_gpu ({self.capacity}) over {self.world} "
                             "rank(s); raise workspace_size_per_gpu_in_mb or load on more GPUs")

    def _gather_in_file_order(self, tensors: list[torch.Tensor], fill) -> list[torch.Tensor]:
        """Each per-row tensor of the shard as ``(state_rows, ...)`` on every rank: export order, then ``fill``."""
        rows = self.shard.size
        gathered = all_gather_packed([t[:rows] for t in tensors], self.group)[0] if tensors else []
        result = []
        for part, tensor in zip(gathered, tensors):                   # part: (n, ...) in export order
            if part.shape[0] > self.state_rows:
                raise ValueError(f"SparseEmbedding '{self.name}': {part.shape[0]} keys do not fit the "
                                 f"optimizer-state file of {self.state_rows} rows (max_vocabulary_size_global)")
            full = torch.full((self.state_rows, *tensor.shape[1:]), fill, dtype=tensor.dtype, device=self.device)
            full[:part.shape[0]] = part
            result.append(full)
        return result

    def optimizer_states(self) -> list[torch.Tensor]:
        """Per state (Adam m, v; others one), ``(state_rows, ev)``: row i is key i of ``export()``."""
        return self._gather_in_file_order(self.shard.sparse_optimizer.states, self._state_fill)

    def last_steps(self) -> torch.Tensor | None:
        """LazyGlobal Adam's per-key last update step, ``(state_rows,)`` in ``export()`` order (1 past the
        keys, the initial value); None for other rules."""
        last_step = self.shard.sparse_optimizer.last_step
        return None if last_step is None else self._gather_in_file_order([last_step], 1)[0]

    def _file_positions(self) -> tuple[torch.Tensor, int]:
        """``(file row of each of this shard's keys, keys in the file)``: from the last ``load()``, else
        ``export()``'s order. The key count is the same on every rank, so size checks agree."""
        if self._file_rows is not None:
            return self._file_rows, self._file_keys
        counts = gather_counts(self.shard.size, self.device, self.group)
        start = sum(counts[:self.rank])
        return torch.arange(start, start + counts[self.rank], device=self.device), sum(counts)

    def _take_file_rows(self, mine: torch.Tensor, given, what: str, positions, total: int) -> None:
        """``mine[:k]`` = the rows of ``given`` (file order, any row count covering the keys) at ``positions``."""
        width = mine[0].numel()
        given = torch.as_tensor(given).to(self.device, mine.dtype).reshape(-1)
        if given.numel() % width or given.numel() // width < total:
            raise ValueError(f"SparseEmbedding '{self.name}': {what} has {given.numel()} values, expected rows of "
                             f"{width} covering the {total} keys of the key file; the file belongs to another table")
        mine[:positions.numel()] = given.view(-1, *mine.shape[1:]).index_select(0, positions)

    def load_optimizer_states(self, states: list[torch.Tensor]) -> None:
        """Set the states of this shard's keys from per-key rows (as ``optimizer_states`` orders them)."""
        mine = self.shard.sparse_optimizer.states
        if len(states) != len(mine):
            raise ValueError(f"SparseEmbedding '{self.name}': the optimizer keeps {len(mine)} state tensor(s), "
                             f"got {len(states)}")
        positions, total = self._file_positions()
        for index, (state, given) in enumerate(zip(mine, states)):
            self._take_file_rows(state, given, f"optimizer state {index}", positions, total)

    def load_last_steps(self, steps: torch.Tensor) -> None:
        """Set LazyGlobal's last update step of this shard's keys (as ``last_steps`` orders them)."""
        last_step = self.shard.sparse_optimizer.last_step
        if last_step is not None:
            self._take_file_rows(last_step, steps, "the LazyGlobal last-step file", *self._file_positions())
