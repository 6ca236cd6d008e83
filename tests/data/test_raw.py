"""Raw and RawAsync: HugeCTR's generator layout, reader round trips, lanes, shuffle, size checks."""

import os
import struct

import numpy as np
import pytest

import hugectr
from hugectr import AsyncParam, Check_t, DataReaderParams, DataReaderSparseParam, DataReaderType_t, Input
from hugectr.data.reader import DataReader, SourceOptions
from hugectr.tools import DataGenerator, DataGeneratorParams


@pytest.fixture(autouse=True)
def quiet(monkeypatch):
    monkeypatch.setenv("HUGECTR_LOG_LEVEL", "0")


def input_for(groups, dense_dim=3, nnz=1, label_dim=1):
    params = [DataReaderSparseParam(f"s{i}", nnz if isinstance(nnz, int) else nnz[i], True, slots)
              for i, slots in enumerate(groups)]
    return Input(label_dim=label_dim, label_name="label", dense_dim=dense_dim, dense_name="dense",
                 data_reader_sparse_param_array=params)


def reader_for(kind, path, model_input, batch_size, i64=False, num_samples=0, seed=0, repeat=False, **params):
    options = dict(data_reader_type=kind, source=[path], eval_source=path, check_type=Check_t.Non)
    workers = params.pop("num_workers", params["async_param"].num_threads if "async_param" in params else 1)
    options.update(params)
    reader_params = DataReaderParams(**options)
    return DataReader(reader_params, model_input, batch_size, path, repeat=repeat, i64_input_key=i64,
                      num_workers=workers, source_options=SourceOptions(num_samples=num_samples, seed=seed))


def drain(reader):
    batches = []
    while (batch := reader.next_batch()) is not None:
        batches.append(batch)
    reader.close()
    return batches


def keys_of(batch, name):
    sb = batch.sparse[name]
    return [[sb.values[sb.offsets[b]:sb.offsets[b + 1]].tolist() for b in range(i * sb.num_slots,
                                                                               (i + 1) * sb.num_slots)]
            for i in range(batch.size)]


def generate_raw(tmp_path, i64=False, float_label_dense=False, nnz=(1, 1, 1), samples=50, label_dim=2):
    params = DataGeneratorParams(format=DataReaderType_t.Raw, label_dim=label_dim, dense_dim=4, num_slot=3,
                                 i64_input_key=i64, source=str(tmp_path / "raw" / "train.bin"),
                                 eval_source=str(tmp_path / "raw" / "val.bin"), slot_size_array=[5, 70, 900],
                                 nnz_array=list(nnz), num_samples=samples, eval_num_samples=20,
                                 float_label_dense=float_label_dense, check_type=Check_t.Sum, seed=3)
    generator = DataGenerator(params)
    assert generator.data_generator_params.check_type is Check_t.Non     # Raw forces Check_t.Non
    generator.generate()
    return params


# -- the generator ----------------------------------------------------------------------------------
@pytest.mark.parametrize("i64, float_label_dense, number, key", [
    (False, False, "I", "I"), (False, True, "f", "I"), (True, False, "q", "q"), (True, True, "f", "q")])
def test_generator_writes_hugectrs_raw_layout(tmp_path, i64, float_label_dense, number, key):
    generate_raw(tmp_path, i64, float_label_dense, nnz=(1, 2, 1))
    assert sorted(os.listdir(tmp_path / "raw")) == ["train.bin", "val.bin"]
    sample = struct.Struct(f"<2{number}4{number}4{key}")
    data = (tmp_path / "raw" / "train.bin").read_bytes()
    assert len(data) == 50 * sample.size and (tmp_path / "raw" / "val.bin").stat().st_size == 20 * sample.size
    for i, values in enumerate(sample.iter_unpack(data)):
        assert values[:2] == (i % 2, i % 2) and values[2:6] == (0, 1, 2, 3)          # label i % 2, dense j
        assert 0 <= values[6] < 5 and all(0 <= k < 70 for k in values[7:9]) and 0 <= values[9] < 900  # slot-local


@pytest.mark.parametrize("float_label_dense", [False, True])
def test_raw_round_trip_int_and_float(tmp_path, float_label_dense):
    generate_raw(tmp_path, float_label_dense=float_label_dense)
    path = str(tmp_path / "raw" / "train.bin")
    records = list(struct.iter_unpack(f"<6{'f' if float_label_dense else 'i'}3I", open(path, "rb").read()))
    model_input = input_for([2, 1], dense_dim=4, label_dim=2)
    batches = drain(reader_for(DataReaderType_t.Raw, path, model_input, 16, num_samples=50,
                               float_label_dense=float_label_dense))
    assert [b.size for b in batches] == [16, 16, 16, 2]
    label = np.concatenate([b.label.numpy() for b in batches])
    dense = np.concatenate([b.dense.numpy() for b in batches])
    assert label.tolist() == [[float(r[0]), float(r[1])] for r in records]
    raw_dense = np.array([r[2:6] for r in records], np.float32)
    want = raw_dense if float_label_dense else np.log(raw_dense + np.float32(1))   # HugeCTR: log(x + 1.f)
    np.testing.assert_array_equal(dense, want.astype(np.float32))
    assert [k for b in batches for k in keys_of(b, "s0")] == [[[r[6]], [r[7]]] for r in records]
    assert [k for b in batches for k in keys_of(b, "s1")] == [[[r[8]]] for r in records]


def test_raw_lanes_keep_file_order_with_several_workers(tmp_path):
    generate_raw(tmp_path, float_label_dense=True, samples=50)
    path = str(tmp_path / "raw" / "train.bin")
    model_input = input_for([3], dense_dim=4, label_dim=2)
    one = drain(reader_for(DataReaderType_t.Raw, path, model_input, 7, num_samples=50, float_label_dense=True))
    three = drain(reader_for(DataReaderType_t.Raw, path, model_input, 7, num_samples=50, float_label_dense=True,
                             num_workers=3))
    assert [b.size for b in three] == [7] * 7 + [1]
    assert [keys_of(b, "s0") for b in three] == [keys_of(b, "s0") for b in one]


@pytest.mark.parametrize("num_samples, match", [
    (49, r"train\.bin' has \d+ bytes, but num_samples=49 samples of 36 bytes .*holds 50 such samples: set "
         r"num_samples"),
    (0, r"num_samples is 0; HugeCTR's Raw reader needs DataReaderParams\(num_samples=")])
def test_raw_size_must_match_num_samples(tmp_path, num_samples, match):
    generate_raw(tmp_path)
    with pytest.raises(ValueError, match=match):
        reader_for(DataReaderType_t.Raw, str(tmp_path / "raw" / "train.bin"), input_for([3], dense_dim=4,
                                                                                        label_dim=2), 8,
                   num_samples=num_samples)


def test_raw_errors_for_hugectrs_i64_output_missing_empty_and_file_lists(tmp_path):
    generate_raw(tmp_path, i64=True)
    model_input = input_for([3], dense_dim=4, label_dim=2)
    with pytest.raises(ValueError, match="HugeCTR's generator output for i64_input_key=True"):
        reader_for(DataReaderType_t.Raw, str(tmp_path / "raw" / "train.bin"), model_input, 8, i64=True,
                   num_samples=50)
    with pytest.raises(ValueError, match=r"Raw: data file '.*nothing\.bin' not found"):
        reader_for(DataReaderType_t.Raw, str(tmp_path / "nothing.bin"), model_input, 8, num_samples=5)
    (tmp_path / "empty.bin").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.bin' is empty"):
        reader_for(DataReaderType_t.Raw, str(tmp_path / "empty.bin"), model_input, 8, num_samples=5)
    (tmp_path / "list.txt").write_text("1\n" + "x" * 35 + "\n")
    with pytest.raises(ValueError, match="looks like a text file list"):
        reader_for(DataReaderType_t.Raw, str(tmp_path / "list.txt"), model_input, 8, num_samples=5)


# -- RawAsync -----------------------------------------------------------------------------------------
def write_async(path, samples, nnz, dense_float, i64, dense_dim=2, seed=0):
    """A RawAsync file written with struct; returns the (label, dense, keys) of every sample."""
    rng = np.random.default_rng(seed)
    rows, key = [], "q" if i64 else "I"
    with open(path, "wb") as stream:
        for i in range(samples):
            label = [i % 2]
            dense = rng.random(dense_dim).tolist() if dense_float else rng.integers(0, 1000, dense_dim).tolist()
            keys = rng.integers(0, 2**32 - 1 if not i64 else 2**62, sum(nnz)).tolist()
            stream.write(struct.pack(f"<i{dense_dim}{'f' if dense_float else 'i'}{sum(nnz)}{key}", *label, *dense,
                                     *keys))
            rows.append((label, dense, keys))
    return rows


def async_params(shuffle=False, dense_float=True, multi_hot=True, threads=1):
    return dict(async_param=AsyncParam(num_threads=threads, num_batches_per_thread=4, shuffle=shuffle,
                                       multi_hot_reader=multi_hot, is_dense_float=dense_float))


@pytest.mark.parametrize("dense_float", [True, False])
@pytest.mark.parametrize("i64", [False, True])
def test_raw_async_multi_hot_round_trip(tmp_path, dense_float, i64):
    nnz = [2, 1, 3]
    path = str(tmp_path / "train.bin")
    rows = write_async(path, 23, nnz, dense_float, i64)
    model_input = Input(label_dim=1, label_name="label", dense_dim=2, dense_name="dense",
                        data_reader_sparse_param_array=[DataReaderSparseParam("s0", nnz, False, 3)])
    batches = drain(reader_for(DataReaderType_t.RawAsync, path, model_input, 5, i64=i64,
                               **async_params(dense_float=dense_float, threads=2)))
    assert [b.size for b in batches] == [5, 5, 5, 5, 3]
    got_keys = [k for b in batches for k in keys_of(b, "s0")]
    assert got_keys == [[keys[0:2], keys[2:3], keys[3:6]] for _, _, keys in rows]
    label = np.concatenate([b.label.numpy() for b in batches])[:, 0]
    assert label.tolist() == [float(r[0][0]) for r in rows]
    dense = np.concatenate([b.dense.numpy() for b in batches])
    raw = np.array([r[1] for r in rows], np.float32)
    np.testing.assert_array_equal(dense, raw if dense_float else np.log(raw + np.float32(1)))


def test_the_generators_raw_multi_hot_output_is_raw_async_data(tmp_path):
    generate_raw(tmp_path, nnz=(1, 2, 1), label_dim=1)           # int32 label / dense, uint32 keys
    path = str(tmp_path / "raw" / "train.bin")
    records = list(struct.iter_unpack("<5i4I", open(path, "rb").read()))
    model_input = Input(label_dim=1, label_name="label", dense_dim=4, dense_name="dense",
                        data_reader_sparse_param_array=[DataReaderSparseParam("s0", [1, 2, 1], False, 3)])
    batches = drain(reader_for(DataReaderType_t.RawAsync, path, model_input, 16,
                               **async_params(dense_float=False, threads=2)))
    assert [k for b in batches for k in keys_of(b, "s0")] == [[[r[5]], [r[6], r[7]], [r[8]]] for r in records]
    assert np.concatenate([b.label.numpy() for b in batches])[:, 0].tolist() == [i % 2 for i in range(50)]
    np.testing.assert_array_equal(np.concatenate([b.dense.numpy() for b in batches]),
                                  np.log(np.tile(np.arange(4, dtype=np.float32), (50, 1)) + np.float32(1)))


def test_raw_async_shuffle_permutes_whole_batches_by_the_seed(tmp_path):
    path = str(tmp_path / "train.bin")
    write_async(path, 38, [1], True, False)                 # 7 full batches of 5 and a partial one of 3
    model_input = input_for([1], dense_dim=2)

    def first_labels(seed, shuffle=True, threads=3):
        reader = reader_for(DataReaderType_t.RawAsync, path, model_input, 5, seed=seed,
                            **async_params(shuffle=shuffle, threads=threads))
        return [b.sparse["s0"].values.tolist() for b in drain(reader)]

    plain = first_labels(0, shuffle=False)
    shuffled = first_labels(11)
    assert shuffled == first_labels(11, threads=1) and shuffled != first_labels(12)
    assert sorted(shuffled[:-1]) == sorted(plain[:-1]) and shuffled[:-1] != plain[:-1]   # whole batches permuted
    assert shuffled[-1] == plain[-1] and len(shuffled[-1]) == 3                           # partial batch last


def test_raw_async_errors(tmp_path):
    path = str(tmp_path / "train.bin")
    write_async(path, 4, [2], True, False)
    multi = Input(label_dim=1, label_name="label", dense_dim=2, dense_name="dense",
                  data_reader_sparse_param_array=[DataReaderSparseParam("s0", 2, True, 1)])
    with pytest.raises(ValueError, match=r"multi_hot_reader=False\) reads one key per slot"):
        reader_for(DataReaderType_t.RawAsync, path, multi, 2, **async_params(multi_hot=False))
    with pytest.raises(ValueError, match=r"train\.bin' has 80 bytes, not a multiple of the 28-byte sample"):
        reader_for(DataReaderType_t.RawAsync, path, multi, 2, i64=True, **async_params())


# -- through the Model -----------------------------------------------------------------------------
def test_model_builds_raw_readers_with_num_samples_and_eval_num_samples(tmp_path):
    generate_raw(tmp_path, float_label_dense=True, label_dim=1)
    solver = hugectr.CreateSolver(batchsize=16, batchsize_eval=8, vvgpu=[[0]], repeat_dataset=False, seed=1)
    reader = hugectr.DataReaderParams(data_reader_type=DataReaderType_t.Raw, source=[str(tmp_path / "raw" /
                                                                                         "train.bin")],
                                      eval_source=str(tmp_path / "raw" / "val.bin"), check_type=Check_t.Non,
                                      num_samples=50, eval_num_samples=20, float_label_dense=True, num_workers=2)
    model = hugectr.Model(solver, reader, hugectr.CreateOptimizer())
    model.add(input_for([3], dense_dim=4))
    model.add(hugectr.DenseLayer(layer_type=hugectr.Layer_t.InnerProduct, bottom_names=["dense"],
                                 top_names=["fc"], num_output=1))
    model.add(hugectr.DenseLayer(layer_type=hugectr.Layer_t.BinaryCrossEntropyLoss, bottom_names=["fc", "label"],
                                 top_names=["loss"]))
    model.compile()
    assert sum(b.size for b in drain(model.get_data_reader_train())) == 50
    assert sum(b.size for b in drain(model.get_data_reader_eval())) == 20


def test_model_gives_raw_async_threads_num_batches_per_thread_batches_ahead(tmp_path):
    path = tmp_path / "async.bin"
    write_async(path, 12, [2], dense_float=True, i64=False)
    solver = hugectr.CreateSolver(batchsize=4, batchsize_eval=4, vvgpu=[[0]], repeat_dataset=False, seed=1)
    reader = hugectr.DataReaderParams(data_reader_type=DataReaderType_t.RawAsync, source=[str(path)],
                                      eval_source=str(path), check_type=Check_t.Non, num_samples=12,
                                      eval_num_samples=12, **async_params(threads=3, dense_float=True))
    model = hugectr.Model(solver, reader, hugectr.CreateOptimizer())
    model.add(hugectr.Input(label_dim=1, label_name="label", dense_dim=2, dense_name="dense",
                            data_reader_sparse_param_array=[DataReaderSparseParam("keys", [2], True, 1)]))
    model.add(hugectr.DenseLayer(layer_type=hugectr.Layer_t.InnerProduct, bottom_names=["dense"],
                                 top_names=["fc"], num_output=1))
    model.add(hugectr.DenseLayer(layer_type=hugectr.Layer_t.BinaryCrossEntropyLoss, bottom_names=["fc", "label"],
                                 top_names=["loss"]))
    model.compile()
    train = model.get_data_reader_train()
    assert train.num_workers == 3 and train.prefetch == 3 * 4          # AsyncParam(num_batches_per_thread=4)
    assert sum(b.size for b in drain(train)) == 12
