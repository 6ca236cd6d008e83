"""Remote storage end to end against a real S3-protocol server (moto's server mode) on loopback.

Data (Parquet, Norm, Raw) read from ``s3://`` must equal the local copy byte for byte, so a model
trained from S3 must end with the very weights of one trained from disk. Snapshots written by
``fit`` to an ``s3://`` prefix load back into a new model that then predicts identically.
"""

import dataclasses
import json

import numpy as np
import pytest
import torch

pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")

import hugectr  # noqa: E402
from hugectr import Check_t, DataReaderType_t, FileSystemType_t  # noqa: E402
from hugectr.data import DataSourceParams  # noqa: E402
from hugectr.data.file_list import read_file_list  # noqa: E402
from hugectr.data.norm import NormSource  # noqa: E402
from hugectr.data.raw import FixedSampleSource, SampleLayout, SampleWriter  # noqa: E402
from hugectr.io import fs  # noqa: E402

BUCKET = "hugectr-test"


@pytest.fixture(scope="module")
def s3_endpoint():
    """A moto S3 server on 127.0.0.1 with one bucket; AWS_ENDPOINT_URL points s3:// URLs at it."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as patch:
        for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                            ("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_ENDPOINT_URL", endpoint)):
            patch.setenv(name, value)
        for name in ("AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
            patch.delenv(name, raising=False)
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield endpoint
    server.stop()


@pytest.fixture(scope="module")
def s3(s3_endpoint):
    """The s3fs file system hugectr resolves ``s3://`` URLs to."""
    return fs.resolve(f"s3://{BUCKET}")[0]


@pytest.fixture(scope="module")
def remote_parquet(s3, planted_data):
    """The planted Parquet set uploaded to s3://BUCKET/pq; lists with a relative line and a URL line."""
    local = fs.parent(planted_data.source)
    for folder in ("train", "val"):
        s3.put(f"{local}/{folder}", f"{BUCKET}/pq/{folder}", recursive=True)
    s3.pipe_file(f"{BUCKET}/pq/file_list.txt", b"2\ntrain/gen_0.parquet\ntrain/gen_1.parquet\n")
    s3.pipe_file(f"{BUCKET}/pq/file_list_test.txt", f"1\ns3://{BUCKET}/pq/val/gen_0.parquet\n".encode())
    return dataclasses.replace(planted_data, source=f"s3://{BUCKET}/pq/file_list.txt",
                               eval_source=f"s3://{BUCKET}/pq/file_list_test.txt")


def eval_metrics(model, batches: int = 2) -> list:
    """AUC and average loss over the first eval batches: functions of every prediction."""
    for _ in range(batches):
        model.eval()
    return model.get_eval_metrics()


METRICS = {hugectr.MetricsType.AUC: 1.0, hugectr.MetricsType.AverageLoss: 0.0}


def test_fit_from_s3_snapshot_to_s3_and_load_back(s3, remote_parquet, planted_data, build_small_model):
    local = build_small_model(planted_data)
    local.fit(max_iter=6, display=0, eval_interval=0, snapshot=0)
    remote = build_small_model(remote_parquet, metrics_spec=METRICS)
    remote.fit(max_iter=6, display=0, eval_interval=0, snapshot=6, snapshot_prefix=f"s3://{BUCKET}/snap/m")
    # the bytes read from S3 are the local ones: the same training, bit for bit
    assert torch.equal(local.flat_parameters.weights, remote.flat_parameters.weights)
    marker = json.loads(s3.cat_file(f"{BUCKET}/snap/m_snapshot_6.json"))
    assert marker["complete"] and set(marker["files"]) == {
        "m_dense_6.model", "m_opt_dense_6.model", "m0_sparse_6.model", "m0_opt_sparse_6.model"}
    dense = np.frombuffer(s3.cat_file(f"{BUCKET}/snap/m_dense_6.model"), "<f4")
    np.testing.assert_array_equal(dense, remote.flat_parameters.weights.cpu().numpy())
    assert set(s3.ls(f"{BUCKET}/snap/m0_sparse_6.model", detail=False)) == {
        f"{BUCKET}/snap/m0_sparse_6.model/key", f"{BUCKET}/snap/m0_sparse_6.model/emb_vector"}

    target = build_small_model(remote_parquet, seed=17, metrics_spec=METRICS)     # other initial weights
    assert not torch.equal(target.flat_parameters.weights, remote.flat_parameters.weights)
    url = f"s3://{BUCKET}/snap/m"
    target.load_dense_weights(f"{url}_dense_6.model")
    target.load_dense_optimizer_states(f"{url}_opt_dense_6.model")
    target.load_sparse_weights([f"{url}0_sparse_6.model"])
    target.load_sparse_optimizer_states({"emb": f"{url}0_opt_sparse_6.model"})
    for mine, theirs in zip(target.dense_optimizer.state_tensors(), remote.dense_optimizer.state_tensors()):
        assert torch.equal(mine, theirs)
    for mine, theirs in zip(target.embedding_tables[0].export(), remote.embedding_tables[0].export()):
        assert (mine is None and theirs is None) or torch.equal(mine, theirs)
    expected = eval_metrics(remote)
    assert [name for name, _ in expected] == ["AUC", "AverageLoss"] and expected[1][1] > 0
    assert eval_metrics(target) == expected                       # the same predictions, exactly

    model = hugectr.io.read_sparse_model(f"{url}0_sparse_6.model")         # the user helper, remote
    keys, vectors, _ = remote.embedding_tables[0].export()
    np.testing.assert_array_equal(model.keys, keys.cpu().numpy())
    np.testing.assert_array_equal(model.vectors, vectors.cpu().numpy())


def test_incomplete_remote_snapshot_is_refused(s3, remote_parquet, build_small_model):
    model = build_small_model(remote_parquet)
    model.save_params_to_files(f"s3://{BUCKET}/cut/m", 2)
    marker = f"{BUCKET}/cut/m_snapshot_2.json"
    body = json.loads(s3.cat_file(marker))
    s3.pipe_file(marker, json.dumps({**body, "complete": False}).encode())      # as if the writer died
    with pytest.raises(ValueError, match="never finished"):
        model.load_dense_weights(f"s3://{BUCKET}/cut/m_dense_2.model")
    s3.pipe_file(marker, json.dumps(body).encode())
    s3.pipe_file(f"{BUCKET}/cut/m0_sparse_2.model/key", b"\0" * 8)              # cut short after writing
    with pytest.raises(ValueError, match="recorded"):
        model.load_sparse_weights([f"s3://{BUCKET}/cut/m0_sparse_2.model"])
    model.load_dense_weights(f"s3://{BUCKET}/cut/m_dense_2.model")              # the intact file still loads


def test_graph_json_round_trip_on_s3(s3, remote_parquet, build_small_model, tmp_path):
    model = build_small_model(remote_parquet)
    model.graph_to_json(f"s3://{BUCKET}/graph/g.json")
    model.graph_to_json(str(tmp_path / "g.json"))
    assert s3.cat_file(f"{BUCKET}/graph/g.json") == (tmp_path / "g.json").read_bytes()
    solver = hugectr.CreateSolver(seed=5, batchsize=64, batchsize_eval=128, i64_input_key=True)
    reader = hugectr.DataReaderParams(data_reader_type=DataReaderType_t.Parquet, source=[remote_parquet.source],
                                      eval_source=remote_parquet.eval_source, check_type=Check_t.Non,
                                      slot_size_array=remote_parquet.slot_size_array)
    rebuilt = hugectr.Model(solver, reader, hugectr.CreateOptimizer(optimizer_type=hugectr.Optimizer_t.Adam,
                                                                    update_type=hugectr.Update_t.Local))
    rebuilt.construct_from_json(graph_config_file=f"s3://{BUCKET}/graph/g.json", include_dense_network=True)
    rebuilt.compile()
    rebuilt.graph_to_json(str(tmp_path / "again.json"))
    assert (tmp_path / "again.json").read_bytes() == (tmp_path / "g.json").read_bytes()


def test_missing_objects_name_the_url(s3, remote_parquet, build_small_model):
    model = build_small_model(remote_parquet)
    url = f"s3://{BUCKET}/nowhere/m"
    with pytest.raises(FileNotFoundError, match=f"'{url}_dense_1.model' does not exist"):
        model.load_dense_weights(f"{url}_dense_1.model")
    with pytest.raises(FileNotFoundError, match=f"'{url}0_sparse_1.model' does not exist"):
        model.load_sparse_weights([f"{url}0_sparse_1.model"])
    with pytest.raises(FileNotFoundError, match=f"'{url}.json'.*does not exist"):
        model.construct_from_json(graph_config_file=f"{url}.json", include_dense_network=True)
    with pytest.raises(ValueError, match=f"file list '{url}_list.txt' does not exist"):
        read_file_list(f"{url}_list.txt")
    s3.pipe_file(f"{BUCKET}/nowhere/list.txt", b"2\n../pq/train/gen_0.parquet\ngone.parquet\n")
    with pytest.raises(ValueError, match=rf"line 3: data file 'gone.parquet' \(as 's3://{BUCKET}/nowhere/gone"):
        read_file_list(f"s3://{BUCKET}/nowhere/list.txt")


# -- Norm and Raw, through DataSourceParams ------------------------------------------------------
def _norm_input():
    return hugectr.Input(label_dim=1, label_name="label", dense_dim=3, dense_name="dense",
                         data_reader_sparse_param_array=[hugectr.DataReaderSparseParam("keys", [1, 2, 3], False, 3)])


@pytest.fixture(scope="module")
def norm_data(s3, tmp_path_factory):
    """A Check_t.Sum Norm set (3 slots of 1, 2, 3 keys) on disk and at bucket/norm (plain-path lists)."""
    folder = tmp_path_factory.mktemp("norm")
    params = hugectr.tools.DataGeneratorParams(
        format=DataReaderType_t.Norm, label_dim=1, dense_dim=3, num_slot=3, i64_input_key=False,
        source=str(folder / "file_list.txt"), eval_source=str(folder / "file_list_test.txt"),
        slot_size_array=[7, 11, 5], nnz_array=[1, 2, 3], check_type=Check_t.Sum,
        dist_type=hugectr.Distribution_t.Uniform, num_files=2, eval_num_files=1, num_samples_per_file=3000, seed=3)
    hugectr.tools.DataGenerator(params).generate()
    for sub in ("train", "val"):
        s3.put(str(folder / sub), f"{BUCKET}/norm/{sub}", recursive=True)
    s3.pipe_file(f"{BUCKET}/norm/file_list.txt", b"2\ntrain/gen_0.data\ntrain/gen_1.data\n")
    s3.pipe_file(f"{BUCKET}/norm/file_list_test.txt", f"1\n/{BUCKET}/norm/val/gen_0.data\n".encode())  # absolute
    return folder


@pytest.fixture
def s3_params(s3_endpoint, monkeypatch):
    """DataSourceParams naming the server as host:port, with the AWS_ENDPOINT_URL fallback removed."""
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    return DataSourceParams(FileSystemType_t.S3, s3_endpoint.removeprefix("http://"), 0)


def test_norm_read_through_data_source_params_equals_local(norm_data, s3_params):
    local = NormSource.from_file_list(str(norm_data / "file_list.txt"), _norm_input(), Check_t.Sum, False)
    remote = NormSource.from_file_list(f"{BUCKET}/norm/file_list.txt", _norm_input(), Check_t.Sum, False, s3_params)
    assert remote.files == [f"{BUCKET}/norm/train/gen_0.data", f"{BUCKET}/norm/train/gen_1.data"]
    for index in range(2):                 # 500-row chunks: several ranged reads per 3000-record file
        pairs = list(zip(local.read_file(index, 500), remote.read_file(index, 500), strict=True))
        assert len(pairs) == 6
        for mine, theirs in pairs:
            np.testing.assert_array_equal(mine.label, theirs.label)
            np.testing.assert_array_equal(mine.dense, theirs.dense)
            for a, b in zip(mine.sparse, theirs.sparse):
                np.testing.assert_array_equal(a.values, b.values)
                np.testing.assert_array_equal(a.bag_offsets(), b.bag_offsets())


def _norm_model(source: str, eval_source: str, reader_params=None, solver_params=None):
    solver = hugectr.CreateSolver(seed=5, batchsize=64, batchsize_eval=64, lr=0.01, data_source_params=solver_params)
    reader = hugectr.DataReaderParams(data_reader_type=DataReaderType_t.Norm, source=[source],
                                      eval_source=eval_source, check_type=Check_t.Sum,
                                      **({"data_source_params": reader_params} if reader_params else {}))
    model = hugectr.Model(solver, reader, hugectr.CreateOptimizer())
    model.add(_norm_input())
    model.add(hugectr.SparseEmbedding(embedding_type=hugectr.Embedding_t.DistributedSlotSparseEmbeddingHash,
                                      workspace_size_per_gpu_in_mb=1, embedding_vec_size=4, combiner="sum",
                                      sparse_embedding_name="emb", bottom_name="keys"))
    model.add(hugectr.DenseLayer(layer_type=hugectr.Layer_t.Reshape, bottom_names=["emb"], top_names=["flat"],
                                 leading_dim=12))
    model.add(hugectr.DenseLayer(layer_type=hugectr.Layer_t.Concat, bottom_names=["flat", "dense"],
                                 top_names=["features"]))
    model.add(hugectr.DenseLayer(layer_type=hugectr.Layer_t.InnerProduct, bottom_names=["features"],
                                 top_names=["logit"], num_output=1))
    model.add(hugectr.DenseLayer(layer_type=hugectr.Layer_t.BinaryCrossEntropyLoss,
                                 bottom_names=["logit", "label"], top_names=["loss"]))
    model.compile()
    return model


@pytest.mark.parametrize("where", ["DataReaderParams", "CreateSolver"])
def test_train_on_norm_from_s3_paths_of_data_source_params(s3, norm_data, s3_params, where, tmp_path,
                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)             # a plain snapshot prefix that stays local lands here
    local = _norm_model(str(norm_data / "file_list.txt"), str(norm_data / "file_list_test.txt"))
    local.fit(max_iter=5, display=0, eval_interval=0, snapshot=0)
    lists = (f"{BUCKET}/norm/file_list.txt", f"{BUCKET}/norm/file_list_test.txt")     # plain paths: on S3
    if where == "DataReaderParams":
        remote = _norm_model(*lists, reader_params=s3_params)
    else:                                   # v3.9's CreateSolver(data_source_params=...): data and model files
        remote = _norm_model(*lists, solver_params=s3_params)
    remote.fit(max_iter=5, display=0, eval_interval=0, snapshot=5, snapshot_prefix=f"{BUCKET}/norm_snap/{where}")
    assert torch.equal(local.flat_parameters.weights, remote.flat_parameters.weights)
    assert eval_metrics(local) == eval_metrics(remote)
    # model files follow CreateSolver's data_source_params only (DataReaderParams' is for the data)
    on_s3 = where == "CreateSolver"
    assert s3.exists(f"{BUCKET}/norm_snap/{where}_dense_5.model") == on_s3
    assert (tmp_path / BUCKET / "norm_snap" / f"{where}_dense_5.model").exists() != on_s3


@pytest.mark.parametrize("lanes, shuffled", [(1, False), (2, False), (3, True)])
def test_raw_records_read_by_ranges_equal_the_memory_map(s3, tmp_path, lanes, shuffled):
    layout = SampleLayout(1, 2, "<i4", "<i4", "<u4", (1, 1), (2,))
    rng = np.random.default_rng(0)
    path = str(tmp_path / "train.bin")
    with SampleWriter(path, layout) as writer:
        writer.write(rng.integers(0, 2, (1000, 1)), rng.integers(0, 9, (1000, 2)), rng.integers(0, 50, (1000, 2)))
    s3.put_file(path, f"{BUCKET}/raw/train.bin")
    order = np.random.default_rng(1).permutation(15).tolist() + [15] if shuffled else None   # 16 batches of 64
    order = None if order is None else np.array(order)
    local = FixedSampleSource(path, layout, 1000, 64, lanes, order)
    remote = FixedSampleSource(f"s3://{BUCKET}/raw/train.bin", layout, 1000, 64, lanes, order)
    for lane in range(local.lanes):
        pairs = list(zip(local.read_file(lane, 192), remote.read_file(lane, 192), strict=True))
        assert pairs
        for mine, theirs in pairs:
            np.testing.assert_array_equal(mine.label, theirs.label)
            np.testing.assert_array_equal(mine.dense, theirs.dense)
            np.testing.assert_array_equal(mine.sparse[0].values, theirs.sparse[0].values)
