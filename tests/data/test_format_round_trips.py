"""The same samples written as Norm, Raw, RawAsync and Parquet: equal batches, equal weights after training.

Norm and Raw carry globally offset keys (their readers use keys as written); Parquet carries slot-local
keys and the reader adds the ``slot_size_array`` offsets, so every reader must hand over the same keys.
"""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

import hugectr
from hugectr import AsyncParam, Check_t, DataReaderType_t
from hugectr.data.keyset import collect_keyset, read_keyset, write_keyset
from hugectr.data.norm import NormWriter
from hugectr.data.norm_records import NormLayout
from hugectr.data.raw import SampleLayout, SampleWriter
from hugectr.data.reader import SourceOptions, open_source
from hugectr.testing.small_model import add_small_network

SLOTS = [7, 11, 5]
DENSE = 4
SAMPLES = 320


@pytest.fixture(autouse=True)
def quiet(monkeypatch):
    monkeypatch.setenv("HUGECTR_LOG_LEVEL", "0")


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(7)
    local = np.stack([rng.integers(0, size, SAMPLES) for size in SLOTS], axis=1)        # (n, slots)
    offsets = np.concatenate([[0], np.cumsum(SLOTS)[:-1]])
    label = (rng.random(SAMPLES) < 0.3 + 0.4 * (local[:, 0] % 2)).astype(np.float32)[:, None]
    dense = rng.random((SAMPLES, DENSE), dtype=np.float32)
    return label, dense, local, local + offsets


@pytest.fixture(scope="module")
def datasets(tmp_path_factory, samples):
    """{format: (source, eval_source)}: the same samples in each format, two files where lists allow."""
    label, dense, local, global_keys = samples
    root = tmp_path_factory.mktemp("formats")
    halves = [slice(0, SAMPLES // 2), slice(SAMPLES // 2, SAMPLES)]
    out = {}
    norm_paths = [str(root / f"norm_{k}.data") for k in range(2)]
    for path, part in zip(norm_paths, halves):
        with NormWriter(path, NormLayout(1, DENSE, len(SLOTS), 8, checksum=True), part.stop - part.start) as writer:
            writer.write(np.concatenate([label[part], dense[part]], axis=1),
                         np.ones((part.stop - part.start, len(SLOTS)), np.int64), global_keys[part])
    out["norm"] = _file_list(root / "norm.txt", norm_paths)
    layout = SampleLayout(1, DENSE, "<f4", "<f4", "<i4", (1,) * len(SLOTS), (len(SLOTS),))
    with SampleWriter(str(root / "raw.bin"), layout) as writer:
        writer.write(label, dense, global_keys)
    out["raw"] = str(root / "raw.bin")
    async_layout = SampleLayout(1, DENSE, "<i4", "<f4", "<i8", (1,) * len(SLOTS), (len(SLOTS),))
    with SampleWriter(str(root / "async.bin"), async_layout) as writer:
        writer.write(label.astype(np.int32), dense, global_keys)
    out["raw_async"] = str(root / "async.bin")
    parquet_paths = [str(root / f"part_{k}.parquet") for k in range(2)]
    for path, part in zip(parquet_paths, halves):
        columns = {"label": label[part, 0], **{f"I{j}": dense[part, j] for j in range(DENSE)},
                   **{f"C{s}": pa.array(local[part, s], pa.int64()) for s in range(len(SLOTS))}}
        pq.write_table(pa.table(columns), path)
    entries = lambda names, first: [{"col_name": n, "index": first + i} for i, n in enumerate(names)]  # noqa: E731
    (root / "_metadata.json").write_text(json.dumps({
        "file_stats": [{"file_name": f"part_{k}.parquet", "num_rows": SAMPLES // 2} for k in range(2)],
        "labels": entries(["label"], 0), "conts": entries([f"I{j}" for j in range(DENSE)], 1),
        "cats": entries([f"C{s}" for s in range(len(SLOTS))], 1 + DENSE)}))
    out["parquet"] = _file_list(root / "parquet.txt", parquet_paths)
    return out


def _file_list(path, paths):
    path.write_text(f"{len(paths)}\n" + "".join(p + "\n" for p in paths))
    return str(path)


def reader_params(kind, source):
    types = {"norm": DataReaderType_t.Norm, "raw": DataReaderType_t.Raw, "raw_async": DataReaderType_t.RawAsync,
             "parquet": DataReaderType_t.Parquet}
    return hugectr.DataReaderParams(
        data_reader_type=types[kind], source=[source], eval_source=source, check_type=Check_t.Sum,
        num_samples=SAMPLES, eval_num_samples=SAMPLES, float_label_dense=True, num_workers=1,
        slot_size_array=SLOTS if kind == "parquet" else [],
        async_param=AsyncParam(num_threads=1, num_batches_per_thread=1, shuffle=False, is_dense_float=True))


def build(kind, source, steps):
    """The conftest ``build_small_model`` network on ``kind`` data, trained ``steps`` steps (epoch mode)."""
    solver = hugectr.CreateSolver(seed=5, batchsize=32, batchsize_eval=32, lr=0.01, vvgpu=[[0]],
                                  repeat_dataset=False, i64_input_key=True)
    model = hugectr.Model(solver, reader_params(kind, source),
                          hugectr.CreateOptimizer(optimizer_type=hugectr.Optimizer_t.Adam,
                                                  update_type=hugectr.Update_t.Local))
    add_small_network(model, len(SLOTS), DENSE)
    model.compile()
    for _ in range(steps):
        assert model.train()
    return model


def weights(model):
    keys, vectors, _ = model.embedding_tables[0].export()
    order = torch.argsort(keys)
    return model.flat_parameters.weights.clone(), keys[order], vectors[order]


def test_every_reader_hands_over_the_same_batches(datasets, samples):
    label, dense, _, global_keys = samples
    for kind, source in datasets.items():
        params = reader_params(kind, source)
        model_input = hugectr.Input(label_dim=1, label_name="label", dense_dim=DENSE, dense_name="dense",
                                    data_reader_sparse_param_array=[hugectr.DataReaderSparseParam("keys", 1, True,
                                                                                                  len(SLOTS))])
        chunk_source = open_source(params, model_input, source, True, SourceOptions(num_samples=SAMPLES))
        chunks = [c for index in range(len(chunk_source.files)) for c in chunk_source.read_file(index, 100)]
        np.testing.assert_array_equal(np.concatenate([c.label for c in chunks]), label, err_msg=kind)
        np.testing.assert_array_equal(np.concatenate([c.dense for c in chunks]), dense, err_msg=kind)
        keys = np.concatenate([c.sparse[0].values for c in chunks])
        np.testing.assert_array_equal(keys, global_keys.reshape(-1), err_msg=kind)


def test_the_same_samples_train_to_the_same_weights_in_every_format(datasets):
    steps = 7                                   # crosses the boundary between the two files of Norm / Parquet
    reference = weights(build("parquet", datasets["parquet"], steps))
    untrained = weights(build("parquet", datasets["parquet"], 0))
    assert not torch.equal(reference[0], untrained[0])            # training moved the weights
    for kind in ("norm", "raw", "raw_async"):
        trained = weights(build(kind, datasets[kind], steps))
        for got, want in zip(trained, reference):
            assert torch.equal(got, want), kind


def test_keyset_of_a_dataset_and_its_file(datasets, samples, tmp_path):
    params = reader_params("norm", datasets["norm"])
    model_input = hugectr.Input(label_dim=1, label_name="label", dense_dim=DENSE, dense_name="dense",
                                data_reader_sparse_param_array=[hugectr.DataReaderSparseParam("keys", 1, True,
                                                                                              len(SLOTS))])
    keys = collect_keyset(open_source(params, model_input, datasets["norm"], True))
    assert keys.tolist() == sorted(set(samples[3].reshape(-1).tolist()))
    for width in (8, 4):
        path = str(tmp_path / f"keys_{width}.keyset")
        write_keyset(path, keys, key_bytes=width)
        assert (tmp_path / f"keys_{width}.keyset").stat().st_size == width * keys.size
        assert read_keyset(path, key_bytes=width).tolist() == keys.tolist()
    with pytest.raises(ValueError, match=r"keys_8\.keyset' has \d+ bytes, not a multiple of 3-byte|key_bytes"):
        read_keyset(str(tmp_path / "keys_8.keyset"), key_bytes=3)
    (tmp_path / "odd.keyset").write_bytes(b"\x00" * 12)
    with pytest.raises(ValueError, match=r"odd\.keyset' has 12 bytes, not a multiple of 8-byte keys.*key_bytes=4"):
        read_keyset(str(tmp_path / "odd.keyset"))
    with pytest.raises(ValueError, match="do not fit 4-byte keys"):
        write_keyset(str(tmp_path / "big.keyset"), [2**40], key_bytes=4)
