"""The embedding collection's shard plan on 2 gloo ranks equals 1 rank with the global batch.

The reference is the same model on one rank (the single-device collection, proven against plain
torch and NumPy in tests/embedding/test_collection.py): after 1 and 3 steps the 2-rank run must
reproduce its dense weights, both tables by key, loss and eval predictions within 1e-5, on both
ranks, for a model-parallel table (held by rank 1 only) and a data-parallel one, with sum, average
and concat lookups, SGD (static tables) and Adam (dynamic tables). A dump written on 2 ranks must
be the single-device files (same keys and vectors) and load on 1 rank.
"""

import numpy as np
import pytest
import torch

from hugectr.testing import collection_cases as cases
from hugectr.testing.datasets import planted_parquet
from hugectr.testing.ranks import run_ranks

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """One train file, one eval file; slot a one-hot (vocab 13), slot b up to two keys (vocab 17)."""
    return planted_parquet(tmp_path_factory.mktemp("ebc"), [13, 17], dense_dim=3, nnz_array=list(cases.NNZ),
                           samples_per_file=512, num_files=1)


def _assert_same(one: dict, other: dict, keys=("dense",)) -> None:
    for key in keys:
        np.testing.assert_allclose(other[key], one[key], atol=TOLERANCE, rtol=0, err_msg=key)
    assert other["tables"].keys() == one["tables"].keys()
    for name, (keys_one, vectors_one) in one["tables"].items():
        keys_other, vectors_other = other["tables"][name]
        np.testing.assert_array_equal(keys_other, keys_one, err_msg=name)
        np.testing.assert_allclose(vectors_other, vectors_one, atol=TOLERANCE, rtol=0, err_msg=name)


@pytest.mark.parametrize("optimizer", ["SGD", "Adam"])
def test_two_ranks_train_like_one_rank_and_dump_loads_on_one(data, optimizer, tmp_path):
    one = run_ranks(1, cases.train_case, data, optimizer, str(tmp_path / "one"))[0]
    two = run_ranks(2, cases.train_case, data, optimizer, str(tmp_path / "two"))
    # t_mp (first group) lives on rank 1 only; t_dp on both
    assert [r["held"] for r in two] == [[False, True], [True, True]]
    for result in two:
        _assert_same(one["first"], result["first"])                                 # after 1 step
        _assert_same(one, result, keys=("dense", "predictions"))                    # after 3 steps
        assert result["loss"] == pytest.approx(one["loss"], abs=TOLERANCE)
    # training moved the tables away from their seeded start (the comparison is not vacuous)
    for name in ("t_mp", "t_dp"):
        assert np.abs(one["tables"][name][1] - one["first"]["tables"][name][1]).max() > 1e-4
    # the 2-rank dump holds what one device writes, and loads on one rank
    for table_id in (0, 1):
        for stem, dtype in (("key", np.int64), ("weight", np.float32)):
            written_one = np.fromfile(tmp_path / "one" / "embedding_collection_0" / f"{stem}{table_id}", np.uint8)
            written_two = np.fromfile(tmp_path / "two" / "embedding_collection_0" / f"{stem}{table_id}", np.uint8)
            assert written_two.size == written_one.size
            np.testing.assert_array_equal(written_two[:128], written_one[:128])            # headers
    loaded = run_ranks(1, cases.load_case, data, optimizer, str(tmp_path / "two"))[0]
    _assert_same(two[0], loaded, keys=())
    # a fresh model (the same initial dense weights) predicts alike from either dump
    loaded_one = run_ranks(1, cases.load_case, data, optimizer, str(tmp_path / "one"))[0]
    np.testing.assert_allclose(loaded["predictions"], loaded_one["predictions"], atol=TOLERANCE, rtol=0)


def test_without_a_shard_plan_every_table_is_data_parallel(data):
    one = run_ranks(1, cases.train_case, data, "SGD", "", False)[0]
    two = run_ranks(2, cases.train_case, data, "SGD", "", False)
    for result in two:
        assert result["held"] == [True]                         # one group, replicated on every rank
        _assert_same(one, result, keys=("dense", "predictions"))


def test_a_model_parallel_table_on_several_gpus_is_refused(data):
    messages = run_ranks(2, cases.refused_plan_case, data)
    assert all("'big'" in m and "exactly one GPU" in m for m in messages), messages


def test_a_bad_key_raises_on_every_rank_instead_of_hanging(data):
    """The holder (rank 1) finds rank 0's key out of range; both ranks raise, none waits in a collective."""
    messages = run_ranks(2, cases.bad_key_case, data, timeout=120)
    assert messages[1].startswith("ValueError") and "'t_mp'" in messages[1] and "1000" in messages[1], messages
    assert messages[0].startswith("RuntimeError") and "another rank" in messages[0], messages


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
@pytest.mark.parametrize("optimizer", ["SGD", "Adam"])
def test_two_gpus_nccl_train_like_one_gpu(data, optimizer, tmp_path):
    one = run_ranks(1, cases.train_case, data, optimizer, str(tmp_path / "one"), backend="nccl")[0]
    two = run_ranks(2, cases.train_case, data, optimizer, str(tmp_path / "two"), backend="nccl")
    for result in two:
        _assert_same(one["first"], result["first"])
        _assert_same(one, result, keys=("dense", "predictions"))
