"""The same model on CUDA: equal to the CPU run in fp32, trains in fp16 mixed precision and with TF32."""

import os

import numpy as np
import torch
import pytest


pytestmark = pytest.mark.gpu


def run_steps(build_small_model, data, device: str, steps: int = 5, initial_table=None, model=None, **overrides):
    if model is None:
        previous = os.environ.get("HUGECTR_DEVICE")
        os.environ["HUGECTR_DEVICE"] = device
        try:
            model = build_small_model(data, **overrides)
        finally:
            os.environ.pop("HUGECTR_DEVICE") if previous is None else os.environ.__setitem__("HUGECTR_DEVICE", previous)
    if initial_table is not None:   # CPU and CUDA tables draw their initial values from different generators
        model.embedding_tables[0].weights.copy_(initial_table)
    model.start_data_reading()
    for _ in range(steps):
        model.set_learning_rate(0.01)
        model.train()
    return model


def test_cuda_matches_cpu_fp32(planted_data, build_small_model):
    initial = run_steps(build_small_model, planted_data, "cpu", steps=0).embedding_tables[0].weights.clone()
    cpu = run_steps(build_small_model, planted_data, "cpu", initial_table=initial)
    gpu = run_steps(build_small_model, planted_data, "cuda", initial_table=initial)
    assert gpu.device.type == "cuda"
    np.testing.assert_allclose(gpu.flat_parameters.weights.cpu().numpy(), cpu.flat_parameters.weights.numpy(),
                               rtol=1e-4, atol=1e-5)
    cpu_table, gpu_table = cpu.embedding_tables[0], gpu.embedding_tables[0]
    assert gpu_table.export()[0].cpu().tolist() == cpu_table.export()[0].tolist()
    np.testing.assert_allclose(gpu_table.export()[1].cpu().numpy(), cpu_table.export()[1].numpy(), rtol=1e-4, atol=1e-5)
    assert gpu.get_current_loss() == pytest.approx(cpu.get_current_loss(), rel=1e-4)


@pytest.mark.parametrize("overrides", [dict(use_mixed_precision=True, scaler=128.0), dict(enable_tf32_compute=True)])
def test_cuda_precision_modes_train(planted_data, build_small_model, overrides):
    fp32 = run_steps(build_small_model, planted_data, "cuda", steps=30)
    other = run_steps(build_small_model, planted_data, "cuda", steps=0, **overrides)
    other.engine.keep = ("fc1", "features")
    other = run_steps(build_small_model, planted_data, "cuda", steps=30, model=other)
    assert np.isfinite(other.get_current_loss())
    assert other.get_current_loss() == pytest.approx(fp32.get_current_loss(), rel=0.05)
    # mixed precision really runs the dense layers in fp16, from the dense input on (as HugeCTR's reader
    # hands it over): the Concat of the fp16 embedding and the dense input stays fp16
    if overrides.get("use_mixed_precision"):
        assert other.engine.kept["fc1"].dtype == torch.float16
        assert other.engine.kept["features"].dtype == torch.float16


def test_training_step_never_waits_for_the_gpu(planted_data, build_small_model):
    """After warm-up, a training step (lookup, dense net, backward, both optimizers) makes no host sync."""
    import warnings

    model = run_steps(build_small_model, planted_data, "cuda", steps=3)
    batch = model._feed("train").next_batch()
    lrs = {name: 0.01 for name in model.engine.tables}
    model.engine.train_step(batch, 0.01, lrs)
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            model.engine.train_step(batch, 0.01, lrs)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [f"{w.filename}:{w.lineno}" for w in caught if "called a synchronizing" in str(w.message)]
    assert not syncs, f"host syncs at {syncs}"
