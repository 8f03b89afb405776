"""Callbacks: hooks ``fit`` calls around epochs and batches.

Subclass :class:`Callback` and override what you need; ``self.model`` is set
before ``on_train_begin``. Setting ``model.stop_training = True`` ends ``fit``
after the current epoch.
"""

from __future__ import annotations

from typing import Any


class Callback:
    model: Any = None

    def set_model(self, model: Any) -> None:
        self.model = model

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None: ...

    def on_train_end(self, logs: dict[str, float] | None = None) -> None: ...

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None: ...

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None: ...

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None: ...
