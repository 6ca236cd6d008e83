"""NCF / NeuMF on user and item ids, as a HugeCTR user writes it.

One embedding holds, per id, a GMF part (GMF_DIM wide) and an MLP part (MLP_DIM wide), as
HugeCTR's NeuMF sample packs them; Slice cuts the parts apart. GMF: user * item
(ElementwiseMultiply); MLP: the concatenated parts through a ReLU tower; NeuMF: both joined
into one logit. Data: MovieLens-100k (``--movielens ../shared/data/ml-100k``, label rating >= 4,
split by time), or by default a generated two-slot dataset whose planted click model has a
user x item interaction.

    python examples/ncf.py [--iterations 400] [--movielens ../shared/data/ml-100k]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from mpi4py import MPI  # noqa: F401  (as HugeCTR scripts begin)

import hugectr
from hugectr.tools import DataGenerator, DataGeneratorParams, PlantedSignal

sys.path.insert(0, str(Path(__file__).parent))
from movielens_to_parquet import convert  # noqa: E402

MOVIELENS = Path(__file__).parents[1] / ".." / "shared" / "data" / "ml-100k"
GMF_DIM, MLP_DIM = 8, 32
WIDTH = GMF_DIM + MLP_DIM      # one embedding row per id: [GMF part | MLP part]
GENERATED_SLOTS = [400, 600]   # users, items
GENERATED_SAMPLES = 16384      # per file: 4 train files, 1 eval file


def generated_data(workdir: str) -> dict:
    """Users x items with a planted click model (bias + per-id weights + a rank-4 interaction)."""
    params = DataGeneratorParams(
        format=hugectr.DataReaderType_t.Parquet, label_dim=1, dense_dim=0, num_slot=2, i64_input_key=True,
        source=str(Path(workdir) / "file_list.txt"), eval_source=str(Path(workdir) / "file_list_test.txt"),
        slot_size_array=GENERATED_SLOTS, dist_type=hugectr.Distribution_t.Uniform, num_files=4, eval_num_files=1,
        num_samples_per_file=GENERATED_SAMPLES, seed=5,
        planted_signal=PlantedSignal(seed=13, bias=-0.5, linear_std=1.0, interaction_std=1.5))
    DataGenerator(params).generate()
    return {"train_source": params.source, "eval_source": params.eval_source, "slot_size_array": GENERATED_SLOTS,
            "val_rows": GENERATED_SAMPLES}


def neumf_layers() -> list[hugectr.DenseLayer]:
    """(B, 2, WIDTH) user/item rows -> GMF and MLP branches -> ``logit`` (B, 1)."""
    L = hugectr.Layer_t

    def layer(layer_type, bottoms, tops, **keywords):
        return hugectr.DenseLayer(layer_type=layer_type, bottom_names=bottoms, top_names=tops, **keywords)

    return [
        layer(L.Reshape, ["embedding"], ["pair"], leading_dim=2 * WIDTH),              # (B, [user | item])
        layer(L.Slice, ["pair"], ["user_gmf", "item_gmf", "user_mlp", "item_mlp"],
              ranges=[(0, GMF_DIM), (WIDTH, WIDTH + GMF_DIM), (GMF_DIM, WIDTH), (WIDTH + GMF_DIM, 2 * WIDTH)]),
        layer(L.ElementwiseMultiply, ["user_gmf", "item_gmf"], ["gmf"]),                # (B, GMF_DIM)
        layer(L.Concat, ["user_mlp", "item_mlp"], ["mlp_in"]),                          # (B, 2 * MLP_DIM)
        layer(L.InnerProduct, ["mlp_in"], ["fc1"], num_output=64),
        layer(L.ReLU, ["fc1"], ["relu1"]),
        layer(L.Dropout, ["relu1"], ["dropout1"], dropout_rate=0.2),
        layer(L.InnerProduct, ["dropout1"], ["fc2"], num_output=32),
        layer(L.ReLU, ["fc2"], ["relu2"]),
        layer(L.InnerProduct, ["relu2"], ["fc3"], num_output=16),
        layer(L.ReLU, ["fc3"], ["mlp"]),
        layer(L.Concat, ["gmf", "mlp"], ["neumf"]),
        layer(L.InnerProduct, ["neumf"], ["logit"], num_output=1),
        layer(L.BinaryCrossEntropyLoss, ["logit", "label"], ["loss"]),
    ]


def build(info: dict, batchsize: int = 1024, eval_batchsize: int = 4096) -> hugectr.Model:
    """The compiled NeuMF model for the converted or generated data ``info``."""
    eval_batches = -(-info["val_rows"] // eval_batchsize)
    solver = hugectr.CreateSolver(model_name="neumf", seed=31, max_eval_batches=eval_batches,
                                  batchsize_eval=eval_batchsize, batchsize=batchsize, lr=0.001, vvgpu=[[0]],
                                  repeat_dataset=True, i64_input_key=True,
                                  metrics_spec={hugectr.MetricsType.AUC: 1.0})
    reader = hugectr.DataReaderParams(data_reader_type=hugectr.DataReaderType_t.Parquet,
                                      source=[info["train_source"]], eval_source=info["eval_source"],
                                      check_type=hugectr.Check_t.Non, slot_size_array=info["slot_size_array"])
    optimizer = hugectr.CreateOptimizer(optimizer_type=hugectr.Optimizer_t.Adam, update_type=hugectr.Update_t.Global,
                                        beta1=0.9, beta2=0.999, epsilon=1e-7)
    model = hugectr.Model(solver, reader, optimizer)
    model.add(hugectr.Input(label_dim=1, label_name="label", dense_dim=0, dense_name="dense",
                            data_reader_sparse_param_array=[hugectr.DataReaderSparseParam("data", 1, True, 2)]))
    model.add(hugectr.SparseEmbedding(embedding_type=hugectr.Embedding_t.DistributedSlotSparseEmbeddingHash,
                                      workspace_size_per_gpu_in_mb=2, embedding_vec_size=WIDTH, combiner="sum",
                                      sparse_embedding_name="embedding", bottom_name="data", optimizer=optimizer))
    for layer in neumf_layers():
        model.add(layer)
    model.compile()
    return model


def main(workdir: str, iterations: int = 400, movielens: str | Path | None = None) -> float:
    """Train NeuMF on MovieLens-100k (``movielens`` = the files' prefix) or on generated data; returns the AUC."""
    info = convert(movielens, workdir) if movielens else generated_data(workdir)
    model = build(info)
    model.summary()
    model.fit(max_iter=iterations, display=max(iterations // 4, 1), eval_interval=iterations, snapshot=0)
    for _ in range(model.solver.max_eval_batches):
        model.eval()
    auc = dict(model.get_eval_metrics())["AUC"]
    print(f"NeuMF held-back AUC ({'MovieLens-100k' if movielens else 'generated data'}): {auc:.4f}")
    return auc


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=400)
    parser.add_argument("--movielens", default=None, help="prefix of the RecBole ml-100k files "
                        f"(default: generated data; the shared copy is at {MOVIELENS})")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        main(tmp, args.iterations, args.movielens)
