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

from dnn import backend
from dnn.backend import ops


class Metric:
    name = "metric"
    #: whether ``result()`` is one number (shown in logs, history, progress bar)
    scalar = True

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.total: Any = 0  # a device scalar once updated
        self.count: Any = 0

    def update(self, y_pred: Any, y_true: Any) -> None:
        raise NotImplementedError

    def result(self) -> float:
        return float(self.total) / max(int(self.count), 1)

    def __call__(self, y_pred: Any, y_true: Any) -> Any:
        """The metric on one pair of arrays alone (reset, update, result)."""
        self.reset()
        self.update(_as_array(y_pred), _as_array(y_true))
        return self.result()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def _as_array(x: Any) -> Any:
    return x if backend.is_array(x) else backend.asarray(x)


def _class_labels(y_pred: Any, y_true: Any, threshold: float) -> tuple[Any, Any, int]:
    """(predicted class, true class, number of classes) as int64 device vectors."""
    xp = backend.xp
    if y_pred.ndim == 2 and y_pred.shape[1] > 1:
        classes = int(y_pred.shape[1])
        predicted = xp.astype(xp.argmax(y_pred, axis=1), xp.int64)
        if y_true.ndim == 2 and y_true.shape[1] == classes:
            true = xp.astype(xp.argmax(y_true, axis=1), xp.int64)
        elif y_true.ndim == 1 or (y_true.ndim == 2 and y_true.shape[1] == 1):
            true = xp.astype(xp.reshape(y_true, (-1,)), xp.int64)
        else:
            raise ValueError(
                f"metric: targets for ({y_pred.shape[0]}, {classes}) scores must be (N,) class "
                f"indices or (N, {classes}) one-hot rows, got shape {tuple(y_true.shape)}"
            )
        return predicted, true, classes
    if y_pred.ndim > 2 or (y_pred.ndim == 2 and y_pred.shape[1] != 1):
        raise ValueError(f"metric: expected (N, C), (N, 1) or (N,) predictions, got {tuple(y_pred.shape)}")
    predicted = xp.astype(xp.reshape(y_pred > threshold, (-1,)), xp.int64)
    true = xp.astype(xp.reshape(y_true, (-1,)) > 0.5, xp.int64)
    return predicted, true, 2


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


class BinaryAccuracy(Accuracy):
    """Accuracy of 0/1 predictions ``y_pred > threshold`` (0.5 for probabilities, 0 for logits)."""

    name = "binary_accuracy"


class TopKAccuracy(Metric):
    """Fraction of samples whose true class is among the k highest scores.

    A sample counts as correct when fewer than k classes score strictly higher
    than its true class (ties count in its favour) — one comparison pass, no sort.
    """

    def __init__(self, k: int = 5) -> None:
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"TopKAccuracy: k must be an int >= 1, got {k!r}")
        self.k = k
        self.name = f"top_{k}_accuracy"
        super().__init__()

    def update(self, y_pred: Any, y_true: Any) -> None:
        xp = backend.xp
        if y_pred.ndim != 2:
            raise ValueError(f"TopKAccuracy: expected (N, C) scores, got shape {tuple(y_pred.shape)}")
        if y_true.ndim == 2:
            y_true = xp.argmax(y_true, axis=1)
        true_score = ops.take_along_last(y_pred, xp.astype(y_true, xp.int64))
        higher = xp.sum(xp.astype(y_pred > true_score[:, None], xp.int64), axis=1)
        self.total = self.total + xp.sum(xp.astype(higher < self.k, xp.int64))
        self.count += int(y_pred.shape[0])


class ConfusionMatrix(Metric):
    """The C×C matrix of counts: entry [i, j] = samples of true class i predicted as j.

    ``result()`` returns it as a NumPy int64 array (not a scalar, so ``fit``
    leaves it out of the epoch logs; ``evaluate`` returns it).
    """

    name = "confusion_matrix"
    scalar = False

    def __init__(self, num_classes: int | None = None, threshold: float = 0.5) -> None:
        self.num_classes, self.threshold = num_classes, threshold
        super().__init__()

    def reset(self) -> None:
        super().reset()
        self.matrix: Any = None

    def update(self, y_pred: Any, y_true: Any) -> None:
        xp = backend.xp
        predicted, true, classes = _class_labels(y_pred, y_true, self.threshold)
        classes = self.num_classes or classes
        dtype = backend.default_dtype()
        # counts per batch are exact in float (< 2**24); accumulate as int64
        batch = ops.one_hot(true, classes, dtype).T @ ops.one_hot(predicted, classes, dtype)
        batch = xp.astype(xp.round(batch), xp.int64)
        self.matrix = batch if self.matrix is None else self.matrix + batch
        self.count += int(predicted.shape[0])

    def result(self) -> Any:
        if self.matrix is None:
            raise RuntimeError("ConfusionMatrix.result(): no data yet (call update first)")
        return backend.to_numpy(self.matrix)


class _FromConfusion(ConfusionMatrix):
    """Precision / recall / F1 from the accumulated confusion matrix.

    ``average``: "macro" (unweighted mean over classes), "weighted" (mean
    weighted by each class's support), "micro" (from global counts; equals
    accuracy for single-label data) or "binary" (the positive class 1 only).
    None picks "binary" for binary outputs and "macro" otherwise, as
    scikit-learn's default does. As in scikit-learn, "macro" and "weighted"
    average over the classes present in the targets or the predictions, and
    0/0 counts as 0. The logged name is ``precision`` / ``recall`` / ``f1`` with
    the default average and e.g. ``f1_weighted`` when ``average`` is given.
    """

    scalar = True
    _binary = False

    def __init__(self, average: str | None = None, num_classes: int | None = None,
                 threshold: float = 0.5) -> None:
        if average not in (None, "macro", "micro", "weighted", "binary"):
            raise ValueError(
                f"{type(self).__name__}: average must be 'macro', 'micro', 'weighted' or 'binary', "
                f"got {average!r}"
            )
        self.average = average
        if average is not None:  # keep two averages of one metric apart in the logs
            self.name = f"{type(self).name}_{average}"
        super().__init__(num_classes, threshold)

    def _scores(self, tp: Any, predicted: Any, support: Any) -> Any:
        raise NotImplementedError

    def result(self) -> float:
        if self.matrix is None:
            return 0.0
        xp = backend.xp
        cm = xp.astype(self.matrix, xp.float64)
        tp = xp.sum(cm * xp.eye(cm.shape[0], dtype=cm.dtype), axis=1)
        predicted, support = xp.sum(cm, axis=0), xp.sum(cm, axis=1)
        average = self.average or ("binary" if cm.shape[0] == 2 and self._binary else "macro")
        if average == "micro":
            tp, predicted, support = xp.sum(tp), xp.sum(predicted), xp.sum(support)
            return float(self._scores(tp, predicted, support))
        scores = self._scores(tp, predicted, support)
        if average == "binary":
            if cm.shape[0] != 2:
                raise ValueError(f"{type(self).__name__}: average='binary' needs 2 classes, "
                                 f"got {cm.shape[0]}; use 'macro', 'micro' or 'weighted'")
            return float(scores[1])
        if average == "weighted":
            total = xp.sum(support)
            return float(xp.sum(scores * support) / total) if float(total) else 0.0
        present = xp.astype((support + predicted) > 0, xp.float64)
        return float(xp.sum(scores * present) / xp.maximum(xp.sum(present), 1.0))

    def update(self, y_pred: Any, y_true: Any) -> None:
        self._binary = not (y_pred.ndim == 2 and y_pred.shape[1] > 1)
        super().update(y_pred, y_true)


def _safe_divide(num: Any, den: Any) -> Any:
    """num / den elementwise, 0 where den is 0 (scikit-learn's zero_division=0)."""
    xp = backend.xp
    positive = den > 0
    return xp.where(positive, num / xp.where(positive, den, xp.ones_like(den)), xp.zeros_like(den))


class Precision(_FromConfusion):
    """Precision tp / (tp + fp) per class, averaged (see ``average``)."""

    name = "precision"

    def _scores(self, tp: Any, predicted: Any, support: Any) -> Any:
        return _safe_divide(tp, predicted)


class Recall(_FromConfusion):
    """Recall tp / (tp + fn) per class, averaged (see ``average``)."""

    name = "recall"

    def _scores(self, tp: Any, predicted: Any, support: Any) -> Any:
        return _safe_divide(tp, support)


class F1(_FromConfusion):
    """F1 = 2·tp / (2·tp + fp + fn) per class (harmonic mean of precision and recall), averaged."""

    name = "f1"

    def _scores(self, tp: Any, predicted: Any, support: Any) -> Any:
        return _safe_divide(2.0 * tp, predicted + support)


class _Regression(Metric):
    """Sums over all output elements, kept on the device in float64 where it helps."""

    def _diff(self, y_pred: Any, y_true: Any) -> Any:
        xp = backend.xp
        y_true = xp.astype(y_true, y_pred.dtype)
        if tuple(y_true.shape) != tuple(y_pred.shape):
            if y_true.ndim == 1 and y_pred.ndim == 2 and y_pred.shape[1] == 1:
                y_true = y_true[:, None]
            else:
                raise ValueError(f"{type(self).__name__}: y_true shape {tuple(y_true.shape)} does not "
                                 f"match y_pred shape {tuple(y_pred.shape)}")
        return y_pred - y_true


class MeanAbsoluteError(_Regression):
    """Mean |y_pred − y_true| over all elements."""

    name = "mae"

    def update(self, y_pred: Any, y_true: Any) -> None:
        xp = backend.xp
        diff = self._diff(y_pred, y_true)
        self.total = self.total + xp.sum(xp.abs(diff))
        self.count += _numel(diff)


class RootMeanSquaredError(_Regression):
    """sqrt(mean (y_pred − y_true)²) over all elements of the epoch."""

    name = "rmse"

    def update(self, y_pred: Any, y_true: Any) -> None:
        xp = backend.xp
        diff = self._diff(y_pred, y_true)
        self.total = self.total + xp.sum(diff * diff)
        self.count += _numel(diff)

    def result(self) -> float:
        return (float(self.total) / max(int(self.count), 1)) ** 0.5


class MeanSquaredError(RootMeanSquaredError):
    """Mean (y_pred − y_true)² over all elements."""

    name = "mse"

    def result(self) -> float:
        return float(self.total) / max(int(self.count), 1)


class R2Score(_Regression):
    """Coefficient of determination 1 − SS_res / SS_tot, per output column then averaged
    (scikit-learn's ``r2_score`` with ``multioutput="uniform_average"``).

    Per-column sums of y, y² and residual² are accumulated in float64 so the
    epoch-level SS_tot = Σy² − (Σy)²/n does not lose precision.
    """

    name = "r2"

    def reset(self) -> None:
        super().reset()
        self.sums: Any = None

    def update(self, y_pred: Any, y_true: Any) -> None:
        xp = backend.xp
        diff = xp.astype(self._diff(y_pred, y_true), xp.float64)
        y = xp.astype(y_true, xp.float64)
        y = xp.reshape(y, (y.shape[0], -1)) if y.ndim != 1 else y[:, None]
        diff = xp.reshape(diff, (diff.shape[0], -1)) if diff.ndim != 1 else diff[:, None]
        batch = (xp.sum(y, axis=0), xp.sum(y * y, axis=0), xp.sum(diff * diff, axis=0))
        self.sums = batch if self.sums is None else tuple(a + b for a, b in zip(self.sums, batch))
        self.count += int(diff.shape[0])

    def result(self) -> float:
        if self.sums is None:
            return 0.0
        xp = backend.xp
        s, s2, res = self.sums
        tot = s2 - s * s / self.count
        # sklearn: a constant target column scores 1 if predicted exactly, else 0
        ones, zeros = xp.ones_like(tot), xp.zeros_like(tot)
        score = xp.where(tot > 0, 1.0 - res / xp.where(tot > 0, tot, ones),
                         xp.where(res == 0, ones, zeros))
        return float(xp.mean(score))


class RegressionAccuracy(Metric):
    """The NNFS book's regression "accuracy": the fraction of outputs within
    ``precision`` of the target, |y_pred − y_true| < precision.

    ``precision`` defaults to std(y_true) / ``divisor`` (divisor 250, as in the
    book), computed on the device from the first batch seen and then kept
    across epochs and for validation — pass ``precision=`` (or call
    :meth:`set_precision` with the whole training targets) for a fixed value.
    """

    name = "regression_accuracy"

    def __init__(self, precision: float | None = None, divisor: float = 250.0) -> None:
        self.precision: Any = precision
        self.divisor = float(divisor)
        super().__init__()

    def set_precision(self, y_true: Any) -> None:
        """Use std(y_true) / divisor as the precision (e.g. with the full training targets)."""
        xp = backend.xp
        y_true = _as_array(y_true)
        self.precision = xp.std(xp.astype(y_true, backend.default_dtype())) / self.divisor

    def update(self, y_pred: Any, y_true: Any) -> None:
        xp = backend.xp
        if self.precision is None:
            self.set_precision(y_true)
        y_true = xp.astype(y_true, y_pred.dtype)
        if y_true.ndim == 1 and y_pred.ndim == 2:
            y_true = y_true[:, None]
        close = xp.abs(y_pred - y_true) < self.precision
        self.total = self.total + xp.sum(xp.astype(close, xp.int64))
        self.count += _numel(close)


def _numel(x: Any) -> int:
    n = 1
    for d in x.shape:
        n *= int(d)
    return n


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
