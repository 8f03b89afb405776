"""A memory budget for building a model from a file: never allocate what the file cannot back.

A model file names layers and their sizes (``Dense(in_features, out_features)``,
``Input(shape)``); building them allocates arrays BEFORE the file's arrays can
be compared with them. A 2 KB file announcing ``Dense(2**24, 24)`` or 24 ×
``Dense(4096, 4096)`` would allocate gigabytes and only then fail with "arrays
missing". Checking each integer of the config alone cannot prevent that (sizes
multiply, and layers add up), so loading builds the model under a byte budget
instead: :class:`AllocationBudget` is the bytes of the file's parameter arrays
(what the built layers will hold, read from the ``.npy`` headers alone) plus a
small slack, and while it is active every array the building thread creates
from a size — ``xp.zeros/ones/empty/full/eye/arange/linspace/tile/repeat`` on
``dnn.backend.xp`` and the draws ``uniform/normal/permutation`` of
:mod:`dnn.backend.random`, i.e. every initializer — is checked BEFORE it is
allocated: creating it would take the arrays alive (allocated under the budget
and not yet freed) over the limit, the build stops with :class:`AllocationRefused`.
Arrays composed from others (``concat``, ``stack``, ``asarray``, ``*_like``) are
counted after the fact. Arrays that are freed give their bytes back.

Scope. The budget applies only to the thread (and context) that loads; other
threads see the same functions with one extra lookup while a load runs. It
works by standing in for ``dnn.backend.xp`` and three functions of
:mod:`dnn.backend.random` for the duration of the build (restored afterwards,
reference-counted for concurrent loads). Operations that allocate from their
inputs' sizes inside a layer's forward pass are not sized in advance; no layer
runs while a file is loaded (graphs are built from the layers' ``output_shape``,
see :func:`dnn.graph.symbolic_shapes`), so a file cannot make loading compute
activations at all.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import operator
import threading
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from dnn import backend
from dnn.backend import random
from dnn.io.specs import SpecError

#: bytes a build may allocate beyond the file's parameter arrays (tables, transients)
SLACK_BYTES = 64 * 2**20


class AllocationRefused(SpecError):
    """Building the model would allocate more than the file can back. ``unlocated``:
    the layer being built has not yet added its place in the architecture."""

    unlocated = True


_active: contextvars.ContextVar[AllocationBudget | None] = contextvars.ContextVar(
    "dnn_io_allocation_budget", default=None)
_lock = threading.Lock()
_installs = 0
_saved: dict[str, Any] = {}


class AllocationBudget:
    """Context manager: while active (in this thread), arrays created from sizes may
    not hold more than ``limit`` bytes at once. ``held`` says what backs the limit
    (for the error message). ``refusal`` is the message once the limit was hit."""

    def __init__(self, limit: int, held: str, transient: int = 0) -> None:
        self.limit, self.held, self.transient = int(limit), held, int(transient)
        self.live = self.peak = 0
        self.refusal: str | None = None
        self._tracked: dict[int, weakref.finalize] = {}  # id(array) -> its release
        self._token: Any = None

    def __enter__(self) -> AllocationBudget:
        _install()
        self._token = _active.set(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        _active.reset(self._token)
        for fin in list(self._tracked.values()):  # arrays that outlive the build stop reporting
            fin.detach()
        self._tracked.clear()
        _uninstall()

    def reserve(self, nbytes: int, what: str, scratch: int = 0) -> None:
        """Refuse (AllocationRefused) an allocation of ``nbytes`` that would take the live
        bytes over the limit, or whose ``scratch`` (temporary bytes the call needs on
        top, freed when it returns) would exceed the limit plus ``transient``."""
        if self.live + nbytes > self.limit or self.live + nbytes + scratch > self.limit + self.transient:
            if scratch:
                what += f", and {scratch:,} bytes of temporaries"
            self.refusal = (f"building the model would allocate {nbytes:,} bytes ({what}) on top "
                            f"of the {self.live:,} bytes built so far: larger than anything "
                            f"{self.held}; refusing to build the model")
            raise AllocationRefused(self.refusal)

    def track(self, arr: Any, what: str) -> None:
        """Count an array that now exists (until it is freed); refuse if over the limit."""
        nbytes = _nbytes(arr)
        if nbytes is None or id(arr) in self._tracked:  # asarray may return its argument
            return
        self.reserve(nbytes, what)
        self.live += nbytes
        self.peak = max(self.peak, self.live)
        with contextlib.suppress(TypeError):  # an array type without weak references
            fin = weakref.finalize(arr, self._release, id(arr), nbytes)
            fin.atexit = False
            self._tracked[id(arr)] = fin

    def _release(self, key: int, nbytes: int) -> None:
        self.live -= nbytes
        self._tracked.pop(key, None)


# --------------------------------------------------------------------- sizes
def _itemsize(dtype: Any) -> int:
    if dtype is None:
        return 8  # the widest default any namespace picks
    for probe in (lambda: np.dtype(dtype).itemsize, lambda: int(dtype.itemsize),
                  lambda: np.dtype(str(dtype).rsplit(".", 1)[-1].strip("'>")).itemsize):
        try:
            return int(probe())
        except Exception:
            continue
    return 8


def _nbytes(arr: Any) -> int | None:
    if not hasattr(arr, "shape") or not hasattr(arr, "dtype"):
        return None
    try:
        return int(arr.nbytes)
    except Exception:
        return math.prod(int(d) for d in arr.shape) * _itemsize(arr.dtype)


def _count(shape: Any) -> int:
    """Elements of an array of ``shape`` (an int or a sequence of ints)."""
    try:
        return max(operator.index(shape), 0)
    except TypeError:
        return max(math.prod(operator.index(d) for d in shape), 0)


def _arg(args: tuple, kwargs: dict, index: int, name: str, default: Any = None) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


def _arange_count(args: tuple, kwargs: dict) -> int:
    start, stop, step = _arg(args, kwargs, 0, "start"), _arg(args, kwargs, 1, "stop"), \
        _arg(args, kwargs, 2, "step", 1)
    if stop is None:
        start, stop = 0, start
    return max(math.ceil((float(stop) - float(start)) / float(step)), 0) if step else 0


# name -> (args, kwargs) -> (elements, dtype): the size of the array the call will create
_SIZED: dict[str, Callable[[tuple, dict], tuple[int, Any]]] = {
    "zeros": lambda a, k: (_count(_arg(a, k, 0, "shape")), k.get("dtype")),
    "ones": lambda a, k: (_count(_arg(a, k, 0, "shape")), k.get("dtype")),
    "empty": lambda a, k: (_count(_arg(a, k, 0, "shape")), k.get("dtype")),
    "full": lambda a, k: (_count(_arg(a, k, 0, "shape")), k.get("dtype")),
    "eye": lambda a, k: (_count(_arg(a, k, 0, "n_rows")) * _count(
        _arg(a, k, 1, "n_cols") or _arg(a, k, 0, "n_rows")), k.get("dtype")),
    "arange": lambda a, k: (_arange_count(a, k), k.get("dtype")),
    "linspace": lambda a, k: (_count(_arg(a, k, 2, "num")), k.get("dtype")),
    "tile": lambda a, k: (_count(a[0].shape) * _count(_arg(a, k, 1, "repetitions")), a[0].dtype),
    "repeat": lambda a, k: (_count(a[0].shape) * _count(_arg(a, k, 1, "repeats")), a[0].dtype),
}
# functions whose result is counted once it exists (its size follows from arrays that exist)
_COUNTED = frozenset({"concat", "stack", "asarray", "zeros_like", "ones_like", "empty_like",
                      "full_like"})


def _guard_sized(name: str, fn: Callable[..., Any], sizer: Callable[[tuple, dict], tuple[int, Any]],
                 extra_bytes_per_element: int = 0) -> Callable[..., Any]:
    def guarded(*args: Any, **kwargs: Any) -> Any:
        budget = _active.get()
        if budget is None:
            return fn(*args, **kwargs)
        try:
            count, dtype = sizer(args, kwargs)
        except Exception:  # not a size we can read: let the function judge it alone
            count, dtype = None, None
        what = name
        if count is not None:
            dtype = backend.default_dtype() if dtype is None and name in _RANDOM else dtype
            what = f"{name}: {count:,} numbers of {_itemsize(dtype)} bytes"
            budget.reserve(count * _itemsize(dtype), what, scratch=count * extra_bytes_per_element)
        out = fn(*args, **kwargs)
        budget.track(out, what)
        return out
    guarded.__wrapped__ = fn  # type: ignore[attr-defined]
    return guarded


def _guard_counted(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(*args: Any, **kwargs: Any) -> Any:
        out = fn(*args, **kwargs)
        budget = _active.get()
        if budget is not None:
            budget.track(out, name)
        return out
    guarded.__wrapped__ = fn  # type: ignore[attr-defined]
    return guarded


# dnn.backend.random functions: (shape argument -> elements, dtype argument position)
_RANDOM: dict[str, Callable[[tuple, dict], tuple[int, Any]]] = {
    "uniform": lambda a, k: (_count(_arg(a, k, 0, "shape")), _arg(a, k, 3, "dtype")),
    "normal": lambda a, k: (_count(_arg(a, k, 0, "shape")), _arg(a, k, 3, "dtype")),
    "permutation": lambda a, k: (_count(_arg(a, k, 0, "n")), "int64"),
}


class _GuardedNamespace:
    """``dnn.backend.xp`` while a budget may be active: the same namespace, with the
    array-creating functions checked against the active budget."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self._cache: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._real, name)
        if name not in _SIZED and name not in _COUNTED:
            return attr
        guarded = self._cache.get(name)
        if guarded is None or guarded.__wrapped__ is not attr:
            guarded = (_guard_sized(name, attr, _SIZED[name]) if name in _SIZED
                       else _guard_counted(name, attr))
            self._cache[name] = guarded
        return guarded

    def __dir__(self) -> list[str]:
        return dir(self._real)

    def __repr__(self) -> str:
        return f"<guarded {self._real!r}>"


def _install() -> None:
    global _installs
    with _lock:
        if _installs == 0:
            _saved.clear()
            _saved["xp"] = backend.xp
            backend.xp = _GuardedNamespace(backend.xp)
            for name, sizer in _RANDOM.items():
                original = getattr(random, name)
                _saved[name] = original
                # a host generator draws float64 first, then casts: count the temporary too
                extra = 8 if backend.library.generator_class.draws_float64 and \
                    name != "permutation" else 0
                setattr(random, name, _guard_sized(name, original, sizer, extra))
            _saved["guarded_xp"] = backend.xp
        _installs += 1


def _uninstall() -> None:
    global _installs
    with _lock:
        _installs -= 1
        if _installs:
            return
        if backend.xp is _saved.get("guarded_xp"):  # not switched by set_backend meanwhile
            backend.xp = _saved["xp"]
        for name in _RANDOM:
            current = getattr(random, name)
            if getattr(current, "__wrapped__", None) is _saved.get(name):
                setattr(random, name, _saved[name])
        _saved.clear()
