"""``ReduceMean``: mean over one dimension, keeping it with size 1."""

from __future__ import annotations

import torch

from ...enums import Layer_t
from ..base import register
from .axis_reduction import AxisReduction


@register(Layer_t.ReduceMean)
class ReduceMean(AxisReduction):
    """Mean over ``axis`` (0 <= axis < rank, rank <= 3), which stays with size 1.

    (B, S, E) axis 1 -> (B, 1, E) (BST pools its attention output this way). Axis 0 averages
    over the batch, as HugeCTR's kernel does: (B, N) -> (1, N). fp32 only in HugeCTR.

    >>> from hugectr.testing.layer_test import run_layer_test
    >>> x = torch.tensor([[1., 2.], [3., 5.]])
    >>> run_layer_test(Layer_t.ReduceMean, [(2, 2)], inputs=[x], axis=1).outputs[0].tolist()
    [[1.5], [4.0]]
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=self.axis, keepdim=True)
