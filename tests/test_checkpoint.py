"""``save_params_to_files`` writes HugeCTR's layouts; the load_* methods read them back."""

import numpy as np
import pytest
import torch

import hugectr


def trained(build_small_model, data, steps=3, **overrides):
    model = build_small_model(data, **overrides)
    model.start_data_reading()
    for _ in range(steps):
        model.set_learning_rate(0.01)
        model.train()
    return model


def eval_auc(model, batches=4):
    for _ in range(batches):
        model.eval()
    return dict(model.get_eval_metrics())["AUC"]


@pytest.mark.parametrize("embedding", ["DistributedSlotSparseEmbeddingHash", "LocalizedSlotSparseEmbeddingHash"])
def test_file_layout(planted_data, build_small_model, tmp_path, embedding):
    model = trained(build_small_model, planted_data, embedding_type=getattr(hugectr.Embedding_t, embedding))
    model.save_params_to_files(str(tmp_path / "wdl"), 20000)
    flat = model.flat_parameters.weights.cpu().numpy()
    dense = np.fromfile(tmp_path / "wdl_dense_20000.model", dtype="<f4")
    np.testing.assert_array_equal(dense, flat)
    m, v = model.dense_optimizer.state_tensors()
    np.testing.assert_array_equal(np.fromfile(tmp_path / "wdl_opt_dense_20000.model", dtype="<f4"),
                                  np.concatenate([m.cpu().numpy().ravel(), v.cpu().numpy().ravel()]))
    table = model.embedding_tables[0]
    folder = tmp_path / "wdl0_sparse_20000.model"
    keys = np.fromfile(folder / "key", dtype="<i8")
    vectors = np.fromfile(folder / "emb_vector", dtype="<f4").reshape(len(keys), 4)
    assert len(keys) == table.size and len(set(keys.tolist())) == len(keys)
    np.testing.assert_array_equal(vectors, table.weights[:table.size].cpu().numpy())
    assert (folder / "slot_id").exists() == (embedding == "LocalizedSlotSparseEmbeddingHash")
    if (folder / "slot_id").exists():
        slot_ids = np.fromfile(folder / "slot_id", dtype="<u8")
        offsets = np.cumsum([0] + planted_data.slot_size_array)
        expected = np.searchsorted(offsets, keys, side="right") - 1     # the slot a global key falls in
        np.testing.assert_array_equal(slot_ids, expected)
    opt = np.fromfile(tmp_path / "wdl0_opt_sparse_20000.model", dtype="<f4")
    assert opt.size == 2 * table.capacity * 4                       # Adam m and v, whole preallocated buffers
    assert not list(tmp_path.glob(".*tmp*")), "no temporary files left behind"


def test_load_round_trip_gives_same_predictions(planted_data, build_small_model, tmp_path):
    source = trained(build_small_model, planted_data)
    source.save_params_to_files(str(tmp_path / "m"), 3)
    expected = eval_auc(source)
    target = build_small_model(planted_data, seed=99)            # different initial weights
    assert eval_auc(target) != pytest.approx(expected)
    target.load_dense_weights(str(tmp_path / "m_dense_3.model"))
    target.load_sparse_weights([str(tmp_path / "m0_sparse_3.model")])
    assert eval_auc(target) == pytest.approx(expected, abs=1e-7)
    target.load_sparse_weights({"emb": str(tmp_path / "m0_sparse_3.model")})   # the dict form
    assert eval_auc(target) == pytest.approx(expected, abs=1e-7)
    fresh = build_small_model(planted_data, seed=99)
    fresh.load_dense_weights(str(tmp_path / "m_dense_3.model"))
    fresh.load_sparse_weights(sparse_embedding_files_map={"emb": str(tmp_path / "m0_sparse_3.model")})  # docs' name
    fresh.load_sparse_optimizer_states(sparse_opt_states_files_map={"emb": str(tmp_path / "m0_opt_sparse_3.model")})
    assert eval_auc(fresh) == pytest.approx(expected, abs=1e-7)
    with pytest.raises(TypeError, match="either sparse_embedding_files .* or sparse_embedding_files_map"):
        fresh.load_sparse_weights()
    with pytest.raises(TypeError, match="sparse_embedding_files_map must be a dict"):
        fresh.load_sparse_weights(sparse_embedding_files_map=[str(tmp_path / "m0_sparse_3.model")])


def test_load_errors_name_the_file(planted_data, build_small_model, tmp_path):
    model = trained(build_small_model, planted_data, steps=1)
    model.save_params_to_files(str(tmp_path / "m"), 1)
    bad = tmp_path / "short.model"
    bad.write_bytes(np.zeros(5, np.float32).tobytes())
    with pytest.raises(ValueError, match="short.model' holds 5 float32 values but the model expects"):
        model.load_dense_weights(str(bad))
    with pytest.raises(FileNotFoundError, match="missing.model"):
        model.load_dense_weights(str(tmp_path / "missing.model"))
    with pytest.raises(ValueError, match="1 embedding"):
        model.load_sparse_weights([str(tmp_path / "m0_sparse_1.model")] * 2)
    with pytest.raises(ValueError, match="no embedding named"):
        model.load_sparse_weights({"other": str(tmp_path / "m0_sparse_1.model")})
    folder = tmp_path / "m0_sparse_1.model"
    (folder / "emb_vector").write_bytes((folder / "emb_vector").read_bytes()[:-4])
    with pytest.raises(ValueError, match="snapshot marker .* recorded"):   # our marker notices first
        model.load_sparse_weights([str(folder)])
    (tmp_path / "m_snapshot_1.json").unlink()                               # as a HugeCTR-written folder
    with pytest.raises(ValueError, match="emb_vector"):
        model.load_sparse_weights([str(folder)])


def test_dense_weights_are_raw_float32_in_add_order(planted_data, build_small_model):
    """InnerProduct W is (in, out) row-major, then b: y = x @ W + b (HugeCTR's layout, not nn.Linear's)."""
    model = build_small_model(planted_data)
    flat = model.flat_parameters.weights
    layer = next(layer for layer in model.engine.network.layers if layer.name == "fc1")
    weight, bias = list(layer.parameters())
    assert weight.shape == (25, 8) and torch.equal(flat[:200].view(25, 8), weight.detach())
    assert torch.equal(flat[200:208], bias.detach().view(-1))


def test_read_sparse_model_for_users(planted_data, build_small_model, tmp_path):
    from hugectr.io import read_sparse_model

    model = trained(build_small_model, planted_data, embedding_type=hugectr.Embedding_t.LocalizedSlotSparseEmbeddingHash)
    model.save_params_to_files(str(tmp_path / "m"), 2)
    saved = read_sparse_model(tmp_path / "m0_sparse_2.model")
    keys, vectors, slot_ids = model.embedding_tables[0].export()
    np.testing.assert_array_equal(saved.keys, keys.cpu().numpy())
    np.testing.assert_array_equal(saved.vectors, vectors.cpu().numpy())
    np.testing.assert_array_equal(saved.slot_ids.astype(np.int64), slot_ids.cpu().numpy())
    with pytest.raises(FileNotFoundError, match="not a sparse model folder"):
        read_sparse_model(tmp_path / "nope")


def test_sparse_optimizer_states_of_another_capacity_load_by_key_row(planted_data, build_small_model, tmp_path):
    """Row i of a state file is key i of the key file: a file of fewer rows than this table's capacity (another
    workspace or GPU count) loads into the first rows; one that does not cover the keys is refused."""
    model = build_small_model(planted_data)
    model.start_data_reading()
    for _ in range(3):
        model.train()
    model.save_params_to_files(str(tmp_path / "m"), 3)
    states_file = tmp_path / "m0_opt_sparse_3.model"
    (tmp_path / "m_snapshot_3.json").unlink()                      # a HugeCTR-written snapshot has no marker
    table = model.embedding_tables[0]
    capacity, keys = table.capacity, table.size
    saved = np.fromfile(states_file, dtype=np.float32).reshape(2, capacity, 4)     # Adam: m, v
    rows = keys + 5
    saved[:, :rows].tofile(states_file)
    other = build_small_model(planted_data, seed=17)
    other.load_sparse_weights([str(tmp_path / "m0_sparse_3.model")])
    before = [state.clone() for state in other.embedding_tables[0].optimizer_states()]
    other.load_sparse_optimizer_states([str(states_file)])
    for index, state in enumerate(other.embedding_tables[0].optimizer_states()):
        np.testing.assert_array_equal(state[:rows].cpu().numpy(), saved[index, :rows])
        assert torch.equal(state[rows:], before[index][rows:])    # rows past the file keep their values
        assert np.abs(saved[index, :keys]).sum() > 0
    saved[:, :keys - 1].tofile(states_file)
    with pytest.raises(ValueError, match=rf"covering the table's {keys} keys"):
        other.load_sparse_optimizer_states([str(states_file)])
