"""DataReader: exact batches from a stream over the file list, epoch / repeat modes, workers, errors."""

import gc
import json
import os
import threading

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from hugectr import Check_t, DataReaderParams, DataReaderSparseParam, DataReaderType_t, Input
from hugectr.data.reader import DataReader, parquet_worker_count

META = {"labels": [{"col_name": "label", "index": 0}], "conts": [{"col_name": "id", "index": 1}],
        "cats": [{"col_name": "k", "index": 2}, {"col_name": "m", "index": 3}]}
INPUT = Input(label_dim=1, label_name="label", dense_dim=1, dense_name="dense",
              data_reader_sparse_param_array=[DataReaderSparseParam("one", 1, True, 1),
                                              DataReaderSparseParam("multi", 2, False, 1)])


def table_for(ids, key_type=pa.int64()):
    """Every column derives from the sample id, so a batch can be checked against its ids alone."""
    ids = np.asarray(ids)
    return pa.table({"label": pa.array(ids % 2, pa.float32()), "id": pa.array(ids, pa.float32()),
                     "k": pa.array(ids * 10, key_type), "m": pa.array([[i] * (i % 3) for i in ids.tolist()],
                                                                      pa.list_(key_type))})


def write_files(folder, sizes, start=0, name="list.txt", broken=()):
    """Files of consecutive ids with the given row counts; indices in ``broken`` get garbage bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    paths, stats, first = [], [], start
    for k, rows in enumerate(sizes):
        path = folder / f"{name}_{k}.parquet"
        if k in broken:
            path.write_bytes(b"not a parquet file")
        else:
            pq.write_table(table_for(range(first, first + rows)), path)
        paths.append(str(path))
        stats.append({"file_name": path.name, "num_rows": rows})
        first += rows
    (folder / "_metadata.json").write_text(json.dumps({"file_stats": stats, **META}))
    (folder / name).write_text(f"{len(paths)}\n" + "\n".join(paths) + "\n")
    return str(folder / name)


def reader(source, batch_size, repeat=False, **options):
    params = DataReaderParams(data_reader_type=DataReaderType_t.Parquet, source=[source], eval_source=source,
                              check_type=Check_t.Non)
    return DataReader(params, INPUT, batch_size, source, repeat=repeat, i64_input_key=True, **options)


def check_batch(batch, ids):
    """The batch holds exactly these samples, in this order (independent per-sample reference)."""
    assert batch.size == len(ids)
    assert batch.dense[:, 0].tolist() == [float(i) for i in ids]
    assert batch.label[:, 0].tolist() == [float(i % 2) for i in ids]
    one, multi = batch.sparse["one"], batch.sparse["multi"]
    assert one.values.tolist() == [i * 10 for i in ids] and one.hotness == 1
    assert multi.batch_size == len(ids) and multi.num_slots == 1
    bags = [multi.values[multi.offsets[b]:multi.offsets[b + 1]].tolist() for b in range(len(ids))]
    assert bags == [[i] * (i % 3) for i in ids]


def drain(data_reader):
    batches = []
    while (batch := data_reader.next_batch()) is not None:
        batches.append(batch)
    return batches


def test_epoch_mode_batches_span_files_and_the_last_is_partial(tmp_path):
    with reader(write_files(tmp_path, [5, 7, 5]), 4) as data:
        batches = drain(data)
        assert [b.size for b in batches] == [4, 4, 4, 4, 1]
        for n, batch in enumerate(batches):
            check_batch(batch, list(range(4 * n, min(4 * n + 4, 17))))
        assert data.is_eof() and data.next_batch() is None and data.is_eof()


def test_set_source_restarts_the_same_or_a_new_file_list(tmp_path):
    first = write_files(tmp_path / "a", [6])
    second = write_files(tmp_path / "b", [3], start=100)
    with reader(first, 4) as data:
        assert [b.size for b in drain(data)] == [4, 2] and data.is_eof()
        data.set_source()          # "" = the same list again
        assert not data.is_eof()
        check_batch(data.next_batch(), [0, 1, 2, 3])
        data.set_source(second)
        batches = drain(data)
        assert len(batches) == 1
        check_batch(batches[0], [100, 101, 102])


def test_repeat_mode_wraps_around_the_file_list(tmp_path):
    with reader(write_files(tmp_path, [5, 7, 5]), 4, repeat=True) as data:
        for n in range(12):  # 48 samples from 17: wraps twice, a batch straddles the wrap
            check_batch(data.next_batch(), [(4 * n + j) % 17 for j in range(4)])
        assert not data.is_eof()


def test_two_workers_own_whole_files_and_batches_alternate(tmp_path):
    sizes = [6, 3, 5, 2]  # worker 0: files 0 and 2 (ids 0-5, 9-13); worker 1: files 1 and 3 (ids 6-8, 14-15)
    worker_ids = [list(range(0, 6)) + list(range(9, 14)), list(range(6, 9)) + list(range(14, 16))]
    per_worker = [[ids[i:i + 3] for i in range(0, len(ids), 3)] for ids in worker_ids]
    expected = []  # round-robin over the workers, skipping one that has finished
    while any(per_worker):
        for queue in per_worker:
            if queue:
                expected.append(queue.pop(0))
    with reader(write_files(tmp_path, sizes), 3, num_workers=2) as data:
        batches = drain(data)
        assert [b.size for b in batches] == [len(ids) for ids in expected]
        for batch, ids in zip(batches, expected):
            check_batch(batch, ids)


def test_worker_count_follows_hugectr_for_parquet(tmp_path):
    source = write_files(tmp_path, [1, 1, 1])
    assert parquet_worker_count(12, source, 1) == 1
    assert parquet_worker_count(12, source, 8) == 3
    assert parquet_worker_count(2, source, 8) == 2
    assert parquet_worker_count(12, source, 8, sequential=True) == 1      # read_file_sequentially=True


def test_a_worker_exception_reaches_the_caller_with_the_file_name(tmp_path):
    data = reader(write_files(tmp_path, [4, 4], broken={1}), 2)
    outcome = {}

    def consume():
        try:
            drain(data)
        except ValueError as error:
            outcome["error"] = error

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    thread.join(timeout=30)  # a hang would leave the thread running
    assert not thread.is_alive()
    assert "list.txt_1.parquet" in str(outcome["error"])
    with pytest.raises(ValueError, match="list.txt_1.parquet"):  # stays failed, never hangs
        data.next_batch()
    data.close()


def test_a_bad_key_type_in_a_later_file_is_reported_from_the_worker(tmp_path):
    source = write_files(tmp_path, [4, 4])
    pq.write_table(table_for(range(4, 8), pa.int32()), tmp_path / "list.txt_1.parquet")
    with reader(source, 4) as data:
        check_batch(data.next_batch(), [0, 1, 2, 3])
        with pytest.raises(ValueError, match="Parquet key type error: .*list.txt_1.parquet"):
            data.next_batch()


def test_close_and_garbage_collection_stop_the_threads(tmp_path):
    source = write_files(tmp_path, [8])
    data = reader(source, 2, repeat=True, prefetch=2)
    data.next_batch()
    threads = [worker.thread for worker in data._workers]
    data.close()
    assert not any(t.is_alive() for t in threads)
    data = reader(source, 2, repeat=True)
    data.next_batch()
    threads = [worker.thread for worker in data._workers]
    del data
    gc.collect()
    for thread in threads:
        thread.join(timeout=10)
    assert not any(t.is_alive() for t in threads)


def test_pin_memory_without_cuda_is_a_no_op(tmp_path):
    with reader(write_files(tmp_path, [3]), 3, pin_memory=True) as data:
        check_batch(data.next_batch(), [0, 1, 2])


def test_missing_file_in_the_list_is_reported_at_construction(tmp_path):
    source = write_files(tmp_path, [2, 2])
    os.remove(tmp_path / "list.txt_1.parquet")
    with pytest.raises(ValueError, match="line 3: data file .*list.txt_1.parquet' not found"):
        reader(source, 2)


def test_bags_concat_mixes_fixed_hotness_and_csr():
    from hugectr.data.chunks import Bags

    fixed = Bags(np.array([1, 2, 3, 4]), None, 2, 1)                       # 2 samples x 2 slots, one key each
    csr = Bags(np.array([5, 6, 7]), np.array([0, 2, 2, 3, 3]), 2)           # 2 samples x 2 slots, empty bags
    joined = Bags.concat([fixed, csr])
    assert joined.values.tolist() == [1, 2, 3, 4, 5, 6, 7]
    assert joined.bag_offsets().tolist() == [0, 1, 2, 3, 4, 6, 6, 7, 7] and joined.hotness is None
    assert Bags.concat([fixed, fixed]).offsets is None
    assert joined.slice(1, 3).values.tolist() == [3, 4, 5, 6]      # samples 1 and 2
    assert joined.slice(1, 3).offsets.tolist() == [0, 1, 2, 4, 4]


@pytest.mark.gpu
def test_pin_memory_pins_batches_for_the_device(tmp_path, device):
    with reader(write_files(tmp_path, [6]), 3, pin_memory=True) as data:
        batch = data.next_batch()
        assert batch.label.is_pinned() and batch.sparse["multi"].values.is_pinned()
        check_batch(batch.to(device, non_blocking=True).to("cpu"), [0, 1, 2])


@pytest.mark.parametrize("workers", [1, 2])
def test_batches_written_in_place_for_pinning_equal_the_copied_ones(tmp_path, monkeypatch, workers):
    """The pinned path (the source writes straight into pinned buffers; the batch keeps views of them)
    against the plain one, on a CPU stand-in for pinned memory: ``torch.empty`` ignores ``pin_memory`` and
    ``Tensor.pin_memory`` returns the tensor. Batches cross file boundaries (copied) and do not (views)."""
    source = write_files(tmp_path, [150, 70, 90])
    with reader(source, 64, num_workers=workers) as plain:
        expected = drain(plain)
    real_empty = torch.empty
    monkeypatch.setattr(torch, "empty", lambda *args, pin_memory=False, **kwargs: real_empty(*args, **kwargs))
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: self)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with reader(source, 64, num_workers=workers, pin_memory=True) as pinned:
        assert pinned.pin_memory
        got = drain(pinned)
    assert [b.size for b in got] == [b.size for b in expected]
    # Batches inside one file are views of the source's (pinned) buffers, not copies of them.
    assert any(batch.dense._base is not None for batch in got)
    assert all(batch.dense._base is None for batch in expected)
    for batch, reference in zip(got, expected):
        assert torch.equal(batch.label, reference.label) and torch.equal(batch.dense, reference.dense)
        for name in ("one", "multi"):
            assert torch.equal(batch.sparse[name].values, reference.sparse[name].values)
            assert torch.equal(batch.sparse[name].offsets, reference.sparse[name].offsets)
