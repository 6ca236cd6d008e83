"""Rank functions of the data-parallel tests: one small DCN-like model trained on 1 or several ranks.

Run them with ``hugectr.testing.ranks.run_ranks(world, fn, ...)``: the world comes from the process
group, ``vvgpu`` names that many GPUs, and the results come back as NumPy arrays (tensors would
travel through shared memory that dies with the rank) so the test can compare a 2-rank run with a 1-rank run of the same global batches.

The model: two sparse inputs, a ``DistributedSlotSparseEmbeddingHash`` (sum) over the first two
slots and a ``LocalizedSlotSparseEmbeddingHash`` (mean) over the other three, a cross network and
an MLP on their concatenation with the dense features, BCE. Before training every table gets the
same vectors for every key the data can hold (``seed_tables``): model-parallel shards draw their
own random rows, as HugeCTR's GPUs do, so only a common start makes runs comparable.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

import hugectr

from ..distributed import data_parallel, env
from ..embedding.capacity import is_localized
from ..io import checkpoint
from ..metrics import AUC
from .datasets import GeneratedData

SLOTS_A, SLOTS_B = 2, 3
EMBEDDING_DIM = 4


def build_model(data: GeneratedData, optimizer: str, *, batchsize: int = 64, batchsize_eval: int = 96,
                repeat_dataset: bool = True, drop_incomplete_batch: bool = True) -> hugectr.Model:
    """The compiled model on ``world_size()`` ranks (``vvgpu=[[0, .., world-1]]``), tables seeded."""
    world = env.world_size() if env.is_distributed() else 1
    solver = hugectr.CreateSolver(seed=11, batchsize=batchsize, batchsize_eval=batchsize_eval, lr=0.05,
                                  vvgpu=[list(range(world))], repeat_dataset=repeat_dataset, i64_input_key=True,
                                  max_eval_batches=2, drop_incomplete_batch=drop_incomplete_batch,
                                  metrics_spec={hugectr.MetricsType.AUC: 1.0, hugectr.MetricsType.AverageLoss: 0.0})
    reader = hugectr.DataReaderParams(data_reader_type=hugectr.DataReaderType_t.Parquet, source=[data.source],
                                      eval_source=data.eval_source, check_type=hugectr.Check_t.Non,
                                      slot_size_array=data.slot_size_array)
    # "Adam" trains with Global updates, "Adam:LazyGlobal" (any "name:update") with the one named.
    name, _, update = optimizer.partition(":")
    update = update or ("Global" if name == "Adam" else "Local")
    opt = hugectr.CreateOptimizer(optimizer_type=getattr(hugectr.Optimizer_t, name),
                                  update_type=getattr(hugectr.Update_t, update))
    model = hugectr.Model(solver, reader, opt)
    _add_layers(model, data.dense_dim)
    model.compile()
    seed_tables(model, data.slot_size_array)
    return model


def _add_layers(model: hugectr.Model, dense_dim: int) -> None:
    model.add(hugectr.Input(label_dim=1, label_name="label", dense_dim=dense_dim, dense_name="dense",
                            data_reader_sparse_param_array=[hugectr.DataReaderSparseParam("a", 1, True, SLOTS_A),
                                                            hugectr.DataReaderSparseParam("b", 1, True, SLOTS_B)]))
    for kind, name, bottom, combiner in (("DistributedSlotSparseEmbeddingHash", "emb_a", "a", "sum"),
                                         ("LocalizedSlotSparseEmbeddingHash", "emb_b", "b", "mean")):
        model.add(hugectr.SparseEmbedding(embedding_type=getattr(hugectr.Embedding_t, kind),
                                          workspace_size_per_gpu_in_mb=1, embedding_vec_size=EMBEDDING_DIM,
                                          combiner=combiner, sparse_embedding_name=name, bottom_name=bottom))
    L = hugectr.Layer_t
    for layer_type, bottoms, tops, keywords in [
            (L.Reshape, ["emb_a"], ["flat_a"], {"leading_dim": EMBEDDING_DIM * SLOTS_A}),
            (L.Reshape, ["emb_b"], ["flat_b"], {"leading_dim": EMBEDDING_DIM * SLOTS_B}),
            (L.Concat, ["flat_a", "flat_b", "dense"], ["x0"], {}),
            (L.MultiCross, ["x0"], ["cross"], {"num_layers": 2}),
            (L.InnerProduct, ["x0"], ["fc1"], {"num_output": 16}),
            (L.ReLU, ["fc1"], ["relu1"], {}),
            (L.Concat, ["relu1", "cross"], ["both"], {}),
            (L.InnerProduct, ["both"], ["logit"], {"num_output": 1}),
            (L.BinaryCrossEntropyLoss, ["logit", "label"], ["loss"], {})]:
        model.add(hugectr.DenseLayer(layer_type=layer_type, bottom_names=bottoms, top_names=tops, **keywords))


def seed_tables(model: hugectr.Model, slot_size_array: list[int]) -> None:
    """Load the same vectors for every possible key into both tables (keys carry the reader's slot offsets)."""
    offsets = torch.tensor([0, *slot_size_array]).cumsum(0)
    generator = torch.Generator().manual_seed(123)
    for table, first in zip(model.embedding_tables, (0, SLOTS_A)):
        slots = range(first, first + table.slot_num)
        keys = torch.cat([torch.arange(int(offsets[s]), int(offsets[s + 1])) for s in slots])
        slot_ids = torch.cat([torch.full((slot_size_array[s],), s - first) for s in slots])
        vectors = torch.rand(keys.numel(), EMBEDDING_DIM, generator=generator) * 0.2 - 0.1
        table.load(keys, vectors, slot_ids if is_localized(table.embedding_type) else None)


def tables_by_key(model: hugectr.Model) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Every table as (sorted keys, their vectors) on the CPU (a collective on several ranks)."""
    result = []
    for table in model.embedding_tables:
        keys, vectors, _ = table.export()
        order = torch.argsort(keys.cpu())
        result.append((keys.cpu()[order].numpy(), vectors.cpu()[order].numpy()))
    return result


def evaluate(model: hugectr.Model, batches: int) -> tuple[torch.Tensor, dict[str, float]]:
    """``batches`` eval batches: every prediction in global order, and ``get_eval_metrics()``."""
    for _ in range(batches):
        if not model.eval():
            break
    auc = next(m for m in model.metrics.metrics if isinstance(m, AUC))
    parts = list(auc._preds)          # this rank's part of each eval batch, before the metrics combine them
    predictions = data_parallel.gather_batches(parts) if env.world_size() > 1 else torch.cat(parts)
    return predictions.cpu().numpy(), dict(model.get_eval_metrics())


def train_case(data: GeneratedData, optimizer: str, steps: int, snapshot_prefix: str = "") -> dict:
    """Train 1 step, then ``steps - 1`` more; weights after both, eval predictions and metrics."""
    model = build_model(data, optimizer)
    model.fit(max_iter=1, display=0, eval_interval=0, snapshot=0)
    first = {"dense": model.flat_parameters.weights.cpu().numpy().copy(), "tables": tables_by_key(model),
             "loss": model.get_current_loss()}
    # display and eval inside fit: the loss and the metrics are collectives every rank joins
    model.fit(max_iter=steps - 1, display=1, eval_interval=2, snapshot=0)
    predictions, metrics = evaluate(model, 4)
    if snapshot_prefix:
        model.save_params_to_files(snapshot_prefix, steps)
    return {"first": first, "dense": model.flat_parameters.weights.cpu().numpy().copy(), "tables": tables_by_key(model),
            "loss": model.get_current_loss(), "predictions": predictions, "metrics": metrics,
            "rank": env.rank()}


def export_case(data: GeneratedData, prefix: str) -> None:
    """Train 2 steps, then evaluate 2 batches, exporting each (``export_predictions``) to ``prefix``.pred/.label."""
    model = build_model(data, "SGD")
    model.fit(max_iter=2, display=0, eval_interval=0, snapshot=0)
    model.start_data_reading()
    for _ in range(2):
        model.eval()
        model.export_predictions(f"{prefix}.pred", f"{prefix}.label")


def uneven_epoch_case(data: GeneratedData) -> dict:
    """Epoch mode, partial last batches kept in training and evaluation (1024 samples: the last global batch
    of 112 holds 16, all on rank 0 of 2, none on rank 1)."""
    model = build_model(data, "SGD", batchsize=112, batchsize_eval=112, repeat_dataset=False,
                        drop_incomplete_batch=False)
    model.fit(num_epochs=1, display=0, eval_interval=0, snapshot=0)
    predictions, metrics = evaluate(model, 1000)          # stops at the end of the eval file
    return {"dense": model.flat_parameters.weights.cpu().numpy().copy(), "tables": tables_by_key(model),
            "loss": model.get_current_loss(), "predictions": predictions, "metrics": metrics}


def world_mismatch_case() -> str:
    """Build a solver naming one GPU under a 2-rank group: the error message."""
    try:
        hugectr.Model(hugectr.CreateSolver(vvgpu=[[0]], batchsize=64, batchsize_eval=64),
                      hugectr.DataReaderParams(data_reader_type=hugectr.DataReaderType_t.Parquet, source=["x"],
                                               eval_source="y", check_type=hugectr.Check_t.Non),
                      hugectr.CreateOptimizer())
    except ValueError as error:
        dist.barrier()
        return str(error)
    return "no error"


def load_case(data: GeneratedData, optimizer: str, prefix: str, iteration: int) -> dict:
    """A fresh model on this world loads every file of snapshot ``prefix`` at ``iteration`` (written on any
    number of ranks), then evaluates: the predictions, and the tables as loaded."""
    model = build_model(data, optimizer)
    model.load_dense_weights(f"{prefix}_dense_{iteration}.model")
    model.load_dense_optimizer_states(f"{prefix}_opt_dense_{iteration}.model")
    names = [table.name for table in model.embedding_tables]
    model.load_sparse_weights([f"{prefix}{i}_sparse_{iteration}.model" for i in range(len(names))])
    model.load_sparse_optimizer_states({name: f"{prefix}{i}_opt_sparse_{iteration}.model"
                                        for i, name in enumerate(names)})
    tables = tables_by_key(model)
    predictions, metrics = evaluate(model, 4)
    return {"predictions": predictions, "metrics": metrics, "tables": tables, "states": states_by_key(model)}


def states_by_key(model: hugectr.Model) -> list[list]:
    """Per table, its optimizer states' rows (and LazyGlobal's last steps) of the keys in sorted key order
    (state row i is export key i)."""
    result = []
    for table in model.embedding_tables:
        keys = table.export()[0].cpu()
        order = torch.argsort(keys)
        states = list(table.optimizer_states())
        last_steps = checkpoint.lazy_last_steps(table)         # LazyGlobal: each key's last update step
        states += [] if last_steps is None else [last_steps]
        result.append([state[:keys.numel()].cpu()[order].numpy() for state in states])
    return result
