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
    #: the attributes that are sums over samples: the state of several shards of the data
    #: (ranks of a data-parallel run) adds up attribute by attribute
    additive: tuple[str, ...] = ("total", "count")
    #: attributes that are a running min or max over samples ({name: "min" | "max"})
    extremes: dict[str, str] = {}  # noqa: RUF012 (read-only; overridden by class)

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.total: Any = 0  # a device scalar once updated
        self.count: Any = 0

    def update(self, y_pred: Any, y_true: Any) -> None:
        raise NotImplementedError

    def result(self) -> float:
        return float(self.total) / max(int(self.count), 1)

    def compiled_with(self, loss: Any) -> None:
        """Called by ``compile`` (through :func:`dnn.metrics.get`) with the loss of the output
        this metric watches, so a metric can adapt to it (a binary threshold of 0 for a loss
        on logits); the base class ignores it."""

    def __call__(self, y_pred: Any, y_true: Any) -> Any:
        """The metric on one pair of arrays alone (reset, update, result)."""
        self.reset()
        self.update(_as_array(y_pred), _as_array(y_true))
        return self.result()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def _as_array(x: Any) -> Any:
    return x if backend.is_array(x) else backend.asarray(x)


class Thresholded:
    """Mixin for metrics that threshold binary outputs: ``threshold=None`` (the default)
    means 0.5 for probabilities, or 0 once compiled with a loss on logits
    (``SigmoidBinaryCrossentropy``, ``BinaryCrossentropy(from_logits=True)``); a number
    given explicitly is kept whatever the loss."""

    threshold: float

    def _set_threshold(self, threshold: float | None) -> None:
        self._auto_threshold = threshold is None
        self.threshold = 0.5 if threshold is None else float(threshold)

    def compiled_with(self, loss: Any) -> None:
        if self._auto_threshold:
            self.threshold = 0.0 if getattr(loss, "from_logits", False) else 0.5


def true_classes(y_true: Any, n: int, classes: int, who: str) -> Any:
    """The true class of each of n samples as an int64 (N,) vector, from (N,) or (N, 1)
    class indices or (N, classes) one-hot rows."""
    xp = backend.xp
    if tuple(y_true.shape) == (n, classes):
        return xp.astype(xp.argmax(y_true, axis=1), xp.int64)
    if tuple(y_true.shape) in ((n,), (n, 1)):
        if xp.isdtype(y_true.dtype, "real floating"):  # integral floats from a float array
            return xp.astype(xp.round(xp.reshape(y_true, (-1,))), xp.int64)
        return xp.astype(xp.reshape(y_true, (-1,)), xp.int64)
    raise ValueError(
        f"{who}: targets for ({n}, {classes}) scores must be ({n},) class indices or "
        f"({n}, {classes}) one-hot rows, got shape {tuple(y_true.shape)}"
    )


def per_position(y_pred: Any, y_true: Any, who: str) -> tuple[Any, Any]:
    """(N, ..., C) scores and their targets as (M, C) rows and M targets, M = N·…: one row
    per position. Targets: (N, ...) or (N, ..., 1) class indices, or (N, ..., C) one-hot."""
    xp = backend.xp
    lead, classes = tuple(y_pred.shape[:-1]), int(y_pred.shape[-1])
    rows = 1
    for d in lead:
        rows *= int(d)
    shape = tuple(y_true.shape)
    if shape in (lead, (*lead, 1)):
        return xp.reshape(y_pred, (rows, classes)), xp.reshape(y_true, (rows,))
    if shape == (*lead, classes):
        return xp.reshape(y_pred, (rows, classes)), xp.reshape(y_true, (rows, classes))
    raise ValueError(f"{who}: targets for {tuple(y_pred.shape)} scores must be {lead} class "
                     f"indices or {(*lead, classes)} one-hot rows, got shape {shape}")


def binary_truth(y_true: Any) -> Any:
    """0/1 (or boolean, or probability) targets as a boolean (N,) vector: y > 0.5 for
    floats, y > 0 for integers (comparing an integer array with 0.5 is not portable)."""
    xp = backend.xp
    flat = xp.reshape(y_true, (-1,))
    if xp.isdtype(flat.dtype, "bool"):
        return flat
    return flat > (0.5 if xp.isdtype(flat.dtype, "real floating") else 0)


def binary_outside(y_true: Any) -> Any:
    """How many targets of a binary (one-column) output lie outside [0, 1], as an int64
    device scalar (no host read): such a label (class 2, say) would otherwise count as
    class 1."""
    xp = backend.xp
    flat = xp.reshape(y_true, (-1,))
    if xp.isdtype(flat.dtype, "bool"):
        return xp.zeros((), dtype=xp.int64)
    return xp.sum(xp.astype((flat < 0) | (flat > 1), xp.int64))


def binary_range_error(who: str, outside: int, count: int) -> ValueError:
    return ValueError(
        f"{who}: {outside} of {count} targets of a binary (one-column) output are outside "
        "[0, 1] and would be counted as class 1; a one-column output predicts two classes "
        "only: use 0/1 labels, or an output with one unit per class for more classes")


def _class_labels(y_pred: Any, y_true: Any, threshold: float) -> tuple[Any, Any, int]:
    """(predicted class, true class, number of classes) as int64 device vectors."""
    xp = backend.xp
    if y_pred.ndim == 2 and y_pred.shape[1] > 1:
        classes = int(y_pred.shape[1])
        predicted = xp.astype(xp.argmax(y_pred, axis=1), xp.int64)
        return predicted, true_classes(y_true, int(y_pred.shape[0]), classes, "metric"), classes
    if y_pred.ndim > 2 or (y_pred.ndim == 2 and y_pred.shape[1] != 1):
        raise ValueError(f"metric: expected (N, C), (N, 1) or (N,) predictions, got {tuple(y_pred.shape)}")
    predicted = xp.astype(xp.reshape(y_pred > threshold, (-1,)), xp.int64)
    return predicted, xp.astype(binary_truth(y_true), xp.int64), 2


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
