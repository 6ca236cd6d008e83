"""What the multi-task census examples (MMoE, shared-bottom) share: data, inputs, towers, training.

Two tasks on UCI Census-Income (KDD), converted by ``census_to_parquet.py`` (80% train, 20% held
back): ``income`` (over 50k) and ``never_married`` (``marital_status`` is then dropped from the
features). One multi-label ``Input`` (``label_names`` / ``label_dims``), one embedding for the 32
categorical columns, the 7 numeric columns as dense features, one tower and one
BinaryCrossEntropyLoss per task, ``compile(loss_names, loss_weights)``. As in HugeCTR, the
model's metrics report the AUC of the loss whose label name sorts first: ``income`` here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hugectr

sys.path.insert(0, str(Path(__file__).parent))
from census_to_parquet import convert  # noqa: E402

CENSUS_CSV = Path(__file__).parents[1] / ".." / "shared" / "data" / "census_kdd_part_a_80k.csv.gz"
TASKS = ["income", "never_married"]     # label names; HugeCTR orders labels by name, as the file does
EMB = 8
EVAL_BATCH = 4000                       # 16,000 held-back rows: four eval batches cover them exactly


def prepare(csv_path: str | Path, workdir: str) -> dict:
    """Convert the census CSV for both tasks; a clear error when the file is not there."""
    if not Path(csv_path).is_file():
        raise FileNotFoundError(f"census data not found at '{csv_path}'; pass the path of "
                                "census_kdd_part_a_80k.csv.gz (see ../shared/data/README.md)")
    return convert(str(csv_path), workdir, TASKS)


def dense(layer_type, bottoms, tops, **keywords) -> hugectr.DenseLayer:
    return hugectr.DenseLayer(layer_type=layer_type, bottom_names=bottoms, top_names=tops, **keywords)


def base_model(info: dict, name: str, batchsize: int = 512, seed: int = 17) -> hugectr.Model:
    """Solver, reader, the multi-label Input and the embedding; ``features`` (B, 32 * EMB + 7) on top."""
    eval_batches = -(-info["val_rows"] // EVAL_BATCH)
    solver = hugectr.CreateSolver(model_name=name, seed=seed, batchsize=batchsize, batchsize_eval=EVAL_BATCH,
                                  max_eval_batches=eval_batches, lr=0.001, vvgpu=[[0]], repeat_dataset=True,
                                  i64_input_key=True, metrics_spec={hugectr.MetricsType.AUC: 1.0})
    reader = hugectr.DataReaderParams(data_reader_type=hugectr.DataReaderType_t.Parquet,
                                      source=[info["train_source"]], eval_source=info["eval_source"],
                                      check_type=hugectr.Check_t.Non, slot_size_array=info["slot_size_array"])
    optimizer = hugectr.CreateOptimizer(optimizer_type=hugectr.Optimizer_t.Adam, update_type=hugectr.Update_t.Local,
                                        beta1=0.9, beta2=0.999, epsilon=1e-7)
    model = hugectr.Model(solver, reader, optimizer)
    slots = info["num_slots"]
    model.add(hugectr.Input(label_dims=[1, 1], label_names=TASKS, dense_dim=info["dense_dim"], dense_name="dense",
                            data_reader_sparse_param_array=[hugectr.DataReaderSparseParam("census_cats", 1, True,
                                                                                          slots)]))
    model.add(hugectr.SparseEmbedding(embedding_type=hugectr.Embedding_t.DistributedSlotSparseEmbeddingHash,
                                      workspace_size_per_gpu_in_mb=2, embedding_vec_size=EMB, combiner="sum",
                                      sparse_embedding_name="cat_embedding", bottom_name="census_cats",
                                      optimizer=optimizer))
    model.add(dense(hugectr.Layer_t.Reshape, ["cat_embedding"], ["cats_flat"], leading_dim=EMB * slots))
    model.add(dense(hugectr.Layer_t.Concat, ["cats_flat", "dense"], ["features"]))
    return model


def add_towers_and_losses(model: hugectr.Model, tower_inputs: dict[str, str], width: int = 32) -> None:
    """Per task: InnerProduct-ReLU-InnerProduct to a logit ``<task>_logit``, then its BCE loss; compile."""
    L = hugectr.Layer_t
    for task, bottom in tower_inputs.items():
        model.add(dense(L.InnerProduct, [bottom], [f"{task}_fc"], num_output=width))
        model.add(dense(L.ReLU, [f"{task}_fc"], [f"{task}_relu"]))
        model.add(dense(L.InnerProduct, [f"{task}_relu"], [f"{task}_logit"], num_output=1))
    for task in tower_inputs:     # loss layers last, as HugeCTR's multi-task samples add them
        model.add(dense(L.BinaryCrossEntropyLoss, [f"{task}_logit", task], [f"{task}_loss"]))
    model.compile(loss_names=TASKS, loss_weights=[0.5, 0.5])


def train_and_evaluate(model: hugectr.Model, iterations: int, name: str) -> float:
    """Train ``iterations`` steps, then the metrics' AUC (the ``income`` task) over the held-back rows."""
    model.summary()
    model.fit(max_iter=iterations, display=max(iterations // 5, 1), eval_interval=iterations, snapshot=0)
    for _ in range(model.solver.max_eval_batches):
        model.eval()
    auc = dict(model.get_eval_metrics())["AUC"]
    print(f"{name} held-back AUC of the first task (income): {auc:.4f}")
    return auc
