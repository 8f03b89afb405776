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

import itertools
import warnings
from collections.abc import Iterator
from typing import Any

from dnn import backend
from dnn.backend import deferred
from dnn.data import ArrayDataset, DataLoader
from dnn.data.loader import to_backend
from dnn.training import (
    check_fit_inputs,
    fix_labels,
    input_array,
    inputs_list,
    is_int,
    per_name,
)
from dnn.weighting import (
    check_class_weight,
    check_sample_weight,
    class_weight_vector,
    sample_weights,
    with_class_weight,
)

Batch = tuple[list[Any], list[Any], list[Any] | None]
_END = object()


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

    ``steps``: batches per epoch when known (``steps_per_epoch``/``steps``, or the
    loader's length), else None. ``epoch(e)`` gives training epoch ``e``: a whole pass,
    or with ``steps_per_epoch`` the next ``steps`` batches of a stream kept open across
    epochs — for a map-style loader positioned from ``e`` alone (pass ``e·steps // L`` at
    batch ``e·steps % L``), so a resumed fit reads what the uninterrupted one read.
    ``once()`` gives one evaluation: a pass from the start (``steps`` batches of it), or
    the next batches of a one-shot generator. ``close()`` stops any loader thread.

    Streamed batches after the first are not checked one by one (that would read the
    device every step): each batch adds device-side flags for class labels out of range,
    binary targets outside [0, 1] and bad weights, and :meth:`verify` reads them where the
    loop reads the device anyway (every ``log_every`` steps, and at the end).
    """

    def __init__(self, model: Any, loader: DataLoader, steps: int | None, where: str,
                 targets: bool, class_weight: Any, checked: bool) -> None:
        # a flag left by a call before this one (a forward outside fit, on a GPU) is reported
        # now, saying so, rather than as if this call's data had caused it
        deferred.raise_pending(f" (left by a call before this {where})")
        self.model = model
        self.loader = loader
        self.where = where
        self.targets = targets
        self.fixed_steps = steps
        #: arrays were checked whole and are served as (xs, ys[, ws]) lists already; a stream
        #: checks its first batch and converts every batch
        self._prepared = self._checked = checked
        #: {class: weight} until the first batch shows the output's width; then a vector
        self._class_weight = class_weight
        self._stream: Iterator[Any] | None = None
        self._position = 0
        self._flags: dict[str, Any] = {}
        self._classes: list[int | None] = []
        self._count = 0
        try:
            known = len(loader)
        except TypeError:
            known = None
        self.steps = steps if steps is not None else known

    # ------------------------------------------------------------ epochs
    def epoch(self, epoch: int) -> Iterator[Batch]:
        """Training epoch ``epoch``'s batches."""
        if self.fixed_steps is None:
            self.loader.set_epoch(epoch)
            yield from self._read(iter(self.loader))
        elif self.loader.map_style:
            yield from self._positioned(epoch * self.fixed_steps)
        else:
            yield from self._endless()

    def once(self) -> Iterator[Batch]:
        """One evaluation's batches: ``steps`` of them, or all."""
        self.loader.set_epoch(0)
        yield from self._read(iter(self.loader), self.fixed_steps)

    def _read(self, stream: Iterator[Any], count: int | None = None) -> Iterator[Batch]:
        try:
            for batch in itertools.islice(stream, count):  # islice reads no batch beyond
                yield self._unpack(batch)
        finally:
            stream.close()  # type: ignore[attr-defined]

    def _positioned(self, start: int) -> Iterator[Batch]:
        length = len(self.loader)
        if length == 0:
            raise ValueError(f"{self.where}: the DataLoader has no batches (an empty dataset, "
                             "or fewer samples than batch_size with drop_last=True)")
        if self._stream is None or self._position != start:
            self._open(start, length)
        for _ in range(self.fixed_steps or 0):
            batch = next(self._stream, _END)
            if batch is _END:  # this pass is over: the next one, from its first batch
                self._open(self._position, length)
                batch = next(self._stream, _END)
            self._position += 1
            yield self._unpack(batch)

    def _open(self, position: int, length: int) -> None:
        self.close()
        self.loader.set_epoch(position // length, skip_batches=position % length)
        self._stream, self._position = iter(self.loader), position

    def _endless(self) -> Iterator[Batch]:
        for _ in range(self.fixed_steps or 0):
            batch = _END
            for _attempt in range(2):
                if self._stream is None:
                    self._stream = iter(self.loader)
                batch = next(self._stream, _END)
                if batch is not _END or self.loader.one_shot:
                    break
                self.close()  # a re-iterable dataset: start it again
            if batch is _END:
                warnings.warn(f"{self.where}: the data ran out before steps_per_epoch="
                              f"{self.fixed_steps} batches; training stops here (make the "
                              "generator endless, or lower steps_per_epoch)", RuntimeWarning,
                              stacklevel=4)
                self.model.stop_training = True
                return
            yield self._unpack(batch)

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()  # type: ignore[attr-defined]
            self._stream = None

    # ------------------------------------------------------------ checks
    def verify(self, steps: str) -> None:
        """Raise if a streamed batch since the last call had bad labels or weights, or a
        layer's deferred check failed (one device read each; ``steps`` says which batches,
        for the message)."""
        deferred.raise_pending()
        if not self._flags:
            return
        kinds = list(self._flags)
        xp = backend.xp
        found = backend.to_numpy(xp.stack([self._flags[k] for k in kinds]))
        self._flags = {}
        bad = [k for k, hit in zip(kinds, found) if hit]
        if bad:
            raise ValueError(f"{self.where}: a batch among {steps} had {' and '.join(bad)}; "
                             "check the data source (the first batch of a stream is checked "
                             "in full, the others by these flags)")

    def _flag(self, kind: str, bad: Any) -> None:
        hit = backend.xp.any(bad)
        self._flags[kind] = hit if kind not in self._flags else self._flags[kind] | hit

    def _flag_batch(self, ys: list[Any], ws: list[Any] | None) -> None:
        from dnn.losses import (
            BinaryCrossentropy,
            CategoricalCrossentropy,
            SigmoidBinaryCrossentropy,
            SoftmaxCrossEntropy,
        )

        xp = backend.xp
        for y, loss, classes in zip(ys, self.model.losses, self._classes):
            if isinstance(loss, (CategoricalCrossentropy, SoftmaxCrossEntropy)) and classes \
                    and not xp.isdtype(y.dtype, "real floating"):  # labels, or 0/1 one-hot rows
                self._flag(f"class labels outside [0, {classes})", (y < 0) | (y >= classes))
            elif isinstance(loss, (BinaryCrossentropy, SigmoidBinaryCrossentropy)) and \
                    not xp.isdtype(y.dtype, "bool"):
                self._flag("binary targets outside [0, 1]", (y < 0) | (y > 1))
        for w in ws or []:
            self._flag("sample weights that are negative, NaN or Inf",
                       xp.logical_not(xp.isfinite(w)) | (w < 0))

    # ------------------------------------------------------------ one batch
    def _unpack(self, batch: Any) -> Batch:
        self._count += 1
        if self._prepared:
            ws = batch[2] if len(batch) == 3 else None
            if self._class_weight is not None:
                ws = with_class_weight(self._class_weight, batch[1][0], ws)
            return batch[0], (batch[1] if self.targets else []), ws
        model, where = self.model, self.where
        if isinstance(batch, (tuple, list)) and not (
                not self.targets and len(model.input_names) > 1 and len(batch) == len(
                    model.input_names) and not isinstance(batch[0], (tuple, list, dict))):
            parts = list(batch)
        else:
            parts = [batch]
        if not 1 <= len(parts) <= 3 or (self.targets and len(parts) < 2) or parts[0] is None:
            need = "(x, y) or (x, y, sample_weight)" if self.targets else "x or (x, ...)"
            got = "None" if batch is None or parts[0] is None else \
                f"a {type(batch).__name__} of {len(parts)} parts"
            raise ValueError(f"{where}: each batch must be {need}, got {got} (batch "
                             f"{self._count})")
        x, first = parts[0], not self._checked
        w = parts[2] if self.targets and len(parts) == 3 else None
        if first:  # the first batch of a stream: the checks arrays get whole
            self._checked = True
            label = f"{where} (first batch)"
            if self.targets:
                xs, ys = check_fit_inputs(model, x, parts[1], where=label)
                self._classes = [model.output_width(i, xs) for i in range(len(ys))]
            else:
                xs, ys = inputs_list(model, x, label), []
            ws = None if w is None else check_sample_weight(model, w, xs[0].shape[0], label)
            if self._class_weight is not None:
                self._class_weight = class_weight_vector(model, self._class_weight, where,
                                                         xs, ys[0])
        else:
            xs = [input_array(v, dtype) for v, dtype in zip(
                per_name(x, model.input_names, "x", "input", where), model.input_dtypes)]
            ys, ws = [], None
            if self.targets:
                ys = [fix_labels(loss, to_backend(v)) for loss, v in zip(
                    model.losses, per_name(parts[1], model.output_names, "y", "output", where))]
                ws = None if w is None else sample_weights(model, w)
                self._flag_batch(ys, ws)
        if xs[0].ndim == 0 or xs[0].shape[0] == 0:
            raise ValueError(f"{where}: batch {self._count} is empty (shape "
                             f"{tuple(xs[0].shape)}); every batch needs at least one sample")
        if self._class_weight is not None:
            ws = with_class_weight(self._class_weight, ys[0], ws)
        return xs, ys, ws


def make_feed(model: Any, x: Any, y: Any = None, sample_weight: Any = None, *,
              batch_size: int | None, shuffle: bool = False, steps: int | None = None,
              where: str, targets: bool = True, class_weight: Any = None,
              seed: int | None = None) -> Feed:
    """The batches of a ``fit``/``evaluate`` (``targets``) or ``predict`` call; ``seed``
    orders shuffled arrays on its own (data parallelism: the same order on every rank),
    else the global generator does."""
    check_class_weight(model, class_weight, where)
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
        if class_weight is not None:
            class_weight = class_weight_vector(model, class_weight, where, xs, ys[0])
        if sample_weight is not None:
            parts.append(check_sample_weight(model, sample_weight, xs[0].shape[0], where))
    else:
        parts = [inputs_list(model, x, where)]
    loader = DataLoader(ArrayDataset(*parts), batch_size=size, shuffle=shuffle, prefetch=0,
                        seed=seed)
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
