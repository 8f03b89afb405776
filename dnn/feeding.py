"""What ``fit``, ``evaluate`` and ``predict`` read: any data, as batches of per-input
and per-output lists on the device.

The data may be arrays (``x``, ``y``, ``sample_weight``; lists or dicts for several
inputs/outputs), a :class:`~dnn.data.DataLoader`, or any iterable of batches
``(x, y)`` / ``(x, y, sample_weight)`` (a generator, as Keras takes it). Arrays
are checked once and moved to the device whole, then served by a DataLoader
over them — one batching mechanism for every kind of data. A generator is
wrapped in a ``DataLoader(batch_size=None)``, so its batches, too, are
prepared on a background thread.

Streamed batches cannot be checked up front: the first batch of each call gets
the checks arrays get (structure, sample counts, label ranges, finiteness),
and every batch is brought to the model's dtypes.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

from dnn import backend
from dnn.data import ArrayDataset, DataLoader
from dnn.data.loader import to_backend
from dnn.training import check_fit_inputs, fix_labels, inputs_list, is_int, per_name
from dnn.weighting import (
    check_sample_weight,
    class_weight_vector,
    sample_weights,
    with_class_weight,
)

Batch = tuple[list[Any], list[Any], list[Any] | None]


def is_stream(x: Any, y: Any) -> bool:
    """Whether ``x`` is a DataLoader or an iterable of batches rather than arrays."""
    if isinstance(x, DataLoader):
        return True
    if y is not None or hasattr(x, "shape") or isinstance(x, (dict, str, bytes)):
        return False
    if isinstance(x, (list, tuple)) and all(hasattr(a, "shape") for a in x):
        return False  # arrays, one per model input
    return hasattr(x, "__iter__")


class Feed:
    """Batches of one ``fit``/``evaluate``/``predict`` call as ``(xs, ys, ws)`` lists.

    ``steps``: batches per epoch when known (``steps_per_epoch``, or the loader's
    length), else None. ``epoch(e)`` iterates epoch ``e``'s batches; with
    ``steps_per_epoch`` one iterator is kept across epochs (an endless generator
    is read on, not restarted). ``close()`` stops any loader thread.
    """

    def __init__(self, model: Any, loader: DataLoader, steps: int | None, where: str,
                 targets: bool, class_weight: Any, checked: bool) -> None:
        self.model = model
        self.class_weight = class_weight
        self.loader = loader
        self.where = where
        self.targets = targets
        self.fixed_steps = steps
        #: arrays were checked whole and are served as (xs, ys[, ws]) lists already; a stream
        #: checks its first batch and converts every batch
        self._prepared = self._checked = checked
        self._stream: Iterator[Any] | None = None
        try:
            known = len(loader)
        except TypeError:
            known = None
        self.steps = steps if steps is not None else known

    def epoch(self, epoch: int) -> Iterator[Batch]:
        if self.fixed_steps is None:
            self.loader.set_epoch(epoch)
            yield from (self._unpack(b) for b in self.loader)
            return
        for _ in range(self.fixed_steps):
            batch = self._next_endless(epoch)
            if batch is None:
                return
            yield self._unpack(batch)

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()  # type: ignore[attr-defined]
            self._stream = None

    def _next_endless(self, epoch: int) -> Any:
        for attempt in range(2):
            if self._stream is None:
                self.loader.set_epoch(epoch)
                self._stream = iter(self.loader)
            try:
                return next(self._stream)
            except StopIteration:
                self._stream = None
                if attempt or not _restartable(self.loader):
                    break
        warnings.warn(f"{self.where}: the data ran out before steps_per_epoch="
                      f"{self.fixed_steps} batches; training stops here (make the generator "
                      "endless, or lower steps_per_epoch)", RuntimeWarning, stacklevel=4)
        self.model.stop_training = True
        return None

    # ------------------------------------------------------------ one batch
    def _unpack(self, batch: Any) -> Batch:
        if self._prepared:
            ws = batch[2] if len(batch) == 3 else None
            if self.class_weight is not None:
                ws = with_class_weight(self.class_weight, batch[1][0], ws)
            return batch[0], (batch[1] if self.targets else []), ws
        model, where = self.model, self.where
        if isinstance(batch, (tuple, list)) and not (
                not self.targets and len(model.input_names) > 1 and len(batch) == len(
                    model.input_names) and not isinstance(batch[0], (tuple, list, dict))):
            parts = list(batch)
        else:
            parts = [batch]
        if not 1 <= len(parts) <= 3 or (self.targets and len(parts) < 2):
            need = "(x, y) or (x, y, sample_weight)" if self.targets else "x or (x, ...)"
            raise ValueError(f"{where}: each batch must be {need}, got a "
                             f"{type(batch).__name__} of {len(parts)} parts")
        x, first = parts[0], not self._checked
        w = parts[2] if self.targets and len(parts) == 3 else None
        if first:  # the first batch of a stream: the checks arrays get whole
            self._checked = True
            label = f"{where} (first batch)"
            if self.targets:
                xs, ys = check_fit_inputs(model, x, parts[1], where=label)
            else:
                xs, ys = inputs_list(model, x, label), []
            ws = None if w is None else check_sample_weight(model, w, xs[0].shape[0], label)
        else:
            xs = [_as_input(v, dtype) for v, dtype in zip(
                per_name(x, model.input_names, "x", "input", where), model.input_dtypes)]
            ys, ws = [], None
            if self.targets:
                ys = [fix_labels(loss, to_backend(v)) for loss, v in zip(
                    model.losses, per_name(parts[1], model.output_names, "y", "output", where))]
                ws = None if w is None else sample_weights(model, w)
        if self.class_weight is not None:
            ws = with_class_weight(self.class_weight, ys[0], ws)
        return xs, ys, ws


def _as_input(value: Any, dtype: str | None) -> Any:
    value = to_backend(value)
    xp = backend.xp
    if not (dtype or "").startswith("int") and not xp.isdtype(value.dtype, "real floating"):
        value = xp.astype(value, backend.default_dtype())
    return value


def _restartable(loader: DataLoader) -> bool:
    return loader.map_style or iter(loader.dataset) is not loader.dataset


def make_feed(model: Any, x: Any, y: Any = None, sample_weight: Any = None, *,
              batch_size: int | None, shuffle: bool = False, steps: int | None = None,
              where: str, targets: bool = True, class_weight: Any = None) -> Feed:
    """The batches of a ``fit``/``evaluate`` (``targets``) or ``predict`` call."""
    class_weight = class_weight_vector(model, class_weight, where)
    if steps is not None and (not is_int(steps) or steps < 1):
        raise ValueError(f"{where}: steps must be an int >= 1 or None, got {steps!r}")
    if is_stream(x, y):
        for arg, value in (("y", y), ("sample_weight", sample_weight)):
            if value is not None:
                raise ValueError(f"{where}: {arg} must be None when x is a DataLoader or an "
                                 f"iterable of batches (its batches carry {arg})")
        if batch_size is not None:
            raise ValueError(f"{where}: batch_size must be None when x is a DataLoader or an "
                             "iterable of batches (they are batched already; the DataLoader "
                             "sets the batch size)")
        loader = x if isinstance(x, DataLoader) else DataLoader(x, batch_size=None)
        return Feed(model, loader, steps, where, targets, class_weight, checked=False)
    size = 32 if batch_size is None else batch_size
    if targets:
        xs, ys = check_fit_inputs(model, x, y, where=where)
        parts: list[Any] = [xs, ys]
        if sample_weight is not None:
            parts.append(check_sample_weight(model, sample_weight, xs[0].shape[0], where))
    else:
        parts = [inputs_list(model, x, where)]
    loader = DataLoader(ArrayDataset(*parts), batch_size=size, shuffle=shuffle, prefetch=0)
    return Feed(model, loader, steps, where, targets, class_weight, checked=True)


def validation_feed(model: Any, data: Any, batch_size: int, steps: int | None) -> Feed:
    """``fit``'s ``validation_data``: ``(x, y)`` or ``(x, y, sample_weight)`` arrays, a
    DataLoader, or an iterable of batches (``validation_steps`` of them, or all)."""
    where = "fit: validation_data"
    if isinstance(data, (tuple, list)):
        if len(data) not in (2, 3):
            raise ValueError(f"{where} must be a pair (x_val, y_val) or (x_val, y_val, sample_weight), "
                             f"got a {type(data).__name__} of length {len(data)}")
        weight = data[2] if len(data) == 3 else None
        return make_feed(model, data[0], data[1], weight, batch_size=batch_size, steps=steps,
                         where=where)
    if not is_stream(data, None):
        raise ValueError(f"{where} must be a pair (x_val, y_val), a DataLoader or an iterable "
                         f"of batches, got {type(data).__name__}")
    return make_feed(model, data, batch_size=None, steps=steps, where=where)
