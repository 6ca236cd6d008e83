"""Checklist: every kind of bad input of issue 4, for every format it applies to, gives a clean message.

Each message names the file, the record (row, record, line or sample) where there is one, and the fix.
``CHECKLIST`` maps (case, format) to the test that covers it: a test in this file, a test elsewhere
in tests/ (checked to exist, so the list cannot rot), or why the case does not apply. The tests here
cover what the per-format test files left open, on data written by ``DataGenerator``.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import hugectr
from hugectr import Check_t, DataReaderType_t
from hugectr.data.norm import NormDataWarning
from hugectr.data.reader import DataReader, SourceOptions
from hugectr.tools import DataGenerator, DataGeneratorParams

FORMATS = ("Norm", "Raw", "RawAsync", "Parquet")
CASES = ("missing file", "missing file list", "empty file", "truncated file", "header: label/dense/slot counts",
         "header: key width", "checksum mismatch", "_metadata.json names absent columns",
         "keys outside slot_size_array", "fewer files than workers", "nulls", "corrupt bytes (fuzz)")
HERE = "here"
NA_RAW_LIST = "n/a: Raw and RawAsync read one binary file, not a file list"
NA_NO_SLOT_SIZES = ("n/a: only the Parquet reader takes slot_size_array (HugeCTR); an embedding table that "
                    "outgrows its slot_size_array capacity raises: tests/embedding/test_hash_table_fixed_size.py::"
                    "test_overflow_is_raised_by_the_next_call_and_changes_nothing")
NA_NO_HEADER = "n/a: no header; a layout that disagrees shows as a size that does not fit (see 'truncated file')"
CHECKLIST = {
    ("missing file", "Norm"): "tests/data/test_norm.py::test_missing_file_and_fewer_files_than_workers",
    ("missing file", "Raw"): HERE, ("missing file", "RawAsync"): HERE, ("missing file", "Parquet"): HERE,
    ("missing file list", "Norm"): "tests/data/test_file_list.py::test_missing_list_names_it",
    ("missing file list", "Parquet"): "tests/data/test_file_list.py::test_missing_list_names_it",
    ("missing file list", "Raw"): NA_RAW_LIST, ("missing file list", "RawAsync"): NA_RAW_LIST,
    ("empty file", "Norm"): HERE, ("empty file", "Raw"): HERE, ("empty file", "RawAsync"): HERE,
    ("empty file", "Parquet"): HERE,
    ("truncated file", "Norm"): HERE, ("truncated file", "Raw"): HERE, ("truncated file", "RawAsync"): HERE,
    ("truncated file", "Parquet"): HERE,
    ("header: label/dense/slot counts", "Norm"):
        "tests/data/test_norm.py::test_header_counts_are_checked_against_the_input",
    ("header: label/dense/slot counts", "Parquet"):
        "tests/data/test_parquet.py::test_counts_that_disagree_with_the_input_name_both",
    ("header: label/dense/slot counts", "Raw"): NA_NO_HEADER,
    ("header: label/dense/slot counts", "RawAsync"): NA_NO_HEADER,
    ("header: key width", "Norm"): "tests/data/test_norm.py::test_check_type_and_key_width_mismatches_name_the_fix",
    ("header: key width", "Parquet"): "tests/data/test_parquet.py::test_key_type_error_names_file_column_types_and_fix",
    ("header: key width", "Raw"):
        "tests/data/test_raw.py::test_raw_errors_for_hugectrs_i64_output_missing_empty_and_file_lists",
    ("header: key width", "RawAsync"): "tests/data/test_raw.py::test_raw_async_errors",
    ("checksum mismatch", "Norm"): "tests/data/test_norm.py::test_a_bad_checksum_skips_the_record_counts_it_and_warns",
    ("checksum mismatch", "Raw"): "n/a: Raw has no checksums (HugeCTR forces Check_t.Non)",
    ("checksum mismatch", "RawAsync"): "n/a: RawAsync has no checksums",
    ("checksum mismatch", "Parquet"): "n/a: no per-record checksum (Check_t has no effect); damaged pages: fuzz",
    ("_metadata.json names absent columns", "Parquet"):
        "tests/data/test_parquet.py::test_metadata_naming_absent_columns",
    ("_metadata.json names absent columns", "Norm"): "n/a: no _metadata.json",
    ("_metadata.json names absent columns", "Raw"): "n/a: no _metadata.json",
    ("_metadata.json names absent columns", "RawAsync"): "n/a: no _metadata.json",
    ("keys outside slot_size_array", "Parquet"): HERE,
    ("keys outside slot_size_array", "Norm"): NA_NO_SLOT_SIZES,
    ("keys outside slot_size_array", "Raw"): NA_NO_SLOT_SIZES,
    ("keys outside slot_size_array", "RawAsync"): NA_NO_SLOT_SIZES,
    ("fewer files than workers", "Norm"): HERE, ("fewer files than workers", "Parquet"): HERE,
    ("fewer files than workers", "Raw"): "tests/data/test_raw.py::test_raw_lanes_keep_file_order_with_several_workers",
    ("fewer files than workers", "RawAsync"):
        "tests/data/test_fuzz.py::test_undamaged_files_read_completely_with_more_workers_than_files",
    ("nulls", "Parquet"): "tests/data/test_parquet.py::test_nulls_are_refused",
    ("nulls", "Norm"): "n/a: binary format without nulls", ("nulls", "Raw"): "n/a: binary format without nulls",
    ("nulls", "RawAsync"): "n/a: binary format without nulls",
    **{("corrupt bytes (fuzz)", kind):
       "tests/data/test_fuzz.py::test_damaged_files_give_clean_errors_or_skipped_samples" for kind in FORMATS},
}
FIXES = re.compile(r"\b(set|regenerate|re-copy|fix|make|fill|give|cast|re-map|split|pass|add|put)\b", re.I)


def test_the_checklist_covers_every_case_and_format_and_its_tests_exist():
    assert set(CHECKLIST) == {(case, kind) for case in CASES for kind in FORMATS}
    here = {name for name, value in globals().items() if name.startswith("test_") and callable(value)}
    tests_dir = Path(__file__).resolve().parents[1]
    for (case, kind), where in CHECKLIST.items():
        if where == HERE:
            slug = re.sub(r"[^a-z]+", "_", case.lower()).strip("_")
            assert any(slug in name for name in here), f"{case} / {kind}: no test here named after '{slug}'"
            continue
        for reference in re.findall(r"tests/[\w/]+\.py::\w+", where):
            path, name = reference.split("::")
            text = (tests_dir.parent / path).read_text()
            assert re.search(rf"^def {name}\(", text, re.M), f"{case} / {kind}: {reference} does not exist"
        assert where.startswith(("tests/", "n/a")), f"{case} / {kind}: {where!r}"


# -- data -------------------------------------------------------------------------------------------------------
SLOTS = [5, 7]


def generate(folder: Path, kind: str, samples: int = 20, files: int = 2) -> tuple[str, str]:
    """A valid dataset of ``kind`` (RawAsync: Raw data, int dense); (source, first data file)."""
    raw = kind in ("Raw", "RawAsync")
    params = DataGeneratorParams(
        getattr(DataReaderType_t, "Raw" if raw else kind), 1, 3, len(SLOTS), False,
        str(folder / ("train.bin" if raw else "list.txt")), str(folder / ("test.bin" if raw else "test.txt")), SLOTS,
        num_files=files, eval_num_files=1, num_samples_per_file=samples, num_samples=samples, eval_num_samples=samples,
        dist_type=hugectr.Distribution_t.Uniform, seed=1)
    DataGenerator(params).generate()
    first = params.source if raw else open(params.source).read().split()[1]
    return params.source, first


def read(kind: str, source: str, *, workers: int = 1, slot_size_array=(), num_samples: int = 20) -> int:
    """Samples read from ``source`` in epoch mode (errors propagate)."""
    params = hugectr.DataReaderParams(
        data_reader_type=getattr(DataReaderType_t, kind), source=[source], eval_source=source,
        check_type=Check_t.Sum if kind == "Norm" else Check_t.Non, slot_size_array=list(slot_size_array),
        async_param=hugectr.AsyncParam(num_threads=workers, num_batches_per_thread=1, shuffle=False,
                                       is_dense_float=False))
    model_input = hugectr.Input(label_dim=1, label_name="label", dense_dim=3, dense_name="dense",
                                data_reader_sparse_param_array=[hugectr.DataReaderSparseParam("k", 1, True, 2)])
    total = 0
    with DataReader(params, model_input, 8, source, repeat=False, i64_input_key=False, num_workers=workers,
                    source_options=SourceOptions(num_samples=num_samples)) as reader:
        while (batch := reader.next_batch()) is not None:
            total += batch.size
    return total


def assert_clean(message: str, path: str, record: str | None) -> None:
    """``message`` names ``path``, the ``record`` (a regex) when given, and a fix."""
    assert path in message, f"the file is not named: {message}"
    if record is not None:
        assert re.search(record, message), f"the record ({record}) is not named: {message}"
    assert FIXES.search(message), f"no fix is named: {message}"


# -- missing, empty, truncated --------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["Raw", "RawAsync", "Parquet"])
def test_missing_file(tmp_path, kind):
    source, first = generate(tmp_path, kind)
    os.remove(first)
    with pytest.raises(ValueError) as caught:
        read(kind, source)
    assert_clean(str(caught.value), first, r"line 2" if kind == "Parquet" else None)


@pytest.mark.parametrize("kind", FORMATS)
def test_empty_file(tmp_path, kind):
    source, first = generate(tmp_path, kind)
    open(first, "wb").close()
    with pytest.raises(ValueError) as caught:
        read(kind, source)
    assert_clean(str(caught.value), first, None)


@pytest.mark.parametrize("kind, record", [
    ("Raw", r"record 13 \(0-based\) is cut off after 16 of its 24 bytes"),
    ("RawAsync", r"record 13 \(0-based\) is cut off after 16 of its 24 bytes"),
    ("Parquet", None),                    # the footer is gone: no record can be named
])
def test_truncated_file_is_an_error(tmp_path, kind, record):
    source, first = generate(tmp_path, kind)
    data = Path(first).read_bytes()
    Path(first).write_bytes(data[:328])   # 20 samples of 24 bytes: 13 whole, 16 bytes of the 14th
    with pytest.raises(ValueError) as caught:
        read(kind, source, num_samples=20)
    assert_clean(str(caught.value), first, record)


def test_truncated_file_norm_keeps_the_whole_records_and_warns(tmp_path):
    source, first = generate(tmp_path, "Norm")
    data = Path(first).read_bytes()
    Path(first).write_bytes(data[:len(data) - 30])
    with pytest.warns(NormDataWarning) as caught:
        assert read("Norm", source) == 20 + 19
    assert_clean(str(caught[0].message), first, r"record 19 is cut off")


# -- keys outside slot_size_array (Parquet) -------------------------------------------------------------------
def write_parquet(folder: Path, keys: pa.Array) -> tuple[str, str]:
    """One file: label, 3 dense, the cat column ``keys`` (slot 0) and a valid slot 1; (list, file)."""
    rows = len(keys)
    table = pa.table({"label0": pa.array([1.0] * rows, pa.float32()),
                      **{f"C{i}": pa.array([0.5] * rows, pa.float32()) for i in (1, 2, 3)},
                      "C4": keys, "C5": pa.array([1] * rows, keys.type if not pa.types.is_list(keys.type)
                                                  else keys.type.value_type)})
    folder.mkdir(parents=True, exist_ok=True)
    path = str(folder / "part.parquet")
    pq.write_table(table, path)
    columns = [{"col_name": name, "index": i} for i, name in enumerate(table.column_names)]
    (folder / "_metadata.json").write_text(__import__("json").dumps({
        "file_stats": [{"file_name": "part.parquet", "num_rows": rows}], "labels": columns[:1],
        "conts": columns[1:4], "cats": columns[4:]}))
    (folder / "list.txt").write_text(f"1\n{path}\n")
    return str(folder / "list.txt"), path


@pytest.mark.parametrize("keys, row, key", [
    (pa.array(list(range(20)), pa.uint32()), 5, 5),                              # one-hot, too large
    (pa.array([1, 2, 3, -1, 4], pa.int32()), 3, -1),                             # one-hot, negative
    (pa.array([[1], [], [2, 3], [4, 9], [0]], pa.list_(pa.uint32())), 3, 9),     # multi-hot, empty bag before
])
def test_keys_outside_slot_size_array_name_the_row_the_key_and_the_fix(tmp_path, keys, row, key):
    source, path = write_parquet(tmp_path, keys)
    with pytest.raises(ValueError, match=rf"row {row}, column 4 \('C4', cat 0\): key {key} is outside \[0, 5\) = "
                                         r"\[0, slot_size_array\[0\]\)") as caught:
        read("Parquet", source, slot_size_array=[5, 7])
    assert_clean(str(caught.value), path, None)


def test_keys_outside_slot_size_array_of_a_later_chunk_name_the_row_in_the_file(tmp_path):
    keys = pa.array([0] * 70000 + [5] + [0] * 10, pa.uint32())     # past the first 65536-row read
    source, _ = write_parquet(tmp_path, keys)
    with pytest.raises(ValueError, match=r"row 70000, column 4"):
        read("Parquet", source, slot_size_array=[5, 7])


def test_keys_inside_slot_size_array_or_no_array_read_cleanly(tmp_path):
    source, _ = write_parquet(tmp_path, pa.array(list(range(20)), pa.uint32()))
    assert read("Parquet", source, slot_size_array=[20, 2]) == 20
    assert read("Parquet", source) == 20                              # no slot_size_array: keys are not checked


# -- fewer files than workers ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["Norm", "Parquet"])
def test_fewer_files_than_workers_reads_everything_once(tmp_path, kind):
    """8 workers, 2 files: one worker per file reads, nothing is read twice, nothing hangs."""
    source, _ = generate(tmp_path, kind, samples=12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                     # no stray warnings from the idle workers either
        assert read(kind, source, workers=8) == 24
