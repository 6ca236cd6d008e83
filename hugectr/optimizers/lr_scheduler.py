"""``hugectr.LearningRateScheduler``: HugeCTR's warmup + polynomial-decay schedule.

``get_next()`` first advances ``step`` (so the first call is step 1), then:
warmup (step <= warmup_steps): ``step * base_lr / warmup_steps``; otherwise, with
``decay_start != 0``: ``base_lr`` until ``decay_start``, then
``max(base_lr * ((decay_start + decay_steps - step) / decay_steps) ** decay_power, end_lr)``
until ``decay_start + decay_steps``, then ``end_lr``; with ``decay_start == 0``: ``base_lr``.
HugeCTR computes in C ``float``; the arithmetic here is done in float32 as well so the values
(and what ``fit`` prints) are the same.
"""

from __future__ import annotations

import numpy as np

from .._checks import require_int, require_number

_F32 = np.float32


class LearningRateScheduler:
    """HugeCTR's learning-rate scheduler (``model.get_learning_rate_scheduler()``).

    >>> s = LearningRateScheduler(0.5, warmup_steps=300)
    >>> lrs = [s.get_next() for _ in range(100)]
    >>> round(lrs[-1], 6), s.step, round(s.get_lr(), 6)
    (0.166667, 100, 0.166667)
    >>> s = LearningRateScheduler(1.0, warmup_steps=1, decay_start=2, decay_steps=4, decay_power=2.0)
    >>> [round(s.get_next(), 4) for _ in range(7)]
    [1.0, 1.0, 0.5625, 0.25, 0.0625, 0.0, 0.0]
    """

    def __init__(self, base_lr: float, warmup_steps: int = 1, decay_start: int = 0, decay_steps: int = 1,
                 decay_power: float = 2.0, end_lr: float = 0.0):
        self.reset(base_lr, warmup_steps, decay_start, decay_steps, decay_power, end_lr)

    def reset(self, base_lr: float, warmup_steps: int = 1, decay_start: int = 0, decay_steps: int = 1,
              decay_power: float = 2.0, end_lr: float = 0.0) -> None:
        """New schedule parameters; the step count and current lr restart at 0."""
        owner = "LearningRateScheduler"
        base_lr = require_number(owner, "base_lr", base_lr)
        decay_power = require_number(owner, "decay_power", decay_power)
        end_lr = require_number(owner, "end_lr", end_lr)
        if base_lr < 0 or decay_power < 1.0 or end_lr < 0:
            raise ValueError(f"{owner}: needs base_lr >= 0, decay_power >= 1 and end_lr >= 0; got "
                             f"base_lr={base_lr}, decay_power={decay_power}, end_lr={end_lr}")
        self.warmup_steps = require_int(owner, "warmup_steps", warmup_steps, minimum=1)
        self.decay_start = require_int(owner, "decay_start", decay_start, minimum=0)
        self.decay_steps = require_int(owner, "decay_steps", decay_steps, minimum=1)
        self.base_lr, self.decay_power, self.end_lr = base_lr, decay_power, end_lr
        self.step = 0
        self.current_lr = 0.0

    def get_next(self) -> float:
        """Advance one step and return its learning rate."""
        self.step += 1
        self.current_lr = float(self._lr_at(self.step))
        return self.current_lr

    def _lr_at(self, step: int) -> np.float32:
        base_lr = _F32(self.base_lr)
        if step <= self.warmup_steps:
            return _F32(step) * base_lr / _F32(self.warmup_steps)
        if self.decay_start == 0:
            return base_lr
        if step <= self.decay_start:
            return base_lr
        if step <= self.decay_start + self.decay_steps:
            remaining = _F32(self.decay_start + self.decay_steps - step) / _F32(self.decay_steps)
            decayed = base_lr * np.power(remaining, _F32(self.decay_power), dtype=np.float32)
            end_lr = _F32(self.end_lr)
            return decayed if decayed > end_lr else end_lr
        return _F32(self.end_lr)

    def restore_step(self, step: int) -> None:
        """Continue from position ``step`` (a resumed run): the next ``get_next()`` is step ``step + 1``.

        HugeCTR keeps no scheduler position in its files; ours travels in the snapshot marker
        (``hugectr.io.snapshot_marker``). The schedule's parameters stay this scheduler's own.

        >>> s = LearningRateScheduler(1.0, warmup_steps=4)
        >>> s.restore_step(2)
        >>> s.get_lr(), s.get_next()
        (0.5, 0.75)
        """
        self.step = require_int("LearningRateScheduler.restore_step", "step", step, minimum=0)
        self.current_lr = float(self._lr_at(self.step)) if self.step else 0.0

    def get_lr(self) -> float:
        """The learning rate the last ``get_next()`` returned (0.0 before the first call)."""
        return self.current_lr

    def get_step(self) -> int:
        """How many times ``get_next()`` was called since construction or ``reset``."""
        return self.step

    def __repr__(self) -> str:
        return (f"LearningRateScheduler(base_lr={self.base_lr}, warmup_steps={self.warmup_steps}, "
                f"decay_start={self.decay_start}, decay_steps={self.decay_steps}, "
                f"decay_power={self.decay_power}, end_lr={self.end_lr}, step={self.step})")
