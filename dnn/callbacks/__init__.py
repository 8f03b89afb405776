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

from dnn.callbacks.base import Callback
from dnn.callbacks.learning_rate import LearningRateScheduler, ReduceLROnPlateau
from dnn.callbacks.logging import CSVLogger, LambdaCallback, TerminateOnNaN
from dnn.callbacks.monitor import EarlyStopping, ModelCheckpoint

__all__ = [
    "CSVLogger", "Callback", "EarlyStopping", "LambdaCallback", "LearningRateScheduler",
    "ModelCheckpoint", "ReduceLROnPlateau", "TerminateOnNaN",
]
