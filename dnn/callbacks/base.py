"""The callback protocol and the shared "monitor one logged quantity" machinery."""

from __future__ import annotations

import math
import warnings
from typing import Any

from dnn import backend


class Callback:
    """Hooks ``fit`` calls; override the ones you need (see :mod:`dnn.callbacks`)."""

    model: Any = None
    params: dict[str, Any] = {}  # noqa: RUF012  (replaced per instance by set_params)
    #: run only on rank 0 of a data-parallel fit (callbacks that write files or print)
    rank_zero_only = False

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = dict(params)

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None: ...

    def on_train_end(self, logs: dict[str, float] | None = None) -> None: ...

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None: ...

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None: ...

    def on_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None: ...

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None: ...

    def on_log(self, batch: int, logs: dict[str, float] | None = None) -> None:
        """Every ``log_every`` batches and at an epoch's last batch: the epoch's running
        means so far (``loss``, metrics) as floats — the one host read of those steps."""


class CallbackList:
    """The callbacks of one ``fit`` call, each hook dispatched in order.

    Per-batch hooks go only to the callbacks that override them, so a plain
    ``fit`` pays no Python call per batch for callbacks that do not listen.
    """

    def __init__(self, callbacks: list[Callback], model: Any, params: dict[str, Any]) -> None:
        self.callbacks = callbacks
        for cb in callbacks:
            cb.set_model(model)
            cb.set_params(params)
        self._batch_begin = _overriding(callbacks, "on_batch_begin")
        self._batch_end = _overriding(callbacks, "on_batch_end")
        self._log = _overriding(callbacks, "on_log")

    @property
    def batch_listeners(self) -> list[Callback]:
        """The callbacks that listen to ``on_batch_end``."""
        return list(self._batch_end)

    @property
    def wants_batches(self) -> bool:
        """Whether any callback listens to ``on_batch_begin``/``on_batch_end``."""
        return bool(self._batch_begin or self._batch_end)

    def train_begin(self) -> None:
        for cb in self.callbacks:
            cb.on_train_begin()

    def train_end(self, logs: dict[str, Any]) -> None:
        for cb in self.callbacks:
            cb.on_train_end(logs)

    def epoch_begin(self, epoch: int) -> None:
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch)

    def epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)

    def batch_begin(self, batch: int, logs: dict[str, Any]) -> None:
        for cb in self._batch_begin:
            cb.on_batch_begin(batch, logs)

    def batch_end(self, batch: int, logs: dict[str, Any]) -> None:
        for cb in self._batch_end:
            cb.on_batch_end(batch, logs)

    def log(self, batch: int, logs: dict[str, float]) -> None:
        for cb in self._log:
            cb.on_log(batch, logs)


def report(message: str) -> None:
    """Print a callback's message once: on rank 0 of a data-parallel run."""
    from dnn import distributed

    if distributed.rank() == 0:
        print(message, flush=True)


def _overriding(callbacks: list[Callback], hook: str) -> list[Callback]:
    base = getattr(Callback, hook)
    return [cb for cb in callbacks
            if getattr(type(cb), hook, base) is not base or hook in vars(cb)]


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
