"""``hugectr.io.fs``: which file system a path or URL lives on, and how DataSourceParams configure it."""

import sys
from types import SimpleNamespace

import pytest

import hugectr
from hugectr import FileSystemType_t
from hugectr.data import DataSourceParams
from hugectr.io import fs


@pytest.mark.parametrize("path, expected", [
    ("s3://bucket/dir/key", ("S3", "bucket/dir/key", {})),
    ("s3a://bucket/key", ("S3", "bucket/key", {})),
    ("gs://bucket/a/b", ("GCS", "bucket/a/b", {})),
    ("gcs://bucket/a", ("GCS", "bucket/a", {})),
    ("https://storage.googleapis.com/bucket/obj", ("GCS", "bucket/obj", {})),
    ("https://bucket.storage.googleapis.com/obj", ("GCS", "bucket/obj", {})),
    ("https://my.bucket.s3.eu-west-1.amazonaws.com/k/x", ("S3", "my.bucket/k/x", {"region": "eu-west-1"})),
    ("https://s3.us-east-2.amazonaws.com/bucket/k", ("S3", "bucket/k", {"region": "us-east-2"})),
    ("https://s3.amazonaws.com/bucket/k", ("S3", "bucket/k", {})),
    ("hdfs://namenode:9000/data/x", ("HDFS", "/data/x", {"host": "namenode", "port": 9000})),
    ("hdfs:///data/x", ("HDFS", "/data/x", {})),
    ("file:///tmp/x", ("Local", "/tmp/x", {})),
    ("/tmp/x", ("", "/tmp/x", {})),
    ("relative/x", ("", "relative/x", {})),
])
def test_split_url(path, expected):
    assert fs.split_url(path) == expected


@pytest.mark.parametrize("path", ["ftp://host/x", "https://example.com/x", "http://storage.example.org/b/o"])
def test_unsupported_urls_are_refused_with_the_forms_that_work(path):
    with pytest.raises(ValueError, match="s3://|https:// URL must name"):
        fs.filesystem_kind(path)


def test_plain_paths_live_on_the_data_source():
    assert fs.filesystem_kind("/data/list.txt") == "Local"
    assert fs.filesystem_kind("/data/list.txt", DataSourceParams(FileSystemType_t.HDFS, "nn", 9000)) == "HDFS"
    assert fs.filesystem_kind("bucket/list.txt", DataSourceParams(FileSystemType_t.S3, "us-east-1", 0)) == "S3"
    assert fs.filesystem_kind("s3://b/k", DataSourceParams(FileSystemType_t.HDFS, "nn", 9000)) == "S3"  # URL wins
    legacy = SimpleNamespace(use_hdfs=True, namenode="nn", port=9000)        # HugeCTR v3.x DataSourceParams
    assert fs.filesystem_kind("/model/wdl", legacy) == "HDFS"
    with pytest.raises(ValueError, match="Other"):
        fs.is_remote("/x", DataSourceParams(FileSystemType_t.Other, "x", 1))
    with pytest.raises(TypeError, match="DataSourceParams"):
        fs.is_remote("/x", "S3")


@pytest.mark.parametrize("server, env, expected", [
    ("localhost", {}, {}),                                                      # HugeCTR's default: not set
    ("us-west-2", {}, {"client_kwargs": {"region_name": "us-west-2"}}),         # HugeCTR's meaning: the region
    ("127.0.0.1:9000", {}, {"endpoint_url": "http://127.0.0.1:9000"}),          # host:port -> plain HTTP
    ("https://minio.lab:9443/", {}, {"endpoint_url": "https://minio.lab:9443"}),
    ("localhost", {"AWS_ENDPOINT_URL": "http://a:1"}, {"endpoint_url": "http://a:1"}),
    ("localhost", {"AWS_ENDPOINT_URL": "http://a:1", "AWS_ENDPOINT_URL_S3": "http://b:2"},
     {"endpoint_url": "http://b:2"}),
    ("http://c:3", {"AWS_ENDPOINT_URL": "http://a:1"}, {"endpoint_url": "http://c:3"}),   # params beat env
])
def test_s3_endpoint_and_region_rule(monkeypatch, server, env, expected):
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    options = fs._options("S3", "bucket/k", DataSourceParams(FileSystemType_t.S3, server, 0), {})
    assert options == {"use_listings_cache": False, **expected}


def test_s3_options_apply_only_to_their_own_file_system(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    hdfs = DataSourceParams(FileSystemType_t.HDFS, "10.0.0.1:1234", 9000)
    assert fs._options("S3", "s3://b/k", hdfs, {}) == {"use_listings_cache": False}
    # the region of an https URL is used
    assert fs._options("S3", "", None, {"region": "eu-west-1"})["client_kwargs"] == {"region_name": "eu-west-1"}


def test_gcs_and_hdfs_options():
    gcs = DataSourceParams(FileSystemType_t.GCS, "storage.googleapis.com", 0)
    assert fs._options("GCS", "b/o", gcs, {}) == {"use_listings_cache": False}
    emulator = DataSourceParams(FileSystemType_t.GCS, "http://127.0.0.1:4443", 0)
    assert fs._options("GCS", "b/o", emulator, {})["endpoint_url"] == "http://127.0.0.1:4443"
    hdfs = DataSourceParams(FileSystemType_t.HDFS, "namenode", 8020)
    assert fs._options("HDFS", "/d", hdfs, {}) == {"host": "namenode", "port": 8020}
    assert fs._options("HDFS", "/d", hdfs, {"host": "other", "port": 9000}) == {"host": "other", "port": 9000}
    assert fs._options("HDFS", "/d", None, {}) == {"host": "default", "port": 0}    # fs.defaultFS


def test_resolve_s3_builds_an_s3fs_with_the_endpoint(monkeypatch):
    pytest.importorskip("s3fs")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    filesystem, inner = fs.resolve("bucket/dir/key", DataSourceParams(FileSystemType_t.S3, "127.0.0.1:9", 0))
    assert type(filesystem).__name__ == "S3FileSystem" and inner == "bucket/dir/key"
    assert filesystem.endpoint_url == "http://127.0.0.1:9"


@pytest.mark.parametrize("url, module, extra", [("gs://bucket/o", "gcsfs", "gcs"), ("s3://bucket/k", "s3fs", "s3"),
                                                ("hdfs://nn:9000/d", "fsspec", "hdfs")])
def test_missing_package_names_the_extra(monkeypatch, url, module, extra):
    monkeypatch.setitem(sys.modules, module, None)           # makes `import module` fail
    with pytest.raises(ImportError, match=rf"'{module}' package.*pip install 'hugectr\[{extra}\]'"):
        fs.resolve(url)


def test_path_arithmetic_keeps_urls():
    assert fs.join("s3://b/snap", "m0_sparse_1.model") == "s3://b/snap/m0_sparse_1.model"
    assert fs.parent("s3://b/snap/m_dense_1.model") == "s3://b/snap"
    assert fs.parent("s3://b") == "s3://b"
    assert fs.basename("gs://b/x/m0_sparse_1.model/") == "m0_sparse_1.model"
    assert fs.on_same_system("s3://b/l/list.txt", "gs://c/x") == "gs://c/x"
    assert fs.on_same_system("s3://b/l/list.txt", "/other/x") == "s3://b/other/x"
    assert fs.on_same_system("/data/list.txt", "train/0.parquet") == "/data/train/0.parquet"


def test_local_operations_need_no_fsspec(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "fsspec", None)
    (tmp_path / "a").write_bytes(b"0123456789")
    path = str(tmp_path / "a")
    assert fs.is_file(path) and fs.file_size(path) == 10 and fs.read_bytes(path, None, 2, 5) == b"234"
    assert fs.list_files(tmp_path) == {"a": 10} and fs.missing_files([path, path + "x"]) == [path + "x"]


def test_solver_data_source_params_is_kept_and_checked():
    params = DataSourceParams(FileSystemType_t.S3, "us-east-1", 0)
    assert hugectr.CreateSolver(data_source_params=params).data_source_params is params
    assert hugectr.CreateSolver().data_source_params is None
    with pytest.raises(TypeError, match="data_source_params must be a hugectr.data.DataSourceParams"):
        hugectr.CreateSolver(data_source_params=True)
