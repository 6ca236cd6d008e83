"""``CreateOptimizer`` and ``OptParamsPy``: optimizer type and hyper-parameters."""

from __future__ import annotations

from .._checks import require_bool, require_number
from ..enums import Optimizer_t, Update_t, coerce
from ._dataclass import strict_params

# Optimizer state copies per weight, as HugeCTR counts them when it sizes embedding tables
# from workspace_size_per_gpu_in_mb (LazyGlobal Adam keeps one more).
STATE_COPIES = {
    Optimizer_t.Adam: 2, Optimizer_t.Ftrl: 2, Optimizer_t.AdaGrad: 1, Optimizer_t.RMSProp: 1,
    Optimizer_t.MomentumSGD: 1, Optimizer_t.Nesterov: 1, Optimizer_t.SGD: 0,
}


@strict_params(owner="CreateOptimizer")
class OptParamsPy:
    """What ``CreateOptimizer`` returns; one object serves the dense net and every embedding
    that has no optimizer of its own."""

    optimizer_type: Optimizer_t = Optimizer_t.Adam
    update_type: Update_t = Update_t.Global
    beta: float = 0.0
    lambda1: float = 0.0
    lambda2: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-7
    initial_accu_value: float = 0.0
    momentum_factor: float = 0.0
    atomic_update: bool = True

    def __post_init__(self) -> None:
        owner = "CreateOptimizer"
        self.optimizer_type = coerce(Optimizer_t, self.optimizer_type, f"{owner}: optimizer_type")
        self.update_type = coerce(Update_t, self.update_type, f"{owner}: update_type")
        for name in ("beta", "lambda1", "lambda2", "beta1", "beta2", "epsilon", "initial_accu_value",
                     "momentum_factor"):
            setattr(self, name, require_number(owner, name, getattr(self, name)))
        self.atomic_update = require_bool(owner, "atomic_update", self.atomic_update)
        if self.update_type is Update_t.LazyGlobal and self.optimizer_type is not Optimizer_t.Adam:
            raise ValueError(f"{owner}: Update_t.LazyGlobal works with Optimizer_t.Adam only, "
                             f"got {self.optimizer_type}; use Update_t.Local or Update_t.Global")

    @property
    def state_copies(self) -> int:
        """Optimizer state tensors per weight (HugeCTR's count, used for table capacity)."""
        extra = 1 if self.update_type is Update_t.LazyGlobal else 0
        return STATE_COPIES[self.optimizer_type] + extra


def CreateOptimizer(*args, **kwargs) -> OptParamsPy:  # noqa: N802 - HugeCTR's name
    """Build an ``OptParamsPy``; every keyword and default is HugeCTR's (positional in that order).

    >>> opt = CreateOptimizer(optimizer_type=Optimizer_t.Adam, update_type=Update_t.Local)
    >>> opt.beta1, opt.epsilon, opt.state_copies
    (0.9, 1e-07, 2)
    """
    return OptParamsPy(*args, **kwargs)
