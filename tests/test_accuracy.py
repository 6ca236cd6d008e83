"""Accuracy end to end: DCN on planted data against the oracle, census income on real data."""

import os
from pathlib import Path

import pytest

from hugectr.testing import planted_dcn
from hugectr.testing.scripts import load_script

CENSUS = Path(__file__).parents[1] / ".." / "shared" / "data" / "census_kdd_part_a_80k.csv.gz"
EXAMPLES = Path(__file__).parents[1] / "examples"


def load_example(name: str):
    return load_script(EXAMPLES / f"{name}.py", f"example_{name}")


@pytest.mark.slow
def test_dcn_reaches_the_planted_oracle(tmp_path):
    data = planted_dcn.planted_data(tmp_path)
    auc, oracle = planted_dcn.train_dcn(data), planted_dcn.oracle_auc(data)
    print(f"DCN AUC {auc:.4f}, oracle {oracle:.4f}")
    assert oracle - 0.02 <= auc <= oracle + 0.005


@pytest.mark.slow
@pytest.mark.skipif(not CENSUS.is_file(), reason="../shared/data/census_kdd_part_a_80k.csv.gz is not present")
def test_census_income_auc(tmp_path):
    auc = load_example("census_income").train(str(CENSUS), str(tmp_path))
    assert auc >= 0.93


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dcn", "wdl", "deepfm", "dlrm"])
def test_example_trains(name, tmp_path):
    """Each example runs as a user would (a short run) and learns something."""
    module = load_example(name)
    result = module.main(str(tmp_path), iterations=120)
    auc = result[0] if isinstance(result, tuple) else result
    assert auc > 0.6


def test_mpi4py_import_works():
    """HugeCTR scripts start with `from mpi4py import MPI`: the `mpi` extra makes that real."""
    from mpi4py import MPI

    assert MPI.COMM_WORLD.Get_size() >= 1 and os.environ.get("PMI_RANK", "0") == str(MPI.COMM_WORLD.Get_rank())
