"""``MultiCross``: the cross network of DCN (v1) and its low-rank DCN-v2 form."""

from __future__ import annotations

import torch
from torch import nn

from ..._checks import require_int
from ...enums import Layer_t
from ...kernels.multi_cross import fused_cross_wanted, multi_cross
from ..base import Layer, Shape, WeightInit, register
from ..initializers import (default_only_table, glorot_normal, init_from_json, init_to_json, initialize,
                            zero)

# HugeCTR supports only its default initialisers here: Zero gives zeros, any other type the default.
_KERNEL_INITS = default_only_table(glorot_normal)   # w / U / V ~ N(0, sqrt(2/(fan_in+fan_out)))
_BIAS_INITS = default_only_table(zero)              # b = 0


@register(Layer_t.MultiCross)
class MultiCross(Layer):
    """``num_layers`` cross layers over x0 of shape (B, n); output (B, n).

    v1 (``projection_dim == 0``): ``x_{l+1} = x0 * (x_l @ w_l^T) + b_l + x_l`` with ``w_l`` (n,):
    the per-sample scalar ``x_l . w_l`` scales x0. Parameters ``w0, b0, w1, b1, ...``. All layers run
    as one fused pass each way (``hugectr.kernels.multi_cross``) unless ``HUGECTR_FUSED_CROSS=0`` (read
    when the layer is made) asks for layer by layer, which torch.compile fuses.
    v2 (``projection_dim = k > 0``): ``x_{l+1} = x0 * (x_l @ U_l @ V_l + b_l) + x_l`` with
    ``U_l`` (n, k), ``V_l`` (k, n). Parameters ``U0, V0, b0, U1, V1, b1, ...``. ``b_l`` is (n,)
    (HugeCTR's (1, n), the same bytes).

    >>> from hugectr.testing.layer_test import run_layer_test
    >>> r = run_layer_test(Layer_t.MultiCross, [(4, 6)], num_layers=2, projection_dim=3)
    >>> tuple(r.outputs[0].shape), [tuple(p.shape) for p in r.layer.parameters()][:3]
    ((4, 6), [(6, 3), (3, 6), (6,)])
    """

    supports_mixed_precision = True

    def __init__(self, params):
        super().__init__(params)
        self.num_layers = require_int(self.describe(), "num_layers", params.num_layers)
        if self.num_layers < 1:
            raise self.fail(f"num_layers must be >= 1 (the number of cross layers), got {self.num_layers}")
        self.projection_dim = require_int(self.describe(), "projection_dim", params.projection_dim, minimum=0)
        self.weight_init_type = params.weight_init_type
        self.bias_init_type = params.bias_init_type
        self.fused = not self.projection_dim and fused_cross_wanted()

    @property
    def per_layer(self) -> int:
        """Parameter tensors per cross layer: (w, b) for v1, (U, V, b) for v2."""
        return 3 if self.projection_dim else 2

    def output_shapes(self, in_shapes: list[Shape]) -> list[Shape]:
        (shape,) = in_shapes
        if len(shape) != 2:
            raise self.fail(f"bottom '{self.params.bottom_names[0]}' has shape {shape}; MultiCross takes a 2-D "
                            "(batch, features) tensor - add a Reshape first")
        return [tuple(shape)]

    def build(self, in_shapes: list[Shape], init: WeightInit) -> None:
        n, k, g = in_shapes[0][1], self.projection_dim, init.generator
        params = []
        for _ in range(self.num_layers):
            if k:
                params.append(initialize(self.weight_init_type, _KERNEL_INITS, (n, k), n, k, g))   # U
                params.append(initialize(self.weight_init_type, _KERNEL_INITS, (k, n), k, n, g))   # V
            else:
                params.append(initialize(self.weight_init_type, _KERNEL_INITS, (n,), n, n, g))   # w
            params.append(initialize(self.bias_init_type, _BIAS_INITS, (n,), n, n, g))          # b
        # HugeCTR's file order. w and b are HugeCTR's [1, n] stored as (n,): the same bytes, and a
        # 1-D bias keeps torch.compile's backward (bf16 autocast) from mis-shaping its gradient.
        self.weights = nn.ParameterList(params)

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        if self.fused:
            # v1 in one fused pass (Triton on a GPU, the torch recurrence on a CPU), fp32 inside; the
            # output takes autocast's dtype, as the matmuls it replaces would.
            params = list(self.weights)
            return multi_cross(x0, params[0::2], params[1::2])
        # Elementwise terms follow the matmul's dtype, so under autocast a layer stays in fp16.
        x, step = x0, self.per_layer
        for first in range(0, self.num_layers * step, step):
            b = self.weights[first + step - 1]
            if self.projection_dim:
                u, v = self.weights[first], self.weights[first + 1]
                h = torch.addmm(b, torch.mm(x, u), v)              # (B, k) -> (B, n): x U V + b
                x = x0.to(h.dtype) * h + x.to(h.dtype)
            else:
                s = torch.matmul(x, self.weights[first]).unsqueeze(1)  # (B, 1): per-sample x . w
                x = x0.to(s.dtype) * s + b.to(s.dtype) + x.to(s.dtype)
        return x

    def to_json(self) -> dict:
        mc_param = {"num_layers": self.num_layers}
        # HugeCTR's writer drops projection_dim (a DCN-v2 graph reloads as v1); its reader accepts
        # the key, so we write it when set and the graph survives the round trip.
        if self.projection_dim:
            mc_param["projection_dim"] = self.projection_dim
        init_to_json(mc_param, "weight_init", self.weight_init_type)
        init_to_json(mc_param, "bias_init", self.bias_init_type)
        return {"mc_param": mc_param}

    @classmethod
    def json_to_keywords(cls, fields: dict) -> dict:
        mc = fields["mc_param"]
        return {"num_layers": mc["num_layers"], "projection_dim": mc.get("projection_dim", 0),
                "weight_init_type": init_from_json(mc, "weight_init", "MultiCross"),
                "bias_init_type": init_from_json(mc, "bias_init", "MultiCross")}
