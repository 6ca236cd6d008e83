"""``hugectr.inference`` (HugeCTR <= 23.08): a snapshot and its graph JSON predict what the trained model's
evaluation computes on the same samples, over data files and over CSR arrays."""

import numpy as np
import pyarrow.parquet as pq
import pytest

import hugectr
from hugectr.data.file_list import read_file_list
from hugectr.inference import CreateInferenceSession, InferenceModel, InferenceParams

EVAL_BATCH = 128


@pytest.fixture(scope="module")
def snapshot(planted_data, tmp_path_factory):
    """A small model trained 20 steps: its graph JSON, snapshot files, and its eval probabilities / AUC on
    the first two eval batches."""
    from hugectr.testing.small_model import add_small_network

    folder = tmp_path_factory.mktemp("inference")
    solver = hugectr.CreateSolver(seed=5, batchsize=64, batchsize_eval=EVAL_BATCH, max_eval_batches=2, lr=0.01,
                                  vvgpu=[[0]], repeat_dataset=True, i64_input_key=True)
    reader = hugectr.DataReaderParams(data_reader_type=hugectr.DataReaderType_t.Parquet, source=[planted_data.source],
                                      eval_source=planted_data.eval_source, check_type=hugectr.Check_t.Non,
                                      slot_size_array=planted_data.slot_size_array)
    model = hugectr.Model(solver, reader, hugectr.CreateOptimizer(optimizer_type=hugectr.Optimizer_t.Adam))
    add_small_network(model, len(planted_data.slot_size_array), planted_data.dense_dim)
    model.compile()
    model.fit(max_iter=20, display=0, eval_interval=0, snapshot=0)
    model.graph_to_json(str(folder / "graph.json"))
    model.save_params_to_files(str(folder / "m"), 20)
    probabilities = []
    for _ in range(2):
        model.eval()
        probabilities.append(model.engine.last_eval[0].cpu().numpy())
    auc = dict(model.get_eval_metrics())["AUC"]
    return folder, np.concatenate(probabilities), auc


def params(folder, **overrides):
    arguments = dict(model_name="small", max_batchsize=EVAL_BATCH, hit_rate_threshold=1.0,
                     dense_model_file=str(folder / "m_dense_20.model"),
                     sparse_model_files=[str(folder / "m0_sparse_20.model")], use_gpu_embedding_cache=False,
                     cache_size_percentage=1.0, i64_input_key=True)
    arguments.update(overrides)
    return InferenceParams(**arguments)


def test_inference_model_predicts_and_evaluates_as_the_trained_model(snapshot, planted_data):
    folder, expected, auc = snapshot
    model = InferenceModel(str(folder / "graph.json"), params(folder))
    args = (2, planted_data.eval_source, hugectr.DataReaderType_t.Parquet, hugectr.Check_t.Non,
            planted_data.slot_size_array)
    predictions = model.predict(*args)
    assert predictions.shape == (2 * EVAL_BATCH, 1)
    np.testing.assert_allclose(predictions, expected, rtol=1e-6, atol=1e-7)
    assert model.evaluate(*args) == pytest.approx(auc, abs=1e-7)
    assert model.check_out_tensor("fc1").shape == (EVAL_BATCH, 8)


def test_session_predicts_csr_arrays_as_the_files(snapshot, planted_data):
    folder, expected, auc = snapshot
    session = CreateInferenceSession(str(folder / "graph.json"), params(folder))
    table = pq.read_table(read_file_list(planted_data.eval_source)[0])
    dense_dim, slots = planted_data.dense_dim, len(planted_data.slot_size_array)
    columns = [table.column(f"C{i}").to_numpy() for i in range(1, 1 + dense_dim + slots)]   # conts, then cats
    samples = 5
    dense = np.stack(columns[:dense_dim], axis=1)[:samples]
    offsets = np.cumsum([0] + planted_data.slot_size_array[:-1])           # the sparse model holds global keys
    keys = (np.stack(columns[dense_dim:], axis=1)[:samples].astype(np.int64) + offsets).reshape(-1)
    row_ptrs = np.arange(samples * slots + 1)
    result = session.predict(dense.reshape(-1).tolist(), keys.tolist(), row_ptrs.tolist())
    np.testing.assert_allclose(result, expected[:samples, 0], rtol=1e-6, atol=1e-7)
    # the files overload of the session, and keyword arguments
    np.testing.assert_allclose(session.predict(1, planted_data.eval_source, hugectr.DataReaderType_t.Parquet,
                                               hugectr.Check_t.Non, planted_data.slot_size_array)[:samples, 0],
                               expected[:samples, 0], rtol=1e-6, atol=1e-7)
    assert session.predict(dense_feature=dense.reshape(-1), embeddingcolumns=keys, row_ptrs=row_ptrs) == \
        pytest.approx(result)
    # the session's file overloads take num_samples before data_source_params, as HugeCTR's
    by_position = session.predict(1, planted_data.eval_source, hugectr.DataReaderType_t.Parquet, hugectr.Check_t.Non,
                                  planted_data.slot_size_array, 0, hugectr.data.DataSourceParams())
    np.testing.assert_allclose(by_position[:samples, 0], expected[:samples, 0], rtol=1e-6, atol=1e-7)
    assert session.evaluate(2, planted_data.eval_source, hugectr.DataReaderType_t.Parquet, hugectr.Check_t.Non,
                            planted_data.slot_size_array, 0) == pytest.approx(auc, abs=1e-7)
    with pytest.raises(ValueError, match="row_ptrs holds 10 offsets.*need 16"):
        session.predict(dense.reshape(-1), keys, row_ptrs[:10])
    with pytest.raises(ValueError, match="row_ptrs ask for 15 keys, embeddingcolumns holds 14"):
        session.predict(dense.reshape(-1), keys[:-1], row_ptrs)
    with pytest.raises(ValueError, match="embeddingcolumns holds 16 keys, row_ptrs use 15"):
        session.predict(dense.reshape(-1), np.append(keys, 3), row_ptrs)


def test_inference_params_keywords_and_checks(tmp_path):
    with pytest.raises(TypeError, match="InferenceParams.*missing.*i64_input_key"):
        InferenceParams("m", 64, 1.0, "d.model", ["s.model"], 0, False, 1.0)
    with pytest.raises(ValueError, match="default_value_for_each_table.*only 0.0"):
        params(tmp_path, default_value_for_each_table=[1.0])
    with pytest.raises(TypeError, match="unknown keyword"):
        params(tmp_path, max_batch_size=64)
    with pytest.raises(TypeError, match="sparse_model_files must be a list"):
        params(tmp_path, sparse_model_files="m0_sparse_20.model")


@pytest.mark.gpu
def test_gpu_inference_matches_the_trained_model(snapshot, planted_data):
    """On a GPU machine the snapshot fixture trains on the GPU (the default device) and inference runs there
    too, compiled and replayed from CUDA graphs like the training model's evaluation."""
    folder, expected, auc = snapshot
    model = InferenceModel(str(folder / "graph.json"), params(folder))
    assert model.model.device.type == "cuda"
    args = (2, planted_data.eval_source, hugectr.DataReaderType_t.Parquet, hugectr.Check_t.Non,
            planted_data.slot_size_array)
    np.testing.assert_allclose(model.predict(*args), expected, rtol=1e-5, atol=1e-6)
    assert model.evaluate(*args) == pytest.approx(auc, abs=1e-4)
