"""The DIN, BST, NCF/NeuMF, MMoE and shared-bottom examples run as a user runs them, and learn.

DIN, BST and NCF train on generated data with a planted click model (and NCF also on
MovieLens-100k); MMoE and shared-bottom train on the census data for both tasks. HugeCTR's
metrics report the AUC of the first label only, so the per-task AUCs here come from the tower
outputs read back after each ``model.eval()`` with ``model.check_out_tensor(name,
Tensor_t.Evaluate)`` (sigmoid of the logits, as HugeCTR hands out a BCE loss's prediction); the
AUC is a rank formula written here, and the income AUC computed that way must equal the metrics'.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

import hugectr
from hugectr.testing.scripts import load_script

ROOT = Path(__file__).parents[1]
EXAMPLES = ROOT / "examples"
SHARED_DATA = ROOT / ".." / "shared" / "data"
CENSUS = SHARED_DATA / "census_kdd_part_a_80k.csv.gz"
MOVIELENS = SHARED_DATA / "ml-100k"
needs_census = pytest.mark.skipif(not CENSUS.is_file(), reason=f"census data not found at {CENSUS}")
needs_movielens = pytest.mark.skipif(not Path(f"{MOVIELENS}.inter").is_file(),
                                     reason=f"MovieLens-100k not found at {MOVIELENS}.inter")


def load_example(name: str):
    sys.path.insert(0, str(EXAMPLES))   # the examples import their shared data helpers by name
    return load_script(EXAMPLES / f"{name}.py", f"example_{name}")


def rank_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mann-Whitney AUC with average ranks for ties."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ranks = (np.bincount(inverse, weights=ranks) / counts)[inverse]      # average rank within ties
    positive = labels > 0.5
    n_pos, n_neg = positive.sum(), (~positive).sum()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def eval_tensors(model, names: tuple[str, ...]) -> tuple[dict[str, np.ndarray], float]:
    """Run the eval batches, keeping ``names`` from each; returns them concatenated and the metrics' AUC."""
    kept = {name: [] for name in names}
    for _ in range(model.solver.max_eval_batches):
        model.eval()
        for name in names:
            kept[name].append(model.check_out_tensor(name, hugectr.Tensor_t.Evaluate))
    return {name: np.concatenate(parts) for name, parts in kept.items()}, dict(model.get_eval_metrics())["AUC"]


def test_rank_auc_matches_the_pair_count():
    scores, labels = np.array([0.1, 0.4, 0.4, 0.8, 0.3]), np.array([0.0, 1.0, 0.0, 1.0, 1.0])
    pairs = [(p, n) for p in scores[labels == 1] for n in scores[labels == 0]]
    expected = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)
    assert rank_auc(scores, labels) == pytest.approx(expected)


@pytest.mark.slow
def test_din_learns_and_pools_history_with_its_attention_weights(tmp_path):
    din = load_example("din")
    model, auc, oracle = din.run(str(tmp_path), iterations=600)
    print(f"DIN AUC {auc:.4f}, oracle {oracle:.4f}")
    assert 0.70 <= auc <= oracle + 0.01
    tensors, _ = eval_tensors(model, ("weights", "item_his", "attended"))
    weights, history = tensors["weights"], tensors["item_his"]          # (n, T), (n * T, W)
    steps = weights.shape[1]
    np.testing.assert_allclose(weights.sum(1), 1.0, rtol=1e-5)
    expected = (weights[:, :, None] * history.reshape(-1, steps, history.shape[1])).sum(1)
    np.testing.assert_allclose(tensors["attended"], expected, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_bst_learns(tmp_path):
    auc, oracle = load_example("bst").main(str(tmp_path), iterations=600)
    print(f"BST AUC {auc:.4f}, oracle {oracle:.4f}")
    assert 0.69 <= auc <= oracle + 0.01


@pytest.mark.slow
def test_ncf_learns_the_planted_user_item_model(tmp_path):
    auc = load_example("ncf").main(str(tmp_path), iterations=800)
    assert auc >= 0.74      # oracle of the planted model about 0.85


@pytest.mark.slow
@needs_movielens
def test_ncf_on_movielens_reaches_the_logistic_regression_reference(tmp_path):
    auc = load_example("ncf").main(str(tmp_path), iterations=400, movielens=str(MOVIELENS))
    assert auc >= 0.69      # the data README: logistic regression on the two ids, 0.704


def _task_aucs(model) -> tuple[dict[str, float], float]:
    tensors, metrics_auc = eval_tensors(model, ("income_logit", "income", "never_married_logit", "never_married"))
    assert len(tensors["income"]) == 16000     # the whole held-back 20%, each row once
    aucs = {task: rank_auc(tensors[f"{task}_logit"].ravel(), tensors[task].ravel())
            for task in ("income", "never_married")}
    return aucs, metrics_auc


@pytest.mark.slow
@needs_census
@pytest.mark.parametrize("example", ["mmoe", "shared_bottom"])
def test_multitask_example_reaches_both_census_targets(tmp_path, example):
    model, auc = load_example(example).run(str(tmp_path), iterations=400, csv=CENSUS)
    aucs, metrics_auc = _task_aucs(model)
    print(f"{example} income AUC {aucs['income']:.4f}, never-married AUC {aucs['never_married']:.4f}")
    assert aucs["income"] == pytest.approx(metrics_auc, abs=1e-6) and metrics_auc == pytest.approx(auc, abs=1e-9)
    assert aucs["income"] >= 0.93 and aucs["never_married"] >= 0.98


@pytest.mark.slow
@needs_census
def test_mmoe_mixes_the_experts_with_its_gates(tmp_path):
    mmoe = load_example("mmoe")
    model, _ = mmoe.run(str(tmp_path), iterations=20, csv=CENSUS)
    names = ("income_gate", "never_married_gate", "income_mix", "never_married_mix", "e0_out", "e1_out", "e2_out")
    tensors, _ = eval_tensors(model, names)
    experts = np.stack([tensors[f"e{e}_out"] for e in range(mmoe.NUM_EXPERTS)], axis=1)   # (n, E, W)
    for task in ("income", "never_married"):
        gate = tensors[f"{task}_gate"]                                                    # (n, E)
        np.testing.assert_allclose(gate.sum(1), 1.0, rtol=1e-5)
        np.testing.assert_allclose(tensors[f"{task}_mix"], (gate[:, :, None] * experts).sum(1), rtol=1e-4,
                                   atol=1e-5)


def test_missing_data_is_named():
    with pytest.raises(FileNotFoundError, match="census data not found"):
        load_example("mmoe").main("unused", iterations=1, csv="/nonexistent/census.csv.gz")
    with pytest.raises(FileNotFoundError, match="MovieLens ratings not found"):
        load_example("ncf").main("unused", iterations=1, movielens="/nonexistent/ml-100k")
