"""Regression metrics: MAE, MSE, RMSE, R² and the NNFS book's accuracy within a precision."""

from __future__ import annotations

from typing import Any

from dnn import backend
from dnn.metrics.base import Metric, _as_array, _numel, register


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


@register("mae", aliases=("mean_absolute_error",))
class MeanAbsoluteError(_Regression):
    """Mean |y_pred − y_true| over all elements."""

    name = "mae"

    def update(self, y_pred: Any, y_true: Any) -> None:
        xp = backend.xp
        diff = self._diff(y_pred, y_true)
        self.total = self.total + xp.sum(xp.abs(diff))
        self.count += _numel(diff)


@register("rmse", aliases=("root_mean_squared_error",))
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


@register("mse", aliases=("mean_squared_error",))
class MeanSquaredError(RootMeanSquaredError):
    """Mean (y_pred − y_true)² over all elements."""

    name = "mse"

    def result(self) -> float:
        return float(self.total) / max(int(self.count), 1)


@register("r2", aliases=("r2_score",))
class R2Score(_Regression):
    """Coefficient of determination 1 − SS_res / SS_tot, per output column then averaged
    (scikit-learn's ``r2_score`` with ``multioutput="uniform_average"``).

    Per-column sums of y, y² and residual² are accumulated in float64 so the
    epoch-level SS_tot = Σy² − (Σy)²/n does not lose precision.
    """

    name = "r2"
    additive = ("sums", "count")

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


@register("regression_accuracy")
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
