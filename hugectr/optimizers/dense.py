"""HugeCTR's dense optimizers, each a few whole-buffer elementwise ops on ``FlatParameters``.

Formulas are HugeCTR's (``HugeCTR/src/optimizers/*.cu``), with ``g = grad / scaler`` and the
learning rate given per step (the scheduler's value; 0 for a frozen dense part). Every
optimizer counts its own steps (``step_count``, t = 1 on the first step; only Adam uses it).
``Update_t`` does not apply to dense optimizers (HugeCTR ignores it too). Nothing here reads
a device value back to the host, so a step never synchronises.
"""

from __future__ import annotations

import math
import struct

import torch

from .._checks import require_int
from ..enums import Optimizer_t
from ..params.optimizer import OptParamsPy
from .flat_parameters import FlatParameters

FLT_EPSILON = 1.1920928955078125e-07   # C's FLT_EPSILON, used by HugeCTR's Ftrl kernel

_REGISTRY: dict[Optimizer_t, type[DenseOptimizer]] = {}


def _register(kind: Optimizer_t):
    def add(cls):
        _REGISTRY[kind] = cls
        cls.kind = kind
        return cls
    return add


def _scaled(grads: torch.Tensor, scaler: float) -> torch.Tensor:
    """g = grad / scaler (the loss was multiplied by ``scaler`` before backward)."""
    return grads if scaler == 1.0 else grads / scaler


class DenseOptimizer:
    """Base: owns the state tensors (one fp32 value per dense weight each) and the step count."""

    kind: Optimizer_t
    state_names: tuple[str, ...] = ()

    def __init__(self, opt: OptParamsPy, flat: FlatParameters):
        self.flat = flat
        self.step_count = 0
        for name in self.state_names:
            setattr(self, name, torch.zeros_like(flat.weights))   # (N,)

    @torch.no_grad()
    def step(self, lr: float, scaler: float = 1.0) -> None:
        """Apply one update with learning rate ``lr`` to the flat weights from the flat grads."""
        self.step_count += 1
        self._update(float(lr), float(scaler))

    def _update(self, lr: float, scaler: float) -> None:
        raise NotImplementedError

    def state_tensors(self) -> list[torch.Tensor]:
        """The state tensors in HugeCTR's ``_opt_dense_`` file order (each (N,), fp32)."""
        return [getattr(self, name) for name in self.state_names]

    def load_state_tensors(self, tensors: list[torch.Tensor]) -> None:
        """Copy saved state tensors (file order) into this optimizer's state."""
        tensors = list(tensors)
        owner = f"{self.kind} dense optimizer state"
        if len(tensors) != len(self.state_names):
            expected = ", ".join(self.state_names) or "none"
            raise ValueError(f"{owner}: expected {len(self.state_names)} tensor(s) ({expected}), "
                             f"received {len(tensors)}")
        for name, value in zip(self.state_names, tensors):
            if value.numel() != self.flat.numel:
                raise ValueError(f"{owner} '{name}': expected {self.flat.numel} float values (one per dense "
                                 f"weight), received {value.numel()}")
        with torch.no_grad():
            for name, value in zip(self.state_names, tensors):
                getattr(self, name).copy_(value.reshape(-1))

    def restore_step_count(self, step_count: int) -> None:
        """Continue counting from ``step_count`` (a resumed run; HugeCTR's state file does not hold it).

        Adam's bias correction depends on it: restarting at t = 1 after a load is what HugeCTR does,
        and gives a different (larger) first step than the uninterrupted run.
        """
        self.step_count = require_int(f"{self.kind} dense optimizer", "step_count", step_count, minimum=0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(numel={self.flat.numel}, step_count={self.step_count})"


@_register(Optimizer_t.SGD)
class SGD(DenseOptimizer):
    """w -= lr * g."""

    def _update(self, lr, scaler):
        self.flat.weights.add_(self.flat.grads, alpha=-lr / scaler)


@_register(Optimizer_t.MomentumSGD)
class MomentumSGD(DenseOptimizer):
    """m = f * m - lr * g;  w += m."""

    state_names = ("momentum",)

    def __init__(self, opt, flat):
        super().__init__(opt, flat)
        self.momentum_factor = opt.momentum_factor

    def _update(self, lr, scaler):
        self.momentum.mul_(self.momentum_factor).add_(self.flat.grads, alpha=-lr / scaler)
        self.flat.weights.add_(self.momentum)


@_register(Optimizer_t.Nesterov)
class Nesterov(DenseOptimizer):
    """a' = mu * a - lr * g;  w += -mu * a + (1 + mu) * a'  (mu = momentum_factor)."""

    state_names = ("accum",)

    def __init__(self, opt, flat):
        super().__init__(opt, flat)
        self.mu = opt.momentum_factor

    def _update(self, lr, scaler):
        weights, accum, mu = self.flat.weights, self.accum, self.mu
        weights.add_(accum, alpha=-mu)                       # the old accumulator's term first
        accum.mul_(mu).add_(self.flat.grads, alpha=-lr / scaler)
        weights.add_(accum, alpha=1.0 + mu)


@_register(Optimizer_t.AdaGrad)
class AdaGrad(DenseOptimizer):
    """acc += g^2;  w -= lr * g / (eps + sqrt(acc)).

    HugeCTR fills the accumulator with ``cudaMemset(buffer, initial_accu_value, bytes)``: the
    value is truncated to an int and its low byte repeated in every byte of each float, so
    any value in [0, 1) starts at 0.0 and 1.0 starts at ~2.4e-38. That start is reproduced.
    """

    state_names = ("accum",)

    def __init__(self, opt, flat):
        super().__init__(opt, flat)
        self.epsilon = opt.epsilon
        self.accum.fill_(memset_float(opt.initial_accu_value))

    def _update(self, lr, scaler):
        g = _scaled(self.flat.grads, scaler)
        self.accum.addcmul_(g, g)
        self.flat.weights.addcdiv_(g, self.accum.sqrt().add_(self.epsilon), value=-lr)


@_register(Optimizer_t.Adam)
class Adam(DenseOptimizer):
    """TF-style Adam: m, v moments; w -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)."""

    state_names = ("m", "v")

    def __init__(self, opt, flat):
        super().__init__(opt, flat)
        self.beta1, self.beta2, self.epsilon = opt.beta1, opt.beta2, opt.epsilon

    def _update(self, lr, scaler):
        b1, b2, t = self.beta1, self.beta2, self.step_count
        alpha_t = lr * math.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t)   # host scalar: no device sync
        g = _scaled(self.flat.grads, scaler)
        self.m.mul_(b1).add_(g, alpha=1.0 - b1)
        self.v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
        self.flat.weights.addcdiv_(self.m, self.v.sqrt().add_(self.epsilon), value=-alpha_t)


@_register(Optimizer_t.Ftrl)
class Ftrl(DenseOptimizer):
    """FTRL-proximal as HugeCTR's kernel (eps = FLT_EPSILON, alpha = lr):

    n' = n + g^2;  z += g + (sqrt(n + eps) - sqrt(n' + eps)) * w / alpha;
    w = (lambda1 * sign(z) - z) / (sqrt(n' + eps) / alpha + lambda2 + beta / alpha) if |z| > lambda1 else 0.
    HugeCTR passes ``lambda2 + beta / lr`` as the kernel's lambda2, so ``beta`` does count.
    """

    state_names = ("n", "z")

    def __init__(self, opt, flat):
        super().__init__(opt, flat)
        self.beta, self.lambda1, self.lambda2 = opt.beta, opt.lambda1, opt.lambda2

    def _update(self, lr, scaler):
        if lr == 0.0:
            # HugeCTR divides by lr and would write NaN; a frozen (lr 0) step leaves everything as is.
            return
        g = _scaled(self.flat.grads, scaler)
        w = self.flat.weights
        sqrt_old = self.n.add(FLT_EPSILON).sqrt_()
        self.n.addcmul_(g, g)
        sqrt_new = self.n.add(FLT_EPSILON).sqrt_()
        self.z.add_(g).add_(sqrt_old.sub_(sqrt_new).mul_(w).div_(lr))
        # sign as HugeCTR's 1 - 2*signbit(z): -0.0 counts as negative, +0.0 as positive.
        sign = 1.0 - 2.0 * torch.signbit(self.z).to(w.dtype)
        numerator = sign.mul_(self.lambda1).sub_(self.z)
        denominator = sqrt_new.div_(lr).add_(self.lambda2 + self.beta / lr)
        w.copy_(torch.where(self.z.abs() > self.lambda1, numerator.div_(denominator), torch.zeros_like(w)))


def memset_float(value: float) -> float:
    """The float that ``cudaMemset(ptr, value, bytes)`` leaves in every fp32 element.

    >>> memset_float(0.5), memset_float(0.0)
    (0.0, 0.0)
    >>> f"{memset_float(1.0):.4g}"
    '2.369e-38'
    """
    byte = int(value) & 0xFF   # C converts the float argument to int, memset keeps the low byte
    return struct.unpack("<f", bytes([byte] * 4))[0]


def make_dense_optimizer(opt: OptParamsPy, flat: FlatParameters) -> DenseOptimizer:
    """The dense optimizer ``opt`` names, over the flat weights.

    >>> from torch import nn
    >>> from hugectr.params import CreateOptimizer
    >>> layer = nn.Linear(2, 1)
    >>> flat = FlatParameters([layer.weight, layer.bias])
    >>> sgd = make_dense_optimizer(CreateOptimizer(optimizer_type=Optimizer_t.SGD), flat)
    >>> flat.load_(torch.zeros(3))
    >>> _ = flat.grads.fill_(2.0)
    >>> sgd.step(0.5)
    >>> flat.weights.tolist(), sgd.step_count
    ([-1.0, -1.0, -1.0], 1)
    """
    if not isinstance(opt, OptParamsPy):
        raise TypeError(f"make_dense_optimizer: opt must be the OptParamsPy from hugectr.CreateOptimizer, "
                        f"got {type(opt).__name__}")
    if not isinstance(flat, FlatParameters):
        raise TypeError(f"make_dense_optimizer: flat must be a FlatParameters, got {type(flat).__name__}")
    cls = _REGISTRY.get(opt.optimizer_type)
    if cls is None:
        supported = ", ".join(str(kind) for kind in _REGISTRY)
        raise ValueError(f"CreateOptimizer: {opt.optimizer_type} has no dense implementation in HugeCTR (its "
                         f"dense optimizer factory rejects it); use one of {supported}")
    return cls(opt, flat)
