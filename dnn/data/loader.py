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
- ``prefetch=0`` does everything on the calling thread (no thread at all).
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from dnn import backend
from dnn.backend import random
from dnn.data.dataset import ArrayDataset, collate, is_map_style, map_structure
from dnn.training import is_int

#: how long a blocked loader thread waits before looking at the stop flag again (seconds)
_POLL = 0.05


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
    inputs on the device (see :mod:`dnn.data.transforms`); ``prefetch`` batches are
    prepared ahead on a background thread (0: none, no thread); ``seed`` makes the
    orders and the transforms' draws reproducible on their own.
    """

    def __init__(self, dataset: Any, batch_size: int | None = 32, shuffle: bool = False,
                 drop_last: bool = False, transform: Callable[[Any], Any] | None = None,
                 prefetch: int = 2, seed: int | None = None) -> None:
        if isinstance(dataset, tuple) and dataset and all(hasattr(a, "shape") for a in dataset):
            dataset = ArrayDataset(*dataset)
        elif hasattr(dataset, "shape") and hasattr(dataset, "dtype"):
            dataset = ArrayDataset(dataset)
        if not is_map_style(dataset) and not hasattr(dataset, "__iter__"):
            raise TypeError(f"DataLoader: dataset must be map-style (__len__ and __getitem__) or "
                            f"iterable, got {type(dataset).__name__}")
        if batch_size is not None and (not is_int(batch_size) or batch_size < 1):
            raise ValueError(f"DataLoader: batch_size must be an int >= 1 or None (the dataset "
                             f"yields batches), got {batch_size!r}")
        for arg, value in (("shuffle", shuffle), ("drop_last", drop_last)):
            if not isinstance(value, bool):
                raise TypeError(f"DataLoader: {arg} must be True or False, got {value!r}")
        if not is_int(prefetch) or prefetch < 0:
            raise ValueError(f"DataLoader: prefetch must be an int >= 0, got {prefetch!r}")
        if seed is not None and not is_int(seed):
            raise TypeError(f"DataLoader: seed must be an int or None, got {seed!r}")
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
        self._order_generator: Any = None
        self._orders_drawn = 0

    def __len__(self) -> int:
        """Batches per pass (map-style datasets, or iterables that know their length)."""
        n = len(self.dataset)
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """The next pass is pass ``epoch`` (its order and transform draws follow from the
        seed and ``epoch``); ``fit`` calls it before every epoch."""
        if not is_int(epoch) or epoch < 0:
            raise ValueError(f"DataLoader.set_epoch: epoch must be an int >= 0, got {epoch!r}")
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[Any]:
        order = self._order() if self.map_style else None
        transform_seed = self._transform_seed()
        self.epoch += 1
        return self._pass(order, transform_seed)

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
        if self.transform is None:
            return None
        if self.seed is None:
            return int(backend.to_numpy(random.integers(0, 2**62, (1,)))[0])
        return int(np.random.SeedSequence([self.seed, self.epoch]).generate_state(1, np.uint64)[0])

    def _batches(self, order: Any) -> Iterator[Any]:
        """Host-side batches of this pass (gathered, not yet on the device)."""
        if not self.map_style:
            yield from self._iterable_batches()
            return
        n = len(self.dataset)
        if self.batch_size is None:  # each item is a batch already
            for i in range(n) if order is None else backend.to_numpy(order):
                yield self.dataset[int(i)]
            return
        size = self.batch_size
        stop = n - n % size if self.drop_last else n
        gather = getattr(self.dataset, "gather", None)
        for start in range(0, stop, size):
            end = min(start + size, n)
            if gather is not None:
                yield gather(slice(start, end) if order is None else order[start:end])
            else:
                rows = range(start, end) if order is None else backend.to_numpy(order[start:end])
                yield collate([self.dataset[int(i)] for i in rows])

    def _iterable_batches(self) -> Iterator[Any]:
        items = iter(self.dataset)
        if self.batch_size is None:
            yield from items
            return
        while True:
            chunk = [item for _, item in zip(range(self.batch_size), items)]
            if not chunk or (self.drop_last and len(chunk) < self.batch_size):
                return
            yield collate(chunk)

    def _prepare(self, batch: Any, transform_generator: Any) -> Any:
        batch = to_backend(batch)
        if self.transform is None:
            return batch
        with random.use(transform_generator):
            if isinstance(batch, tuple):
                return (self.transform(batch[0]), *batch[1:])
            return self.transform(batch)

    # ------------------------------------------------------------ one pass
    def _pass(self, order: Any, transform_seed: int | None) -> Iterator[Any]:
        generator = None if transform_seed is None else random.generator(transform_seed)
        if self.prefetch == 0:
            for batch in self._batches(order):
                yield self._prepare(batch, generator)
            return
        batches: queue.Queue[Any] = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        worker = threading.Thread(target=self._produce, args=(order, generator, batches, stop),
                                  name="dnn-DataLoader", daemon=True)
        worker.start()
        try:
            while True:
                item = batches.get()
                if item is _DONE:
                    return
                if isinstance(item, _Failure):
                    raise item.exc  # the loader thread's exception, its traceback attached
                yield item
        finally:
            stop.set()
            while worker.is_alive():  # unblock a put() waiting on a full queue
                try:
                    batches.get_nowait()
                except queue.Empty:
                    pass
                worker.join(_POLL)

    def _produce(self, order: Any, generator: Any, batches: queue.Queue[Any],
                 stop: threading.Event) -> None:
        def put(item: Any) -> bool:
            while not stop.is_set():
                try:
                    batches.put(item, timeout=_POLL)
                    return True
                except queue.Full:
                    continue
            return False

        try:
            source = self._batches(order)
            while not stop.is_set():  # checked before reading on: a stopped pass reads no more
                batch = next(source, _DONE)
                if batch is _DONE:
                    put(_DONE)
                    return
                if not put(self._prepare(batch, generator)):
                    return
        except BaseException as exc:
            put(_Failure(exc))

