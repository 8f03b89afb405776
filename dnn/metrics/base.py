"""The metric protocol: accumulate on the device per batch, read once per epoch."""

from __future__ import annotations

from typing import Any

from dnn import backend
from dnn.registry import Registry

#: metric name (the one model files store: ``"accuracy"``) or alias (``"acc"``) -> class,
#: for ``compile(metrics=[...])`` and model files
METRICS = Registry("metric")


def register(name: str, *, aliases: tuple[str, ...] = ()) -> Any:
    """Class decorator: make a metric nameable as ``name`` (and ``aliases``) in
    ``compile(metrics=[...])`` and model files."""
    return METRICS.register(name=name, aliases=aliases)


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


def _safe_divide(num: Any, den: Any) -> Any:
    """num / den elementwise, 0 where den is 0 (scikit-learn's zero_division=0)."""
    xp = backend.xp
    positive = den > 0
    return xp.where(positive, num / xp.where(positive, den, xp.ones_like(den)), xp.zeros_like(den))


def _numel(x: Any) -> int:
    n = 1
    for d in x.shape:
        n *= int(d)
    return n
