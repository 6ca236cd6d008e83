"""The multi-rank test runner: results in rank order, a rank's error names the rank."""

import pytest
import torch
import torch.distributed as dist

from hugectr.testing.ranks import run_ranks


def _sum_of_ranks():
    value = torch.tensor([float(dist.get_rank() + 1)])
    dist.all_reduce(value)
    return dist.get_rank(), dist.get_world_size(), float(value)


def _fail_on_rank_one():
    if dist.get_rank() == 1:
        raise ValueError("rank one refuses")
    return "fine"


def test_results_come_back_in_rank_order():
    assert run_ranks(3, _sum_of_ranks) == [(0, 3, 6.0), (1, 3, 6.0), (2, 3, 6.0)]


def test_a_failing_rank_is_named():
    with pytest.raises(RuntimeError, match=r"rank 1:(.|\n)*rank one refuses"):
        run_ranks(2, _fail_on_rank_one)


def _a_tensor():
    return {"rank": dist.get_rank(), "values": torch.arange(4.0) * (dist.get_rank() + 1)}


def test_tensors_survive_the_rank_process():
    results = run_ranks(2, _a_tensor)
    assert [r["rank"] for r in results] == [0, 1]
    assert torch.equal(results[1]["values"], torch.tensor([0.0, 2.0, 4.0, 6.0]))
