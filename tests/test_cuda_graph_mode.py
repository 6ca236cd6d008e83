"""``use_cuda_graph`` (unless ``HUGECTR_CUDA_GRAPHS=0``): the compiled dense network replayed from CUDA graphs.

The replayed step must train exactly like the compiled one, and nothing a user reads after a step
(losses, eval metrics, check_out_tensor values) may live in graph memory that a later replay rewrites.
On a CPU the mode compiles without graphs, which checks everything but the replay itself.
"""

import numpy as np
import pytest
import torch

import hugectr
from hugectr.training import cuda_graphs_wanted


def test_cuda_graphs_follow_use_cuda_graph(monkeypatch):
    monkeypatch.delenv("HUGECTR_CUDA_GRAPHS", raising=False)
    assert cuda_graphs_wanted(True, compiled=True)           # HugeCTR's default use_cuda_graph=True
    monkeypatch.setenv("HUGECTR_CUDA_GRAPHS", "0")
    assert not cuda_graphs_wanted(True, compiled=True)       # the opt-out
    monkeypatch.setenv("HUGECTR_CUDA_GRAPHS", "1")
    assert cuda_graphs_wanted(True, compiled=True)
    assert not cuda_graphs_wanted(False, compiled=True)      # the solver's use_cuda_graph=False wins
    assert not cuda_graphs_wanted(True, compiled=False)      # graphs replay the compiled network only
    monkeypatch.setenv("HUGECTR_CUDA_GRAPHS", "on")
    with pytest.raises(ValueError, match="HUGECTR_CUDA_GRAPHS must be 0 or 1, got 'on'"):
        cuda_graphs_wanted(True, compiled=True)


def train_and_evaluate(monkeypatch, data, build_small_model, device: str, graphs: bool, steps: int):
    """(model, the losses read after every step, the loss tensor of step 1 read at the end, eval metrics)."""
    monkeypatch.setenv("HUGECTR_DEVICE", device)
    monkeypatch.setenv("HUGECTR_COMPILE", "1")
    monkeypatch.setenv("HUGECTR_CUDA_GRAPHS", "1" if graphs else "0")
    torch.manual_seed(0)
    model = build_small_model(data)
    assert model.engine.settings.cuda_graphs == graphs
    model.engine.keep = ("fc1",)
    model.start_data_reading()
    losses, first = [], None
    for step in range(steps):
        model.train()
        losses.append(model.get_current_loss())
        first = model._last_loss if step == 0 else first          # held across later steps, as a user may
        if step == steps // 2:
            for _ in range(2):
                model.eval()
            metrics = model.get_eval_metrics()
    return model, losses, float(first), metrics


def assert_same_training(device, monkeypatch, planted_data, build_small_model, steps):
    plain, plain_losses, plain_first, plain_metrics = train_and_evaluate(
        monkeypatch, planted_data, build_small_model, device, graphs=False, steps=steps)
    graphed, losses, first, metrics = train_and_evaluate(
        monkeypatch, planted_data, build_small_model, device, graphs=True, steps=steps)
    np.testing.assert_allclose(losses, plain_losses, rtol=1e-5, atol=1e-6)
    assert first == pytest.approx(losses[0], rel=1e-6) and first == pytest.approx(plain_first, rel=1e-5)
    assert [name for name, _ in metrics] == [name for name, _ in plain_metrics]
    np.testing.assert_allclose([v for _, v in metrics], [v for _, v in plain_metrics], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(graphed.flat_parameters.weights.cpu().numpy(),
                               plain.flat_parameters.weights.cpu().numpy(), rtol=1e-5, atol=1e-6)
    # A value kept for check_out_tensor stays readable after further steps.
    kept = graphed.check_out_tensor("fc1", hugectr.Tensor_t.Evaluate)
    graphed.train()
    plain.train()
    assert np.array_equal(kept, graphed.check_out_tensor("fc1", hugectr.Tensor_t.Evaluate))
    # The training lookup pools into one buffer at a fixed address (read by the graph in place): an
    # eval lookup in between must leave the last training step's embedding output as it was.
    for model in (graphed, plain):
        model.eval()
    np.testing.assert_allclose(graphed.check_out_tensor("emb", hugectr.Tensor_t.Train),
                               plain.check_out_tensor("emb", hugectr.Tensor_t.Train), rtol=1e-5, atol=1e-6)
    buffer = graphed.engine._pooled_buffers["emb"]
    assert graphed.engine.recorder.train.inputs["emb"].data_ptr() == buffer.data_ptr()
    assert buffer.grad is None                                   # dropped after the update, not summed into


def test_graph_mode_trains_like_the_compiled_network_on_cpu(monkeypatch, planted_data, build_small_model):
    assert_same_training("cpu", monkeypatch, planted_data, build_small_model, steps=4)


@pytest.mark.gpu
def test_graph_replay_trains_like_the_compiled_network(device, monkeypatch, planted_data, build_small_model):
    assert_same_training("cuda", monkeypatch, planted_data, build_small_model, steps=12)
