"""Callbacks: hooks ``fit`` calls around epochs and batches.

Subclass :class:`Callback` and override what you need; ``self.model`` is set
before ``on_train_begin`` and ``self.params`` holds ``epochs``, ``steps`` (per
epoch), ``verbose`` and ``log_every``. Setting ``model.stop_training = True``
ends ``fit`` after the current batch (the epoch is then closed and logged as
usual).

``on_epoch_end`` receives the epoch's logs as Python floats (``loss``, the
metrics, and ``val_*`` with validation data). ``on_batch_end`` receives
``logs["loss"]`` as a 0-d *device* array: reading it (``float(...)``) forces a
host sync, so a callback should do that only now and then.

Provided: :class:`EarlyStopping`, :class:`ModelCheckpoint`,
:class:`LearningRateScheduler`, :class:`ReduceLROnPlateau`,
:class:`TerminateOnNaN`, :class:`CSVLogger`, :class:`LambdaCallback`.
"""

from __future__ import annotations

import csv
import inspect
import math
import os
import warnings
from collections.abc import Callable
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


class EarlyStopping(_Monitor):
    """Stop training when ``monitor`` has not improved for ``patience`` epochs.

    Improvement means beating the best value so far by more than ``min_delta``
    (lower for losses, higher for accuracies; ``mode="auto"`` decides from the
    name). With ``patience=p`` training stops at the p-th epoch in a row
    without improvement (Keras semantics). ``restore_best_weights=True``
    snapshots the weights (and buffers) of the best epoch and loads them back
    when training ends, whether it stopped early or not.
    ``stopped_epoch`` and ``best_epoch`` are 0-based epoch indices.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 0, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = False,
                 baseline: float | None = None, verbose: int = 0) -> None:
        if not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be an int >= 0, got {patience!r}")
        super().__init__(monitor, mode, min_delta)
        self.patience, self.restore_best_weights = patience, restore_best_weights
        self.baseline, self.verbose = baseline, verbose

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        self.wait = 0
        self.stopped_epoch: int | None = None
        self.best_epoch: int | None = None
        self.best_weights: dict[str, Any] | None = None
        self._reset_best()

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        current = self._current(logs)
        if current is None:
            return
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = _copy_state(self.model)
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.verbose:
                print(f"EarlyStopping: {self.monitor} did not improve for {self.wait} epochs; "
                      f"stopping after epoch {epoch + 1} (best {self.best:.4f} at epoch "
                      f"{(self.best_epoch or 0) + 1})")

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)
            if self.verbose:
                print(f"EarlyStopping: restored the weights of epoch {(self.best_epoch or 0) + 1}")


class ModelCheckpoint(_Monitor):
    """Save the model with ``model.save(path)`` at the end of epochs.

    ``path`` may hold ``str.format`` fields filled from the epoch logs, e.g.
    ``"ckpt/model-{epoch:02d}-{val_loss:.3f}.dnn"`` (``epoch`` counts from 1).
    ``save_best_only=True`` writes only when ``monitor`` improves on the best
    value so far (by more than ``min_delta``); otherwise every epoch is saved.
    ``saved`` lists the paths written.
    """

    def __init__(self, path: str | os.PathLike[str], monitor: str = "val_loss",
                 save_best_only: bool = False, mode: str = "auto", min_delta: float = 0.0,
                 verbose: int = 0) -> None:
        super().__init__(monitor, mode, min_delta)
        self.path, self.save_best_only, self.verbose = os.fspath(path), save_best_only, verbose
        self.saved: list[str] = []

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        self._reset_best()

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        logs = logs or {}
        if self.save_best_only:
            current = self._current(logs)
            if current is None or not self._is_improvement(current, self.best):
                return
            previous, self.best = self.best, current
        path = self.path.format(epoch=epoch + 1, **logs)
        if os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        self.model.save(path)
        self.saved.append(path)
        if self.verbose:
            why = (f"{self.monitor} improved from {previous:.4f} to {current:.4f}; "
                   if self.save_best_only else "")
            print(f"ModelCheckpoint: epoch {epoch + 1}: {why}saved {path}")


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
            print(f"LearningRateScheduler: epoch {epoch + 1}: lr = {lr:.6g}")


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
                    print(f"ReduceLROnPlateau: epoch {epoch + 1}: {self.monitor} has not improved "
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


class TerminateOnNaN(Callback):
    """Stop training when the loss becomes NaN or infinite, without an exception.

    Reading the per-batch loss forces a host sync, so by default the check
    runs only where ``fit`` reads the loss anyway — every ``log_every`` steps
    and at the last step of an epoch — adding no syncs at all. ``check_every=N``
    also checks every N batches (``check_every=1``: every batch, exact but one
    sync per batch). Between checks a device-side flag remembers any
    non-finite loss, so none is missed; the message names the epoch and the
    range of batches. ``fit`` then ends after that batch, logs the epoch and
    returns the history. (Without this callback ``fit`` raises
    ``FloatingPointError`` instead.) ``terminated_at`` is (epoch, batch), 0-based.
    """

    def __init__(self, check_every: int | None = None) -> None:
        if check_every is not None and (not isinstance(check_every, int) or check_every < 1):
            raise ValueError(f"TerminateOnNaN: check_every must be an int >= 1, got {check_every!r}")
        self.check_every = check_every
        self.terminated_at: tuple[int, int] | None = None
        self.message: str | None = None

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self._epoch, self._bad, self._last_checked = epoch, None, -1

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        xp = backend.xp
        if not backend.is_array(loss):
            loss = xp.asarray(float(loss))
        bad = xp.logical_not(xp.isfinite(loss))  # on the device: no sync
        self._bad = bad if self._bad is None else xp.logical_or(self._bad, bad)
        steps = self.params.get("steps")
        log_every = self.params.get("log_every")
        due = ((self.check_every is not None and (batch + 1) % self.check_every == 0)
               or (log_every and (batch + 1) % log_every == 0)
               or (steps is not None and batch + 1 == steps)
               or (not steps and not log_every and self.check_every is None))
        if due:
            self._check(batch)

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        if self._bad is not None and self.terminated_at is None:
            self._check(self._last_checked + 1)

    def _check(self, batch: int) -> None:
        first, self._last_checked = self._last_checked + 2, batch
        if self._bad is None or not bool(self._bad):  # the host sync
            return
        where = f"batch {batch + 1}" if first >= batch + 1 else f"batches {first}-{batch + 1}"
        self.message = (f"TerminateOnNaN: the loss became NaN or Inf in epoch {self._epoch + 1}, "
                        f"{where} (1-based); stopping training")
        print(self.message)
        self.terminated_at = (self._epoch, batch)
        self.model.stop_training = True
        self._bad = None


class CSVLogger(Callback):
    """Append one row per epoch (``epoch`` from 0, then every logged quantity) to a CSV file.

    ``append=False`` starts a new file at the beginning of training. The
    columns are fixed by the first epoch; the file is flushed every epoch.
    """

    def __init__(self, path: str | os.PathLike[str], separator: str = ",", append: bool = False) -> None:
        self.path, self.separator, self.append = os.fspath(path), separator, append
        self._file: Any = None
        self._writer: Any = None
        self._keys: list[str] | None = None

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        if os.path.dirname(self.path):
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
        resume = self.append and os.path.exists(self.path) and os.path.getsize(self.path) > 0
        if resume:
            with open(self.path, newline="") as f:
                header = next(csv.reader(f, delimiter=self.separator), None)
            self._keys = header[1:] if header else None
        else:
            self._keys = None
        self._file = open(self.path, "a" if self.append else "w", newline="")
        self._writer = csv.writer(self._file, delimiter=self.separator)
        self._has_header = resume

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        logs = logs or {}
        if self._keys is None:
            self._keys = list(logs)
        if not self._has_header:
            self._writer.writerow(["epoch", *self._keys])
            self._has_header = True
        self._writer.writerow([epoch, *(_format(logs.get(k, "")) for k in self._keys)])
        self._file.flush()

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _format(value: Any) -> Any:
    return repr(float(value)) if isinstance(value, (int, float)) else value


class LambdaCallback(Callback):
    """A callback from plain functions, e.g. ``LambdaCallback(on_epoch_end=lambda e, logs: ...)``."""

    def __init__(self, **hooks: Callable[..., None]) -> None:
        valid = {"on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_batch_end"}
        if unknown := set(hooks) - valid:
            raise TypeError(f"LambdaCallback: unknown hooks {sorted(unknown)}; valid are {sorted(valid)}")
        for hook, fn in hooks.items():
            setattr(self, hook, fn)


__all__ = [
    "CSVLogger", "Callback", "EarlyStopping", "LambdaCallback", "LearningRateScheduler",
    "ModelCheckpoint", "ReduceLROnPlateau", "TerminateOnNaN",
]
