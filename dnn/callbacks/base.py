"""The callback protocol and the shared "monitor one logged quantity" machinery."""

from __future__ import annotations

import math
import warnings
from typing import Any

from dnn import backend


class Callback:
    model: Any = None
    params: dict[str, Any] = {}  # noqa: RUF012  (replaced per instance by set_params)

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = dict(params)

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None: ...

    def on_train_end(self, logs: dict[str, float] | None = None) -> None: ...

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None: ...

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None: ...

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None: ...


# ---------------------------------------------------------------- monitoring helpers
_MAXIMIZE = ("acc", "precision", "recall", "f1", "r2", "auc")


def _resolve_mode(who: str, mode: str, monitor: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{who}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "max" if any(word in monitor for word in _MAXIMIZE) else "min"
    return mode


class _Monitor(Callback):
    """Tracks the best value of one logged quantity (``monitor``) with ``min_delta``."""

    def __init__(self, monitor: str, mode: str, min_delta: float) -> None:
        self.monitor = monitor
        self.mode = _resolve_mode(type(self).__name__, mode, monitor)
        self.min_delta = abs(float(min_delta))
        self._warned = False
        self._reset_best()

    def _reset_best(self) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf

    def _is_improvement(self, value: float, reference: float) -> bool:
        if self.mode == "min":
            return value < reference - self.min_delta
        return value > reference + self.min_delta

    def _current(self, logs: dict[str, float] | None) -> float | None:
        value = (logs or {}).get(self.monitor)
        if value is None:
            if not self._warned:
                warnings.warn(
                    f"{type(self).__name__}: monitored quantity {self.monitor!r} is not in the "
                    f"logs (available: {', '.join(sorted(logs or {})) or 'none'}); it does nothing. "
                    "Did you forget validation_data= for a 'val_' quantity?",
                    RuntimeWarning, stacklevel=3,
                )
                self._warned = True
            return None
        return float(value)


def _copy_state(model: Any) -> dict[str, Any]:
    """A snapshot of ``model.state_dict()``: copies, since it returns live views."""
    xp = backend.xp
    return {key: xp.asarray(value, copy=True) for key, value in model.state_dict().items()}
