"""Scenarios for "sharded equals unsharded": the same loaded table, batches and gradients on G ranks and on one.

The test process builds ``Scenario`` objects (every tensor drawn there, so all ranks and the
single-device reference see the same data), runs ``rank_run`` on G ranks through
``hugectr.testing.ranks.run_ranks`` and ``reference_run`` itself, and compares. Ranks return their
local pooled outputs (rank r holds samples ``[r B / G, (r + 1) B / G)``) and the full exports.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import torch
import torch.distributed as dist

import hugectr
from ..distributed.sharded_embedding import ShardedEmbeddingTable
from ..embedding.sparse_batch import SparseBatch
from ..embedding.sparse_embedding import SparseEmbeddingTable

# name -> (Optimizer_t, Update_t, extra CreateOptimizer keywords)
OPTIMIZERS = {
    "sgd": ("SGD", "Local", {}),
    "adagrad": ("AdaGrad", "Local", {"epsilon": 1e-3}),
    "momentum_local": ("MomentumSGD", "Local", {"momentum_factor": 0.9}),
    "momentum_global": ("MomentumSGD", "Global", {"momentum_factor": 0.9}),
    "nesterov_local": ("Nesterov", "Local", {"momentum_factor": 0.9}),
    "nesterov_global": ("Nesterov", "Global", {"momentum_factor": 0.9}),
    "adam_local": ("Adam", "Local", {}),
    "adam_global": ("Adam", "Global", {}),
    "adam_lazy_global": ("Adam", "LazyGlobal", {}),
}
SLOTS, EV, BATCH, VOCAB, UNUSED, NEW = 3, 4, 12, 10, 2, 3
SLOT_SIZES = [VOCAB + UNUSED + NEW + 1] * SLOTS        # Localized tables: capacity from slot_size_array
LR, SCALER, STEPS = 0.05, 2.0, 3


@dataclass(frozen=True)
class Case:
    """One combination: placement, combiner, hotness, optimizer; ``new_keys``: batches hold unloaded keys."""

    localized: bool
    combiner: str
    multi_hot: bool
    optimizer: str
    new_keys: bool = False

    @property
    def id(self) -> str:
        return "-".join([("localized" if self.localized else "distributed"), self.combiner,
                         ("multi" if self.multi_hot else "one") + "hot", self.optimizer] + ["new"] * self.new_keys)


def all_cases() -> list[Case]:
    """Every placement x combiner x hotness x optimizer, plus unloaded-key cases.

    One-hot ``mean`` equals one-hot ``sum`` (a bag of one key is not divided), so it runs with two
    optimizers only.
    """
    cases = [Case(localized, combiner, multi, opt) for localized in (False, True) for combiner in ("sum", "mean")
             for multi in (False, True) for opt in OPTIMIZERS
             if multi or combiner == "sum" or opt in ("sgd", "adam_global")]
    return cases + [Case(localized, "mean", True, opt, new_keys=True) for localized in (False, True)
                    for opt in ("sgd", "adam_global")]


@dataclass
class Scenario:
    """A case's data: the loaded table, global training batches with upstream gradients, an eval batch."""

    case: Case
    keys: torch.Tensor
    vectors: torch.Tensor
    slot_ids: torch.Tensor
    batches: list[SparseBatch]
    grads: list[torch.Tensor]
    eval_batch: SparseBatch
    checkpoint: tuple | None = None      # (keys, vectors, slot_ids, states) to reload, then one more step


def build_params(case: Case):
    """``(SparseEmbedding, OptParamsPy)`` of the case (1 MB workspace, ev 4)."""
    kind, update, extra = OPTIMIZERS[case.optimizer]
    opt = hugectr.CreateOptimizer(optimizer_type=getattr(hugectr.Optimizer_t, kind),
                                  update_type=getattr(hugectr.Update_t, update), **extra)
    embedding_type = ("LocalizedSlotSparseEmbeddingHash" if case.localized else "DistributedSlotSparseEmbeddingHash")
    params = hugectr.SparseEmbedding(embedding_type=embedding_type, workspace_size_per_gpu_in_mb=1,
                                     embedding_vec_size=EV, combiner=case.combiner, sparse_embedding_name="emb",
                                     bottom_name="data", slot_size_array=SLOT_SIZES if case.localized else [],
                                     optimizer=opt)
    return params, opt


def _slot_keys(slot: int) -> torch.Tensor:
    """The keys of slot ``slot`` (slot 0's are negative: they exercise the unsigned owner rule)."""
    return slot * 1000 - 1500 + torch.arange(VOCAB + UNUSED + NEW) * 7


def _batch(generator: torch.Generator, multi_hot: bool, vocab: int) -> SparseBatch:
    if not multi_hot:
        picks = torch.randint(0, vocab, (BATCH, SLOTS, 1), generator=generator)
        return SparseBatch.from_fixed(torch.stack([_slot_keys(s)[picks[:, s]] for s in range(SLOTS)], 1))
    sizes = torch.randint(0, 4, (BATCH, SLOTS), generator=generator)        # 0..3 keys: empty bags too
    bags = [[_slot_keys(s)[torch.randint(0, vocab, (int(sizes[b, s]),), generator=generator)].tolist()
             for s in range(SLOTS)] for b in range(BATCH)]
    return SparseBatch.from_bags(bags)


def make_scenario(case: Case, seed: int, steps: int = STEPS + 1) -> Scenario:
    """Loaded keys (shuffled), ``steps`` batches + gradients (the last one for after a reload), eval batch."""
    g = torch.Generator().manual_seed(seed)
    loaded = [(_slot_keys(s)[:VOCAB + UNUSED], s) for s in range(SLOTS)]
    keys = torch.cat([k for k, _ in loaded])
    slot_ids = torch.cat([torch.full_like(k, s) for k, s in loaded])
    order = torch.randperm(keys.numel(), generator=g)
    keys, slot_ids = keys[order], slot_ids[order]
    vectors = torch.randn(keys.numel(), EV, generator=g) * 0.1
    vocab = VOCAB + UNUSED + NEW if case.new_keys else VOCAB
    batches = [_batch(g, case.multi_hot, vocab) for _ in range(steps)]
    grads = [torch.randn(BATCH, SLOTS, EV, generator=g) for _ in range(steps)]
    eval_batch = _batch(g, True, VOCAB + UNUSED + NEW)                      # unseen keys: contribute 0
    return Scenario(case, keys, vectors, slot_ids, batches, grads, eval_batch)


def make_table(case: Case, device, sharded: bool):
    params, opt = build_params(case)
    cls = ShardedEmbeddingTable if sharded else SparseEmbeddingTable
    return cls(params, SLOTS, opt, generator=torch.Generator().manual_seed(7), device=device)


def export_cpu(table) -> tuple:
    keys, vectors, slot_ids = table.export()
    return keys.cpu(), vectors.cpu(), None if slot_ids is None else slot_ids.cpu()


def _step(table, batch: SparseBatch, grad: torch.Tensor, part: slice, device) -> torch.Tensor:
    out = table.lookup(batch.slice_samples(part.start, part.stop), training=True)
    table.update(grad[part].to(device), LR, SCALER)
    return out.cpu()


def _optimizer(table):
    return table.shard.sparse_optimizer if isinstance(table, ShardedEmbeddingTable) else table.sparse_optimizer


def last_steps_of(table) -> torch.Tensor | None:
    """LazyGlobal's per-row last steps in key-file order (a plain table's rows are its key file's)."""
    if isinstance(table, ShardedEmbeddingTable):
        return table.last_steps()
    last_step = table.sparse_optimizer.last_step
    return None if last_step is None else last_step[:table.capacity].clone()


def restore(table, checkpoint: tuple) -> None:
    """Load ``(keys, vectors, slot_ids, states, last_steps, step)``: weights, optimizer states, counters.

    A plain table reads state files of its own capacity: the rows past the keys are the fill value,
    so a longer file (written on several ranks) is cut to it.
    """
    keys, vectors, slot_ids, states, last_steps, step = checkpoint
    table.load(keys, vectors, slot_ids)
    optimizer = _optimizer(table)
    if isinstance(table, ShardedEmbeddingTable):
        table.load_optimizer_states(states)
        if last_steps is not None:
            table.load_last_steps(last_steps)
    else:
        table.load_optimizer_states([state[:table.capacity] for state in states])
        if last_steps is not None:
            optimizer.last_step[:table.capacity] = last_steps[:table.capacity]
    optimizer.step = step


def train(table, s: Scenario, part: slice, device) -> dict:
    """Load, run ``STEPS`` steps (exports after the first and the last), an eval lookup, a checkpoint
    ``(keys, vectors, slot_ids, states, last_steps, step)``, then one more step (``continued``)."""
    table.load(s.keys, s.vectors, s.slot_ids)
    outputs, exports = [], []
    for step in range(STEPS):
        outputs.append(_step(table, s.batches[step], s.grads[step], part, device))
        if step == 0:
            exports.append(export_cpu(table))
    exports.append(export_cpu(table))
    states = [state.to("cpu", copy=True) for state in table.optimizer_states()]   # not views of live state
    last_steps = last_steps_of(table)
    last_steps = None if last_steps is None else last_steps.cpu()
    eval_batch = s.eval_batch.slice_samples(part.start, part.stop)
    buffer = torch.full((eval_batch.batch_size, SLOTS, table.embedding_vec_size), float("nan"), device=device)
    eval_out = table.lookup(eval_batch, training=False, out=buffer).cpu()       # lookup(out=) fills the buffer
    keys, vectors, slot_ids = exports[-1]
    checkpoint = (keys, vectors, slot_ids, states, last_steps, _optimizer(table).step)
    continued = dict(output=_step(table, s.batches[-1], s.grads[-1], part, device), export=export_cpu(table))
    return dict(outputs=outputs, exports=exports, states=states, last_steps=last_steps, eval=eval_out,
                checkpoint=checkpoint, continued=continued)


def resume(table, checkpoint: tuple, s: Scenario, part: slice, device) -> dict:
    """Restore a checkpoint into a fresh table and run the scenario's last batch once."""
    restore(table, checkpoint)
    output = _step(table, s.batches[-1], s.grads[-1], part, device)
    return dict(output=output, export=export_cpu(table))


def reference_run(s: Scenario) -> dict:
    """The single-device ``SparseEmbeddingTable`` on the global batches."""
    return train(make_table(s.case, "cpu", sharded=False), s, slice(0, BATCH), "cpu")


def to_bytes(value) -> bytes:
    """``value`` (tensors inside) serialised by value: tensors put on run_ranks' queue travel as shared-memory
    handles that die with the rank process, so results cross as bytes."""
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def from_bytes(data: bytes):
    return torch.load(io.BytesIO(data), weights_only=False)


def rank_run(scenarios: list[Scenario], backend: str = "gloo", fixed_size: bool = False) -> bytes:
    """On every rank of the current group: each scenario trained on a fresh ``ShardedEmbeddingTable``.

    ``fixed_size``: the shards' hash tables take the sync-free insert path that CUDA uses.
    Returns ``to_bytes`` of the list of per-scenario results.
    """
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
    part = slice(rank * BATCH // world, (rank + 1) * BATCH // world)
    results = []
    for s in scenarios:
        table = make_table(s.case, device, sharded=True)
        table.shard.hash_table.fixed_size = fixed_size or table.shard.hash_table.fixed_size
        result = train(table, s, part, device)
        result["global_size"] = table.global_size()
        if s.checkpoint is not None:
            result["resumed"] = resume(make_table(s.case, device, sharded=True), s.checkpoint, s, part, device)
        results.append(result)
    return to_bytes(results)


def overflow_run(fixed_size: bool) -> str:
    """Every rank inserts keys; only rank 0's shard (Localized, 2 rows) overflows. Returns if nothing raised.

    ``fixed_size``: the sync-free insert (CUDA's path), whose overflow ``check_errors`` reports.
    """
    params = hugectr.SparseEmbedding(embedding_type="LocalizedSlotSparseEmbeddingHash",
                                     workspace_size_per_gpu_in_mb=1, embedding_vec_size=2, combiner="sum",
                                     sparse_embedding_name="tiny", bottom_name="data", slot_size_array=[2, 2])
    opt = hugectr.CreateOptimizer(optimizer_type=hugectr.Optimizer_t.SGD)
    table = ShardedEmbeddingTable(params, 2, opt, generator=torch.Generator().manual_seed(0), device="cpu")
    table.shard.hash_table.fixed_size = fixed_size
    rank = dist.get_rank()
    # Slot 0 (rank 0's) gets 3 distinct keys per rank; slot 1 (rank 1's) one.
    table.lookup(SparseBatch.from_bags([[[10 * rank, 10 * rank + 1, 10 * rank + 2], [5]]]), training=True)
    table.check_errors()
    return "no error"
