"""ParquetSource against files written with pyarrow here (not by our generator)."""

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hugectr import DataReaderSparseParam, Input
from hugectr.data.parquet import ParquetSource
from hugectr.data.chunks import Chunk


def write_set(folder, tables, metadata, rows_in_stats=None):
    """tables -> folder/part_<k>.parquet, _metadata.json (with file_stats), list.txt; returns the list path."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, table in enumerate(tables):
        paths.append(str(folder / f"part_{k}.parquet"))
        pq.write_table(table, paths[-1])
    stats = [{"file_name": os.path.basename(p), "num_rows": (rows_in_stats or {}).get(k, t.num_rows)}
             for k, (p, t) in enumerate(zip(paths, tables))]
    (folder / "_metadata.json").write_text(json.dumps({"file_stats": stats, **metadata}))
    (folder / "list.txt").write_text(f"{len(paths)}\n" + "\n".join(paths) + "\n")
    return str(folder / "list.txt")


def cols(*pairs):
    return [{"col_name": name, "index": index} for name, index in pairs]


def make_input(label_dim, dense_dim, params):
    return Input(label_dim=label_dim, label_name="label", dense_dim=dense_dim, dense_name="dense",
                 data_reader_sparse_param_array=params)


def read_all(source, rows=1000):
    return Chunk.concat([chunk for k in range(len(source.files)) for chunk in source.read_file(k, rows)])


def bags(keys):
    """Bags -> nested python lists [sample][slot] (the independent reference's shape)."""
    offsets = keys.bag_offsets()
    flat = [keys.values[offsets[i]:offsets[i + 1]].tolist() for i in range(len(offsets) - 1)]
    return [flat[i:i + keys.slots] for i in range(0, len(flat), keys.slots)]


SHUFFLED = {"labels": cols(("label", 2)), "conts": cols(("I1", 4), ("I2", 1)), "cats": cols(("C1", 3), ("C2", 0))}


def shuffled_table(key_type=pa.int32()):
    multi = [[5, 6], [], [7], [8, 9, 10]]
    return pa.table({"C2": pa.array([0, 1, 2, 3], key_type), "I2": pa.array([0.5, 1.5, 2.5, 3.5], pa.float32()),
                     "label": pa.array([1.0, 0.0, 1.0, 0.0], pa.float32()),
                     "C1": pa.array(multi, pa.list_(key_type)), "I1": pa.array([10, 11, 12, 13], pa.float32()),
                     "unlisted": pa.array([9.0] * 4, pa.float64())})


def test_columns_follow_ascending_index_order_not_metadata_order(tmp_path):
    source = ParquetSource.from_file_list(
        write_set(tmp_path, [shuffled_table()], SHUFFLED),
        make_input(1, 2, [DataReaderSparseParam("one", 1, True, 1), DataReaderSparseParam("multi", 3, False, 1)]),
        [], False)
    chunk = read_all(source)
    np.testing.assert_array_equal(chunk.label[:, 0], [1, 0, 1, 0])
    # conts: index 1 (I2) before index 4 (I1), although _metadata.json lists I1 first
    np.testing.assert_array_equal(chunk.dense, [[0.5, 10], [1.5, 11], [2.5, 12], [3.5, 13]])
    # cats: index 0 (C2) goes to the first param, index 3 (C1, multi-hot with an empty list) to the second
    assert bags(chunk.sparse[0]) == [[[0]], [[1]], [[2]], [[3]]]
    assert bags(chunk.sparse[1]) == [[[5, 6]], [[]], [[7]], [[8, 9, 10]]]
    assert chunk.label.dtype == chunk.dense.dtype == np.float32 and chunk.sparse[1].values.dtype == np.int64


def test_multi_hot_slots_with_empty_lists_and_slot_size_offsets(tmp_path):
    rng = np.random.default_rng(0)
    rows, sizes = 50, [7, 11, 13]
    a = [list(rng.integers(0, 7, rng.integers(0, 4))) for _ in range(rows)]   # multi-hot, some empty
    b = list(rng.integers(0, 11, rows))                                        # one-hot
    c = [list(rng.integers(0, 13, rng.integers(0, 3))) for _ in range(rows)]  # multi-hot, some empty
    table = pa.table({"label": pa.array(rng.random(rows), pa.float32()),
                      "a": pa.array(a, pa.list_(pa.int64())), "b": pa.array(b, pa.int64()),
                      "c": pa.array(c, pa.list_(pa.int64()))})
    meta = {"labels": cols(("label", 0)), "conts": [], "cats": cols(("a", 1), ("b", 2), ("c", 3))}
    params = [DataReaderSparseParam("first", 1, True, 1), DataReaderSparseParam("pair", [3, 2], False, 2)]
    source = ParquetSource(write_list_files(tmp_path, table, meta), make_input(1, 0, params), sizes, True)
    chunk = read_all(source, rows=16)  # several record batches per file
    assert chunk.dense.shape == (rows, 0)
    assert bags(chunk.sparse[0]) == [[[int(k) for k in bag]] for bag in a]
    expected = [[[int(k) + 7 for k in [b[i]]], [int(k) + 18 for k in c[i]]] for i in range(rows)]
    assert bags(chunk.sparse[1]) == expected


def write_list_files(folder, table, meta):
    from hugectr.data.file_list import read_file_list

    return read_file_list(write_set(folder, [table], meta))


@pytest.mark.parametrize("key_type, i64", [(pa.int32(), False), (pa.uint32(), False), (pa.int64(), True),
                                           (pa.uint64(), True)])
def test_accepted_key_widths(tmp_path, key_type, i64):
    source = ParquetSource.from_file_list(
        write_set(tmp_path, [shuffled_table(key_type)], SHUFFLED),
        make_input(1, 2, [DataReaderSparseParam("one", 1, True, 1), DataReaderSparseParam("m", 3, False, 1)]),
        [100, 1000], i64)
    chunk = read_all(source)
    assert chunk.sparse[0].values.tolist() == [0, 1, 2, 3] and chunk.sparse[0].hotness == 1
    assert chunk.sparse[1].values.tolist() == [105, 106, 107, 108, 109, 110]


@pytest.mark.parametrize("key_type, i64", [(pa.int64(), False), (pa.int32(), True), (pa.float32(), False)])
def test_key_type_error_names_file_column_types_and_fix(tmp_path, key_type, i64):
    listing = write_set(tmp_path, [shuffled_table(key_type)], SHUFFLED)
    with pytest.raises(ValueError) as error:
        ParquetSource.from_file_list(
            listing, make_input(1, 2, [DataReaderSparseParam("one", 1, True, 1),
                                       DataReaderSparseParam("m", 3, False, 1)]), [], i64)
    message = str(error.value)
    assert message.startswith("Parquet key type error") and "part_0.parquet" in message
    assert "column 0 ('C2')" in message and str(key_type) in message and f"i64_input_key={i64}" in message
    assert "CreateSolver(i64_input_key=" in message


def test_fixed_width_list_float_columns_count_toward_dense_dim(tmp_path):
    table = pa.table({"label": pa.array([0.0, 1.0], pa.float32()),
                      "vec": pa.array([[1, 2, 3], [4, 5, 6]], pa.list_(pa.float32())),
                      "x": pa.array([7, 8], pa.float32()), "k": pa.array([1, 2], pa.int64())})
    meta = {"labels": cols(("label", 0)), "conts": cols(("vec", 1), ("x", 2)), "cats": cols(("k", 3))}
    source = ParquetSource.from_file_list(write_set(tmp_path, [table], meta),
                                          make_input(1, 4, [DataReaderSparseParam("k", 1, True, 1)]), [], True)
    np.testing.assert_array_equal(read_all(source).dense, [[1, 2, 3, 7], [4, 5, 6, 8]])


def simple_table(rows=3, dense=pa.float32()):
    return pa.table({"label": pa.array(np.zeros(rows), pa.float32()), "d": pa.array(np.ones(rows), dense),
                     "k": pa.array(np.arange(rows), pa.int64())})


SIMPLE = {"labels": cols(("label", 0)), "conts": cols(("d", 1)), "cats": cols(("k", 2))}
ONE_SLOT = [DataReaderSparseParam("k", 1, True, 1)]


@pytest.mark.parametrize("label_dim, dense_dim, params, expect", [
    (2, 1, ONE_SLOT, "labels .* give 1 values per sample .* label_dim=2"),
    (1, 3, ONE_SLOT, "conts .* give 1 values per sample .* dense_dim=3"),
    (1, 1, [DataReaderSparseParam("k", 1, True, 2)], "lists 1 cats but the model's Input has 2 slots"),
])
def test_counts_that_disagree_with_the_input_name_both(tmp_path, label_dim, dense_dim, params, expect):
    listing = write_set(tmp_path, [simple_table()], SIMPLE)
    with pytest.raises(ValueError, match=expect):
        ParquetSource.from_file_list(listing, make_input(label_dim, dense_dim, params), [], True)


def test_slot_size_array_length_must_match_the_cats(tmp_path):
    with pytest.raises(ValueError, match="slot_size_array has 2 entries but .* lists 1 cats"):
        ParquetSource.from_file_list(write_set(tmp_path, [simple_table()], SIMPLE), make_input(1, 1, ONE_SLOT),
                                     [5, 6], True)


def test_missing_metadata_names_where_it_was_looked_for(tmp_path):
    listing = write_set(tmp_path / "data", [simple_table()], SIMPLE)
    os.remove(tmp_path / "data" / "_metadata.json")
    with pytest.raises(ValueError, match=r"data/_metadata.json' not found .*folder of the first listed data file"):
        ParquetSource.from_file_list(listing, make_input(1, 1, ONE_SLOT), [], True)


def test_metadata_naming_absent_columns(tmp_path):
    meta = {**SIMPLE, "cats": cols(("k", 2), ("ghost", 9))}
    listing = write_set(tmp_path, [simple_table()], meta)
    with pytest.raises(ValueError, match=r"names columns absent from .*part_0.parquet.*3 columns.*cats 'ghost' "
                                         r"\(index 9\)"):
        ParquetSource.from_file_list(listing, make_input(1, 1, [DataReaderSparseParam("k", 1, True, 2)]), [], True)


def test_metadata_without_a_group_is_refused(tmp_path):
    listing = write_set(tmp_path, [simple_table()], {"labels": SIMPLE["labels"], "cats": SIMPLE["cats"]})
    with pytest.raises(ValueError, match=r"missing key\(s\) \['conts'\]"):
        ParquetSource.from_file_list(listing, make_input(1, 1, ONE_SLOT), [], True)


def test_num_rows_must_match_the_file(tmp_path):
    source = ParquetSource.from_file_list(write_set(tmp_path, [simple_table()], SIMPLE, rows_in_stats={0: 5}),
                                          make_input(1, 1, ONE_SLOT), [], True)
    with pytest.raises(ValueError, match="holds 3 rows but .* says num_rows=5"):
        read_all(source)


def test_nulls_are_refused(tmp_path):
    table = simple_table().set_column(2, "k", pa.array([1, None, 3], pa.int64()))
    source = ParquetSource.from_file_list(write_set(tmp_path, [table], SIMPLE), make_input(1, 1, ONE_SLOT), [], True)
    with pytest.raises(ValueError, match="part_0.parquet' row 1, column 2 holds nulls"):
        read_all(source)


def test_chunks_converted_in_parallel_come_back_in_row_order(tmp_path, monkeypatch):
    """Reads of 1800 rows (6 chunks of 300) converted on the pool while the next read decodes."""
    import hugectr.data.parquet as parquet

    monkeypatch.setattr(parquet, "_READ_ROWS", 2000)
    rows = 7000
    table = pa.table({"label": pa.array(np.arange(rows), pa.float32()), "d": pa.array(np.ones(rows), pa.float32()),
                      "k": pa.array(np.arange(rows) % 5, pa.int64())})
    source = ParquetSource.from_file_list(write_set(tmp_path / "d", [table], SIMPLE), make_input(1, 1, ONE_SLOT),
                                          [5], True)
    chunks = list(source.read_file(0, 300))
    assert [c.rows for c in chunks] == [300] * 23 + [100]                   # reads of 1800, 1800, 1800, 1600
    assert np.array_equal(np.concatenate([c.label[:, 0] for c in chunks]), np.arange(rows))
    assert np.array_equal(np.concatenate([c.sparse[0].values for c in chunks]), np.arange(rows) % 5)


def test_a_null_inside_a_multi_hot_list_names_its_row(tmp_path):
    keys = pa.array([[1], [], [2, None], [3]], pa.list_(pa.int64()))
    table = pa.table({"label": pa.array(np.zeros(4), pa.float32()), "d": pa.array(np.ones(4), pa.float32()), "k": keys})
    source = ParquetSource.from_file_list(write_set(tmp_path, [table], SIMPLE),
                                          make_input(1, 1, [DataReaderSparseParam("k", 2, False, 1)]), [], True)
    with pytest.raises(ValueError, match="part_0.parquet' row 2, column 2 holds nulls.*fill them"):
        read_all(source)


def test_float64_dense_is_refused_with_the_fix(tmp_path):
    listing = write_set(tmp_path, [simple_table(dense=pa.float64())], SIMPLE)
    with pytest.raises(ValueError, match="column 1 .* has type double.*cast them to float32"):
        ParquetSource.from_file_list(listing, make_input(1, 1, ONE_SLOT), [], True)
