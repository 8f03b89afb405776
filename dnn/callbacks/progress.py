"""The callbacks every ``fit`` installs itself: progress output and the NaN guard.

``fit`` puts them last in its callback list (after the user's), so a user's
:class:`~dnn.callbacks.TerminateOnNaN` can stop training before the guard
would raise, and the epoch line shows what the user's callbacks logged.
"""

from __future__ import annotations

import math
import time
from typing import Any

from dnn.callbacks.base import Callback


class ProgbarLogger(Callback):
    """What ``fit(verbose=)`` prints: 1 — a progress bar per epoch (tqdm; its loss and
    metrics refresh every ``log_every`` batches) and one line per epoch; 2 — the line
    only (for logs and notebooks that do not redraw); 0 — nothing."""

    def __init__(self, verbose: int = 1) -> None:
        if verbose not in (0, 1, 2):
            raise ValueError(f"ProgbarLogger: verbose must be 0, 1 or 2, got {verbose!r}")
        self.verbose = verbose
        self._bar: Any = None

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self._start = time.perf_counter()
        if self.verbose == 1:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.params.get("steps"), leave=False, dynamic_ncols=True,
                             desc=f"epoch {epoch + 1}/{self.params['epochs']}")

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def on_log(self, batch: int, logs: dict[str, float] | None = None) -> None:
        if self._bar is not None:
            self._bar.set_postfix({k: f"{v:.4f}" for k, v in (logs or {}).items()})

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self.close()
        if self.verbose:
            seconds = time.perf_counter() - self._start
            print(f"epoch {epoch + 1}/{self.params['epochs']} ({seconds:.1f}s): "
                  + ", ".join(f"{k}={v:.4f}" for k, v in (logs or {}).items()), flush=True)

    def close(self) -> None:
        """Remove the bar (at an epoch's end, or when ``fit`` stops on an error)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class NaNGuard(Callback):
    """Raise ``FloatingPointError`` when the running loss is NaN or infinite — read where
    ``fit`` reads it anyway (every ``log_every`` batches, and each epoch's end), so it
    costs no host sync of its own. (:class:`~dnn.callbacks.TerminateOnNaN` stops
    training instead of raising.)"""

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self._epoch, self._checked = epoch, 0

    def on_log(self, batch: int, logs: dict[str, float] | None = None) -> None:
        self._check((logs or {}).get("loss"), batch)

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self._check((logs or {}).get("loss"), None)

    def _check(self, loss: float | None, batch: int | None) -> None:
        if loss is None or self.model.stop_training:
            return
        if math.isfinite(loss):
            self._checked = self._checked if batch is None else batch + 1
            return
        where = ("" if batch is None else
                 f", between steps {self._checked + 1} and {batch + 1}")
        raise FloatingPointError(
            f"fit: the loss became {loss} in epoch {self._epoch + 1}{where}; lower the learning "
            "rate, clip gradients (clipnorm=) or check the inputs for NaN/Inf")
