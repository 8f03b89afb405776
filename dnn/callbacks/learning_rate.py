"""Callbacks that change the learning rate: per-epoch schedules and reduce-on-plateau."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

from dnn.callbacks.base import Callback, _Monitor, report


def _optimizer(callback: Callback) -> Any:
    optimizer = getattr(callback.model, "optimizer", None)
    if optimizer is None:
        raise RuntimeError(f"{type(callback).__name__}: the model has no optimizer; compile it first")
    return optimizer


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of every epoch from ``schedule``.

    ``schedule(epoch) -> lr`` or ``schedule(epoch, lr) -> lr`` (epoch counts
    from 0; ``lr`` is the current rate). It sets ``model.optimizer.lr``, which
    the next step uses. An optimizer built with a per-step schedule
    (``lr=dnn.optim.schedules...``) recomputes ``lr`` before every step and
    would silently overwrite this callback, so that combination raises a
    ``ValueError``: use one or the other.
    """

    def __init__(self, schedule: Callable[..., float], verbose: int = 0) -> None:
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler: schedule must be callable, got {schedule!r}")
        self.schedule, self.verbose = schedule, verbose
        self._two_args = _accepts_two_args(schedule)

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        optimizer = _optimizer(self)
        if getattr(optimizer, "schedule", None) is not None:
            raise ValueError(
                "LearningRateScheduler: the optimizer already has a per-step schedule "
                f"({optimizer.schedule!r}) that resets lr before every step; give the optimizer a "
                "plain float lr to use this callback, or keep the schedule and drop the callback"
            )

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        optimizer = _optimizer(self)
        lr = self.schedule(epoch, optimizer.lr) if self._two_args else self.schedule(epoch)
        lr = float(lr)
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"LearningRateScheduler: schedule returned lr={lr!r} for epoch {epoch}; "
                             "it must be a finite number > 0")
        optimizer.lr = lr
        if self.verbose:
            report(f"LearningRateScheduler: epoch {epoch + 1}: lr = {lr:.6g}")


def _accepts_two_args(fn: Callable[..., Any]) -> bool:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature
        return False
    positional = [p for p in signature.parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    varargs = any(p.kind == p.VAR_POSITIONAL for p in signature.parameters.values())
    return varargs or len(positional) >= 2


class _ScaledSchedule:
    """``schedule(step) * scale``, floored at ``min_lr`` (ReduceLROnPlateau on a scheduled optimizer)."""

    def __init__(self, schedule: Callable[[int], float], min_lr: float) -> None:
        self.schedule, self.scale, self.min_lr = schedule, 1.0, min_lr

    def __call__(self, step: int) -> float:
        return max(self.schedule(step) * self.scale, self.min_lr)

    def __repr__(self) -> str:
        return f"{self.schedule!r} × {self.scale:g}"


class ReduceLROnPlateau(_Monitor):
    """Multiply the learning rate by ``factor`` when ``monitor`` stops improving.

    After ``patience`` epochs in a row without an improvement larger than
    ``min_delta``, lr ← max(lr·factor, min_lr); then ``cooldown`` epochs pass
    before waiting starts again (Keras semantics). On an optimizer with a plain
    float lr it sets ``optimizer.lr``; on one with a per-step schedule it
    scales the schedule's output instead (the schedule keeps its shape, every
    later value is multiplied by the accumulated factor, floored at
    ``min_lr``). ``reductions`` lists (epoch, new_lr) pairs (0-based epochs; the
    printed messages count from 1).
    """

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 min_delta: float = 1e-4, mode: str = "auto", cooldown: int = 0,
                 min_lr: float = 0.0, verbose: int = 0) -> None:
        if not 0.0 < factor < 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be in (0, 1), got {factor!r}")
        super().__init__(monitor, mode, min_delta)
        self.factor, self.patience, self.cooldown = float(factor), int(patience), int(cooldown)
        self.min_lr, self.verbose = float(min_lr), verbose
        self.reductions: list[tuple[int, float]] = []

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        self.wait = self.cooldown_counter = 0
        self._reset_best()

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        current = self._current(logs)
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best, self.wait = current, 0
            return
        if self.cooldown_counter > 0:
            return
        self.wait += 1
        if self.wait >= self.patience:
            new_lr = self._reduce()
            if new_lr is not None:
                self.reductions.append((epoch, new_lr))
                if self.verbose:
                    report(f"ReduceLROnPlateau: epoch {epoch + 1}: {self.monitor} has not improved "
                          f"for {self.wait} epochs; lr -> {new_lr:.6g}")
                self.cooldown_counter, self.wait = self.cooldown, 0

    def _reduce(self) -> float | None:
        optimizer = _optimizer(self)
        schedule = getattr(optimizer, "schedule", None)
        if schedule is not None:
            if not isinstance(schedule, _ScaledSchedule):
                schedule = optimizer.schedule = _ScaledSchedule(schedule, self.min_lr)
            if optimizer.lr <= self.min_lr:
                return None
            schedule.scale *= self.factor
            optimizer.lr = schedule(max(optimizer.iterations - 1, 0))
            return optimizer.lr
        if optimizer.lr <= self.min_lr:
            return None
        optimizer.lr = max(optimizer.lr * self.factor, self.min_lr)
        return optimizer.lr
