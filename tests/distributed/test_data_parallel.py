"""Data-parallel dense + model-parallel tables on 2 gloo ranks equal 1 rank with the global batch.

The reference is the same model run on one rank (the single-device code path, proven against NumPy
elsewhere); the 2-rank run must reproduce its weights, tables, predictions, loss and metrics within
1e-5, and both ranks must agree. One train file keeps one reader worker, so both runs see the same
global batches in the same order (with several files HugeCTR's worker count follows the GPU count).
"""

import numpy as np
import pytest
import torch

from hugectr.distributed import batch_part, data_parallel
from hugectr.metrics import MetricsCollection
from hugectr.enums import MetricsType
from hugectr.testing import distributed_cases as cases
from hugectr.testing.datasets import planted_parquet
from hugectr.testing.ranks import run_ranks

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """One train file and one eval file of 1024 samples; 5 one-hot slots (2 for emb_a, 3 for emb_b)."""
    return planted_parquet(tmp_path_factory.mktemp("dp"), [7, 11, 5, 9, 6], samples_per_file=1024, num_files=1)


def _assert_same_run(one: dict, other: dict, keys=("dense", "predictions")) -> None:
    for key in keys:
        np.testing.assert_allclose(other[key], one[key], atol=TOLERANCE, rtol=0, err_msg=key)
    for (keys_one, vectors_one), (keys_other, vectors_other) in zip(one["tables"], other["tables"]):
        np.testing.assert_array_equal(keys_other, keys_one)
        np.testing.assert_allclose(vectors_other, vectors_one, atol=TOLERANCE, rtol=0)
    assert other["loss"] == pytest.approx(one["loss"], abs=TOLERANCE)
    for name, value in one.get("metrics", {}).items():
        assert other["metrics"][name] == pytest.approx(value, abs=TOLERANCE), name


@pytest.mark.parametrize("optimizer", ["SGD", "Adam"])
def test_two_ranks_train_like_one_rank_with_the_global_batch(data, optimizer, tmp_path):
    one = run_ranks(1, cases.train_case, data, optimizer, 4, str(tmp_path / "one"))[0]
    two = run_ranks(2, cases.train_case, data, optimizer, 4, str(tmp_path / "two"))
    for rank_result in two:
        _assert_same_run(one["first"], rank_result["first"], keys=("dense",))     # after 1 step
        _assert_same_run(one, rank_result)                                        # after 4 steps
    # The eval set is 4 full batches of 96: 384 predictions, gathered in the single-device order.
    assert two[0]["predictions"].shape == (384, 1)
    assert set(two[0]["metrics"]) == {"AUC", "AverageLoss"}
    assert two[0]["metrics"] == two[1]["metrics"]
    # Only rank 0 wrote the snapshot: the dense file is the single-device one.
    dense_one = np.fromfile(tmp_path / "one_dense_4.model", dtype=np.float32)
    dense_two = np.fromfile(tmp_path / "two_dense_4.model", dtype=np.float32)
    np.testing.assert_allclose(dense_two, dense_one, atol=TOLERANCE, rtol=0)
    keys_one = np.fromfile(tmp_path / "one0_sparse_4.model" / "key", dtype=np.int64)
    keys_two = np.fromfile(tmp_path / "two0_sparse_4.model" / "key", dtype=np.int64)
    np.testing.assert_array_equal(np.sort(keys_two), np.sort(keys_one))


def test_export_predictions_writes_the_global_batch_once(data, tmp_path):
    run_ranks(1, cases.export_case, data, str(tmp_path / "one"))
    run_ranks(2, cases.export_case, data, str(tmp_path / "two"))
    for suffix in ("pred", "label"):
        one = np.array((tmp_path / f"one.{suffix}").read_text().split(), dtype=np.float64)
        two = np.array((tmp_path / f"two.{suffix}").read_text().split(), dtype=np.float64)
        assert one.shape == two.shape == (2 * 96,)              # two global eval batches, written by rank 0 only
        np.testing.assert_allclose(two, one, atol=TOLERANCE, rtol=0)


def test_uneven_last_batches_count_each_sample_once_and_do_not_hang(data):
    """Epoch mode keeps partial batches: the last one (16 samples) gives rank 1 nothing, in training and eval."""
    one = run_ranks(1, cases.uneven_epoch_case, data)[0]
    two = run_ranks(2, cases.uneven_epoch_case, data, timeout=120)
    assert one["predictions"].shape == two[0]["predictions"].shape == (1024, 1)
    for rank_result in two:
        _assert_same_run(one, rank_result)


def test_part_bounds_split_the_global_batch_contiguously():
    assert [batch_part.part_bounds(r, 4, 16, 16) for r in range(4)] == [(0, 4), (4, 8), (8, 12), (12, 16)]
    assert [batch_part.part_bounds(r, 4, 16, 6) for r in range(4)] == [(0, 4), (4, 6), (6, 6), (6, 6)]


def test_share_weights_a_rank_by_its_samples():
    label = torch.zeros(3, 1)
    part = batch_part.PartBatch(label, torch.zeros(3, 2), {}, global_size=12)
    assert batch_part.share(part) == 0.25 and batch_part.global_size(part) == 12
    assert batch_part.share(part.to("cpu")) == 0.25          # survives the device copy
    whole = batch_part.Batch(label, torch.zeros(3, 2), {})
    assert batch_part.share(whole) == 1.0 and batch_part.global_size(whole) == 3


class _TwoRankReducer:
    """Two ranks' windows combined in one process: what RankReducer does over a real group."""

    def __init__(self, other_parts, other_totals):
        self.other_parts, self.other_totals = other_parts, other_totals

    def sum(self, value):
        return value + self.other_totals.pop(0)

    def gather_batches(self, parts):
        rows = [torch.cat([mine, theirs]) for mine, theirs in zip(parts, self.other_parts.pop(0))]
        return torch.cat(rows)


def test_metrics_synchronize_gives_the_global_window():
    """Rank 0's window synchronized with rank 1's equals one rank seeing both (NumPy AUC as reference)."""
    rng = np.random.default_rng(0)
    preds, labels = rng.random((2, 40, 1)).astype(np.float32), (rng.random((2, 40, 1)) > 0.5).astype(np.float32)
    spec = {MetricsType.AUC: 1.0, MetricsType.AverageLoss: 0.0}
    rank0, rank1 = MetricsCollection(spec), MetricsCollection(spec)
    losses = [0.5, 0.7]
    for batch in range(2):          # each global batch of 40: rank 0 rows 0..20, rank 1 rows 20..40
        for metrics, rows in ((rank0, slice(0, 20)), (rank1, slice(20, 40))):
            metrics.update(torch.from_numpy(preds[batch, rows]), torch.from_numpy(labels[batch, rows]),
                           torch.tensor(losses[batch] + (0.1 if rows.start else 0.0)), share=0.5)
    rank1_parts = [torch.cat([p, y], 1) for p, y in zip(rank1.metrics[0]._preds, rank1.metrics[0]._labels)]
    rank1_loss = rank1.metrics[1]._total
    rank0.synchronize(_TwoRankReducer([rank1_parts], [rank1_loss]))
    result = dict(rank0.finalize())
    p, y = preds.reshape(-1), labels.reshape(-1)
    positives, negatives = p[y == 1], p[y == 0]
    expected_auc = (positives[:, None] > negatives[None, :]).mean()
    assert result["AUC"] == pytest.approx(expected_auc, abs=1e-9)
    assert result["AverageLoss"] == pytest.approx(np.mean([0.5 + 0.05, 0.7 + 0.05]), abs=1e-7)


def test_one_rank_helpers_are_no_ops():
    assert data_parallel.same_on_all_ranks(5) == 5
    value = torch.tensor(2.0)
    assert data_parallel.sum_over_ranks(value) is value
    data_parallel.barrier()


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
@pytest.mark.parametrize("optimizer", ["SGD", "Adam"])
def test_two_gpus_nccl_train_like_one_gpu(data, optimizer, tmp_path):
    one = run_ranks(1, cases.train_case, data, optimizer, 4, backend="nccl")[0]
    two = run_ranks(2, cases.train_case, data, optimizer, 4, backend="nccl")
    for rank_result in two:
        _assert_same_run(one["first"], rank_result["first"], keys=("dense",))
        _assert_same_run(one, rank_result)


def test_reader_part_is_the_contiguous_slice_of_each_global_batch(data):
    """Epoch mode over 1024 samples in global batches of 112: each rank's part equals the slice of the
    whole batch at part_bounds (the last batch: 16 samples, all on rank 0)."""
    import hugectr
    from hugectr.data.reader import DataReader

    params = hugectr.DataReaderParams(data_reader_type=hugectr.DataReaderType_t.Parquet, source=[data.source],
                                      eval_source=data.eval_source, check_type=hugectr.Check_t.Non,
                                      slot_size_array=data.slot_size_array)
    inp = hugectr.Input(label_dim=1, label_name="label", dense_dim=data.dense_dim, dense_name="dense",
                        data_reader_sparse_param_array=[hugectr.DataReaderSparseParam("keys", 1, True, 5)])

    def batches(part):
        with DataReader(params, inp, 112, data.source, repeat=False, i64_input_key=True, part=part) as reader:
            return list(iter(reader.next_batch, None))

    whole = batches(None)
    for rank in range(2):
        parts = batches((rank, 2))
        assert len(parts) == len(whole) == 10
        for full, part in zip(whole, parts):
            start, stop = batch_part.part_bounds(rank, 2, 112, full.size)
            assert batch_part.global_size(part) == full.size and part.size == stop - start
            torch.testing.assert_close(part.label, full.label[start:stop], rtol=0, atol=0)
            torch.testing.assert_close(part.dense, full.dense[start:stop], rtol=0, atol=0)
            torch.testing.assert_close(part.sparse["keys"].values,
                                       full.sparse["keys"].slice_samples(start, stop).values, rtol=0, atol=0)
    assert parts[-1].size == 0 and parts[-1].global_size == 16
    with pytest.raises(ValueError, match="global batch size 112 must divide by the number of ranks 3"):
        DataReader(params, inp, 112, data.source, repeat=False, i64_input_key=True, part=(0, 3))


@pytest.mark.parametrize("saved_on, loaded_on, optimizer", [(2, 1, "Adam"), (1, 2, "Adam"),
                                                             (2, 1, "Adam:LazyGlobal")])
def test_a_checkpoint_loads_on_another_number_of_ranks(data, tmp_path, saved_on, loaded_on, optimizer):
    """Saved on G ranks, loaded on G' (re-sharded by key): the tables as saved, and the same optimizer
    states and eval predictions as the model loaded back on G ranks (both evaluate from the file's start)."""
    prefix = str(tmp_path / "m")
    saved = run_ranks(saved_on, cases.train_case, data, optimizer, 3, prefix)[0]
    same = run_ranks(saved_on, cases.load_case, data, optimizer, prefix, 3)[0]
    for other in run_ranks(loaded_on, cases.load_case, data, optimizer, prefix, 3):
        for result in (same, other):
            for (keys_saved, vectors_saved), (keys, vectors) in zip(saved["tables"], result["tables"]):
                np.testing.assert_array_equal(keys, keys_saved)
                np.testing.assert_array_equal(vectors, vectors_saved)
        np.testing.assert_allclose(other["predictions"], same["predictions"], atol=TOLERANCE, rtol=0)
        assert other["metrics"]["AUC"] == pytest.approx(same["metrics"]["AUC"], abs=TOLERANCE)
        for states_same, states_other in zip(same["states"], other["states"]):      # per table: (m, v) by key
            for state_same, state_other in zip(states_same, states_other):
                np.testing.assert_array_equal(state_other, state_same)
                assert np.abs(state_same).sum() > 0                        # Adam's moments after 3 steps
