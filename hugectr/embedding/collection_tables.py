"""The tables of an embedding collection: row storage, key -> row, sparse update (reference 4.7 "EBC").

A *group* is one fp32 storage ``rows`` ``(capacity + 1, ev)`` (the last row is scratch: padding and
invalid keys land there, it is never exported) with its ``SparseOptimizer``. Lookups hand a group
their keys joined into one CSR (``JoinedKeys``); the group turns keys into rows, pools every bag with
``embedding_pool`` (sum) and, after backward, applies the summed gradient of each hit row with
``embedding_update``: the same kernels and optimizer rules as ``SparseEmbeddingTable``. Lookups of
one table share its rows, so a row hit by several lookups gets one update with the summed gradient.

* ``StaticGroup``: static tables (``max_vocabulary_size > 0``) of one ev size and optimizer in one
  storage; key k of table t is row ``base_t + k``. Keys outside ``[0, vocab)`` are an error naming
  the table (at once on the CPU; on a GPU at the next ``check_errors``, the step never waits),
  meanwhile they read zeros and update only the scratch row. Initial values U(+-sqrt(1 / vocab)).
* ``DynamicGroup``: one dynamic table (``-1``): a ``HashTable``, rows in first-seen order, initial
  values U(-0.05, 0.05) drawn as rows are added, unseen keys read zeros in evaluation. Capacity
  rule: the next power of two >= max(4096, 4 x the keys of one batch); before a training batch that
  could overflow it, the table reads its size (one host sync) and, if needed, grows to the next
  power of two >= 2 x (size + batch keys), keeping every row and optimizer state. A host-side upper
  bound of the size means that read happens only when the bound reaches the capacity.

HugeCTR's EBC optimizers touch only the rows of the batch whatever ``update_type`` says and start
every state at 0 (no ``initial_accu_value``); static tables take SGD and AdaGrad, dynamic ones also
Adam, MomentumSGD and Nesterov.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..enums import Optimizer_t, Update_t
from ..kernels.embedding_pool import embedding_pool
from ..kernels.embedding_update import Occurrences, embedding_update
from ..params.embedding_collection import EmbeddingTableConfig
from ..params.optimizer import OptParamsPy
from .hash_table import HashTable
from .sparse_optimizers import SparseOptimizer

DYNAMIC_BOUND = 0.05
STATIC_OPTIMIZERS = (Optimizer_t.SGD, Optimizer_t.AdaGrad)
DYNAMIC_OPTIMIZERS = (Optimizer_t.SGD, Optimizer_t.AdaGrad, Optimizer_t.Adam, Optimizer_t.MomentumSGD,
                      Optimizer_t.Nesterov)
_MIN_DYNAMIC_ROWS = 4096
_INT64_MIN = -(2 ** 63)


@dataclass
class JoinedKeys:
    """The keys of a group's lookups as one CSR; bags lookup after lookup, ``batch`` bags (or more) each."""

    values: torch.Tensor                 # (nnz,) int64 keys
    offsets: torch.Tensor | None         # (num_bags + 1,); None when every bag holds ``hotness`` keys
    hotness: int | None
    num_bags: int
    bag_table: torch.Tensor              # (num_bags,) int64 table index (within the group) of each bag
    bag_lookup: torch.Tensor             # (num_bags,) int64 lookup index (within the group) of each bag

    def bag_ids(self) -> torch.Tensor:
        """(nnz,) the bag of every key (no host sync: nnz is the tensor's length)."""
        nnz, device = self.values.numel(), self.values.device
        if self.offsets is None:
            return torch.arange(nnz, device=device) // self.hotness
        sizes = self.offsets[1:] - self.offsets[:-1]
        return torch.repeat_interleave(torch.arange(self.num_bags, device=device), sizes, output_size=nnz)


class KeyErrors:
    """Bad keys found in a batch, counted per lookup: raised at once on the CPU (the check is free
    there), kept on the device and raised by ``check`` on a GPU (so a step never waits)."""

    def __init__(self, num_lookups: int, device: torch.device, describe: Callable[[int, int, int], str]):
        self.device = device
        self.describe = describe             # (lookup index, count, example key) -> message
        self.counts = torch.zeros(num_lookups, dtype=torch.int64, device=device)
        self.examples = torch.full((num_lookups,), _INT64_MIN, dtype=torch.int64, device=device)

    def record(self, bad: torch.Tensor, lookup_of_key: torch.Tensor, keys: torch.Tensor) -> None:
        """``bad`` (nnz,) bool, ``lookup_of_key`` (nnz,) the lookup of each key, ``keys`` the values to quote."""
        self.counts.index_add_(0, lookup_of_key, bad.to(torch.int64))
        self.examples.scatter_reduce_(0, lookup_of_key, torch.where(bad, keys, _INT64_MIN), "amax")
        if self.device.type == "cpu":
            self.check()

    def check(self) -> None:
        """Raise ``ValueError`` for the first lookup with bad keys (a host sync on a GPU)."""
        counts = self.counts.tolist()
        for index, count in enumerate(counts):
            if count:
                example = int(self.examples[index])
                self.counts.zero_()
                self.examples.fill_(_INT64_MIN)
                raise ValueError(self.describe(index, count, example))


def check_table_optimizer(table: EmbeddingTableConfig, optimizer: OptParamsPy) -> None:
    """Refuse an optimizer HugeCTR's collection has no update for (this table kind)."""
    allowed = DYNAMIC_OPTIMIZERS if table.is_dynamic else STATIC_OPTIMIZERS
    if optimizer.optimizer_type not in allowed:
        kind = "dynamic (max_vocabulary_size=-1)" if table.is_dynamic else "static"
        hint = "" if table.is_dynamic else " or make it dynamic (max_vocabulary_size=-1)"
        raise ValueError(f"EmbeddingTableConfig '{table.name}': a {kind} table is updated with "
                         f"{', '.join(str(o) for o in allowed)}, got {optimizer.optimizer_type}; give the table one "
                         f"of those (opt_params_or_empty=hugectr.CreateOptimizer(...)){hint}")


def _make_optimizer(params: OptParamsPy, rows: int, ev: int, device, name: str) -> SparseOptimizer:
    # Local: the collection updates only the rows of the batch; states start at 0 as HugeCTR's do.
    optimizer = SparseOptimizer(dataclasses.replace(params, update_type=Update_t.Local), rows, ev, device, name)
    for state in optimizer.states:
        state.zero_()
    return optimizer


def _device_generator(generator: torch.Generator, device: torch.device) -> torch.Generator:
    """A generator on ``device`` seeded from ``generator`` (draws happen where the table lives)."""
    if device.type == generator.device.type:
        return generator
    seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator))
    return torch.Generator(device=device).manual_seed(seed)


def _sorted_unique(rows: torch.Tensor, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(unique (n,), inverse (n,))`` with ``rows = unique[inverse]``, no host sync: the unique rows
    fill the front, ``pad`` the rest (never referenced by ``inverse``).

    >>> unique, inverse = _sorted_unique(torch.tensor([7, 3, 7, 9]), pad=-1)
    >>> unique.tolist(), inverse.tolist()
    ([3, 7, 9, -1], [1, 0, 1, 2])
    """
    n = rows.numel()
    if n == 0:
        return rows, rows
    sorted_rows, order = torch.sort(rows)
    head = torch.ones(n, dtype=torch.bool, device=rows.device)
    head[1:] = sorted_rows[1:] != sorted_rows[:-1]
    ids = torch.cumsum(head, 0) - 1                                   # (n,) unique index in sorted order
    inverse = torch.empty_like(ids).scatter_(0, order, ids)
    return torch.full_like(rows, pad).scatter_(0, ids, sorted_rows), inverse


class TableGroup:
    """Storage, optimizer and the pool / update shared by static and dynamic groups."""

    def __init__(self, name: str, ev: int, capacity: int, optimizer: OptParamsPy, device) -> None:
        self.name, self.ev, self.capacity = name, ev, capacity
        self.device = torch.device(device)
        self.optimizer = _make_optimizer(optimizer, capacity + 1, ev, self.device, name)
        self.rows = torch.empty(capacity + 1, ev, dtype=torch.float32, device=self.device)
        self._saved = None

    @torch.no_grad()
    def lookup(self, keys: JoinedKeys, training: bool) -> torch.Tensor:
        """(num_bags, ev) fp32 sums of each bag's rows; training remembers what ``update`` needs."""
        if not training:
            return self._eval_pool(keys)
        unique_rows, inverse = self._train_rows(keys)
        self._saved = (unique_rows, inverse, None if keys.offsets is None else keys.bag_ids(), keys.hotness,
                       keys.num_bags)
        return embedding_pool(self.rows, unique_rows[inverse], keys.offsets, hotness=keys.hotness, combiner="sum")

    @torch.no_grad()
    def update(self, grad: torch.Tensor | None, lr: float, scaler: float) -> None:
        """Apply the optimizer with ``grad`` (num_bags, ev) of the last training lookup (None: zeros)."""
        if self._saved is None:
            raise RuntimeError(f"embedding collection group '{self.name}': update() needs a training lookup first")
        unique_rows, inverse, bag_ids, hotness, num_bags = self._saved
        self._saved = None
        if grad is None:
            grad = torch.zeros(num_bags, self.ev, device=self.device)
        occurrences = Occurrences(unique_rows, inverse, bag_ids, None, hotness)
        embedding_update(grad, occurrences, self.rows, self.optimizer, float(lr), self.optimizer.advance(),
                         float(scaler))

    def _train_rows(self, keys: JoinedKeys):
        raise NotImplementedError

    def _eval_pool(self, keys: JoinedKeys) -> torch.Tensor:
        raise NotImplementedError

    def check_errors(self) -> None:
        """Raise what a GPU lookup recorded without stopping the stream (syncs)."""


class StaticGroup(TableGroup):
    """Static tables of one ev size and optimizer, rows ``base_t .. base_t + vocab_t - 1`` for table t."""

    def __init__(self, tables: list[EmbeddingTableConfig], optimizer: OptParamsPy, *, generator: torch.Generator,
                 device, errors: KeyErrors) -> None:
        vocabs = [t.max_vocabulary_size for t in tables]
        super().__init__("+".join(t.name for t in tables), tables[0].ev_size, sum(vocabs), optimizer, device)
        self.tables = list(tables)
        self.errors = errors
        self.bases = dict(zip((t.name for t in tables), [0] + list(_cumsum(vocabs))[:-1]))
        self.base_of_table = torch.tensor(list(self.bases.values()), dtype=torch.int64, device=self.device)
        self.vocab_of_table = torch.tensor(vocabs, dtype=torch.int64, device=self.device)
        bounds = [t.init_bound or math.sqrt(1.0 / t.max_vocabulary_size) for t in tables] + [0.0]
        row_bounds = torch.tensor(bounds, device=self.device).repeat_interleave(
            torch.tensor(vocabs + [1], device=self.device), output_size=self.capacity + 1)   # (capacity + 1,)
        self.rows.uniform_(-1.0, 1.0, generator=_device_generator(generator, self.device)).mul_(row_bounds[:, None])

    def _rows(self, keys: JoinedKeys, invalid_row: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(nnz,) rows of the keys and their bag ids; keys outside their table's range -> ``invalid_row``."""
        bag_ids = keys.bag_ids()
        table = keys.bag_table.index_select(0, bag_ids)                       # (nnz,)
        values = keys.values
        bad = (values < 0) | (values >= self.vocab_of_table.index_select(0, table))
        self.errors.record(bad, keys.bag_lookup.index_select(0, bag_ids), values)
        rows = values + self.base_of_table.index_select(0, table)
        return torch.where(bad, invalid_row, rows), bag_ids

    def _train_rows(self, keys: JoinedKeys):
        rows, _ = self._rows(keys, self.capacity)                             # the scratch row
        return _sorted_unique(rows, self.capacity)

    def _eval_pool(self, keys: JoinedKeys) -> torch.Tensor:
        rows, _ = self._rows(keys, -1)                                        # -1 adds zeros
        return embedding_pool(self.rows, rows, keys.offsets, hotness=keys.hotness, combiner="sum")

    def export(self, table: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(keys 0..vocab-1, their (vocab, ev) vectors): a static table holds every key."""
        base, vocab = self.bases[table], self._vocab(table)
        return torch.arange(vocab, dtype=torch.int64, device=self.device), self.rows[base:base + vocab].clone()

    def load(self, table: str, keys: torch.Tensor, vectors: torch.Tensor, source: str) -> None:
        """Overwrite the rows of ``keys`` (each in ``[0, vocab)``); other rows keep their values."""
        vocab = self._vocab(table)
        if keys.numel() and (bool(keys.min() < 0) or bool(keys.max() >= vocab)):
            raise ValueError(f"embedding_load: {source} holds keys outside [0, {vocab}) (key range "
                             f"{int(keys.min())}..{int(keys.max())}) for static table '{table}' of max_vocabulary_size "
                             f"{vocab}")
        self.rows[keys + self.bases[table]] = vectors

    def _vocab(self, table: str) -> int:
        return next(t.max_vocabulary_size for t in self.tables if t.name == table)


class DynamicGroup(TableGroup):
    """One dynamic table: a growing ``HashTable`` over rows given out in first-seen order."""

    def __init__(self, table: EmbeddingTableConfig, optimizer: OptParamsPy, *, keys_per_batch: int,
                 generator: torch.Generator, device) -> None:
        capacity = 1 << (max(_MIN_DYNAMIC_ROWS, 4 * keys_per_batch) - 1).bit_length()
        super().__init__(table.name, table.ev_size, capacity, optimizer, device)
        self.tables = [table]
        self.bound = table.init_bound or DYNAMIC_BOUND
        self.generator = _device_generator(generator, self.device)
        self.rows.uniform_(-self.bound, self.bound, generator=self.generator)
        self.hash_table = HashTable(capacity, self.device, name=table.name)
        self._size_bound = 0          # >= the keys stored: the host's view, refreshed when it nears capacity

    def reserve(self, new_keys: int) -> None:
        """Make room for ``new_keys`` more keys (grows the table; reads its size only when it may be full)."""
        if self._size_bound + new_keys > self.capacity:
            self._size_bound = self.hash_table.size
            if self._size_bound + new_keys > self.capacity:
                self._grow(1 << (2 * (self._size_bound + new_keys) - 1).bit_length())
        self._size_bound += new_keys

    def _grow(self, capacity: int) -> None:
        """Move every key, row and optimizer state into a table of ``capacity`` rows (same row order)."""
        old_capacity, keys = self.capacity, self.hash_table.export()
        hash_table = HashTable(capacity, self.device, name=self.name, fixed_size=self.hash_table.fixed_size)
        hash_table.import_keys(keys)                                          # key i -> row i, as before
        rows = torch.empty(capacity + 1, self.ev, dtype=torch.float32, device=self.device)
        rows.uniform_(-self.bound, self.bound, generator=self.generator)      # new rows: fresh random values
        rows[:old_capacity] = self.rows[:old_capacity]
        optimizer = _make_optimizer(self.optimizer.params, capacity + 1, self.ev, self.device, self.name)
        for new, old in zip(optimizer.states, self.optimizer.states):
            new[:old_capacity] = old[:old_capacity]
        optimizer.step = self.optimizer.step
        self.hash_table, self.rows, self.optimizer, self.capacity = hash_table, rows, optimizer, capacity

    def _train_rows(self, keys: JoinedKeys):
        self.reserve(keys.values.numel())
        return self.hash_table.insert_or_find_unique(keys.values)

    def _eval_pool(self, keys: JoinedKeys) -> torch.Tensor:
        return embedding_pool(self.rows, keys.values, keys.offsets, hotness=keys.hotness, combiner="sum",
                              hash_slots=self.hash_table.slots())            # unseen keys add zeros

    def export(self, table: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(keys in row order, their vectors)."""
        keys = self.hash_table.export()
        return keys, self.rows[:keys.numel()].clone()

    def load(self, table: str, keys: torch.Tensor, vectors: torch.Tensor, source: str) -> None:
        """Insert ``keys`` (new ones get rows) and set their vectors; other keys keep theirs."""
        self.reserve(keys.numel())
        self.rows[self.hash_table.insert_or_find(keys)] = vectors

    def check_errors(self) -> None:
        self.hash_table.check_errors()

    @property
    def size(self) -> int:
        return self.hash_table.size


def _cumsum(values: list[int]):
    total = 0
    for value in values:
        total += value
        yield total
