"""Evaluation metrics, accumulated on the device over eval batches and finalised on request.

``MetricsCollection`` holds the metrics a solver's ``metrics_spec`` names; ``update`` takes one
eval batch's probabilities, labels (both ``(n, label_dim)``, only the valid samples of a
partial batch) and eval loss, keeping device tensors (no host sync); ``finalize`` returns
``[(name, value)]`` in HugeCTR's enum order (AUC, AverageLoss, HitRate, NDCG, SMAPE) and
starts a new window. Semantics follow HugeCTR's ``metrics.cu``:

* AUC: exact; labels weigh positives and ``1 - label`` weighs negatives (soft labels allowed);
  equal predictions form one ROC point; trapezoidal area; NaN without positives or negatives;
  ``label_dim > 1``: the mean of the per-class AUCs (``per_class_auc()`` lists them).
* AverageLoss: the mean over eval batches of the batch's eval loss.
* HitRate: #(pred > 0.8 and label == 1) / #(pred > 0.8).
* NDCG: predictions sorted descending; DCG = sum label_i / log2(i + 2); divided by the DCG of
  the labels sorted descending.
* SMAPE: sum |p - y| / ((p + y) / 2) over all values, divided by their count.
AverageLoss, HitRate and SMAPE are 0.0 for a window without batches, as in HugeCTR. HitRate,
NDCG and SMAPE treat an ``(n, label_dim)`` batch as ``n * label_dim`` values.

Many ranks: each rank updates with its part of every global batch and its ``share`` of it
(``n_r / n``: a batch's eval loss is the share-weighted sum of the ranks' losses, HugeCTR's mean
over GPUs for equal parts); ``synchronize(reducer)`` then combines the window over the ranks
(samples gathered in global order, counts and losses summed), so ``finalize`` gives every rank the
metrics of the global eval set.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .enums import MetricsType, coerce

# HugeCTR compares a float prediction with the double 0.8; for float32 p that is p >= float32(0.8).
_HIT_THRESHOLD = float(np.float32(0.8))


def auc_per_class(predictions: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Exact ROC AUC of each column of ``(n, C)`` predictions against ``(n, C)`` label weights.

    Returns a ``(C,)`` float64 tensor on the inputs' device (NaN where a class has no
    positive or no negative weight).

    >>> p = torch.tensor([[0.1], [0.4], [0.35], [0.8]])
    >>> y = torch.tensor([[0.0], [0.0], [1.0], [1.0]])
    >>> auc_per_class(p, y).tolist()
    [0.75]
    """
    n = predictions.shape[0]
    if n == 0:
        return torch.full((predictions.shape[1],), math.nan, dtype=torch.float64, device=predictions.device)
    preds = predictions.t().float()                                    # (C, n)
    sorted_preds, order = torch.sort(preds, dim=1)                     # ascending, as HugeCTR
    pos = labels.t().double().gather(1, order)                         # (C, n) positive weights
    true_pos = torch.cumsum(pos, dim=1)
    false_pos = torch.cumsum(1.0 - pos, dim=1)
    # Equal predictions form one ROC point: every member of a run takes the run's last cumsum.
    positions = torch.arange(n, device=preds.device).expand_as(preds)
    is_last = torch.ones_like(sorted_preds, dtype=torch.bool)
    is_last[:, :-1] = sorted_preds[:, :-1] != sorted_preds[:, 1:]
    run_end = torch.where(is_last, positions, n).flip(1).cummin(1).values.flip(1)
    true_pos, false_pos = true_pos.gather(1, run_end), false_pos.gather(1, run_end)
    total_pos, total_neg = true_pos[:, -1:], false_pos[:, -1:]
    # Rates of samples ranked above each point; the curve runs from (1, 1) down to (0, 0).
    ones = torch.ones_like(total_pos)
    tpr = torch.cat([ones, (total_pos - true_pos) / total_pos], dim=1)  # (C, n + 1)
    fpr = torch.cat([ones, (total_neg - false_pos) / total_neg], dim=1)
    return (0.5 * (fpr[:, :-1] - fpr[:, 1:]) * (tpr[:, :-1] + tpr[:, 1:])).sum(1)


def ndcg(predictions: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """NDCG of flat predictions against flat labels (HugeCTR's stable ascending sort, reversed).

    >>> ndcg(torch.tensor([0.9, 0.1, 0.5]), torch.tensor([1.0, 0.0, 1.0])).item()
    1.0
    """
    n = predictions.numel()
    order = torch.sort(predictions.reshape(-1).float(), stable=True).indices
    # Ascending position i is rank n - 1 - i (0 = highest prediction); discount 1 / log2(rank + 2).
    discount = 1.0 / torch.log2(torch.arange(n + 1, 1, -1, device=predictions.device, dtype=torch.float64))
    flat_labels = labels.reshape(-1).double()
    dcg = (flat_labels[order] * discount).sum()
    ideal = (torch.sort(flat_labels).values * discount).sum()
    return dcg / ideal


class _Metric:
    """One metric's running state over an eval window."""

    name = ""

    def update(self, probabilities: torch.Tensor, labels: torch.Tensor, loss: torch.Tensor) -> None:
        raise NotImplementedError

    def result(self) -> float:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError

    def synchronize(self, reducer) -> None:
        """Replace this rank's window by the window over all ranks (``reducer``: ``RankReducer``)."""
        raise NotImplementedError


class _StoredSamples(_Metric):
    """Keeps every (prediction, label) of the window: exact metrics need them all."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self._preds: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []

    def update(self, probabilities, labels, loss):
        # Copies: the caller may reuse its batch buffers for the next eval batch.
        self._preds.append(probabilities.detach().to(torch.float32, copy=True))
        self._labels.append(labels.detach().to(torch.float32, copy=True))

    def _window(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        if not self._preds:
            return None
        return torch.cat(self._preds), torch.cat(self._labels)          # (n, C) each

    def synchronize(self, reducer) -> None:
        if not self._preds:
            return
        columns = self._preds[0].shape[1]
        # One gather for both: (n_r, 2C) per batch -> (n, 2C) in global order.
        both = reducer.gather_batches([torch.cat(pair, dim=1) for pair in zip(self._preds, self._labels)])
        self.reset()
        self.update(both[:, :columns], both[:, columns:], None)


class AUC(_StoredSamples):
    name = "AUC"

    def reset(self) -> None:
        super().reset()
        self._cached: list[float] | None = None

    def update(self, probabilities, labels, loss):
        super().update(probabilities, labels, loss)
        self._cached = None

    def per_class(self) -> list[float]:
        """The AUC of each label column over the window (one host read)."""
        if self._cached is None:
            window = self._window()
            self._cached = [] if window is None else auc_per_class(*window).tolist()
        return self._cached

    def result(self) -> float:
        values = self.per_class()
        return sum(values) / len(values) if values else math.nan


class NDCG(_StoredSamples):
    name = "NDCG"

    def result(self) -> float:
        window = self._window()
        return math.nan if window is None else float(ndcg(*window))


class AverageLoss(_Metric):
    name = "AverageLoss"

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self._total: torch.Tensor | None = None
        self._batches = 0

    def update(self, probabilities, labels, loss, share: float = 1.0):
        self._batches += 1
        value = torch.as_tensor(loss).detach().to(torch.float64).reshape(())
        if share == 0.0:          # a rank without samples in this batch: its loss (NaN) counts nothing
            value = torch.zeros_like(value)
        elif share != 1.0:
            value = value * share
        self._total = value if self._total is None else self._total + value

    def synchronize(self, reducer) -> None:
        if self._batches:
            self._total = reducer.sum(self._total)

    def result(self) -> float:
        return float(self._total) / self._batches if self._batches and self._total is not None else 0.0


class _CountRatio(_Metric):
    """numerator / denominator summed over the window; 0.0 with no batches (HugeCTR's value)."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self._numerator: torch.Tensor | float = 0.0       # device tensor once a batch came in
        self._denominator: torch.Tensor | float = 0.0
        self._batches = 0

    def _terms(self, probabilities: torch.Tensor, labels: torch.Tensor):
        """(numerator, denominator) of one batch: device tensors or host numbers."""
        raise NotImplementedError

    def update(self, probabilities, labels, loss):
        numerator, denominator = self._terms(probabilities.detach().float(), labels.detach().float())
        self._numerator = self._numerator + numerator
        self._denominator = self._denominator + denominator
        self._batches += 1

    def synchronize(self, reducer) -> None:
        if self._batches:
            device = next((v.device for v in (self._numerator, self._denominator) if torch.is_tensor(v)), None)
            totals = torch.stack([torch.as_tensor(v, dtype=torch.float64, device=device).reshape(())
                                  for v in (self._numerator, self._denominator)])
            self._numerator, self._denominator = reducer.sum(totals).unbind()

    def result(self) -> float:
        if not self._batches:
            return 0.0
        numerator, denominator = float(self._numerator), float(self._denominator)
        return numerator / denominator if denominator else math.nan


class HitRate(_CountRatio):
    name = "HitRate"

    def _terms(self, probabilities, labels):
        checked = probabilities >= _HIT_THRESHOLD
        hits = checked & (labels == 1.0)
        return hits.sum(), checked.sum()


class SMAPE(_CountRatio):
    name = "SMAPE"

    def _terms(self, probabilities, labels):
        error = (probabilities - labels).abs() / ((probabilities + labels) / 2)
        return error.double().sum(), labels.numel()     # the count is known on the host: no copy


_METRICS = {MetricsType.AUC: AUC, MetricsType.AverageLoss: AverageLoss, MetricsType.HitRate: HitRate,
            MetricsType.NDCG: NDCG, MetricsType.SMAPE: SMAPE}


class MetricsCollection:
    """The metrics of ``metrics_spec`` (``{MetricsType: value}``), in HugeCTR's enum order.

    >>> m = MetricsCollection({MetricsType.AverageLoss: 0, MetricsType.AUC: 0.8})
    >>> m.update(torch.tensor([[0.2], [0.9], [0.6]]), torch.tensor([[0.0], [1.0], [0.0]]), torch.tensor(0.5))
    >>> m.update(torch.tensor([[0.7]]), torch.tensor([[1.0]]), torch.tensor(0.25))
    >>> m.finalize()
    [('AUC', 1.0), ('AverageLoss', 0.375)]
    >>> m.finalize()[1]
    ('AverageLoss', 0.0)
    """

    def __init__(self, metrics_spec: dict):
        if not isinstance(metrics_spec, dict):
            raise TypeError(f"metrics_spec: expected a dict {{hugectr.MetricsType: value}}, "
                            f"got {type(metrics_spec).__name__}")
        self.spec = {coerce(MetricsType, key, "metrics_spec key"): float(value)
                     for key, value in metrics_spec.items()}
        self.metrics = [_METRICS[kind]() for kind in MetricsType if kind in self.spec]

    @property
    def names(self) -> list[str]:
        return [metric.name for metric in self.metrics]

    def update(self, probabilities: torch.Tensor, labels: torch.Tensor, loss: torch.Tensor,
               share: float = 1.0) -> None:
        """Add one eval batch: ``(n, label_dim)`` probabilities and labels, the batch's eval loss.

        ``share``: this rank's part of the global batch (``n_r / n``), the weight of its loss.
        """
        if probabilities.dim() == 1:
            probabilities = probabilities.unsqueeze(1)                 # (n,) -> (n, 1)
        if labels.dim() == 1:
            labels = labels.unsqueeze(1)
        if probabilities.shape != labels.shape or probabilities.dim() != 2:
            raise ValueError(f"metrics: probabilities {tuple(probabilities.shape)} and labels "
                             f"{tuple(labels.shape)} must both be (n, label_dim)")
        for metric in self.metrics:
            if isinstance(metric, AverageLoss):
                metric.update(probabilities, labels, loss, share)
            else:
                metric.update(probabilities, labels, loss)

    def synchronize(self, reducer) -> None:
        """Combine the window over all ranks (every rank calls it, in step): ``reducer`` is a
        ``hugectr.distributed.data_parallel.RankReducer``."""
        for metric in self.metrics:
            metric.synchronize(reducer)

    def per_class_auc(self) -> list[float]:
        """The per-class AUCs of the current window ([] when AUC is not in the spec)."""
        for metric in self.metrics:
            if isinstance(metric, AUC):
                return list(metric.per_class())
        return []

    def finalize(self) -> list[tuple[str, float]]:
        """``[(name, value)]`` over the window since the last call, then a new window starts."""
        results = [(metric.name, float(metric.result())) for metric in self.metrics]
        for metric in self.metrics:
            metric.reset()
        return results
