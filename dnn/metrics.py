"""Metrics that accumulate on the device over an epoch and sync once when read.

A metric's ``update(y_pred, y_true)`` adds this batch's counts to device-side
totals (no host sync); ``result()`` turns them into a Python float; ``reset()``
starts a new epoch.
"""

from __future__ import annotations

from typing import Any

from dnn import backend


class Metric:
    name = "metric"

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.total: Any = 0  # a device scalar once updated
        self.count: Any = 0

    def update(self, y_pred: Any, y_true: Any) -> None:
        raise NotImplementedError

    def result(self) -> float:
        return float(self.total) / max(int(self.count), 1)


class Accuracy(Metric):
    """Fraction of correct predictions.

    - (N, C) predictions with (N,) class indices or (N, C) one-hot targets:
      argmax over classes;
    - (N,) or (N, 1) predictions (binary): y_pred > threshold compared with y_true
      (use threshold 0 for logits, 0.5 for probabilities).
    """

    name = "accuracy"

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = threshold
        super().__init__()

    def update(self, y_pred: Any, y_true: Any) -> None:
        xp = backend.xp
        if y_pred.ndim == 2 and y_pred.shape[1] > 1:
            predicted = xp.argmax(y_pred, axis=1)
            if y_true.ndim == 2:
                y_true = xp.argmax(y_true, axis=1)
            correct = predicted == xp.astype(y_true, predicted.dtype)
        else:
            predicted = xp.reshape(y_pred > self.threshold, (-1,))
            correct = predicted == (xp.reshape(y_true, (-1,)) > 0.5)
        self.total = self.total + xp.sum(xp.astype(correct, xp.int64))
        self.count += int(correct.shape[0])


METRICS: dict[str, type[Metric]] = {"accuracy": Accuracy, "acc": Accuracy}


def get(metric: str | Metric) -> Metric:
    """A metric by name (``"accuracy"``) or the metric itself."""
    if isinstance(metric, Metric):
        return metric
    cls = METRICS.get(str(metric).lower())
    if cls is None:
        raise ValueError(f"unknown metric {metric!r}; valid names are {', '.join(METRICS)}")
    return cls()
