"""Norm: HugeCTR's generator layout, reader round trips, Check_t.Sum framing, header checks, bad files.

Every check goes through an independent reference written here with ``struct`` (one sample at a time).
"""

import os
import struct
import threading

import numpy as np
import pytest

from hugectr import Check_t, DataReaderParams, DataReaderSparseParam, DataReaderType_t, Distribution_t, Input
from hugectr.data.norm import NormDataWarning, NormSource, NormWriter
from hugectr.data.norm_records import NormLayout
from hugectr.data.reader import DataReader
from hugectr.tools import DataGenerator, DataGeneratorParams


@pytest.fixture(autouse=True)
def quiet(monkeypatch):
    monkeypatch.setenv("HUGECTR_LOG_LEVEL", "0")


# -- independent reference: struct, one sample at a time ------------------------------------------
def ref_encode(samples, checksum, key_format, label_dim, dense_dim):
    """Bytes of a Norm file: samples are (floats, [keys of slot 0, keys of slot 1, ...])."""
    def record(payload):
        return struct.pack("<i", len(payload)) + payload + struct.pack("<B", sum(payload) % 256) if checksum \
            else payload
    slots = len(samples[0][1]) if samples else 0
    out = record(struct.pack("<8q", int(checksum), len(samples), label_dim, dense_dim, slots, 0, 0, 0))
    for floats, bags in samples:
        payload = struct.pack(f"<{len(floats)}f", *floats)
        for keys in bags:
            payload += struct.pack("<i", len(keys)) + struct.pack(f"<{len(keys)}{key_format}", *keys)
        out += record(payload)
    return out


def ref_decode(data, checksum, key_format, floats, slots):
    """(header fields, [(floats, bags, checksum ok)]) of a Norm file's bytes."""
    size = struct.calcsize(key_format)
    position, records = 0, []

    def take(count, fmt):
        nonlocal position
        values = struct.unpack_from(f"<{count}{fmt}", data, position)
        position += count * struct.calcsize(fmt)
        return values

    def frame(read_payload):
        start = position + 4 if checksum else position
        if checksum:
            take(1, "i")
        result = read_payload()
        ok = True
        if checksum:
            ok = sum(data[start:position]) % 256 == take(1, "B")[0]
        return result, ok

    (header, ok) = frame(lambda: take(8, "q"))
    assert ok
    for _ in range(header[1]):
        def payload():
            values = take(floats, "f")
            return values, [list(take(take(1, "i")[0], key_format)) for _ in range(slots)]
        (values, bags), ok = frame(payload)
        records.append((values, bags, ok))
    assert position == len(data) and size in (4, 8)
    return header, records


def input_for(groups, label_dim=1, dense_dim=2, nnz=1):
    params = [DataReaderSparseParam(f"s{i}", nnz, nnz == 1, slots) for i, slots in enumerate(groups)]
    return Input(label_dim=label_dim, label_name="label", dense_dim=dense_dim, dense_name="dense",
                 data_reader_sparse_param_array=params)


def norm_reader(file_list, input, batch_size, check_type=Check_t.Sum, i64=True, **options):
    params = DataReaderParams(data_reader_type=DataReaderType_t.Norm, source=[file_list], eval_source=file_list,
                              check_type=check_type)
    return DataReader(params, input, batch_size, file_list, repeat=False, i64_input_key=i64, **options)


def drain(reader):
    batches = []
    while (batch := reader.next_batch()) is not None:
        batches.append(batch)
    reader.close()
    return batches


def flat_samples(batches, names):
    """[(floats, [bags...])] of every sample of the batches, bags over the sparse inputs in order."""
    out = []
    for batch in batches:
        for i in range(batch.size):
            floats = batch.label[i].tolist() + batch.dense[i].tolist()
            bags = []
            for name in names:
                sb = batch.sparse[name]
                for s in range(sb.num_slots):
                    bag = i * sb.num_slots + s
                    bags.append(sb.values[sb.offsets[bag]:sb.offsets[bag + 1]].tolist())
            out.append((floats, bags))
    return out


def random_samples(rng, count, floats, nnz_max, slots, key_max):
    return [(rng.random(floats, dtype=np.float32).tolist(),
             [rng.integers(0, key_max, rng.integers(0, nnz_max + 1)).tolist() for _ in range(slots)])
            for _ in range(count)]


def write_list(folder, blobs, name="list.txt"):
    paths = []
    for k, blob in enumerate(blobs):
        path = folder / f"part_{k}.data"
        path.write_bytes(blob)
        paths.append(str(path))
    (folder / name).write_text(f"{len(paths)}\n" + "".join(p + "\n" for p in paths))
    return str(folder / name)


# -- the generator ----------------------------------------------------------------------------------
@pytest.mark.parametrize("check_type", [Check_t.Sum, Check_t.Non])
@pytest.mark.parametrize("i64", [False, True])
def test_generator_writes_hugectrs_layout_and_the_reader_returns_it(tmp_path, check_type, i64):
    sizes, nnz = [10, 200, 3000], [1, 3, 2]
    params = DataGeneratorParams(format=DataReaderType_t.Norm, label_dim=2, dense_dim=3, num_slot=3,
                                 i64_input_key=i64, source=str(tmp_path / "d" / "file_list.txt"),
                                 eval_source=str(tmp_path / "d" / "test.txt"), slot_size_array=sizes,
                                 nnz_array=nnz, check_type=check_type, num_files=2, eval_num_files=1,
                                 num_samples_per_file=300, dist_type=Distribution_t.Uniform, seed=4)
    DataGenerator(params).generate()
    train = [str(tmp_path / "d" / "train" / f"gen_{k}.data") for k in range(2)]
    assert (tmp_path / "d" / "file_list.txt").read_text() == "2\n" + "".join(f + "\n" for f in train)
    assert (tmp_path / "d" / "test.txt").read_text() == f"1\n{tmp_path / 'd' / 'val' / 'gen_0.data'}\n"
    key_format = "q" if i64 else "I"
    expected = []
    for path in train:
        header, records = ref_decode(open(path, "rb").read(), check_type is Check_t.Sum, key_format, 5, 3)
        assert header == (int(check_type is Check_t.Sum), 300, 2, 3, 3, 0, 0, 0)
        for values, bags, ok in records:
            assert ok and all(0 <= v < 1 for v in values)
            assert [len(b) for b in bags] == nnz                      # exactly nnz_array[k] keys
            for keys, low, high in zip(bags, [0, 10, 210], [10, 210, 3210]):
                assert all(low <= k < high for k in keys)             # globally offset key ranges
            expected.append((list(values), bags))
    model_input = input_for([1, 2], label_dim=2, dense_dim=3, nnz=3)
    batches = drain(norm_reader(params.source, model_input, 128, check_type, i64))
    got = flat_samples(batches, ["s0", "s1"])
    assert [b.size for b in batches] == [128, 128, 128, 128, 88]
    assert [f for f, _ in got] == [pytest.approx(f) for f, _ in expected]
    assert [b for _, b in got] == [b for _, b in expected]


def test_generator_planted_labels_are_clicks(tmp_path):
    from hugectr.tools import PlantedSignal
    params = DataGeneratorParams(format=DataReaderType_t.Norm, label_dim=1, dense_dim=2, num_slot=2,
                                 i64_input_key=True, source=str(tmp_path / "file_list.txt"),
                                 eval_source=str(tmp_path / "test.txt"), slot_size_array=[5, 9], num_files=1,
                                 eval_num_files=1, num_samples_per_file=400, planted_signal=PlantedSignal(seed=2),
                                 seed=2)
    DataGenerator(params).generate()
    _, records = ref_decode((tmp_path / "train" / "gen_0.data").read_bytes(), True, "q", 3, 2)
    labels = {values[0] for values, _, _ in records}
    assert labels == {0.0, 1.0}


# -- variable nnz, several inputs, small windows ----------------------------------------------------
@pytest.mark.parametrize("checksum", [True, False])
@pytest.mark.parametrize("key_format", ["I", "q"])
def test_variable_nnz_round_trip_across_windows(tmp_path, monkeypatch, checksum, key_format):
    import hugectr.data.norm as norm_module
    monkeypatch.setattr(norm_module, "_MIN_WINDOW", 1)     # windows of ~7 records: some cut a record in two
    rng = np.random.default_rng(0)
    files = [random_samples(rng, count, 3, 3, 4, 2**31 - 1) for count in (57, 1, 40)]
    files[0][20][1][2] = list(range(100))
    blobs = [ref_encode(samples, checksum, key_format, 1, 2) for samples in files]
    source = write_list(tmp_path, blobs)
    check = Check_t.Sum if checksum else Check_t.Non
    norm = NormSource.from_file_list(source, input_for([3, 1]), check, key_format == "q")
    chunks = [chunk for index in range(3) for chunk in norm.read_file(index, 7)]
    assert max(c.rows for c in chunks) == 7 and min(c.rows for c in chunks[:-2]) < 7
    got = []
    for chunk in chunks:
        for i in range(chunk.rows):
            bags = []
            for bag_set in chunk.sparse:
                offsets = bag_set.bag_offsets()
                bags += [bag_set.values[offsets[i * bag_set.slots + s]:offsets[i * bag_set.slots + s + 1]].tolist()
                         for s in range(bag_set.slots)]
            got.append((chunk.label[i].tolist() + chunk.dense[i].tolist(), bags))
    want = [(f, b) for samples in files for f, b in samples]
    assert [b for _, b in got] == [b for _, b in want]
    assert np.allclose([f for f, _ in got], [f for f, _ in want])


@pytest.mark.parametrize("checksum", [True, False])
def test_writer_bytes_equal_the_reference_encoder(checksum):
    rng = np.random.default_rng(1)
    samples = random_samples(rng, 20, 3, 2, 3, 1000)
    layout = NormLayout(1, 2, 3, 8, checksum)
    floats = np.array([f for f, _ in samples], np.float32)
    nnz = np.array([[len(k) for k in bags] for _, bags in samples])
    keys = np.array([k for _, bags in samples for bag in bags for k in bag])
    import tempfile
    path = os.path.join(tempfile.mkdtemp(), "w.data")
    with NormWriter(path, layout, len(samples)) as writer:
        writer.write(floats[:5], nnz[:5], keys[:nnz[:5].sum()])
        writer.write(floats[5:], nnz[5:], keys[nnz[:5].sum():])
    assert open(path, "rb").read() == ref_encode(samples, checksum, "q", 1, 2)


@pytest.mark.parametrize("checksum", [True, False])
def test_writer_with_the_count_unknown_up_front_patches_the_header(tmp_path, checksum):
    rng = np.random.default_rng(4)
    samples = random_samples(rng, 7, 3, 2, 2, 100)    # 3 floats, nnz <= 2, 2 slots
    floats = np.array([f for f, _ in samples], np.float32)
    nnz = np.array([[len(k) for k in bags] for _, bags in samples])
    keys = np.array([k for _, bags in samples for bag in bags for k in bag])
    path = str(tmp_path / "open.data")
    with NormWriter(path, NormLayout(1, 2, 2, 8, checksum)) as writer:     # number_of_records not given
        writer.write(floats[:3], nnz[:3], keys[:nnz[:3].sum()])
        assert not os.path.exists(path)                                     # appears only once complete
        writer.write(floats[3:], nnz[3:], keys[nnz[:3].sum():])
    assert open(path, "rb").read() == ref_encode(samples, checksum, "q", 1, 2)
    with pytest.raises(ValueError, match=r"bad\.data' got 7 records but its header says 8; .*number_of_records=None"):
        with NormWriter(str(tmp_path / "bad.data"), NormLayout(1, 2, 2, 8, checksum), 8) as writer:
            writer.write(floats, nnz, keys)
    assert os.listdir(tmp_path) == ["open.data"]                            # no bad.data, no temp file left


# -- checksums and damaged files ---------------------------------------------------------------------
def test_a_bad_checksum_skips_the_record_counts_it_and_warns(tmp_path):
    rng = np.random.default_rng(2)
    samples = random_samples(rng, 30, 3, 2, 2, 50)
    blob = bytearray(ref_encode(samples, True, "q", 1, 2))
    # Flip a float byte of record 4 (after the 69-byte header record): its checksum no longer matches.
    position = 69 + sum(4 + 12 + sum(4 + 8 * len(k) for k in bags) + 1 for _, bags in samples[:4]) + 5
    blob[position] ^= 0x55
    source = write_list(tmp_path, [bytes(blob)])
    with pytest.warns(NormDataWarning, match=r"part_0\.data': skipped 1 record.*record 4\b"):
        reader = norm_reader(source, input_for([2], nnz=2), 8)
        got = flat_samples(drain(reader), ["s0"])
    assert [b for _, b in got] == [b for i, (_, b) in enumerate(samples) if i != 4]
    assert reader._chunk_source.skipped_records == 1


def test_a_broken_record_skips_the_rest_of_the_file_with_a_warning(tmp_path):
    samples = [([0.5, 1.0, 2.0], [[1], [2, 3]])] * 6
    blob = bytearray(ref_encode(samples, False, "q", 1, 2))
    nnz_of_record_3_slot_0 = 64 + 3 * (12 + 4 + 8 + 4 + 16) + 12
    blob[nnz_of_record_3_slot_0:nnz_of_record_3_slot_0 + 4] = struct.pack("<i", -7)
    source = write_list(tmp_path, [bytes(blob)])
    with pytest.warns(NormDataWarning, match=r"part_0\.data', record 3 \(byte \d+\): a slot has nnz=-7.*remaining 3"):
        got = flat_samples(drain(norm_reader(source, input_for([2], nnz=2), 4, Check_t.Non)), ["s0"])
    assert len(got) == 3


def test_a_truncated_file_warns_and_keeps_its_complete_records(tmp_path):
    samples = [([0.5, 1.0, 2.0], [[1], [2, 3]])] * 10
    blob = ref_encode(samples, True, "q", 1, 2)
    source = write_list(tmp_path, [blob[:-30]])
    with pytest.warns(NormDataWarning, match=r"part_0\.data' ends after 9 of the 10 records.*truncated"):
        assert len(flat_samples(drain(norm_reader(source, input_for([2], nnz=2), 4)), ["s0"])) == 9


@pytest.mark.parametrize("blob, match", [
    (b"", r"part_0\.data' is empty"),
    (b"\x00" * 20, r"part_0\.data' has 20 bytes; a Norm file starts with a 64-byte header"),
    (struct.pack("<8q", 7, 1, 1, 2, 2, 0, 0, 0), r"header error_check=7"),
])
def test_unreadable_headers_are_errors_naming_the_file(tmp_path, blob, match):
    source = write_list(tmp_path, [blob])
    with pytest.raises(ValueError, match=match):
        norm_reader(source, input_for([2]), 4, Check_t.Non)


@pytest.mark.parametrize("field, model_input, found, wanted", [
    ("label_dim", input_for([2], label_dim=2, dense_dim=1), 1, 2),
    ("dense_dim", input_for([2], dense_dim=5), 2, 5),
    ("slot_num", input_for([2, 1]), 2, 3),
])
def test_header_counts_are_checked_against_the_input(tmp_path, field, model_input, found, wanted):
    source = write_list(tmp_path, [ref_encode([([0.5, 1.0, 2.0], [[1], [2]])], True, "q", 1, 2)])
    with pytest.raises(ValueError, match=rf"part_0\.data': header {field}={found} but the model's Input has "
                                         rf"{field}={wanted}; make .* match"):
        norm_reader(source, model_input, 4)


def test_check_type_and_key_width_mismatches_name_the_fix(tmp_path):
    samples = [([0.5, 1.0, 2.0], [[1], [2, 3]])] * 5
    summed = write_list(tmp_path, [ref_encode(samples, True, "q", 1, 2)])
    with pytest.raises(ValueError, match=r"written with Check_t.Sum \(header error_check=1\) but .*check_type="
                                         r"Check_t.Non; set check_type=hugectr.Check_t.Sum"):
        norm_reader(summed, input_for([2], nnz=2), 4, Check_t.Non)
    with pytest.raises(ValueError, match=r"do not parse with 8-byte keys \(i64_input_key=True\) but do with 4-byte "
                                         r"keys; set CreateSolver\(i64_input_key=False\)"):
        narrow = write_list(tmp_path, [ref_encode(samples, True, "I", 1, 2)], name="narrow.txt")
        norm_reader(narrow, input_for([2], nnz=2), 4, Check_t.Sum, i64=True)


def test_missing_file_and_fewer_files_than_workers(tmp_path):
    samples = [([float(i), 1.0, 2.0], [[i], [i, i + 1]]) for i in range(9)]
    source = write_list(tmp_path, [ref_encode(samples[:5], True, "q", 1, 2), ref_encode(samples[5:], True, "q", 1, 2)])
    reader = norm_reader(source, input_for([2], nnz=2), 3, num_workers=8)      # 8 workers, 2 files
    got = flat_samples(drain(reader), ["s0"])
    # worker 0 reads file 0 (samples 0-4), worker 1 file 1 (5-8); batches of 3 alternate between them
    assert [f[0] for f, _ in got] == [0, 1, 2, 5, 6, 7, 3, 4, 8]
    os.remove(tmp_path / "part_1.data")
    with pytest.raises(ValueError, match=r"part_1\.data' not found"):
        norm_reader(source, input_for([2], nnz=2), 3)


def test_no_hang_when_every_record_is_bad_in_repeat_mode(tmp_path):
    blob = bytearray(ref_encode([([0.5, 1.0, 2.0], [[1], [2]])] * 3, True, "q", 1, 2))
    for record in range(3):
        blob[69 + record * 45 + 30] ^= 1                  # every record's checksum fails
    source = write_list(tmp_path, [bytes(blob)])
    params = DataReaderParams(data_reader_type=DataReaderType_t.Norm, source=[source], eval_source=source,
                              check_type=Check_t.Sum)
    outcome = {}

    def consume():
        try:
            DataReader(params, input_for([2]), 2, source, repeat=True, i64_input_key=True).next_batch()
        except ValueError as error:
            outcome["error"] = error

    with pytest.warns(NormDataWarning):
        thread = threading.Thread(target=consume, daemon=True)
        thread.start()
        thread.join(timeout=20)
    assert not thread.is_alive() and "hold no samples" in str(outcome["error"])
