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
from dnn.metrics.base import (
    Metric,
    Thresholded,
    _class_labels,
    _safe_divide,
    binary_outside,
    binary_range_error,
    binary_truth,
    per_position,
    register,
    true_classes,
)


@register("accuracy", aliases=("acc", "categorical_accuracy", "sparse_categorical_accuracy"))
class Accuracy(Thresholded, Metric):
    """Fraction of correct predictions.

    - (N, C) predictions with (N,) or (N, 1) class indices or (N, C) one-hot
      targets: argmax over classes; (N, ..., C) predictions (a class per position,
      e.g. a sequence) count every position, with (N, ...) or (N, ..., 1) labels or
      (N, ..., C) one-hot targets;
    - (N,) or (N, 1) predictions (binary): y_pred > threshold compared with y_true.
      ``threshold=None`` is 0.5 (probabilities), or 0 when compiled with a loss on
      logits (``SigmoidBinaryCrossentropy``, ``from_logits=True``). Binary targets
      outside [0, 1] are counted on the device and make ``result()`` raise.
    """

    name = "accuracy"
    additive = ("total", "count", "_outside")

    def __init__(self, threshold: float | None = None) -> None:
        self._set_threshold(threshold)
        super().__init__()

    def reset(self) -> None:
        super().reset()
        #: device scalar: binary targets outside [0, 1] (checked in ``result``)
        self._outside: Any = 0

    def update(self, y_pred: Any, y_true: Any) -> None:
        xp = backend.xp
        if y_pred.ndim > 2 and y_pred.shape[-1] > 1:  # a class per position: (N, ..., C)
            y_pred, y_true = per_position(y_pred, y_true, type(self).__name__)
        if y_pred.ndim == 2 and y_pred.shape[1] > 1:
            predicted = xp.astype(xp.argmax(y_pred, axis=1), xp.int64)
            correct = predicted == true_classes(y_true, int(y_pred.shape[0]),
                                                int(y_pred.shape[1]), type(self).__name__)
        else:
            predicted = xp.reshape(y_pred > self.threshold, (-1,))
            correct = predicted == binary_truth(y_true)
            self._outside = self._outside + binary_outside(y_true)
        self.total = self.total + xp.sum(xp.astype(correct, xp.int64))
        self.count += int(correct.shape[0])

    def result(self) -> float:
        outside = int(self._outside)
        if outside:
            raise binary_range_error(type(self).__name__, outside, int(self.count))
        return super().result()


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
        y_true = true_classes(y_true, int(y_pred.shape[0]), int(y_pred.shape[1]), "TopKAccuracy")
        true_score = backend.library.take_along_last(y_pred, y_true)
        higher = xp.sum(xp.astype(y_pred > true_score[:, None], xp.int64), axis=1)
        self.total = self.total + xp.sum(xp.astype(higher < self.k, xp.int64))
        self.count += int(y_pred.shape[0])


@register("confusion_matrix")
class ConfusionMatrix(Thresholded, Metric):
    """The C×C matrix of counts: entry [i, j] = samples of true class i predicted as j.

    ``result()`` returns it as a NumPy int64 array (not a scalar, so ``fit``
    leaves it out of the epoch logs; ``evaluate`` returns it). ``num_classes``
    (default: the model's number of outputs, 2 for a binary output) fixes C; a
    prediction or label outside [0, C) is counted on the device as it arrives and
    makes ``result()`` raise (no host read per batch), rather than silently leaving
    that sample out of the matrix. With a binary (one-column) output, a target outside
    [0, 1] raises too (whatever ``num_classes``), rather than counting as class 1.
    """

    name = "confusion_matrix"
    scalar = False

    def __init__(self, num_classes: int | None = None, threshold: float | None = None) -> None:
        if num_classes is not None and (not isinstance(num_classes, int)
                                        or isinstance(num_classes, bool) or num_classes < 1):
            raise ValueError(f"{type(self).__name__}: num_classes must be an int >= 1 or None, "
                             f"got {num_classes!r}")
        self.num_classes = num_classes
        self._set_threshold(threshold)
        super().__init__()

    additive = ("matrix", "count", "_outside", "_binary_outside")
    extremes = {"_low": "min", "_high": "max"}  # noqa: RUF012

    def reset(self) -> None:
        super().reset()
        self.matrix: Any = None
        #: device scalars: samples whose label or prediction fell outside [0, C), and the
        #: smallest and largest class seen (for the message)
        self._outside: Any = 0
        self._low: Any = None
        self._high: Any = None
        #: device scalar: targets of a binary (one-column) output outside [0, 1]
        self._binary_outside: Any = 0

    def update(self, y_pred: Any, y_true: Any) -> None:
        xp = backend.xp
        predicted, true, classes = _class_labels(y_pred, y_true, self.threshold)
        if not (y_pred.ndim == 2 and y_pred.shape[1] > 1):  # binary: labels 0/1 only
            self._binary_outside = self._binary_outside + binary_outside(y_true)
        if self.num_classes is not None:
            if y_pred.ndim == 2 and y_pred.shape[1] > self.num_classes:
                raise ValueError(
                    f"{type(self).__name__}(num_classes={self.num_classes}): got predictions "
                    f"for {y_pred.shape[1]} classes (shape {tuple(y_pred.shape)}); pass "
                    f"num_classes={y_pred.shape[1]} or leave it out (None: the model's outputs)")
            classes = self.num_classes
        self._track_range(predicted, true, classes)
        dtype = backend.default_dtype()
        # counts per batch are exact in float (< 2**24); accumulate as int64
        batch = ops.one_hot(true, classes, dtype).T @ ops.one_hot(predicted, classes, dtype)
        batch = xp.astype(xp.round(batch), xp.int64)
        self.matrix = batch if self.matrix is None else self.matrix + batch
        self.classes = classes
        self.count += int(predicted.shape[0])

    def _track_range(self, predicted: Any, true: Any, classes: int) -> None:
        """Device-side count of samples outside [0, classes) (checked in ``result``)."""
        xp = backend.xp
        both = xp.concat([true, predicted])
        outside = (true < 0) | (true >= classes) | (predicted < 0) | (predicted >= classes)
        self._outside = self._outside + xp.sum(xp.astype(outside, xp.int64))
        low, high = xp.min(both), xp.max(both)
        self._low = low if self._low is None else xp.minimum(self._low, low)
        self._high = high if self._high is None else xp.maximum(self._high, high)

    def _check_range(self) -> None:
        """One host read per ``result()``: refuse counts that left samples out."""
        if self.matrix is None:
            return
        binary_outside = int(self._binary_outside)
        if binary_outside:
            raise binary_range_error(type(self).__name__, binary_outside, self.count)
        outside, low, high = (int(v) for v in backend.to_numpy(
            backend.xp.stack([self._outside, self._low, self._high])))
        if outside:
            raise ValueError(
                f"{type(self).__name__}: {outside} of {self.count} samples have a label or a "
                f"prediction outside [0, {self.classes}) (classes seen: {low} to {high}) and "
                f"would be left out of the {self.classes}x{self.classes} matrix; "
                + (f"pass num_classes={high + 1} or leave it out (None: the model's outputs)"
                   if self.num_classes is not None and low >= 0 else
                   "check the labels (class indices must be in [0, classes))"))

    def result(self) -> Any:
        if self.matrix is None:
            raise RuntimeError("ConfusionMatrix.result(): no data yet (call update first)")
        self._check_range()
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
                 threshold: float | None = None) -> None:
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
        self._check_range()
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
