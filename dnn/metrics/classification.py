"""Classification metrics: accuracy, top-k, and the confusion-matrix family.

Precision, recall and F1 come from a C×C confusion matrix accumulated per
batch as ``one_hot(true)ᵀ @ one_hot(pred)`` (entry [i, j] counts samples of
true class i predicted as j, as in ``sklearn.metrics.confusion_matrix``), a
small matrix product that every backend runs on its device.
"""

from __future__ import annotations

from typing import Any

from dnn import backend
from dnn.backend import ops
from dnn.metrics.base import Metric, _class_labels, _safe_divide, register


@register("accuracy", aliases=("acc", "categorical_accuracy", "sparse_categorical_accuracy"))
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


@register("binary_accuracy")
class BinaryAccuracy(Accuracy):
    """Accuracy of 0/1 predictions ``y_pred > threshold`` (0.5 for probabilities, 0 for logits)."""

    name = "binary_accuracy"


@register("top_k_accuracy")
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


@register("confusion_matrix")
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


@register("precision")
class Precision(_FromConfusion):
    """Precision tp / (tp + fp) per class, averaged (see ``average``)."""

    name = "precision"

    def _scores(self, tp: Any, predicted: Any, support: Any) -> Any:
        return _safe_divide(tp, predicted)


@register("recall")
class Recall(_FromConfusion):
    """Recall tp / (tp + fn) per class, averaged (see ``average``)."""

    name = "recall"

    def _scores(self, tp: Any, predicted: Any, support: Any) -> Any:
        return _safe_divide(tp, support)


@register("f1", aliases=("f1_score",))
class F1(_FromConfusion):
    """F1 = 2·tp / (2·tp + fp + fn) per class (harmonic mean of precision and recall), averaged."""

    name = "f1"

    def _scores(self, tp: Any, predicted: Any, support: Any) -> Any:
        return _safe_divide(2.0 * tp, predicted + support)
