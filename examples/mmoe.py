"""MMoE (Multi-gate Mixture of Experts) on census income + never married, as a HugeCTR user writes it.

Three experts (MLPs) read the shared features; each task has a gate (InnerProduct + Softmax over
the experts) that mixes the experts' outputs for its own tower. The mix uses HugeCTR's layers:
Scale repeats each gate weight across an expert's width, ElementwiseMultiply weighs the stacked
expert outputs, Reshape (``time_step``) + ReduceSum add them up. Two BinaryCrossEntropyLoss
layers, ``compile(loss_names, loss_weights)``. Prints the held-back AUC of the first task.

    python examples/mmoe.py [--iterations 400] [--csv ../shared/data/census_kdd_part_a_80k.csv.gz]
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

NUM_EXPERTS = 3
EXPERT_WIDTH = 32


def add_experts(model: hugectr.Model) -> None:
    """Experts e0..e2: features -> 64 -> EXPERT_WIDTH; stacked as ``experts`` (B, NUM_EXPERTS * EXPERT_WIDTH)."""
    L = hugectr.Layer_t
    for e in range(NUM_EXPERTS):
        model.add(dense(L.InnerProduct, ["features"], [f"e{e}_fc1"], num_output=64))
        model.add(dense(L.ReLU, [f"e{e}_fc1"], [f"e{e}_relu1"]))
        model.add(dense(L.InnerProduct, [f"e{e}_relu1"], [f"e{e}_fc2"], num_output=EXPERT_WIDTH))
        model.add(dense(L.ReLU, [f"e{e}_fc2"], [f"e{e}_out"]))
    model.add(dense(L.Concat, [f"e{e}_out" for e in range(NUM_EXPERTS)], ["experts"]))


def add_gate(model: hugectr.Model, task: str) -> str:
    """The task's gate and its mix of the experts; returns the name of the (B, EXPERT_WIDTH) mix."""
    L = hugectr.Layer_t
    for layer in [
        dense(L.InnerProduct, ["features"], [f"{task}_gate_fc"], num_output=NUM_EXPERTS),
        dense(L.Softmax, [f"{task}_gate_fc"], [f"{task}_gate"]),                     # (B, E), rows sum to 1
        # Element e * W + i of the repeat is gate weight e: it lines up with expert e's outputs.
        dense(L.Scale, [f"{task}_gate"], [f"{task}_gate_rep"], axis=0, factor=EXPERT_WIDTH),   # (B, E * W)
        dense(L.ElementwiseMultiply, ["experts", f"{task}_gate_rep"], [f"{task}_weighted"]),
        dense(L.Reshape, [f"{task}_weighted"], [f"{task}_weighted3"], leading_dim=EXPERT_WIDTH,
              time_step=NUM_EXPERTS),                                                # (B, E, W)
        dense(L.ReduceSum, [f"{task}_weighted3"], [f"{task}_mix3"], axis=1),         # (B, 1, W)
        dense(L.Reshape, [f"{task}_mix3"], [f"{task}_mix"], leading_dim=EXPERT_WIDTH),   # (B, W)
    ]:
        model.add(layer)
    return f"{task}_mix"


def build(info: dict, batchsize: int = 512) -> hugectr.Model:
    """The compiled MMoE model for the converted census data ``info``."""
    model = base_model(info, "mmoe", batchsize)
    add_experts(model)
    add_towers_and_losses(model, {task: add_gate(model, task) for task in TASKS})
    return model


def run(workdir: str, iterations: int = 400, csv: str | Path = CENSUS_CSV) -> tuple[hugectr.Model, float]:
    """Convert, build, train; returns the trained model and the held-back income AUC."""
    model = build(prepare(csv, workdir))
    return model, train_and_evaluate(model, iterations, "MMoE")


def main(workdir: str, iterations: int = 400, csv: str | Path = CENSUS_CSV) -> float:
    return run(workdir, iterations, csv)[1]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=400)
    parser.add_argument("--csv", default=str(CENSUS_CSV))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        main(tmp, args.iterations, args.csv)
