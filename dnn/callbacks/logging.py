"""Callbacks that watch or record training: NaN termination, CSV logs, plain functions."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from typing import Any

from dnn import backend
from dnn.callbacks.base import Callback, report


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
        report(self.message)
        self.terminated_at = (self._epoch, batch)
        self.model.stop_training = True
        self._bad = None


class CSVLogger(Callback):
    """Append one row per epoch (``epoch`` from 0, then every logged quantity) to a CSV file.

    ``append=False`` starts a new file at the beginning of training. The
    columns are fixed by the first epoch; the file is flushed every epoch.
    """

    rank_zero_only = True  # one file, written by rank 0 of a data-parallel fit

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
        valid = {"on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
                 "on_batch_begin", "on_batch_end", "on_log"}
        if unknown := set(hooks) - valid:
            raise TypeError(f"LambdaCallback: unknown hooks {sorted(unknown)}; valid are {sorted(valid)}")
        for hook, fn in hooks.items():
            setattr(self, hook, fn)
