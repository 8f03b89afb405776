"""Regression losses on d = y_pred − y_true, per sample the mean over its K elements.

Per-sample losses lᵢ, reduced with weights wᵢ as in :mod:`dnn.losses.base`
(``"mean"``: L = (1/N) Σᵢ wᵢ·lᵢ; ``"sum"``: Σᵢ wᵢ·lᵢ; ``"none"``: wᵢ·lᵢ), and
cᵢ = dL/dlᵢ (wᵢ/N, wᵢ, or gᵢ·wᵢ with an upstream gradient g):

- MSE:    lᵢ = (1/K) Σ_j d²,   dL/dy_pred = cᵢ·2·d / K
- MAE:    lᵢ = (1/K) Σ_j |d|,  dL/dy_pred = cᵢ·sign(d) / K
- Huber:  lᵢ = (1/K) Σ_j ½d² if |d| ≤ δ else δ·(|d| − ½δ),
          dL/dy_pred = cᵢ·clip(d, −δ, δ) / K   (PyTorch's HuberLoss)

Unweighted with ``"mean"`` (the default) each is the mean over all M = N·K elements:
cᵢ/K = 1/M, a Python number.
"""

from __future__ import annotations

from typing import Any

from dnn import backend
from dnn.losses.base import Loss, register
from dnn.optim.base import check_number


class _Elementwise(Loss):
    def _diff(self, y_pred: Any, y_true: Any) -> Any:
        self._check_same_shape(y_pred, y_true)
        self._cache = diff = y_pred - backend.xp.astype(y_true, y_pred.dtype)
        return diff

    def _take(self) -> tuple[Any, Any]:
        """The cached d (freed) and the factor cᵢ/K for its gradient."""
        diff, self._cache = self._cache, None
        return diff, self._scale(tuple(diff.shape), elementwise=True)


@register(aliases=("mse", "mean_squared_error"))
class MSE(_Elementwise):
    def forward(self, y_pred: Any, y_true: Any) -> Any:
        diff = self._diff(y_pred, y_true)
        return self._reduce_elements(diff * diff)

    def gradient(self) -> Any:
        diff, scale = self._take()
        return diff * (2.0 * scale)


@register(aliases=("mae", "mean_absolute_error"))
class MAE(_Elementwise):
    def forward(self, y_pred: Any, y_true: Any) -> Any:
        return self._reduce_elements(backend.xp.abs(self._diff(y_pred, y_true)))

    def gradient(self) -> Any:
        diff, scale = self._take()
        return backend.xp.sign(diff) * scale


@register(aliases=("huber",))
class Huber(_Elementwise):
    def __init__(self, delta: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.delta = check_number("Huber", "delta", delta, 0.0, low_open=True)

    def forward(self, y_pred: Any, y_true: Any) -> Any:
        xp = backend.xp
        abs_diff = xp.abs(self._diff(y_pred, y_true))
        quadratic = xp.minimum(abs_diff, self.delta)
        return self._reduce_elements(0.5 * quadratic * quadratic + self.delta * (abs_diff - quadratic))

    def gradient(self) -> Any:
        diff, scale = self._take()
        return backend.xp.clip(diff, -self.delta, self.delta) * scale

    def get_config(self) -> dict[str, Any]:
        return {"delta": self.delta, **super().get_config()}
