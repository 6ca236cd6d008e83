"""The low-level training loops of HugeCTR's docs and tests, run on generated Norm, Raw and Parquet data.

The loops are those of the seeds' "Sample Code" (non-epoch: ``start_data_reading`` then
``get_next`` / ``set_learning_rate`` / ``train`` with ``eval`` rounds; epoch: ``set_source`` per file
list, ``train()`` until False, eval until ``max_eval_batches`` or the end of the eval data, then
``set_source()``), written against ``hugectr.Model`` as HugeCTR's own ``test/pybind_test`` scripts do.
Every batch the readers hand out is recorded, and the counts and sizes are checked against the
numbers worked out from the file sizes: HugeCTR's worker ``w`` of ``W`` owns files ``w, w+W, ...`` and its
last batch of an epoch may be partial; a Raw file is cut into ``ceil(num_samples / batch)`` batches.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

import hugectr
from hugectr.data.planted import PlantedSignal
from hugectr.testing.small_model import add_small_network
from hugectr.tools import DataGenerator, DataGeneratorParams

SLOTS = [7, 11, 5]
DENSE = 4
BATCH, BATCH_EVAL, MAX_EVAL_BATCHES = 64, 24, 3
NORM_FILES, NORM_PER_FILE = 2, 80         # one Norm/Parquet file list: 2 files of 80 samples
EVAL_FILES = 1                            # eval list: one file of 80 samples (the generator's num_samples_per_file)
RAW_SAMPLES, RAW_EVAL_SAMPLES = 200, 100


def _generate(kind, folder, seed, **overrides):
    raw = kind is hugectr.DataReaderType_t.Raw
    arguments = dict(format=kind, label_dim=1, dense_dim=DENSE, num_slot=len(SLOTS), i64_input_key=False,
                     source=str(folder / ("train_data.bin" if raw else "file_list.txt")),
                     eval_source=str(folder / ("test_data.bin" if raw else "file_list_test.txt")),
                     slot_size_array=SLOTS, check_type=hugectr.Check_t.Sum,
                     dist_type=hugectr.Distribution_t.Uniform, num_files=NORM_FILES, eval_num_files=EVAL_FILES,
                     num_samples_per_file=NORM_PER_FILE, num_samples=RAW_SAMPLES, eval_num_samples=RAW_EVAL_SAMPLES,
                     planted_signal=PlantedSignal(seed=seed), seed=seed)
    arguments.update(overrides)
    params = DataGeneratorParams(**arguments)
    DataGenerator(params).generate()
    return params.source, params.eval_source


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """{format: (train sources, eval source)}: three Norm and Parquet file lists (the seed's ``dataset``
    of several lists), one Raw file (the eval samples per file differ from the train ones on purpose)."""
    root = tmp_path_factory.mktemp("loops")
    out = {}
    for kind in (hugectr.DataReaderType_t.Norm, hugectr.DataReaderType_t.Parquet):
        lists = [_generate(kind, root / f"{kind.name}{k}", seed=k + 1) for k in range(3)]
        out[kind] = ([train for train, _ in lists], lists[0][1])
    train, test = _generate(hugectr.DataReaderType_t.Raw, root / "raw", seed=4)
    out[hugectr.DataReaderType_t.Raw] = ([train], test)
    return out


def build(kind, sources, *, repeat, workers=1, **solver_overrides):
    """An embedding + small MLP + BCE model reading ``sources`` ((train list, eval source)) through ``kind``."""
    train, eval_source = sources
    solver_arguments = dict(seed=3, batchsize=BATCH, batchsize_eval=BATCH_EVAL, max_eval_batches=MAX_EVAL_BATCHES,
                            lr=0.01, warmup_steps=4, vvgpu=[[0]], repeat_dataset=repeat, i64_input_key=False)
    solver_arguments.update(solver_overrides)
    solver = hugectr.CreateSolver(**solver_arguments)
    raw = kind is hugectr.DataReaderType_t.Raw
    reader = hugectr.DataReaderParams(
        data_reader_type=kind, source=[train[0]], eval_source=eval_source,
        check_type=hugectr.Check_t.Sum if kind is hugectr.DataReaderType_t.Norm else hugectr.Check_t.Non,
        num_samples=RAW_SAMPLES if raw else 0, eval_num_samples=RAW_EVAL_SAMPLES if raw else 0,
        num_workers=workers, slot_size_array=SLOTS if kind is hugectr.DataReaderType_t.Parquet else [])
    model = hugectr.Model(solver, reader, hugectr.CreateOptimizer(optimizer_type=hugectr.Optimizer_t.Adam))
    add_small_network(model, len(SLOTS), DENSE, hidden=None)
    model.compile()
    return model


def record_batches(reader) -> list:
    """Sizes of the batches ``reader`` hands out from now on (None: end of data), in order."""
    sizes, original = [], reader.next_batch

    def next_batch():
        batch = original()
        sizes.append(None if batch is None else batch.size)
        return batch

    reader.next_batch = next_batch      # the model's feed calls the reader object it got
    return sizes


def epoch_batches(file_rows: list[int], workers: int, batch: int) -> list[int]:
    """The batch sizes of one pass: worker w owns files w, w+W, ...; batches alternate over the workers that
    still have data; each worker's last batch holds its remainder (HugeCTR's data collector)."""
    count = min(workers, len(file_rows))
    owned = [sum(file_rows[w::count]) for w in range(count)]
    per_worker = [[batch] * (rows // batch) + ([rows % batch] if rows % batch else []) for rows in owned]
    out = []
    for turn in range(max(len(sizes) for sizes in per_worker)):
        out += [sizes[turn] for sizes in per_worker if turn < len(sizes)]
    return out


def dense_weights(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in model.engine.network.parameters()])


FORMATS = [hugectr.DataReaderType_t.Norm, hugectr.DataReaderType_t.Raw, hugectr.DataReaderType_t.Parquet]


@pytest.mark.parametrize("kind", FORMATS, ids=lambda k: k.name)
def test_non_epoch_loop_of_the_docs(datasets, kind):
    """start_data_reading; get_next / set_learning_rate / train; loss every 4; eval rounds of max_eval_batches."""
    model = build(kind, (datasets[kind][0], datasets[kind][1]), repeat=True)
    lr_sch = model.get_learning_rate_scheduler()
    model.start_data_reading()
    train_sizes = record_batches(model.get_data_reader_train())
    eval_sizes = record_batches(model.get_data_reader_eval())
    iterations, lrs, losses, metrics = 12, [], [], []
    for i in range(iterations):
        lr = lr_sch.get_next()
        lrs.append(lr)
        model.set_learning_rate(lr)
        assert model.train() is True                       # never False in non-epoch mode: the data wraps
        if i % 4 == 0:
            losses.append(model.get_current_loss())
        if i % 5 == 0 and i != 0:
            for _ in range(MAX_EVAL_BATCHES):
                assert model.eval() is True
            metrics.append(model.get_eval_metrics())
    assert lrs == pytest.approx([0.0025, 0.005, 0.0075] + [0.01] * 9)      # warmup_steps=4, lr=0.01
    # 12 full batches although one pass holds 160 (Norm, Parquet) or 200 (Raw) samples: the readers loop.
    assert train_sizes[:iterations] == [BATCH] * iterations
    # 6 full eval batches (144 samples) although the eval data holds 80 (Norm, Parquet) or 100 (Raw): it loops too.
    assert eval_sizes[:2 * MAX_EVAL_BATCHES] == [BATCH_EVAL] * (2 * MAX_EVAL_BATCHES)
    assert len(losses) == 3 and all(math.isfinite(loss) and loss > 0 for loss in losses)
    assert [[name for name, _ in round_] for round_ in metrics] == [["AUC"], ["AUC"]]
    assert all(0.0 <= value <= 1.0 for round_ in metrics for _, value in round_)
    assert not model.get_data_reader_train().is_eof()


@pytest.mark.parametrize("kind, workers", [(hugectr.DataReaderType_t.Norm, 1), (hugectr.DataReaderType_t.Norm, 2),
                                           (hugectr.DataReaderType_t.Parquet, 1)], ids=["Norm-1", "Norm-2", "Parquet"])
def test_epoch_loop_over_file_lists(datasets, kind, workers):
    """The seed's epoch loop: set_source(file_list) per list, train() until False, eval until max_eval_batches
    or the end of the eval data (then set_source()), with is_eof() and the iteration count checked."""
    file_lists, eval_list = datasets[kind]
    model = build(kind, (file_lists, eval_list), repeat=False, workers=workers, drop_incomplete_batch=False)
    lr_sch = model.get_learning_rate_scheduler()
    data_reader_train = model.get_data_reader_train()
    data_reader_eval = model.get_data_reader_eval()
    data_reader_eval.set_source(eval_list)
    train_sizes, eval_sizes = record_batches(data_reader_train), record_batches(data_reader_eval)
    iteration, good_eval, per_list, eval_rounds = 0, True, [], []
    for file_list in file_lists:
        data_reader_train.set_source(file_list)
        assert not data_reader_train.is_eof()
        steps = 0
        while True:
            model.set_learning_rate(lr_sch.get_next())
            if not model.train():
                break
            steps += 1
            if iteration % 2 == 0:
                j, round_ = 0, 0
                while good_eval and j < MAX_EVAL_BATCHES:
                    good_eval = model.eval()
                    j += 1
                    round_ += good_eval
                if not good_eval:
                    assert data_reader_eval.is_eof()
                    data_reader_eval.set_source()
                    good_eval = True
                eval_rounds.append(round_)
                assert [name for name, _ in model.get_eval_metrics()] == ["AUC"]
            iteration += 1
        assert data_reader_train.is_eof()
        per_list.append(steps)
    one_pass = epoch_batches([NORM_PER_FILE] * NORM_FILES, workers, BATCH)
    assert per_list == [len(one_pass)] * 3                   # 1 worker: 64, 64, 32; 2 workers: 64, 64, 16, 16
    assert [s for s in train_sizes if s is not None] == one_pass * 3 and train_sizes.count(None) == 3
    # Eval: 4 batches (24, 24, 24, 8) per pass of the eval list, taken 3 at a time; the round that meets the
    # end stops early and restarts the list.
    eval_pass = epoch_batches([NORM_PER_FILE] * EVAL_FILES, 1, BATCH_EVAL)
    assert eval_pass == [24, 24, 24, 8]
    delivered = [s for s in eval_sizes if s is not None]
    assert delivered == (eval_pass * len(delivered))[:len(delivered)]
    assert sum(eval_rounds) == len(delivered) and eval_rounds[:3] == [3, 1, 3]


def test_epoch_loop_of_the_raw_set_source_test(datasets):
    """HugeCTR's dlrm set_source test: two rounds of set_source(train_data) over one Raw file."""
    kind = hugectr.DataReaderType_t.Raw
    (train_data,), test_data = datasets[kind]
    model = build(kind, ([train_data], test_data), repeat=False, workers=2, drop_incomplete_batch=False)
    lr_sch = model.get_learning_rate_scheduler()
    data_reader_train, data_reader_eval = model.get_data_reader_train(), model.get_data_reader_eval()
    data_reader_eval.set_source(test_data)
    sizes = record_batches(data_reader_train)
    rounds = []
    for _ in range(2):
        data_reader_train.set_source(train_data)
        steps = 0
        while True:
            model.set_learning_rate(lr_sch.get_next())
            if not model.train(False):                       # the script passes 3.4's is_first_batch
                break
            steps += 1
        rounds.append(steps)
        assert data_reader_train.is_eof()
    assert rounds == [4, 4]                                  # 200 samples: 64, 64, 64, 8
    assert [s for s in sizes if s is not None] == [64, 64, 64, 8] * 2
    batches = 0
    while model.eval():
        batches += 1
    assert batches == math.ceil(RAW_EVAL_SAMPLES / BATCH_EVAL) and data_reader_eval.is_eof()
    assert lr_sch.step == 10                                  # get_next once per train() call, the False ones too


def test_drop_incomplete_batch_keeps_train_true_and_skips_the_step(datasets):
    """train() is True for the partial last batch but does not step on it (HugeCTR logs and skips it)."""
    kind = hugectr.DataReaderType_t.Raw
    model = build(kind, datasets[kind], repeat=False, drop_incomplete_batch=True)
    results = []
    while True:
        before = dense_weights(model)
        results.append(model.train())
        if not results[-1]:
            break
        changed = not torch.equal(before, dense_weights(model))
        results[-1] = (True, changed)
    assert results == [(True, True)] * 3 + [(True, False), False]   # 64, 64, 64 stepped; 8 skipped; end


def test_set_learning_rate_is_the_rate_of_the_next_step(datasets):
    kind = hugectr.DataReaderType_t.Norm
    model = build(kind, datasets[kind], repeat=True)
    model.start_data_reading()
    before = dense_weights(model)
    model.set_learning_rate(0.0)
    model.train()
    assert torch.equal(before, dense_weights(model))        # lr 0: Adam moves nothing
    model.set_learning_rate(0.05)
    model.train()
    assert not torch.equal(before, dense_weights(model))
    first = model.get_current_loss()
    model.train()
    assert isinstance(first, float) and first != model.get_current_loss()   # the loss of the latest batch


def test_get_eval_metrics_is_the_auc_of_the_eval_batches_since_the_last_call(datasets):
    """AUC over 2 eval batches equals the AUC computed here from the model's predictions of those samples."""
    kind = hugectr.DataReaderType_t.Raw
    model = build(kind, datasets[kind], repeat=True, batchsize_eval=50)
    model.start_data_reading()
    for _ in range(3):
        model.train()
    model.eval()
    first = np.asarray(model.check_out_tensor("logit", hugectr.Tensor_t.Evaluate)).reshape(-1)
    model.eval()
    second = np.asarray(model.check_out_tensor("logit", hugectr.Tensor_t.Evaluate)).reshape(-1)
    (name, auc), = model.get_eval_metrics()
    labels = _planted_raw_labels(datasets[kind][1])      # planted clicks, not the generator's i % 2
    scores = np.concatenate([first, second])
    assert name == "AUC" and auc == pytest.approx(_auc(scores, labels[:100]), abs=1e-6)


def _planted_raw_labels(path: str) -> np.ndarray:
    record = np.dtype([("label", "<u4"), ("dense", "<u4", (DENSE,)), ("keys", "<u4", (len(SLOTS),))])
    return np.fromfile(path, record)["label"].astype(np.int64)


def _auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mann-Whitney AUC with ties counted half."""
    positive, negative = scores[labels == 1], scores[labels == 0]
    greater = (positive[:, None] > negative[None, :]).sum() + 0.5 * (positive[:, None] == negative[None, :]).sum()
    return float(greater / (positive.size * negative.size))


def test_reader_has_hugectr_names_and_exists_from_add_input(datasets):
    """HugeCTR makes the readers in add(Input): they exist before compile(); their class answers to the
    names HugeCTR's releases gave it; set_source takes file_name=; is_started / ready_to_collect report."""
    file_lists, eval_list = datasets[hugectr.DataReaderType_t.Parquet]
    solver = hugectr.CreateSolver(batchsize=BATCH, batchsize_eval=BATCH_EVAL, vvgpu=[[0]], repeat_dataset=False,
                                  i64_input_key=False)
    reader = hugectr.DataReaderParams(data_reader_type=hugectr.DataReaderType_t.Parquet, source=[file_lists[0]],
                                      eval_source=eval_list, check_type=hugectr.Check_t.Non, slot_size_array=SLOTS)
    model = hugectr.Model(solver, reader, hugectr.CreateOptimizer())
    with pytest.raises(RuntimeError, match="add the Input first"):
        model.get_data_reader_train()
    add_small_network(model, len(SLOTS), DENSE, hidden=None)
    data_reader = model.get_data_reader_train()                      # before compile, as in HugeCTR
    for name in ("IDataReader", "Core23DataReader64", "Core23DataReader32", "DataReader64", "DataReader32"):
        assert isinstance(data_reader, getattr(hugectr, name))
    assert not data_reader.is_started() and not data_reader.ready_to_collect()
    data_reader.set_source(file_name=file_lists[1])
    assert data_reader.is_started()
    deadline = time.monotonic() + 30
    while not data_reader.ready_to_collect():                        # the threads read ahead
        assert time.monotonic() < deadline, "no batch became ready"
        time.sleep(0.01)
    model.compile()
    steps = 0
    while model.train():
        steps += 1
    assert steps > 0 and data_reader.is_eof() and data_reader.ready_to_collect()   # the end is there too
