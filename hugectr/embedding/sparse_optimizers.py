"""HugeCTR's sparse (row-wise) update rules for ``SparseEmbedding`` tables (reference section 4.2 "Sparse").

Every rule is a function over ``(rows (U,), grads (U, ev), weights (capacity, ev), state..., lr, step)``:
``rows`` are distinct, ``grads`` already summed over each row's occurrences in the batch (mean
combiner divided by nnz) and divided by the loss scaler. They update ``weights`` and state in place.
They are the reference of the fused Triton backward (``hugectr.kernels.embedding_update``), which
runs the same arithmetic on GPU. ``SparseOptimizer`` owns the state and names its rule (``RULES``).

Facts reproduced (HugeCTR ``src/optimizers/sparse_optimizer.cu``):

* Adam's step ``t`` counts update calls (starting at 1); alpha_t = lr sqrt(1 - b2^t) / (1 - b1^t); eps
  is added to sqrt(v) without bias correction.
* Global Adam / MomentumSGD / Nesterov touch **every row of the preallocated table** each step (rows
  used or not), as HugeCTR does: a full pass over the table, chosen by the user.
* LazyGlobal (Adam only) remembers the step at which each row was last updated (initially 1). HugeCTR
  keeps that per element; every element of a row is always updated together, so we keep it per row
  (same arithmetic, ev times less memory).
* SGD: HugeCTR's default ``atomic_update=True`` adds ``-lr/scaler * g`` once per key occurrence with
  atomics; that is the same sum as one update with the summed gradient (up to float rounding order),
  so one rule serves both settings, Global and Local alike.
* AdaGrad: HugeCTR fills the accumulator with ``cudaMemset(initial_accu_value)``, a byte fill that only
  gives the intended value for 0; we fill it the same way (``memset_float``), as the dense AdaGrad does,
  so a script trains as it did under HugeCTR.
* Ftrl and RMSProp have no SparseEmbedding update in HugeCTR: they are refused at construction.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..optimizers.dense import memset_float
from ..enums import Optimizer_t, Update_t
from ..params.optimizer import OptParamsPy


def adam_alpha(lr: float, step: int, beta1: float, beta2: float) -> float:
    """Adam's bias-corrected step size at step ``step`` (>= 1).

    >>> round(adam_alpha(0.001, 1, 0.9, 0.999), 8)  # 0.001 * sqrt(0.001) / 0.1
    0.00031623
    """
    return lr * math.sqrt(1.0 - beta2 ** step) / (1.0 - beta1 ** step)


def sgd_update(rows, grads, weights, lr: float) -> None:
    """w[r] -= lr * g."""
    weights.index_add_(0, rows, grads, alpha=-lr)


def adagrad_update(rows, grads, weights, accum, lr: float, epsilon: float) -> None:
    """acc[r] += g^2; w[r] -= lr * g / (sqrt(acc[r]) + eps) (Local and Global alike)."""
    acc = accum.index_select(0, rows).addcmul_(grads, grads)
    accum.index_copy_(0, rows, acc)
    weights.index_add_(0, rows, grads / acc.sqrt_().add_(epsilon), alpha=-lr)


def adam_local_update(rows, grads, weights, m, v, lr: float, step: int, beta1: float, beta2: float,
                      epsilon: float) -> None:
    """Hit rows only: m, v moving averages, then w[r] -= alpha_t * m / (sqrt(v) + eps)."""
    m_rows = m.index_select(0, rows).mul_(beta1).add_(grads, alpha=1.0 - beta1)
    v_rows = v.index_select(0, rows).mul_(beta2).addcmul_(grads, grads, value=1.0 - beta2)
    m.index_copy_(0, rows, m_rows)
    v.index_copy_(0, rows, v_rows)
    weights.index_add_(0, rows, m_rows / v_rows.sqrt_().add_(epsilon), alpha=-adam_alpha(lr, step, beta1, beta2))


def adam_global_update(rows, grads, weights, m, v, lr: float, step: int, beta1: float, beta2: float,
                       epsilon: float) -> None:
    """Hit rows: m += (1-b1)/b1 g, v += (1-b2)/b2 g^2; then every row: m *= b1, v *= b2, Adam step.

    The pre-division by beta makes the whole-table decay leave exactly b m + (1-b) g on hit rows.
    """
    m.index_add_(0, rows, grads, alpha=(1.0 - beta1) / beta1)
    v.index_add_(0, rows, grads * grads, alpha=(1.0 - beta2) / beta2)
    m.mul_(beta1)
    v.mul_(beta2)
    weights.addcdiv_(m, v.sqrt().add_(epsilon), value=-adam_alpha(lr, step, beta1, beta2))


def lazy_global_factors(last_step, rows, step: int, lr: float, beta1: float, beta2: float):
    """LazyGlobal's per-row scalars ``(alpha, beta1^s, beta2^s)``, each (U,) fp32; sets last_step[rows] = step.

    With p = step of the row's last update (initially 1) and s = step - p:
    alpha = lr/(1-b1) * sqrt(1-b2^p)/(1-b1^p) * (1-b1^s). Computed in float64: 1 - b2^p cancels
    badly in float32 (HugeCTR's powf loses ~1e-5). The fused kernel consumes the same three vectors.
    """
    previous = last_step.index_select(0, rows).to(torch.float64)        # (U,)
    last_step.index_fill_(0, rows, step)
    skipped = step - previous
    beta1_skipped = torch.pow(beta1, skipped)
    alpha = (lr / (1.0 - beta1) * torch.sqrt(1.0 - torch.pow(beta2, previous))
             / (1.0 - torch.pow(beta1, previous)) * (1.0 - beta1_skipped))
    return alpha.float(), beta1_skipped.float(), torch.pow(beta2, skipped).float()


def adam_lazy_global_update(rows, grads, weights, m, v, last_step, lr: float, step: int, beta1: float,
                            beta2: float, epsilon: float) -> None:
    """Global Adam's effect on a row, caught up lazily when the row is hit again.

    First w -= alpha * m/(sqrt(v)+eps) with the old m, v (``lazy_global_factors``); then
    m = b1^s m + (1-b1) g, v = b2^s v + (1-b2) g^2, p = step.
    """
    alpha, beta1_skipped, beta2_skipped = lazy_global_factors(last_step, rows, step, lr, beta1, beta2)
    m_rows, v_rows = m.index_select(0, rows), v.index_select(0, rows)
    weights.index_add_(0, rows, m_rows / (v_rows.sqrt() + epsilon) * -alpha[:, None])
    m_rows.mul_(beta1_skipped[:, None]).add_(grads, alpha=1.0 - beta1)
    v_rows.mul_(beta2_skipped[:, None]).addcmul_(grads, grads, value=1.0 - beta2)
    m.index_copy_(0, rows, m_rows)
    v.index_copy_(0, rows, v_rows)


def momentum_local_update(rows, grads, weights, momentum, lr: float, factor: float) -> None:
    """Hit rows: mom = f mom - lr g; w += mom."""
    mom = momentum.index_select(0, rows).mul_(factor).add_(grads, alpha=-lr)
    momentum.index_copy_(0, rows, mom)
    weights.index_add_(0, rows, mom)


def momentum_global_update(rows, grads, weights, momentum, lr: float, factor: float) -> None:
    """Hit rows: mom -= lr g / f; then every row: mom *= f; w += mom."""
    momentum.index_add_(0, rows, grads, alpha=-lr / factor)
    momentum.mul_(factor)
    weights.add_(momentum)


def nesterov_local_update(rows, grads, weights, accum, lr: float, mu: float) -> None:
    """Hit rows: a' = mu a - lr g; w += -mu a + (1 + mu) a'."""
    old = accum.index_select(0, rows)
    new = old * mu - lr * grads
    accum.index_copy_(0, rows, new)
    weights.index_add_(0, rows, new * (1.0 + mu) - old * mu)


def nesterov_global_update(rows, grads, weights, accum, lr: float, mu: float) -> None:
    """Every row: a *= mu; w += mu a. Then hit rows: a -= lr g; w -= (1 + mu) lr g."""
    accum.mul_(mu)
    weights.add_(accum, alpha=mu)
    accum.index_add_(0, rows, grads, alpha=-lr)
    weights.index_add_(0, rows, grads, alpha=-(1.0 + mu) * lr)


# name -> (rule, whether it takes the step). States follow ``weights`` in the call, in file order;
# LazyGlobal's per-row last step comes after them.
RULES: dict[str, tuple[Callable, bool]] = {
    "sgd": (sgd_update, False),
    "adagrad": (adagrad_update, False),
    "adam_local": (adam_local_update, True),
    "adam_global": (adam_global_update, True),
    "adam_lazy_global": (adam_lazy_global_update, True),
    "momentum_local": (momentum_local_update, False),
    "momentum_global": (momentum_global_update, False),
    "nesterov_local": (nesterov_local_update, False),
    "nesterov_global": (nesterov_global_update, False),
}


def apply_rule(rule: str, rows, grads, weights, states, lr: float, step: int, hyper: dict,
               last_step=None) -> None:
    """Run the named rule (a key of ``RULES``) on distinct ``rows`` with summed, unscaled ``grads``.

    >>> w = torch.zeros(3, 2)
    >>> apply_rule("sgd", torch.tensor([2]), torch.ones(1, 2), w, [], 0.5, 1, {})
    >>> w[2].tolist()
    [-0.5, -0.5]
    """
    function, takes_step = RULES[rule]
    extra = [last_step] if rule == "adam_lazy_global" else []
    tail = [lr, step] if takes_step else [lr]
    function(rows, grads, weights, *states, *extra, *tail, **hyper)


class SparseOptimizer:
    """The optimizer state of one table (``(capacity, ev)`` fp32 tensors) and its update rule.

    ``rule`` (a key of ``RULES``) and ``hyper`` (its keyword hyper-parameters) describe the update,
    so the fused backward kernel (``hugectr.kernels.embedding_update``) can run the same rule.
    """

    def __init__(self, params: OptParamsPy, capacity: int, embedding_vec_size: int, device, name: str) -> None:
        kind, update_type = params.optimizer_type, params.update_type
        if kind in (Optimizer_t.Ftrl, Optimizer_t.RMSProp):
            raise ValueError(f"SparseEmbedding '{name}': HugeCTR has no {kind} update for SparseEmbedding tables; "
                             "give the embedding its own optimizer (optimizer=hugectr.CreateOptimizer(...)) of type "
                             "Adam, AdaGrad, MomentumSGD, Nesterov or SGD")
        if kind is Optimizer_t.MomentumSGD and update_type is Update_t.Global and params.momentum_factor == 0:
            raise ValueError(f"SparseEmbedding '{name}': MomentumSGD with Update_t.Global divides by "
                             "momentum_factor, got 0 (HugeCTR would write NaN into the table); set "
                             "momentum_factor > 0 or use Update_t.Local")
        self.params, self.name, self.step = params, name, 0
        shape = (capacity, embedding_vec_size)
        copies = 2 if kind is Optimizer_t.Adam else (0 if kind is Optimizer_t.SGD else 1)
        fill = memset_float(params.initial_accu_value) if kind is Optimizer_t.AdaGrad else 0.0
        self.states = [torch.full(shape, fill, dtype=torch.float32, device=device) for _ in range(copies)]
        # LazyGlobal's step of each row's last update (not part of HugeCTR's state files).
        self.last_step = (torch.ones(capacity, dtype=torch.int64, device=device)
                          if update_type is Update_t.LazyGlobal else None)
        self.rule, self.hyper = self._pick_rule()

    def _pick_rule(self) -> tuple[str, dict]:
        p = self.params
        scope = {Update_t.Local: "local", Update_t.Global: "global", Update_t.LazyGlobal: "lazy_global"}
        if p.optimizer_type is Optimizer_t.Adam:
            return "adam_" + scope[p.update_type], dict(beta1=p.beta1, beta2=p.beta2, epsilon=p.epsilon)
        if p.optimizer_type is Optimizer_t.AdaGrad:
            return "adagrad", dict(epsilon=p.epsilon)
        if p.optimizer_type is Optimizer_t.MomentumSGD:
            return "momentum_" + scope[p.update_type], dict(factor=p.momentum_factor)
        if p.optimizer_type is Optimizer_t.Nesterov:
            return "nesterov_" + scope[p.update_type], dict(mu=p.momentum_factor)
        return "sgd", {}

    def advance(self) -> int:
        """Count one update call (Adam's t += 1) and return the new step."""
        self.step += 1
        return self.step

    def update(self, rows: torch.Tensor, grads: torch.Tensor, weights: torch.Tensor, lr: float) -> None:
        """One step: ``rows`` (U,) distinct, ``grads`` (U, ev) summed and unscaled. Adam's t += 1."""
        step = self.advance()
        apply_rule(self.rule, rows, grads, weights, self.states, float(lr), step, self.hyper, self.last_step)

    def restore_step(self, step: int, last_step: torch.Tensor | None = None) -> None:
        """Continue from update count ``step`` and, for LazyGlobal, each row's last update step.

        HugeCTR's ``_opt_sparse_`` file holds neither (a resumed HugeCTR run restarts at t = 1);
        the snapshot marker and a side file carry them (``hugectr.io.checkpoint``). ``last_step``
        covers the first ``last_step.numel()`` rows; the rest keep their value. A table of another
        update type ignores it (a LazyGlobal snapshot may be continued with Local or Global Adam).
        """
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"SparseEmbedding '{self.name}': the saved optimizer step must be an int >= 0, "
                             f"got {step!r}")
        self.step = step
        if last_step is None or self.last_step is None:
            return
        last_step = torch.as_tensor(last_step).reshape(-1)
        if last_step.numel() > self.last_step.numel():
            raise ValueError(f"SparseEmbedding '{self.name}': {last_step.numel()} saved per-row last steps, "
                             f"expected at most {self.last_step.numel()} (the table's rows)")
        self.last_step[:last_step.numel()] = last_step.to(self.last_step.device, torch.int64)

    def load_states(self, states: list[torch.Tensor], rows: int | None = None) -> None:
        """Copy ``states`` (HugeCTR file order) into the state tensors; errors name the table."""
        if len(states) != len(self.states):
            raise ValueError(f"SparseEmbedding '{self.name}': {self.params.optimizer_type} keeps {len(self.states)} "
                             f"state tensor(s), got {len(states)}")
        for index, (mine, given) in enumerate(zip(self.states, states)):
            mine = mine if rows is None else mine[:rows]     # a table's scratch row is not saved
            given = torch.as_tensor(given)
            if given.numel() != mine.numel():
                raise ValueError(f"SparseEmbedding '{self.name}': optimizer state {index} has {given.numel()} "
                                 f"values, expected {mine.numel()} (capacity x embedding_vec_size "
                                 f"{tuple(mine.shape)}); the file belongs to a table of another size")
            mine.copy_(given.reshape(mine.shape))
