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

``on_log`` receives, every ``log_every`` batches and at an epoch's last batch, the
epoch's running means (``loss``, metrics) as floats. ``fit`` itself adds
:class:`History` first and :class:`ProgbarLogger` and :class:`NaNGuard` last.

Provided: :class:`LRFinder` (the learning-rate range test), :class:`EarlyStopping`, :class:`ModelCheckpoint`,
:class:`LearningRateScheduler`, :class:`ReduceLROnPlateau`,
:class:`TerminateOnNaN`, :class:`CSVLogger`, :class:`LambdaCallback`.
"""

from dnn.callbacks.base import Callback
from dnn.callbacks.learning_rate import LearningRateScheduler, ReduceLROnPlateau
from dnn.callbacks.logging import CSVLogger, LambdaCallback, TerminateOnNaN
from dnn.callbacks.lr_finder import LRFinder, find_lr
from dnn.callbacks.monitor import EarlyStopping, ModelCheckpoint
from dnn.callbacks.progress import NaNGuard, ProgbarLogger

__all__ = [
    "CSVLogger", "Callback", "EarlyStopping", "LRFinder", "LambdaCallback",
    "LearningRateScheduler", "ModelCheckpoint", "NaNGuard", "ProgbarLogger",
    "ReduceLROnPlateau", "TerminateOnNaN", "find_lr",
]
