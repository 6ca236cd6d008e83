"""BST (Behavior Sequence Transformer) as a HugeCTR user writes it, on generated behaviour sequences.

The history (goods and their categories, one row per step) goes through one transformer block:
Q/K/V projections, MultiHeadAttention masked by each sample's history length (SequenceMask on
the dense ``hist_len`` feature, as HugeCTR's BST sample feeds it), residual + LayerNorm, a
feed-forward pair, residual + LayerNorm, then a mean over the steps. The user and the target
good/category join it in an MLP with PReLU_Dice. Prints the validation AUC next to the oracle
AUC of the planted click model.

    python examples/bst.py [--iterations 600]
"""

from __future__ import annotations

import sys
from pathlib import Path

from mpi4py import MPI  # noqa: F401  (as HugeCTR scripts begin)

import hugectr

sys.path.insert(0, str(Path(__file__).parent))
from behavior_data import generate, oracle_auc  # noqa: E402
from criteo_like_data import fit_and_evaluate, run_from_command_line  # noqa: E402

EMB = 8          # embedding width; a history step is 2 * EMB wide (category + good)
HIDDEN = 16      # attention width
HEADS = 2
SPARSE = [("UserID", "emb_user"), ("GoodID", "emb_good"), ("Target_Good", "emb_target_good"),
          ("CateID", "emb_cate"), ("Target_Cate", "emb_target_cate")]


def _dense(layer_type, bottoms, tops, **keywords):
    return hugectr.DenseLayer(layer_type=layer_type, bottom_names=bottoms, top_names=tops, **keywords)


def transformer_layers(steps: int) -> list[hugectr.DenseLayer]:
    """One transformer block over the (B, T, 2 * EMB) history -> (B, HIDDEN) mean over the steps."""
    L = hugectr.Layer_t
    return [
        _dense(L.SequenceMask, ["dense", "dense"], ["sequence_mask"],                    # (B, 1, T, T)
               max_sequence_len_from=steps, max_sequence_len_to=steps),
        _dense(L.Concat, ["emb_cate", "emb_good"], ["history"], axis=2),                 # (B, T, 2 * EMB)
        _dense(L.InnerProduct, ["history"], ["query"], num_output=HIDDEN),               # (B, T, HIDDEN)
        _dense(L.InnerProduct, ["history"], ["key"], num_output=HIDDEN),
        _dense(L.InnerProduct, ["history"], ["value"], num_output=HIDDEN),
        _dense(L.MultiHeadAttention, ["query", "key", "value", "sequence_mask"], ["attention"],
               num_attention_heads=HEADS),                                              # (B, T, HIDDEN)
        _dense(L.Add, ["attention", "query"], ["attention_residual"]),
        _dense(L.LayerNorm, ["attention_residual"], ["attention_norm"]),
        _dense(L.InnerProduct, ["attention_norm"], ["ffn1"], num_output=2 * HIDDEN),
        _dense(L.ReLU, ["ffn1"], ["ffn1_relu"]),
        _dense(L.InnerProduct, ["ffn1_relu"], ["ffn2"], num_output=HIDDEN),
        _dense(L.Add, ["ffn2", "attention_norm"], ["ffn_residual"]),
        _dense(L.LayerNorm, ["ffn_residual"], ["ffn_norm"]),
        _dense(L.ReduceMean, ["ffn_norm"], ["sequence_mean3"], axis=1),                 # (B, 1, HIDDEN)
        _dense(L.Reshape, ["sequence_mean3"], ["sequence_mean"], leading_dim=HIDDEN),   # (B, HIDDEN)
    ]


def build(info: dict, batchsize: int = 512, eval_batches: int = 4) -> hugectr.Model:
    steps = info["history"]
    solver = hugectr.CreateSolver(model_name="bst", seed=23, max_eval_batches=eval_batches, batchsize_eval=2048,
                                  batchsize=batchsize, lr=0.003, vvgpu=[[0]], repeat_dataset=True,
                                  i64_input_key=True)
    # Keys are global within each group: no slot_size_array, history and target goods share key values.
    reader = hugectr.DataReaderParams(data_reader_type=hugectr.DataReaderType_t.Parquet, source=[info["source"]],
                                      eval_source=info["eval_source"], check_type=hugectr.Check_t.Non)
    optimizer = hugectr.CreateOptimizer(optimizer_type=hugectr.Optimizer_t.Adam, update_type=hugectr.Update_t.Global,
                                        beta1=0.9, beta2=0.999, epsilon=1e-8)
    model = hugectr.Model(solver, reader, optimizer)
    slots = {"UserID": 1, "GoodID": steps, "Target_Good": 1, "CateID": steps, "Target_Cate": 1}
    model.add(hugectr.Input(label_dim=1, label_name="label", dense_dim=1, dense_name="dense",   # dense = hist_len
                            data_reader_sparse_param_array=[hugectr.DataReaderSparseParam(name, 1, True, slots[name])
                                                            for name, _ in SPARSE]))
    for bottom, name in SPARSE:
        model.add(hugectr.SparseEmbedding(embedding_type=hugectr.Embedding_t.DistributedSlotSparseEmbeddingHash,
                                          workspace_size_per_gpu_in_mb=1, embedding_vec_size=EMB, combiner="sum",
                                          sparse_embedding_name=name, bottom_name=bottom, optimizer=optimizer))
    L = hugectr.Layer_t
    flat = [_dense(L.Reshape, [name], [f"{name}_flat"], leading_dim=EMB)                   # (B, EMB) each
            for _, name in SPARSE if name not in ("emb_good", "emb_cate")]
    for layer in transformer_layers(steps) + flat + [
        _dense(L.Concat, ["sequence_mean"] + [layer.top_names[0] for layer in flat], ["mlp_in"]),
        _dense(L.InnerProduct, ["mlp_in"], ["fc1"], num_output=64),
        _dense(L.PReLU_Dice, ["fc1"], ["dice1"], elu_alpha=0.2, eps=1e-8),
        _dense(L.InnerProduct, ["dice1"], ["fc2"], num_output=32),
        _dense(L.ReLU, ["fc2"], ["relu2"]),
        _dense(L.InnerProduct, ["relu2"], ["fc3"], num_output=1),
        _dense(L.BinaryCrossEntropyLoss, ["fc3", "label"], ["loss"]),
    ]:
        model.add(layer)
    return model


def run(workdir: str, iterations: int = 600, batchsize: int = 512) -> tuple[hugectr.Model, float, float]:
    """Generate sequences with lengths, train ``iterations`` steps; returns (model, AUC, oracle AUC)."""
    info = generate(workdir, with_length=True)
    eval_batches = info["eval_samples"] // 2048
    model = build(info, batchsize, eval_batches)
    auc = fit_and_evaluate(model, iterations, eval_batches, name="BST")
    oracle = oracle_auc(info["eval_source"])
    print(f"oracle AUC of the planted click model: {oracle:.4f}")
    return model, auc, oracle


def main(workdir: str, iterations: int = 600, batchsize: int = 512) -> tuple[float, float]:
    """(validation AUC, oracle AUC) after ``iterations`` steps, as ``dcn.py`` returns them."""
    return run(workdir, iterations, batchsize)[1:]


if __name__ == "__main__":
    run_from_command_line(main, __doc__, default_iterations=600)
