"""Callbacks that watch a logged quantity: early stopping and checkpoints."""

from __future__ import annotations

import os
import string
from typing import Any

from dnn.callbacks.base import _copy_state, _Monitor, report
from dnn.io.files import check_destination


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
                report(f"EarlyStopping: {self.monitor} did not improve for {self.wait} epochs; "
                      f"stopping after epoch {epoch + 1} (best {self.best:.4f} at epoch "
                      f"{(self.best_epoch or 0) + 1})")

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)
            if self.verbose:
                report(f"EarlyStopping: restored the weights of epoch {(self.best_epoch or 0) + 1}")


class ModelCheckpoint(_Monitor):
    """Save the model with ``model.save(path)`` at the end of epochs.

    ``path`` may hold ``str.format`` fields filled from the epoch logs, e.g.
    ``"ckpt/model-{epoch:02d}-{val_loss:.3f}.dnn"`` (``epoch`` counts from 1).
    ``save_best_only=True`` writes only when ``monitor`` improves on the best
    value so far (by more than ``min_delta``); otherwise every epoch is saved.
    ``saved`` lists the paths written.
    """

    rank_zero_only = True  # one file, written by rank 0 of a data-parallel fit

    def __init__(self, path: str | os.PathLike[str], monitor: str = "val_loss",
                 save_best_only: bool = False, mode: str = "auto", min_delta: float = 0.0,
                 verbose: int = 0) -> None:
        super().__init__(monitor, mode, min_delta)
        self.path, self.save_best_only, self.verbose = os.fspath(path), save_best_only, verbose
        self.saved: list[str] = []

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        """Check the path before the first epoch trains: it must be a valid format string
        whose ``{fields}`` are keys this fit logs, formatting it with sample values (``epoch``
        an int, logged values floats) must work, and the file must be writable where it
        will go. Only the fixed part of its folder (before any ``{field}``) is created now."""
        self._reset_best()
        try:
            parsed = list(string.Formatter().parse(self.path))
        except ValueError as exc:
            raise ValueError(f"ModelCheckpoint: the path {self.path!r} is not a valid format "
                             f"string ({exc}); write a literal brace as {{{{ or }}}}") from None
        fields = [f for _, f, _, _ in parsed if f is not None]
        names = {f.split(".")[0].split("[")[0] for f in fields}
        if "" in names or any(n.isdigit() for n in names):
            raise ValueError(f"ModelCheckpoint: the path {self.path!r} has a positional field "
                             "({} or {0}); name the value instead, e.g. {epoch:02d} or "
                             "{val_loss:.3f}")
        keys = self.params.get("log_keys")
        if keys is None:
            return
        if unknown := sorted(names - {"epoch", *keys}):
            hint = (" (val_* values exist only with validation_data= or validation_split=)"
                    if any(f.startswith("val_") for f in unknown) else "")
            raise ValueError(f"ModelCheckpoint: the path {self.path!r} uses {unknown}, which "
                             f"this fit does not log; it logs epoch, {', '.join(keys)}{hint}")
        sample = self._format(1, {k: 0.0 for k in keys})
        directory = os.path.dirname(self.path)
        if "{" not in directory and "}" not in directory:
            if os.path.dirname(sample):
                os.makedirs(os.path.dirname(sample), exist_ok=True)
            check_destination(sample)
            return
        # the folder depends on the logged values: create and check only its fixed part
        fixed: list[str] = []
        for part in directory.replace(os.sep, "/").split("/"):
            if "{" in part or "}" in part:
                break
            fixed.append(part)
        fixed_dir = "/".join(fixed) if fixed != [""] else "/"
        if fixed_dir:
            os.makedirs(fixed_dir, exist_ok=True)
        check_destination(os.path.join(fixed_dir or ".", ".dnn-checkpoint-probe"))

    def _format(self, epoch: int, logs: dict[str, Any]) -> str:
        """The path for ``epoch`` (1-based) and ``logs``; a ValueError naming ModelCheckpoint
        and the path if the format does not fit the values."""
        try:
            return self.path.format(epoch=epoch, **logs)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            values = ", ".join([f"epoch={epoch}"] + [f"{k}={v!r}" for k, v in logs.items()])
            raise ValueError(
                f"ModelCheckpoint: cannot fill in the path {self.path!r} with this fit's values "
                f"({values}): {type(exc).__name__}: {exc}. epoch is an int and the logged values "
                "are floats: use e.g. {epoch:02d} and {val_loss:.3f}"
            ) from None

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        logs = logs or {}
        if self.save_best_only:
            current = self._current(logs)
            if current is None or not self._is_improvement(current, self.best):
                return
            previous, self.best = self.best, current
        path = self._format(epoch + 1, logs)
        if os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        self.model.save(path)
        self.saved.append(path)
        if self.verbose:
            why = (f"{self.monitor} improved from {previous:.4f} to {current:.4f}; "
                   if self.save_best_only else "")
            report(f"ModelCheckpoint: epoch {epoch + 1}: {why}saved {path}")
