"""Every HUGECTR_* environment switch refuses a value it does not know, naming the variable and the choices."""

import pytest
import torch

from hugectr import log
from hugectr.distributed.env import cuda_wanted
from hugectr.kernels.dispatch import kernel_mode
from hugectr.kernels.multi_cross import fused_cross_wanted
from hugectr.training import compile_wanted, cuda_graphs_wanted

CHECKS = [
    ("HUGECTR_LOG_LEVEL", "info", log._threshold, "must be an integer"),
    ("HUGECTR_DEVICE", "gpu", cuda_wanted, "must be 'cpu' or 'cuda'"),
    ("HUGECTR_KERNELS", "cuda", kernel_mode, "is not a kernel mode"),
    ("HUGECTR_COMPILE", "yes", lambda: compile_wanted(torch.device("cpu")), "must be 0 or 1"),
    ("HUGECTR_CUDA_GRAPHS", "true", lambda: cuda_graphs_wanted(True, compiled=True), "must be 0 or 1"),
    ("HUGECTR_FUSED_CROSS", "on", fused_cross_wanted, "must be 0 or 1"),
]


@pytest.mark.parametrize("variable,bad,read,message", CHECKS, ids=[c[0] for c in CHECKS])
def test_unknown_values_are_refused(monkeypatch, variable, bad, read, message):
    monkeypatch.setenv(variable, bad)
    with pytest.raises(ValueError, match=f"{variable}.*{message}|{message}.*{bad}") as raised:
        read()
    assert variable in str(raised.value) and repr(bad) in str(raised.value)


def test_log_level_is_read_as_an_integer(monkeypatch):
    monkeypatch.setenv("HUGECTR_LOG_LEVEL", " 3 ")
    assert log._threshold() == 3
    monkeypatch.delenv("HUGECTR_LOG_LEVEL")
    assert log._threshold() == 2
