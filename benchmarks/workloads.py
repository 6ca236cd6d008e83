"""The DESIGN.md speed workloads (DLRM and DCN on Criteo-Kaggle cardinalities), full size and scaled down.

Each workload knows how to build itself with the HugeCTR API and how to make synthetic batches
(keys drawn per slot, slot-local, then offset by the slot's start as the Parquet reader does
with ``slot_size_array``) that both the hugectr model and the plain-PyTorch model consume.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

import hugectr
from hugectr.data.batch import Batch
from hugectr.embedding.sparse_batch import SparseBatch

# facebookresearch/dlrm Criteo-Kaggle cardinalities (reference: speed_anchors.md section 3).
KAGGLE_CARDINALITIES = [1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593, 3194, 27,
                        14992, 5461306, 10, 5652, 2173, 4, 7046547, 18, 15, 286181, 105, 142572]


@dataclass(frozen=True)
class Workload:
    name: str
    batch_size: int
    embedding_dim: int
    cardinalities: tuple[int, ...]
    bottom_mlp: tuple[int, ...] = ()      # DLRM
    top_mlp: tuple[int, ...] = ()         # DLRM (last is the logit)
    cross_layers: int = 0                 # DCN
    deep_layers: tuple[int, ...] = ()     # DCN
    dense_dim: int = 13

    @property
    def slots(self) -> int:
        return len(self.cardinalities)

    def scaled(self, batch_size: int, max_cardinality: int) -> Workload:
        """A CPU-sized copy: smaller batch and capped tables, the same layers."""
        return replace(self, batch_size=batch_size,
                       cardinalities=tuple(min(c, max_cardinality) for c in self.cardinalities))


DLRM = Workload("DLRM", 65536, 128, tuple(KAGGLE_CARDINALITIES), bottom_mlp=(512, 256, 128),
                top_mlp=(1024, 1024, 512, 256, 1))
DCN = Workload("DCN", 65536, 16, tuple(KAGGLE_CARDINALITIES), cross_layers=6, deep_layers=(1024, 1024))


def adam_table_bytes(rows: int, embedding_dim: int) -> int:
    """Bytes of ``rows`` embedding rows with Adam: fp32 weights and the two fp32 moment states."""
    return rows * embedding_dim * 4 * 3


def make_batches(w: Workload, count: int, device, seed: int = 0) -> list[Batch]:
    """``count`` synthetic batches on ``device``; keys are global (slot offsets added), one per slot."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    sizes = torch.tensor(w.cardinalities, dtype=torch.int64)
    offsets = torch.cumsum(sizes, 0) - sizes
    batches = []
    for _ in range(count):
        # Squaring a uniform draw skews keys towards small ids, like real categorical data.
        local = (torch.rand(w.batch_size, w.slots, generator=generator) ** 2 * sizes).long().clamp_max(sizes - 1)
        keys = (local + offsets).reshape(w.batch_size, w.slots, 1)
        batch = Batch(label=(torch.rand(w.batch_size, 1, generator=generator) < 0.25).float(),
                      dense=torch.rand(w.batch_size, w.dense_dim, generator=generator),
                      sparse={"data1": SparseBatch.from_fixed(keys)})
        batches.append(batch.to(device))
    return batches


def _dense(layer_type, bottoms, tops, **keywords) -> hugectr.DenseLayer:
    return hugectr.DenseLayer(layer_type=layer_type, bottom_names=bottoms, top_names=tops, **keywords)


PRECISION_SOLVER_ARGS = {
    "fp32": {},
    "tf32": {"enable_tf32_compute": True},
    "fp16": {"use_mixed_precision": True, "scaler": 1024.0},
    "bf16": {"use_mixed_precision": True, "mixed_precision_dtype": "bf16"},   # our extension
}


def build_hugectr_model(w: Workload, precision: str, gpus: int = 1) -> hugectr.Model:
    """The workload as a HugeCTR user writes it (Adam, Local update; sources unused: batches are fed in).

    ``gpus``: ``vvgpu=[[0 .. gpus-1]]``, run inside a group of that many ranks; ``w.batch_size`` is global.
    """
    solver = hugectr.CreateSolver(model_name=w.name.lower(), seed=1, batchsize=w.batch_size,
                                  batchsize_eval=w.batch_size, lr=0.001, vvgpu=[list(range(gpus))],
                                  i64_input_key=True,
                                  **PRECISION_SOLVER_ARGS[precision])
    reader = hugectr.DataReaderParams(data_reader_type=hugectr.DataReaderType_t.Parquet, source=["unused"],
                                      eval_source="unused", check_type=hugectr.Check_t.Non)
    optimizer = hugectr.CreateOptimizer(optimizer_type=hugectr.Optimizer_t.Adam, update_type=hugectr.Update_t.Local)
    model = hugectr.Model(solver, reader, optimizer)
    model.add(hugectr.Input(label_dim=1, label_name="label", dense_dim=w.dense_dim, dense_name="dense",
                            data_reader_sparse_param_array=[hugectr.DataReaderSparseParam("data1", 1, True, w.slots)]))
    # Workspace per GPU, as HugeCTR users size it: the whole table on one GPU; on G GPUs (rows spread
    # by key % G) a G-th of it with 10% to spare for an uneven spread.
    rows = sum(w.cardinalities) if gpus == 1 else int(sum(w.cardinalities) / gpus * 1.1)
    workspace_mb = int(rows * (1 + optimizer.state_copies) * 4 * w.embedding_dim / 2**20) + 1
    model.add(hugectr.SparseEmbedding(embedding_type=hugectr.Embedding_t.DistributedSlotSparseEmbeddingHash,
                                      workspace_size_per_gpu_in_mb=workspace_mb, embedding_vec_size=w.embedding_dim,
                                      combiner="sum", sparse_embedding_name="emb", bottom_name="data1"))
    for layer in (_dlrm_layers(w) if w.bottom_mlp else _dcn_layers(w)):
        model.add(layer)
    model.compile()
    return model


def _dlrm_layers(w: Workload) -> list[hugectr.DenseLayer]:
    L = hugectr.Layer_t
    top_acts = [hugectr.Activation_t.Relu] * (len(w.top_mlp) - 1) + [hugectr.Activation_t.Non]
    return [_dense(L.MLP, ["dense"], ["bottom"], num_outputs=list(w.bottom_mlp)),
            _dense(L.Interaction, ["bottom", "emb"], ["interaction"]),
            _dense(L.MLP, ["interaction"], ["top"], num_outputs=list(w.top_mlp), activations=top_acts),
            _dense(L.BinaryCrossEntropyLoss, ["top", "label"], ["loss"])]


def _dcn_layers(w: Workload) -> list[hugectr.DenseLayer]:
    L = hugectr.Layer_t
    layers = [_dense(L.Reshape, ["emb"], ["flat_emb"], leading_dim=w.slots * w.embedding_dim),
              _dense(L.Concat, ["flat_emb", "dense"], ["features"]),
              _dense(L.MultiCross, ["features"], ["cross"], num_layers=w.cross_layers),
              _dense(L.MLP, ["features"], ["deep"], num_outputs=list(w.deep_layers)),
              _dense(L.Concat, ["deep", "cross"], ["both"]),
              _dense(L.InnerProduct, ["both"], ["logit"], num_output=1),
              _dense(L.BinaryCrossEntropyLoss, ["logit", "label"], ["loss"])]
    return layers
