"""``EmbeddingCollection``: an ``EmbeddingCollectionConfig`` running on the device (reference 1.4, 4.7 "EBC").

Forward, per table group (``collection_tables``): the keys of every lookup of the group's tables are
joined into one CSR (``(B, 1)`` bags of each lookup one after the other; a ``concat`` lookup first
splits each bag into ``hotness`` one-key bags, position by position), looked up and sum-pooled in
one pass -> ``pooled`` ``(bags, ev)``, a leaf that requires grad while training. ``average`` divides
its bags by their key count (autograd carries that into the gradient), and each lookup's bags are a
view of the result: ``(B, 1, ev)`` feature-major outputs or, for the grouped form, one batch-major
``(B, sum of widths)`` concatenation. After backward ``update`` hands ``pooled.grad`` to each group.
Work per step is a handful of kernels per group, whatever the number of lookups.

On several ranks (``torch.distributed`` initialised) each group follows the collection's shard plan
(``hugectr.distributed.collection_placement``): a ``RoutedGroup`` (``collection_routing``) sends the
group's keys to the rank(s) holding it and brings back the pooled rows and, after backward, sends
the gradients the same way. Every rank draws one seed per group from the shared generator in the
same order, so data-parallel replicas start equal whoever holds what.

``check_collection`` holds the rules ``Model.add`` enforces; ``build_collections`` makes the runtime
objects at ``Model.compile``.
"""

from __future__ import annotations

import torch

from ..distributed.collection_placement import Placement, placement
from ..distributed.collection_routing import RoutedGroup
from ..distributed.exchange import all_gather_packed, any_rank, group_world
from ..params.embedding_collection import EmbeddingCollectionConfig
from ..params.optimizer import OptParamsPy
from .collection_tables import (DynamicGroup, JoinedKeys, KeyErrors, StaticGroup, TableGroup,
                                check_table_optimizer)
from .sparse_batch import SparseBatch


def check_collection(config: EmbeddingCollectionConfig, solver, inp, model_optimizer: OptParamsPy,
                     existing: list[EmbeddingCollectionConfig]) -> None:
    """What HugeCTR requires of ``Model.add(EmbeddingCollectionConfig)``; ValueError naming the fix."""
    what = f"Model.add(EmbeddingCollectionConfig {len(existing)})"
    if not isinstance(config, EmbeddingCollectionConfig):
        raise TypeError(f"{what}: expected a hugectr.EmbeddingCollectionConfig, got {type(config).__name__}")
    if not solver.use_embedding_collection:
        raise ValueError(f"{what}: the embedding collection needs CreateSolver(use_embedding_collection=True)")
    if not config.lookups:
        raise ValueError(f"{what}: the collection has no lookup; call embedding_lookup(...) before Model.add")
    if inp is None:
        raise ValueError(f"{what}: add the hugectr.Input first")
    multi_slot = [p.top_name for p in inp.data_reader_sparse_param_array if p.slot_num != 1]
    if multi_slot:
        raise ValueError(f"{what}: every DataReaderSparseParam must have slot_num=1 with the embedding collection "
                         f"(one sparse input per feature, as HugeCTR requires); {', '.join(map(repr, multi_slot))} "
                         "have more slots: split them into one-slot inputs")
    taken = {name for other in existing for name in other.table_names}
    clash = [name for name in config.table_names if name in taken]
    if clash:
        raise ValueError(f"{what}: table name(s) {', '.join(map(repr, clash))} already belong to another collection; "
                         "table names must be unique in a model")
    for table in config.tables.values():
        check_table_optimizer(table, table.opt_params or model_optimizer)
    if config.shard_matrix is not None and len(config.shard_matrix) != solver.num_gpus:
        raise ValueError(f"{what}: shard_matrix has {len(config.shard_matrix)} GPU entries but vvgpu names "
                         f"{solver.num_gpus} GPU(s); give one list of table names per GPU")
    placement(config, solver.num_gpus, what)          # refuses the plans this package cannot run


def build_collections(configs: list[EmbeddingCollectionConfig], inp, batch_size: int,
                      model_optimizer: OptParamsPy, *, seed: int, device) -> list[EmbeddingCollection]:
    """The runtime collections of a model, tables initialised from ``seed``."""
    hotness = {p.top_name: p.max_nnz for p in inp.data_reader_sparse_param_array}
    generator = torch.Generator().manual_seed(seed)
    return [EmbeddingCollection(config, index, hotness=hotness, batch_size=batch_size,
                                model_optimizer=model_optimizer, generator=generator, device=device)
            for index, config in enumerate(configs)]


class EmbeddingCollection:
    """The tables and lookups of one collection on one device.

    ``lookup(sparse, training)`` -> ``{output name: tensor}``; ``update(lr, scaler)`` after backward.
    """

    def __init__(self, config: EmbeddingCollectionConfig, index: int, *, hotness: dict[str, int], batch_size: int,
                 model_optimizer: OptParamsPy, generator: torch.Generator, device) -> None:
        self.config, self.index = config, index
        self.device = torch.device(device)
        self.rank, self.world = group_world()
        self.placement = placement(config, self.world, f"EmbeddingCollection {index}")
        self.lookups = list(config.lookups)
        self.hotness = {lookup.bottom: hotness[lookup.bottom] for lookup in self.lookups}
        self.range_errors = KeyErrors(len(self.lookups), self.device, self._describe_range)
        self.hotness_errors = KeyErrors(len(self.lookups), self.device, self._describe_hotness)
        self.groups: list[TableGroup | None] = []           # None: held by other ranks
        self.group_tables: list[list] = []                   # the table configs of each group
        self.routes: list[RoutedGroup | None] = []           # None: one rank, the group is used directly
        self.group_of_table: dict[str, TableGroup | None] = {}
        self._make_groups(model_optimizer, batch_size, generator)
        # Per group: the indices of its lookups, in collection order.
        group_index = {t.name: g for g, tables in enumerate(self.group_tables) for t in tables}
        self.group_lookups = [[i for i, lookup in enumerate(self.lookups) if group_index[lookup.table] == g]
                              for g in range(len(self.group_tables))]
        if self.world > 1:
            self._route_groups()
        self._structures: dict[tuple, tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = {}
        self._pooled: list[torch.Tensor] | None = None

    def _make_groups(self, model_optimizer: OptParamsPy, batch_size: int, generator: torch.Generator) -> None:
        """Static tables sharing ev size, optimizer and placement share one storage; each dynamic table has
        its own. On several ranks a rank builds only the groups it holds (one seed per group either way)."""
        static: list[tuple[tuple, OptParamsPy, list]] = []
        dynamic = [table for table in self.config.tables.values() if table.is_dynamic]
        for table in self.config.tables.values():
            optimizer = table.opt_params or model_optimizer
            if table.is_dynamic:
                continue
            key = (table.ev_size, self.placement[table.name].key if self.world > 1 else None)
            for known, opt, members in static:
                if known == key and opt == optimizer:
                    members.append(table)
                    break
            else:
                static.append((key, optimizer, [table]))
        for _, optimizer, members in static:
            self._add_group(members, lambda gen, members=members, optimizer=optimizer: StaticGroup(
                members, optimizer, generator=gen, device=self.device, errors=self.range_errors), generator)
        # Dynamic groups last: a static table's bad key is raised before any key is inserted.
        for table in dynamic:
            keys = sum(batch_size * self.hotness[lk.bottom] for lk in self.lookups if lk.table == table.name)
            self._add_group([table], lambda gen, table=table, keys=keys: DynamicGroup(
                table, table.opt_params or model_optimizer, keys_per_batch=keys, generator=gen,
                device=self.device), generator)

    def _add_group(self, tables: list, make, generator: torch.Generator) -> None:
        group = None
        if self.world == 1:
            group = make(generator)                         # the single-device stream, as before
        else:
            seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator))   # drawn on every rank
            if self.rank in self.placement[tables[0].name].holders:
                group = make(torch.Generator().manual_seed(seed))
        self.groups.append(group)
        self.group_tables.append(tables)
        self.group_of_table.update({table.name: group for table in tables})

    def _route_groups(self) -> None:
        """One ``RoutedGroup`` per group: where its keys go and its gradients come from."""
        for group, tables in zip(self.groups, self.group_tables):
            names = [t.name for t in tables]
            table_of_lookup = torch.tensor([names.index(lk.table) if lk.table in names else -1
                                            for lk in self.lookups], dtype=torch.int64)
            self.routes.append(RoutedGroup(group, self.placement[names[0]].holders, table_of_lookup,
                                           ev=tables[0].ev_size, name="+".join(names), device=self.device))

    @property
    def table_names(self) -> list[str]:
        return self.config.table_names

    # -- forward ------------------------------------------------------------------------------
    def lookup(self, sparse: dict[str, SparseBatch], training: bool,
               out_dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
        """The collection's outputs for a batch's sparse inputs (training inserts keys of dynamic tables)."""
        outputs: list[torch.Tensor | None] = [None] * len(self.lookups)
        pooled_list = []
        for index, members in enumerate(self.group_lookups):
            parts = self._parts(sparse, members)
            keys, average = self._join(index, members, parts)
            route = self.routes[index] if self.routes else None
            if route is None:
                pooled = self.groups[index].lookup(keys, training)            # (bags, ev) fp32
            else:
                pooled = route.lookup(keys, training)                         # (this rank's bags, ev) fp32
            if training:
                pooled.requires_grad_(True)
            pooled_list.append(pooled)
            scaled = pooled if average is None else _average(pooled, keys, average)
            start = 0
            for i, (_, _, _, bags) in zip(members, parts):
                batch = self._batch_size(sparse, i)
                outputs[i] = scaled[start:start + bags].reshape(batch, -1)    # (B, width)
                start += bags
        self._pooled = pooled_list if training else None
        if self.config.batch_major_output is not None:
            return {self.config.batch_major_output: torch.cat(outputs, dim=1).to(out_dtype)}   # (B, sum widths)
        return {lk.top: out.unsqueeze(1).to(out_dtype) for lk, out in zip(self.lookups, outputs)}  # (B, 1, width)

    def _parts(self, sparse: dict[str, SparseBatch], members: list[int]) -> list:
        """The bags of each lookup; on several ranks a bad input raises on every rank together (CPU)."""
        if self.world == 1 or self.device.type != "cpu":
            return [self._bags(i, self._input(sparse, i)) for i in members]
        error, parts = None, None
        try:
            parts = [self._bags(i, self._input(sparse, i)) for i in members]
        except ValueError as exc:
            error = exc
        if any_rank(error is not None, self.device):
            raise error or RuntimeError(f"EmbeddingCollection {self.index}: another rank's batch failed its check "
                                        "(its error names the input)")
        return parts

    def _input(self, sparse: dict[str, SparseBatch], index: int) -> SparseBatch:
        lookup = self.lookups[index]
        keys = sparse.get(lookup.bottom)
        if keys is None:
            raise ValueError(f"EmbeddingCollection {self.index}: the batch has no sparse input '{lookup.bottom}' "
                             f"(lookup '{lookup.top}'); inputs: {', '.join(sparse) or '(none)'}")
        if keys.num_slots != 1:
            raise ValueError(f"EmbeddingCollection {self.index}: sparse input '{lookup.bottom}' has {keys.num_slots} "
                             "slots per sample; the embedding collection takes one-slot inputs")
        return keys.to(self.device)

    def _batch_size(self, sparse: dict[str, SparseBatch], index: int) -> int:
        return sparse[self.lookups[index].bottom].batch_size

    def _bags(self, index: int, keys: SparseBatch):
        """``(values, offsets | None, hotness | None, bags)`` of one lookup; ``concat`` gets one bag per position."""
        if self.lookups[index].combiner != "concat":
            return keys.values, (None if keys.hotness else keys.offsets), keys.hotness, keys.batch_size
        width = self.hotness[self.lookups[index].bottom]
        bags = keys.batch_size * width
        if keys.hotness == width:                                             # full bags: key j is position j
            return keys.values, None, 1, bags
        bag = keys.bag_ids()                                                  # (nnz,) sample of each key
        position = torch.arange(keys.values.numel(), device=self.device) - keys.offsets.index_select(0, bag)
        self.hotness_errors.record(position >= width, torch.full_like(bag, index), position + 1)
        target = bag * width + position.clamp(max=width - 1)                 # (nnz,) non-decreasing
        counts = torch.zeros(bags, dtype=torch.int64, device=self.device).index_add_(0, target,
                                                                                     torch.ones_like(target))
        return keys.values, torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)]), None, bags

    def _join(self, group: int, members: list[int], parts) -> tuple[JoinedKeys, torch.Tensor | None]:
        """One CSR over the lookups of ``group`` (offsets shifted on the device: no host sync), and the
        mask of the bags that ``average`` (None when no lookup does)."""
        values = parts[0][0] if len(parts) == 1 else torch.cat([part[0] for part in parts])
        hotness = {part[2] for part in parts}
        common = parts[0][2] if len(hotness) == 1 and parts[0][2] else None
        offsets = None
        if common is None:
            offsets = [part[1] if part[1] is not None else
                       torch.arange(0, part[0].numel() + 1, part[2], device=self.device) for part in parts]
            offsets = offsets[0] if len(offsets) == 1 else _join_offsets(offsets)
        bag_table, bag_lookup, average = self._structure(group, members, parts)
        return JoinedKeys(values, offsets, common, sum(part[3] for part in parts), bag_table, bag_lookup), average

    def _structure(self, group: int, members: list[int], parts):
        """Per-bag table index, lookup index and ``average`` mask: device tensors cached per batch shape."""
        key = (group, tuple(part[3] for part in parts))
        if key not in self._structures:
            counts = torch.tensor([part[3] for part in parts])
            tables = [t.name for t in self.group_tables[group]]
            table_ids = torch.tensor([tables.index(self.lookups[i].table) for i in members])
            average = torch.tensor([self.lookups[i].combiner == "average" for i in members])
            self._structures[key] = (table_ids.repeat_interleave(counts).to(self.device),
                                     torch.tensor(members).repeat_interleave(counts).to(self.device),
                                     average.repeat_interleave(counts).to(self.device) if bool(average.any()) else None)
        return self._structures[key]

    # -- backward -----------------------------------------------------------------------------
    def update(self, lr: float, scaler: float = 1.0) -> None:
        """Apply each group's optimizer with the gradient of the last training lookup."""
        if self._pooled is None:
            raise RuntimeError(f"EmbeddingCollection {self.index}: update() needs a training lookup first")
        for index, pooled in enumerate(self._pooled):
            target = self.routes[index] if self.routes else self.groups[index]
            target.update(pooled.grad, lr, scaler)
        self._pooled = None

    # -- checks, files ------------------------------------------------------------------------
    def check_errors(self) -> None:
        """Raise the key problems a GPU step recorded (syncs; on several ranks a collective: all raise)."""
        error = None
        try:
            self.range_errors.check()
            self.hotness_errors.check()
            for group in self.groups:
                if group is not None:
                    group.check_errors()
        except ValueError as exc:
            if self.world == 1:
                raise
            error = exc
        if self.world > 1 and any_rank(error is not None, self.device):
            raise error or RuntimeError(f"EmbeddingCollection {self.index}: another rank found a bad key "
                                        "(its error names it)")

    def export(self, table: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(keys, vectors) of ``table`` on every rank (on several ranks a collective: call it on all)."""
        group = self.group_of_table[table]
        where: Placement = self.placement[table]
        if self.world == 1 or where.strategy == "dp":
            return group.export(table)
        if group is not None:
            keys, vectors = group.export(table)
        else:
            ev = self.config.tables[table].ev_size
            keys = torch.zeros(0, dtype=torch.int64, device=self.device)
            vectors = torch.zeros(0, ev, dtype=torch.float32, device=self.device)
        (keys, vectors), _ = all_gather_packed([keys, vectors])              # the holder's rows, everywhere
        return keys, vectors

    def load(self, table: str, keys: torch.Tensor, vectors: torch.Tensor, source: str) -> None:
        """Set the vectors of ``keys``; a rank that does not hold ``table`` keeps nothing."""
        group = self.group_of_table[table]
        if group is not None:
            group.load(table, keys.to(self.device, torch.int64), vectors.to(self.device, torch.float32), source)

    def _describe_range(self, index: int, count: int, example: int) -> str:
        lookup = self.lookups[index]
        vocab = self.config.tables[lookup.table].max_vocabulary_size
        return (f"EmbeddingCollection table '{lookup.table}' (static, max_vocabulary_size={vocab}): {count} key(s) "
                f"of sparse input '{lookup.bottom}' are outside [0, {vocab}), e.g. {example}. Static tables take keys "
                "0..max_vocabulary_size-1: raise max_vocabulary_size, drop per-slot key offsets (DataReaderParams "
                "slot_size_array), or use a dynamic table (max_vocabulary_size=-1)")

    def _describe_hotness(self, index: int, count: int, example: int) -> str:
        lookup = self.lookups[index]
        return (f"EmbeddingCollection lookup '{lookup.top}' (combiner 'concat'): a sample of sparse input "
                f"'{lookup.bottom}' has {example} keys but its DataReaderSparseParam allows "
                f"{self.hotness[lookup.bottom]} (nnz_per_slot); raise nnz_per_slot so every key has a place")


def _average(pooled: torch.Tensor, keys: JoinedKeys, average: torch.Tensor) -> torch.Tensor:
    """Divide the bags that ``average`` (mask (bags,)) by their key count (at least 1), differentiably."""
    if keys.offsets is None:
        sizes = torch.full((keys.num_bags,), float(keys.hotness), device=pooled.device)
    else:
        sizes = (keys.offsets[1:] - keys.offsets[:-1]).clamp(min=1).to(torch.float32)
    return pooled * torch.where(average, 1.0 / sizes, 1.0)[:, None]


def _join_offsets(offsets: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate CSR offsets (each starting at 0), shifting each by the keys before it, on the device.

    >>> _join_offsets([torch.tensor([0, 1, 3]), torch.tensor([0, 2, 2])]).tolist()
    [0, 1, 3, 5, 5]
    >>> _join_offsets([torch.tensor([0, 2]), torch.tensor([0, 1, 1, 4])]).tolist()
    [0, 2, 3, 3, 6]
    """
    if len({o.numel() for o in offsets}) == 1:
        stacked = torch.stack(offsets)                                        # (k, n + 1)
        totals = stacked[:, -1]
        starts = torch.cumsum(totals, 0) - totals                             # (k,)
        return torch.cat([(stacked[:, :-1] + starts[:, None]).reshape(-1), starts[-1:] + totals[-1:]])
    pieces, shift = [], 0
    for o in offsets:
        pieces.append(o[:-1] + shift)
        shift = shift + o[-1:]
    return torch.cat(pieces + [shift])
