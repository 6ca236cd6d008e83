"""Shared-bottom multi-task model on census income + never married, as a HugeCTR user writes it.

One MLP (the shared bottom) reads the features; its output feeds one tower per task (the graph
hands each tower its own copy through an implicit Slice, as HugeCTR's parser does). Two
BinaryCrossEntropyLoss layers, ``compile(loss_names, loss_weights)``. Prints the held-back AUC of
the first task (income), the one HugeCTR's metrics report.

    python examples/shared_bottom.py [--iterations 400] [--csv ../shared/data/census_kdd_part_a_80k.csv.gz]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from mpi4py import MPI  # noqa: F401  (as HugeCTR scripts begin)

import hugectr

sys.path.insert(0, str(Path(__file__).parent))
from census_multitask import (CENSUS_CSV, TASKS, add_towers_and_losses, base_model, dense, prepare,  # noqa: E402
                              train_and_evaluate)


def build(info: dict, batchsize: int = 512) -> hugectr.Model:
    """The compiled shared-bottom model for the converted census data ``info``."""
    model = base_model(info, "shared_bottom", batchsize)
    L = hugectr.Layer_t
    for layer in [
        dense(L.InnerProduct, ["features"], ["shared_fc1"], num_output=128),
        dense(L.ReLU, ["shared_fc1"], ["shared_relu1"]),
        dense(L.Dropout, ["shared_relu1"], ["shared_dropout1"], dropout_rate=0.2),
        dense(L.InnerProduct, ["shared_dropout1"], ["shared_fc2"], num_output=64),
        dense(L.ReLU, ["shared_fc2"], ["shared"]),                     # read by both towers
    ]:
        model.add(layer)
    add_towers_and_losses(model, {task: "shared" for task in TASKS})
    return model


def run(workdir: str, iterations: int = 400, csv: str | Path = CENSUS_CSV) -> tuple[hugectr.Model, float]:
    """Convert, build, train; returns the trained model and the held-back income AUC."""
    model = build(prepare(csv, workdir))
    return model, train_and_evaluate(model, iterations, "Shared-bottom")


def main(workdir: str, iterations: int = 400, csv: str | Path = CENSUS_CSV) -> float:
    return run(workdir, iterations, csv)[1]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=400)
    parser.add_argument("--csv", default=str(CENSUS_CSV))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        main(tmp, args.iterations, args.csv)
