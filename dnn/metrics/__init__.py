"""Metrics that accumulate on the device over an epoch and sync once when read.

A metric's ``update(y_pred, y_true)`` adds this batch's counts or sums to
device-side totals (no host sync); ``result()`` turns them into a Python float
(one sync); ``reset()`` starts a new epoch. ``model.compile(metrics=[...])``
takes instances or the names in :data:`METRICS`; ``model.evaluate`` returns
each result under ``metric.name`` and ``fit`` shows them in the progress bar.

Classification metrics read class predictions from the model output:

- (N, C) scores with C > 1 (probabilities or logits): the argmax class; the
  targets are (N,) class indices or (N, C) one-hot rows;
- (N,) or (N, 1) outputs (binary): class 1 where ``y_pred > threshold``
  (0.5 for probabilities, 0 for logits); targets are 0/1.

Precision, recall and F1 come from a C×C confusion matrix accumulated per
batch as ``one_hot(true)ᵀ @ one_hot(pred)`` (entry [i, j] counts samples of
true class i predicted as j, as in ``sklearn.metrics.confusion_matrix``), a
small matrix product that every backend runs on its device.
"""

from __future__ import annotations

import inspect
from typing import Any

from dnn.metrics.base import Metric
from dnn.metrics.classification import (
    F1,
    Accuracy,
    BinaryAccuracy,
    ConfusionMatrix,
    Precision,
    Recall,
    TopKAccuracy,
)
from dnn.metrics.regression import (
    MeanAbsoluteError,
    MeanSquaredError,
    R2Score,
    RegressionAccuracy,
    RootMeanSquaredError,
)

MAE, RMSE, MSE, R2 = MeanAbsoluteError, RootMeanSquaredError, MeanSquaredError, R2Score

METRICS: dict[str, type[Metric]] = {
    "accuracy": Accuracy, "acc": Accuracy, "categorical_accuracy": Accuracy,
    "sparse_categorical_accuracy": Accuracy, "binary_accuracy": BinaryAccuracy,
    "precision": Precision, "recall": Recall, "f1": F1, "f1_score": F1,
    "confusion_matrix": ConfusionMatrix, "top_k_accuracy": TopKAccuracy,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "rmse": RootMeanSquaredError, "root_mean_squared_error": RootMeanSquaredError,
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "r2": R2Score, "r2_score": R2Score, "regression_accuracy": RegressionAccuracy,
}


def get(metric: str | Metric, **kwargs: Any) -> Metric:
    """A metric by name (``"accuracy"``, ``"f1"``, ``"top_k_accuracy"``) or the metric itself.

    A metric class works too (``get(dnn.metrics.F1, average="weighted")``).
    """
    if isinstance(metric, Metric):
        return metric
    if inspect.isclass(metric) and issubclass(metric, Metric):
        return metric(**kwargs)
    cls = METRICS.get(str(metric).lower())
    if cls is None:
        raise ValueError(f"unknown metric {metric!r}; valid names are {', '.join(METRICS)}")
    return cls(**kwargs)


__all__ = [
    "F1", "MAE", "METRICS", "MSE", "R2", "RMSE", "Accuracy", "BinaryAccuracy", "ConfusionMatrix",
    "MeanAbsoluteError", "MeanSquaredError", "Metric", "Precision", "R2Score", "Recall",
    "RegressionAccuracy", "RootMeanSquaredError", "TopKAccuracy", "get",
]
