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
  (0.5 for probabilities, 0 for logits: the default threshold follows the compiled
  loss's ``from_logits``); targets are 0/1.

Precision, recall and F1 come from a C×C confusion matrix accumulated per
batch as ``one_hot(true)ᵀ @ one_hot(pred)`` (entry [i, j] counts samples of
true class i predicted as j, as in ``sklearn.metrics.confusion_matrix``), a
small matrix product that every backend runs on its device.
"""

from __future__ import annotations

import inspect
from typing import Any

from dnn.metrics.base import METRICS, Metric
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


def get(metric: str | Metric, *, loss: Any = None, **kwargs: Any) -> Metric:
    """A metric by name (``"accuracy"``, ``"f1"``, ``"top_k_accuracy"``) or the metric itself.

    A metric class works too (``get(dnn.metrics.F1, average="weighted")``). ``loss``
    (``compile`` passes the loss of the output the metric watches) lets the metric
    adapt: a binary threshold left at its default becomes 0 for a loss on logits.
    """
    if isinstance(metric, Metric):
        instance = metric
    elif inspect.isclass(metric) and issubclass(metric, Metric):
        instance = metric(**kwargs)
    else:
        instance = METRICS.get(metric)(**kwargs)
    if loss is not None:
        instance.compiled_with(loss)
    return instance


__all__ = [
    "F1", "MAE", "METRICS", "MSE", "R2", "RMSE", "Accuracy", "BinaryAccuracy", "ConfusionMatrix",
    "MeanAbsoluteError", "MeanSquaredError", "Metric", "Precision", "R2Score", "Recall",
    "RegressionAccuracy", "RootMeanSquaredError", "TopKAccuracy", "get",
]
