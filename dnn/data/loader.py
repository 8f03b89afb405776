"""The DataLoader: batches from a dataset, gathered and moved to the device on a
background thread while the training thread computes.

One pass (``iter(loader)``) works as a producer and a consumer joined by a
bounded queue of ``prefetch`` batches:

    training thread                     loader thread
    ---------------                     -------------
    order ← permutation (epoch e)  →    for each batch of indices:
    next(batch) ← queue.get()      ←       gather rows (host) → to device
                                           → transform (device) → queue.put

- **Determinism.** The order of a pass is drawn on the training thread before
  the loader thread starts, so the loader's draws never interleave with the
  model's (Dropout). With ``seed=s`` the loader owns its generator: pass ``e``
  uses the (e+1)-th permutation of ``generator(s)`` — exactly the orders
  ``fit(x, y, shuffle=True, seed=s)`` draws for a model without random layers —
  and :meth:`set_epoch` jumps to any pass, so a resumed ``fit(initial_epoch=k)``
  continues the same sequence. Without a seed the order comes from the global
  generator (seeded by ``fit(seed=)``, saved with the model for resume).
  Random transforms draw from a generator seeded by (seed, epoch), made current
  for the loader thread only (``dnn.backend.random.use``).
- **Errors.** An exception raised on the loader thread (in ``__getitem__``, a
  generator, a transform) is re-raised in the training thread, with its
  original traceback.
- **No thread left behind.** A pass stops its thread when it ends, when the
  consumer stops early (``break``, an exception, ``KeyboardInterrupt``: closing
  the pass's generator runs its ``finally``), or when it is garbage-collected.
  A thread blocked inside a dataset call cannot be interrupted: the pass waits
  for it at most :data:`STOP_WAIT` seconds, warns, and the thread ends (reading
  nothing more) when that call returns.
- **Nothing lost from a generator.** A one-shot iterable (a generator, whose
  ``iter()`` is itself) is read on across passes, never restarted or closed;
  batches a pass had read ahead when it was closed are served first by the
  next pass — of any DataLoader over that generator (``fit(gen)`` then
  ``evaluate(gen)`` make two), as long as the generator lives. Batches handed
  over whole (``batch_size=None``) are copied as they are read, so a generator
  that refills one buffer cannot change a batch waiting in the queue.
- **Exact resume mid-pass.** ``set_epoch(e, skip_batches=k)`` starts pass ``e``
  at its batch ``k``; each batch's transform draws come from a generator seeded
  by (seed, pass, batch), so a resumed pass sees the same augmentation.
- ``prefetch=0`` does everything on the calling thread (no thread at all).
"""

from __future__ import annotations

import math
import queue
import threading
import time
import warnings
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from dnn import backend
from dnn.backend import random
from dnn.data.dataset import ArrayDataset, collate, is_map_style, map_structure
from dnn.training import is_int

#: how long a blocked loader thread waits before looking at the stop flag again (seconds)
_POLL = 0.05
#: how long closing a pass waits for a loader thread busy inside a dataset call (seconds)
STOP_WAIT = 2.0
#: per one-shot source (a generator): prepared batches a closed pass had read ahead of it
_READ_AHEAD: weakref.WeakKeyDictionary[Any, deque[Any]] = weakref.WeakKeyDictionary()


class _Failure:
    """An exception caught on the loader thread, to re-raise on the training thread."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_DONE = object()


def to_backend(batch: Any) -> Any:
    """Every array of a batch on the active backend: floating arrays in the default
    dtype, integer and boolean arrays (labels, token ids, masks) keeping theirs."""
    def move(a: Any) -> Any:
        if backend.is_array(a):
            if backend.xp.isdtype(a.dtype, "real floating") and a.dtype != backend.default_dtype():
                return backend.xp.astype(a, backend.default_dtype())
            return a
        return backend.asarray(np.asarray(a))

    return map_structure(move, batch)


class DataLoader:
    """Batches of a dataset on the device: ``for x, y in DataLoader(ArrayDataset(x, y), 128)``.

    ``dataset``: map-style (``__len__``/``__getitem__``, e.g. :class:`ArrayDataset`; an
    array or a tuple of arrays is wrapped in one) or any iterable of samples.
    ``batch_size=None`` means the dataset's items are whole batches already (a Keras-style
    generator, a list of batches). ``shuffle`` draws a fresh order every pass (map-style only);
    ``drop_last`` drops a last, smaller batch; ``transform(x)`` runs on each batch's
    inputs (the first element of a tuple/list batch) on the device (see
    :mod:`dnn.data.transforms`); ``prefetch`` batches are prepared ahead on a background
    thread (0: none, no thread); ``seed`` (>= 0) makes the orders and the transforms' draws
    reproducible on their own.
    """

    def __init__(self, dataset: Any, batch_size: int | None = 32, shuffle: bool = False,
                 drop_last: bool = False, transform: Callable[[Any], Any] | None = None,
                 prefetch: int = 2, seed: int | None = None) -> None:
        if isinstance(dataset, tuple) and dataset and all(hasattr(a, "shape") for a in dataset):
            dataset = ArrayDataset(*dataset)
        elif hasattr(dataset, "shape") and hasattr(dataset, "dtype"):
            dataset = ArrayDataset(dataset)
        if isinstance(dataset, (str, bytes, dict)) or (
                not is_map_style(dataset) and not hasattr(dataset, "__iter__")):
            raise TypeError(f"DataLoader: dataset must be map-style (__len__ and __getitem__) or "
                            f"an iterable of samples, got {type(dataset).__name__}; for arrays "
                            "use ArrayDataset(x, y)")
        if batch_size is not None and (not is_int(batch_size) or batch_size < 1):
            raise ValueError(f"DataLoader: batch_size must be an int >= 1 or None (the dataset "
                             f"yields batches), got {batch_size!r}")
        for arg, value in (("shuffle", shuffle), ("drop_last", drop_last)):
            if not isinstance(value, bool):
                raise TypeError(f"DataLoader: {arg} must be True or False, got {value!r}")
        if not is_int(prefetch) or prefetch < 0:
            raise ValueError(f"DataLoader: prefetch must be an int >= 0, got {prefetch!r}")
        if seed is not None and (not is_int(seed) or seed < 0):
            raise ValueError(f"DataLoader: seed must be an int >= 0 or None, got {seed!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: transform must be callable, got "
                            f"{type(transform).__name__}")
        self.map_style = is_map_style(dataset)
        if shuffle and not self.map_style:
            raise ValueError("DataLoader: shuffle=True needs a map-style dataset (__len__ and "
                             f"__getitem__); {type(dataset).__name__} can only be iterated")
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.transform = transform
        self.prefetch = int(prefetch)
        self.seed = None if seed is None else int(seed)
        self.epoch = 0
        self._skip = 0
        self._order_generator: Any = None
        self._orders_drawn = 0
        #: a one-shot iterable's iterator, read on across passes
        self._source: Iterator[Any] | None = None
        self._own_read_ahead: deque[Any] = deque()
        self._local = threading.local()  # .busy: this thread is producing a batch of ours

    def __len__(self) -> int:
        """Batches per pass (map-style datasets, or iterables that know their length)."""
        n = len(self.dataset)
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    @property
    def one_shot(self) -> bool:
        """Whether the dataset is an iterator that can be read only once (a generator)."""
        return not self.map_style and iter(self.dataset) is self.dataset

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        """The next pass is pass ``epoch`` (its order and transform draws follow from the
        seed and ``epoch``), starting at its batch ``skip_batches`` (map-style datasets: a
        resume mid-pass); ``fit`` calls it before every epoch."""
        for arg, value in (("epoch", epoch), ("skip_batches", skip_batches)):
            if not is_int(value) or value < 0:
                raise ValueError(f"DataLoader.set_epoch: {arg} must be an int >= 0, got "
                                 f"{value!r}")
        self.epoch, self._skip = int(epoch), int(skip_batches)

    def __iter__(self) -> Iterator[Any]:
        if getattr(self._local, "busy", False):
            raise RuntimeError("DataLoader: iterated from inside its own dataset or transform "
                               "(while preparing one of its batches); that would start passes "
                               "without end. Use another DataLoader there")
        order = self._order() if self.map_style else None
        seed = self._transform_seed()
        skip, self._skip = self._skip, 0
        self.epoch += 1
        return self._pass(order, seed, skip)

    def __repr__(self) -> str:
        return (f"DataLoader({type(self.dataset).__name__}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, "
                f"transform={self.transform!r}, prefetch={self.prefetch}, seed={self.seed})")

    # ------------------------------------------------------------ what one pass reads
    def _order(self) -> Any:
        """The sample order of this pass (None: 0..n-1), drawn on the calling thread."""
        if not self.shuffle:
            return None
        n = len(self.dataset)
        if self.seed is None:
            return random.permutation(n)  # the global generator (fit's seed / resume state)
        if self._order_generator is None or self._orders_drawn > self.epoch:
            self._order_generator, self._orders_drawn = random.generator(self.seed), 0
        with random.use(self._order_generator):
            while self._orders_drawn < self.epoch:  # jump ahead to this pass (resume)
                random.permutation(n)
                self._orders_drawn += 1
            order = random.permutation(n)
        self._orders_drawn += 1
        return order

    def _transform_seed(self) -> int | None:
        """The seed of this pass's transform draws (batch k draws from (seed, k))."""
        if self.transform is None:
            return None
        if self.seed is None:  # from the global generator, on the calling thread
            return int(backend.to_numpy(random.integers(0, 2**62, (1,)))[0])
        return int(np.random.SeedSequence([self.seed, self.epoch]).generate_state(1, np.uint64)[0])

    def _batches(self, order: Any, skip: int) -> Iterator[Any]:
        """Host-side batches of this pass (gathered, not yet on the device)."""
        if not self.map_style:
            yield from self._iterable_batches()
            return
        n = len(self.dataset)
        if self.batch_size is None:  # each item is a batch already
            rows = np.arange(n) if order is None else backend.to_numpy(order)
            for i in rows[skip:]:
                yield _owned(self.dataset[int(i)], self.prefetch)
            return
        size = self.batch_size
        stop = n - n % size if self.drop_last else n
        gather = getattr(self.dataset, "gather", None)
        for start in range(skip * size, stop, size):
            end = min(start + size, n)
            if gather is not None:
                yield gather(slice(start, end) if order is None else order[start:end])
            else:
                rows = range(start, end) if order is None else backend.to_numpy(order[start:end])
                yield collate([self.dataset[int(i)] for i in rows])

    def _iterable_batches(self) -> Iterator[Any]:
        if self.one_shot:  # read on, never restarted, never closed by us
            if self._source is None:
                self._source = iter(self.dataset)
            items = self._source
        else:
            items = iter(self.dataset)
        while True:
            if self.batch_size is None:
                item = next(items, _DONE)
                if item is _DONE:
                    return
                yield _owned(item, self.prefetch)
                continue
            chunk = [item for _, item in zip(range(self.batch_size), items)]
            if not chunk or (self.drop_last and len(chunk) < self.batch_size):
                return
            yield collate(chunk)

    def _prepare(self, batch: Any, seed: int | None, index: int) -> Any:
        if batch is None:
            raise TypeError("DataLoader: the dataset gave None as a batch (its __getitem__ or "
                            "generator returned None); each item must be (x, y), (x, y, "
                            "sample_weight) or x")
        batch = to_backend(batch)
        if self.transform is None:
            return batch
        split = isinstance(batch, (tuple, list))
        x = batch[0] if split else batch
        with random.use(random.generator(_batch_seed(seed, index))):
            out = self.transform(x)
        if not hasattr(out, "shape") or not hasattr(out, "dtype"):
            raise TypeError(f"DataLoader: the transform {self.transform!r} returned "
                            f"{type(out).__name__}; it must return the transformed batch (an "
                            "array)")
        return type(batch)([out, *batch[1:]]) if split else out

    def _produced(self, order: Any, seed: int | None, skip: int) -> Iterator[Any]:
        """This pass's prepared batches, produced on the calling thread (flagged busy)."""
        source = self._batches(order, skip)
        index = skip
        while True:
            self._local.busy = True
            try:
                batch = next(source, _DONE)
                if batch is _DONE:
                    return
                prepared = self._prepare(batch, seed, index)
            finally:
                self._local.busy = False
            index += 1
            yield prepared

    # ------------------------------------------------------------ one pass
    def _read_ahead(self) -> deque[Any]:
        """The prepared batches (or a failure) closed passes read ahead of this one-shot
        source, shared by every DataLoader over it (while the source lives)."""
        try:
            return _READ_AHEAD.setdefault(self.dataset, deque())
        except TypeError:  # an iterator that takes no weak reference: this loader's own
            return self._own_read_ahead

    def _pass(self, order: Any, seed: int | None, skip: int) -> Iterator[Any]:
        keep = self.one_shot  # read-ahead batches survive the pass only for a one-shot source
        pending = self._read_ahead() if keep else deque()
        while pending:
            item = pending.popleft()
            if isinstance(item, _Failure):
                raise item.exc
            yield item
        if self.prefetch == 0:
            yield from self._produced(order, seed, skip)
            return
        batches: queue.Queue[Any] = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        unqueued: list[Any] = []  # a batch the thread had prepared when the pass stopped
        worker = threading.Thread(target=self._produce,
                                  args=(order, seed, skip, batches, stop, unqueued),
                                  name="dnn-DataLoader", daemon=True)
        worker.start()
        done = False
        try:
            while True:
                item = batches.get()
                if item is _DONE:
                    done = True
                    return
                if isinstance(item, _Failure):
                    done = True
                    raise item.exc  # the loader thread's exception, its traceback attached
                yield item
        finally:
            stop.set()
            left = self._stop(worker, batches)
            if keep and not done:
                pending.extend([*left, *unqueued])

    def _stop(self, worker: threading.Thread, batches: queue.Queue[Any]) -> list[Any]:
        """Stop a pass's thread: the batches it had queued, in order (the end marker
        dropped). Waits at most STOP_WAIT seconds for a thread busy inside a dataset call."""
        left: list[Any] = []
        deadline = time.monotonic() + STOP_WAIT
        while True:
            try:
                while True:
                    item = batches.get_nowait()
                    if item is not _DONE:
                        left.append(item)
            except queue.Empty:
                pass
            if not worker.is_alive() or time.monotonic() > deadline:
                break
            worker.join(_POLL)
        if worker.is_alive():
            warnings.warn("DataLoader: the loader thread is still inside a call to the dataset "
                          f"or transform after {STOP_WAIT:g} s; it reads nothing more and ends "
                          "when that call returns", RuntimeWarning, stacklevel=3)
        return left

    def _produce(self, order: Any, seed: int | None, skip: int, batches: queue.Queue[Any],
                 stop: threading.Event, unqueued: list[Any]) -> None:
        def put(item: Any) -> bool:
            while not stop.is_set():
                try:
                    batches.put(item, timeout=_POLL)
                    return True
                except queue.Full:
                    continue
            unqueued.append(item)
            return False

        try:
            produced = self._produced(order, seed, skip)
            while not stop.is_set():  # checked before reading on: a stopped pass reads no more
                batch = next(produced, _DONE)
                if batch is _DONE:
                    put(_DONE)
                    return
                if not put(batch):
                    return
        except BaseException as exc:  # re-raised on the training thread
            put(_Failure(exc))


def _batch_seed(seed: int | None, index: int) -> int | None:
    if seed is None:
        return None
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0])


def _owned(batch: Any, prefetch: int) -> Any:
    """A batch the dataset handed over whole, copied when it will wait in the queue: a
    generator may refill the same buffer for its next batch."""
    if prefetch == 0:
        return batch

    def copy(a: Any) -> Any:
        if backend.is_array(a):
            return backend.xp.asarray(a, copy=True)
        if hasattr(a, "__array__"):  # NumPy, or another library's CPU tensor
            return np.array(a, copy=True)
        return a  # Python numbers and lists: to_backend makes new arrays of them

    return map_structure(copy, batch)
