"""``ReduceSum``: sum over one dimension, keeping it with size 1."""

from __future__ import annotations

import torch

from ...enums import Layer_t
from ..base import register
from .axis_reduction import AxisReduction


@register(Layer_t.ReduceSum)
class ReduceSum(AxisReduction):
    """Sum over ``axis`` (0 <= axis < rank, rank <= 3), which stays with size 1.

    (B, N) axis 1 -> (B, 1); (B, S, E) axis 2 -> (B, S, 1). Axis 0 sums over the batch,
    as HugeCTR's kernel does: (B, N) -> (1, N).

    >>> from hugectr.testing.layer_test import run_layer_test
    >>> x = torch.tensor([[1., 2.], [3., 4.]])
    >>> run_layer_test(Layer_t.ReduceSum, [(2, 2)], inputs=[x], axis=1).outputs[0].tolist()
    [[3.0], [7.0]]
    """

    supports_mixed_precision = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(dim=self.axis, keepdim=True)
