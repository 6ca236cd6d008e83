"""Fine-tune: a saved graph's embeddings (``construct_from_json(..., include_dense_network=False)`` +
``load_sparse_weights``) under a NEW dense network, which then trains on planted data.

Checked against independent references: the loaded tables equal the sparse model folders read back
with NumPy (key -> vector and slot id, order-independent), lookups of saved keys return the saved
vectors, the new network's loss falls and its AUC beats chance; with the loaded embeddings frozen it
also beats the same network on frozen random embeddings, so what it learned came from the file.
"""

from __future__ import annotations

import numpy as np
import pytest

import hugectr
from hugectr.embedding.sparse_batch import SparseBatch
from hugectr.io import read_sparse_model

SLOTS = [20, 15, 10]
EMBEDDINGS = {"dist": "wide", "local": "deep"}   # embedding -> its sparse input (slots 0-1 and slot 2)
EV = 8


def solver(seed: int) -> hugectr.Solver:
    return hugectr.CreateSolver(seed=seed, batchsize=128, batchsize_eval=128, max_eval_batches=16, lr=0.01,
                                vvgpu=[[0]], repeat_dataset=True, i64_input_key=True)


def new_model(data, seed: int) -> hugectr.Model:
    reader = hugectr.DataReaderParams(data_reader_type=hugectr.DataReaderType_t.Parquet, source=[data.source],
                                      eval_source=data.eval_source, check_type=hugectr.Check_t.Non,
                                      slot_size_array=SLOTS)
    optimizer = hugectr.CreateOptimizer(optimizer_type=hugectr.Optimizer_t.Adam, update_type=hugectr.Update_t.Local)
    return hugectr.Model(solver(seed), reader, optimizer)


def add_dense(model: hugectr.Model, layers) -> None:
    for layer_type, bottoms, tops, keywords in layers:
        model.add(hugectr.DenseLayer(layer_type=layer_type, bottom_names=bottoms, top_names=tops, **keywords))


def pretrained(data, folder) -> hugectr.Model:
    """The original model: both embeddings + dense features -> one InnerProduct; trained and saved."""
    model = new_model(data, seed=3)
    model.add(hugectr.Input(label_dim=1, label_name="label", dense_dim=13, dense_name="dense",
                            data_reader_sparse_param_array=[hugectr.DataReaderSparseParam("wide", 1, True, 2),
                                                            hugectr.DataReaderSparseParam("deep", 1, True, 1)]))
    E = hugectr.Embedding_t
    for kind, name in ((E.DistributedSlotSparseEmbeddingHash, "dist"), (E.LocalizedSlotSparseEmbeddingHash, "local")):
        model.add(hugectr.SparseEmbedding(embedding_type=kind, workspace_size_per_gpu_in_mb=1, embedding_vec_size=EV,
                                          combiner="sum", sparse_embedding_name=name, bottom_name=EMBEDDINGS[name]))
    L = hugectr.Layer_t
    add_dense(model, [(L.Reshape, ["dist"], ["dist_flat"], {"leading_dim": 2 * EV}),
                      (L.Reshape, ["local"], ["local_flat"], {"leading_dim": EV}),
                      (L.Concat, ["dist_flat", "local_flat", "dense"], ["features"], {}),
                      (L.InnerProduct, ["features"], ["logit"], {"num_output": 1}),
                      (L.BinaryCrossEntropyLoss, ["logit", "label"], ["loss"], {})])
    model.compile()
    model.fit(max_iter=200, display=0, eval_interval=0, snapshot=200, snapshot_prefix=str(folder / "pre"))
    model.graph_to_json(str(folder / "graph.json"))
    return model


def fine_tuned(data, folder, load: bool) -> hugectr.Model:
    """The saved Input and embeddings, a new dense network on the embeddings only (no dense features)."""
    model = new_model(data, seed=17)
    model.construct_from_json(graph_config_file=str(folder / "graph.json"), include_dense_network=False)
    L = hugectr.Layer_t
    add_dense(model, [(L.Reshape, ["dist"], ["dist_flat"], {"leading_dim": 2 * EV}),
                      (L.Reshape, ["local"], ["local_flat"], {"leading_dim": EV}),
                      (L.Concat, ["dist_flat", "local_flat"], ["features"], {}),
                      (L.MLP, ["features"], ["logit"], {"num_outputs": [16, 1],
                                                         "activations": [hugectr.Activation_t.Relu,
                                                                         hugectr.Activation_t.Non]}),
                      (L.BinaryCrossEntropyLoss, ["logit", "label"], ["loss"], {})])
    model.compile()
    if load:
        model.load_sparse_weights({"local": str(folder / "pre1_sparse_200.model"),
                                   "dist": str(folder / "pre0_sparse_200.model")})
    return model


def train_and_evaluate(model: hugectr.Model, steps: int) -> tuple[list[float], float]:
    model.start_data_reading()
    losses = []
    for _ in range(steps):
        model.set_learning_rate(0.01)
        model.train()
        losses.append(model.get_current_loss())
    for _ in range(model.solver.max_eval_batches):
        model.eval()
    return losses, dict(model.get_eval_metrics())["AUC"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from hugectr.testing.datasets import planted_parquet

    folder = tmp_path_factory.mktemp("fine_tune")
    data = planted_parquet(folder / "data", SLOTS, samples_per_file=2048, seed=4)
    pretrained(data, folder)
    return data, folder


def test_only_input_and_embeddings_come_from_the_graph(saved):
    data, folder = saved
    model = new_model(data, seed=17)
    model.construct_from_json(graph_config_file=str(folder / "graph.json"), include_dense_network=False)
    assert model.graph.input is not None
    assert [e.sparse_embedding_name for e in model.graph.embeddings] == ["dist", "local"]
    assert [e.embedding_vec_size for e in model.graph.embeddings] == [EV, EV]
    with pytest.raises(ValueError):
        model.compile()                       # no loss yet: the dense network was left out


def test_loaded_embeddings_equal_the_saved_files(saved):
    data, folder = saved
    model = fine_tuned(data, folder, load=True)
    for index, table in enumerate(model.embedding_tables):
        saved_rows = read_sparse_model(folder / f"pre{index}_sparse_200.model")
        keys, vectors, slot_ids = (None if t is None else t.cpu().numpy() for t in table.export())
        assert sorted(keys.tolist()) == sorted(saved_rows.keys.tolist())
        mine, theirs = np.argsort(keys), np.argsort(saved_rows.keys)
        np.testing.assert_array_equal(vectors[mine], saved_rows.vectors[theirs])
        assert (slot_ids is None) == (saved_rows.slot_ids is None) == (table.name == "dist")
        if slot_ids is not None:
            np.testing.assert_array_equal(slot_ids[mine], saved_rows.slot_ids[theirs].astype(np.int64))
        # A lookup of saved keys (one per bag) returns their saved vectors.
        picked = saved_rows.keys[: 3 * table.slot_num].reshape(3, table.slot_num, 1)
        pooled = table.lookup(SparseBatch.from_bags(picked.tolist()), training=False)     # (3, slots, ev)
        expected = saved_rows.vectors[: 3 * table.slot_num].reshape(3, table.slot_num, EV)
        np.testing.assert_array_equal(pooled.cpu().numpy(), expected)


def test_new_dense_network_trains_on_loaded_embeddings(saved):
    data, folder = saved
    model = fine_tuned(data, folder, load=True)
    losses, auc = train_and_evaluate(model, steps=60)
    assert np.isfinite(losses).all() and np.mean(losses[-10:]) < np.mean(losses[:10])
    assert auc > 0.7, f"fine-tuned AUC {auc}"


def test_frozen_loaded_embeddings_carry_what_was_learned(saved):
    data, folder = saved
    aucs = {}
    for load in (True, False):
        model = fine_tuned(data, folder, load=load)
        model.freeze_embedding()
        aucs[load] = train_and_evaluate(model, steps=60)[1]
    assert aucs[True] > 0.7 and aucs[True] > aucs[False] + 0.08, aucs
