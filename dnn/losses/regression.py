"""Regression losses, each the mean over all M elements of d = y_pred − y_true.

- MSE:    L = (1/M) Σ d²,   dL/dy_pred = 2·d / M
- MAE:    L = (1/M) Σ |d|,  dL/dy_pred = sign(d) / M
- Huber:  L = (1/M) Σ ½d² if |d| ≤ δ else δ·(|d| − ½δ),
          dL/dy_pred = clip(d, −δ, δ) / M   (PyTorch's HuberLoss)
"""

from __future__ import annotations

from typing import Any

from dnn import backend
from dnn.losses.base import Loss, register
from dnn.losses.crossentropy import _numel


class _Elementwise(Loss):
    def _diff(self, y_pred: Any, y_true: Any) -> Any:
        self._check_same_shape(y_pred, y_true)
        self._cache = diff = y_pred - backend.xp.astype(y_true, y_pred.dtype)
        return diff

    def _take(self) -> Any:
        diff, self._cache = self._cache, None
        return diff


@register(aliases=("mse", "mean_squared_error"))
class MSE(_Elementwise):
    def forward(self, y_pred: Any, y_true: Any) -> Any:
        diff = self._diff(y_pred, y_true)
        return backend.xp.mean(diff * diff)

    def gradient(self) -> Any:
        diff = self._take()
        return diff * (2.0 / _numel(diff))


@register(aliases=("mae", "mean_absolute_error"))
class MAE(_Elementwise):
    def forward(self, y_pred: Any, y_true: Any) -> Any:
        return backend.xp.mean(backend.xp.abs(self._diff(y_pred, y_true)))

    def gradient(self) -> Any:
        diff = self._take()
        return backend.xp.sign(diff) * (1.0 / _numel(diff))


@register(aliases=("huber",))
class Huber(_Elementwise):
    def __init__(self, delta: float = 1.0) -> None:
        if delta <= 0:
            raise ValueError(f"Huber: delta must be > 0, got {delta!r}")
        self.delta = float(delta)

    def forward(self, y_pred: Any, y_true: Any) -> Any:
        xp = backend.xp
        abs_diff = xp.abs(self._diff(y_pred, y_true))
        quadratic = xp.minimum(abs_diff, self.delta)
        return xp.mean(0.5 * quadratic * quadratic + self.delta * (abs_diff - quadratic))

    def gradient(self) -> Any:
        diff = self._take()
        return backend.xp.clip(diff, -self.delta, self.delta) * (1.0 / _numel(diff))

    def get_config(self) -> dict[str, Any]:
        return {"delta": self.delta}
