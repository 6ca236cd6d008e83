"""Rank functions of the embedding-collection tests on several ranks (``run_ranks(world, fn, ...)``).

The model: two one-slot sparse inputs ``a`` (one key) and ``b`` (up to two keys), one embedding
collection with a model-parallel table ``t_mp`` (held by the last rank) and a data-parallel table
``t_dp``; lookups ``a`` in ``t_mp`` (sum), ``b`` in ``t_dp`` (concat) and ``b`` in ``t_mp``
(average), then an MLP on their concatenation with the dense features, BCE. Static tables with SGD,
dynamic ones with Adam (static tables take SGD / AdaGrad only). Before training every table gets
the same vectors for every key the data holds (``seed_tables``), so runs on any number of ranks
start alike. Results come back as NumPy arrays.
"""

from __future__ import annotations

import torch

import hugectr

from ..distributed import env
from .distributed_cases import evaluate
from .datasets import GeneratedData

EV = 4
NNZ = (1, 2)


def build_model(data: GeneratedData, optimizer: str, *, shard: bool = True) -> hugectr.Model:
    """The compiled model on ``world_size()`` ranks, tables seeded; ``shard=False`` gives no shard plan."""
    world = env.world_size() if env.is_distributed() else 1
    solver = hugectr.CreateSolver(seed=5, batchsize=64, batchsize_eval=96, lr=0.05, vvgpu=[list(range(world))],
                                  repeat_dataset=True, i64_input_key=True, max_eval_batches=2,
                                  use_embedding_collection=True,
                                  metrics_spec={hugectr.MetricsType.AUC: 1.0, hugectr.MetricsType.AverageLoss: 0.0})
    reader = hugectr.DataReaderParams(data_reader_type=hugectr.DataReaderType_t.Parquet, source=[data.source],
                                      eval_source=data.eval_source, check_type=hugectr.Check_t.Non)
    model = hugectr.Model(solver, reader, hugectr.CreateOptimizer(optimizer_type=getattr(hugectr.Optimizer_t,
                                                                                         optimizer)))
    model.add(hugectr.Input(label_dim=1, label_name="label", dense_dim=data.dense_dim, dense_name="dense",
                            data_reader_sparse_param_array=[hugectr.DataReaderSparseParam(name, nnz, False, 1)
                                                            for name, nnz in zip("ab", NNZ)]))
    model.add(_collection(vocab(data, optimizer), world, shard))
    L = hugectr.Layer_t
    width = EV * (1 + NNZ[1] + 1)
    for layer_type, bottoms, top, keywords in [
            (L.Concat, ["ea", "eb", "ec"], "e", {"axis": 2}),                   # (B, 1, width)
            (L.Reshape, ["e"], "flat", {"leading_dim": width}),
            (L.Concat, ["flat", "dense"], "x", {}),
            (L.InnerProduct, ["x"], "fc1", {"num_output": 8}),
            (L.ReLU, ["fc1"], "relu1", {}),
            (L.InnerProduct, ["relu1"], "logit", {"num_output": 1}),
            (L.BinaryCrossEntropyLoss, ["logit", "label"], "loss", {})]:
        model.add(hugectr.DenseLayer(layer_type=layer_type, bottom_names=bottoms, top_names=[top], **keywords))
    model.compile()
    seed_tables(model, max(data.slot_size_array))
    return model


def vocab(data: GeneratedData, optimizer: str) -> int:
    """Static tables (SGD) hold every slot-local key; Adam needs dynamic tables (-1)."""
    return max(data.slot_size_array) if optimizer == "SGD" else -1


def _collection(size: int, world: int, shard: bool) -> hugectr.EmbeddingCollectionConfig:
    t_mp = hugectr.EmbeddingTableConfig("t_mp", size, EV)
    t_dp = hugectr.EmbeddingTableConfig("t_dp", size, EV)
    ebc = hugectr.EmbeddingCollectionConfig()
    ebc.embedding_lookup(t_mp, "a", "ea", "sum")
    ebc.embedding_lookup(t_dp, "b", "eb", "concat")
    ebc.embedding_lookup(t_mp, "b", "ec", "average")
    if shard:
        matrix = [["t_dp"] for _ in range(world)]
        matrix[-1].append("t_mp")                     # the mp table on the last rank, not rank 0
        ebc.shard(shard_matrix=matrix, shard_strategy=[("mp", ["t_mp"]), ("dp", ["t_dp"])])
    return ebc


def seed_tables(model: hugectr.Model, num_keys: int) -> None:
    """The same vectors for keys 0..num_keys-1 in every table (ranks that do not hold a table skip it)."""
    generator = torch.Generator().manual_seed(321)
    collection = model.engine.collections[0]
    for name in collection.table_names:
        vectors = torch.rand(num_keys, EV, generator=generator) * 0.2 - 0.1
        collection.load(name, torch.arange(num_keys), vectors, "seed_tables")


def tables_by_key(model: hugectr.Model) -> dict[str, tuple]:
    """Every table as (sorted keys, their vectors) as NumPy (a collective on several ranks)."""
    result = {}
    collection = model.engine.collections[0]
    for name in collection.table_names:
        keys, vectors = collection.export(name)
        order = torch.argsort(keys.cpu())
        result[name] = (keys.cpu()[order].numpy(), vectors.cpu()[order].numpy())
    return result


def _state(model: hugectr.Model) -> dict:
    return {"dense": model.flat_parameters.weights.cpu().numpy().copy(), "tables": tables_by_key(model),
            "loss": model.get_current_loss()}


def train_case(data: GeneratedData, optimizer: str, dump_path: str = "", shard: bool = True) -> dict:
    """1 training step, then 2 more; the state after both, eval predictions; ``dump_path``: embedding_dump."""
    model = build_model(data, optimizer, shard=shard)
    model.fit(max_iter=1, display=0, eval_interval=0, snapshot=0)
    first = _state(model)
    model.fit(max_iter=2, display=0, eval_interval=0, snapshot=0)
    result = _state(model)
    result["predictions"], result["metrics"] = evaluate(model, 2)
    if dump_path:
        model.embedding_dump(dump_path)
    result.update(first=first, rank=env.rank(),
                  held=[group is not None for group in model.engine.collections[0].groups])
    return result


def load_case(data: GeneratedData, optimizer: str, dump_path: str) -> dict:
    """A fresh model on this world loads ``dump_path`` (written on any number of ranks): tables, predictions."""
    model = build_model(data, optimizer)
    model.embedding_load(dump_path)
    predictions, _ = evaluate(model, 2)
    return {"tables": tables_by_key(model), "predictions": predictions}


def refused_plan_case(data: GeneratedData) -> str:
    """An 'mp' table listed on two GPUs: the error Model.add raises (every rank alike)."""
    world = env.world_size()
    solver = hugectr.CreateSolver(batchsize=64, batchsize_eval=64, vvgpu=[list(range(world))],
                                  use_embedding_collection=True, i64_input_key=True)
    reader = hugectr.DataReaderParams(data_reader_type=hugectr.DataReaderType_t.Parquet, source=[data.source],
                                      eval_source=data.eval_source, check_type=hugectr.Check_t.Non)
    model = hugectr.Model(solver, reader, hugectr.CreateOptimizer(optimizer_type=hugectr.Optimizer_t.SGD))
    model.add(hugectr.Input(label_dim=1, label_name="label", dense_dim=data.dense_dim, dense_name="dense",
                            data_reader_sparse_param_array=[hugectr.DataReaderSparseParam("a", 1, False, 1)]))
    ebc = hugectr.EmbeddingCollectionConfig()
    ebc.embedding_lookup(hugectr.EmbeddingTableConfig("big", 100, EV), "a", "ea", "sum")
    ebc.shard(shard_matrix=[["big"] for _ in range(world)], shard_strategy=[("mp", ["big"])])
    try:
        model.add(ebc)
    except ValueError as error:
        return str(error)
    return "no error"


def bad_key_case(data: GeneratedData) -> str:
    """Rank 0 sends key 1000 of input ``a`` to ``t_mp`` (static, held by rank 1): every rank's error."""
    from ..data.batch import Batch
    from ..distributed.batch_part import PartBatch
    from ..embedding.sparse_batch import SparseBatch

    model = build_model(data, "SGD")
    rows = 4
    key = 1000 if env.rank() == 0 else 1
    sparse = {"a": SparseBatch.from_bags([[[key]] for _ in range(rows)]),
              "b": SparseBatch.from_bags([[[1, 2]] for _ in range(rows)])}
    batch = Batch(torch.zeros(rows, 1), torch.zeros(rows, data.dense_dim), sparse)
    try:
        model.engine.train_step(PartBatch.of(batch, rows * env.world_size()), 0.1, {}, collection_lr=0.1)
    except (ValueError, RuntimeError) as error:
        return f"{type(error).__name__}: {error}"
    return "no error"
