"""Seeded random numbers for the active backend (the Array API has no RNG).

NumPy and array-api-strict draw from a ``numpy.random.Generator``, CuPy from a
``cupy.random.Generator`` on the device and PyTorch from a ``torch.Generator``,
so random arrays are born where they are used. ``manual_seed`` reseeds the one
generator that initializers, Dropout and shuffling share.

A :class:`~dnn.data.DataLoader` draws its shuffling and augmentation from a
generator of its own (:func:`generator`), made current for its thread with
:func:`use`: the draws of a background loader thread then never interleave
with those of the training thread (Dropout), so a seeded run is reproducible.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from dnn import backend

_seed: int | None = None
_generator: Any = None
#: per thread: the generator :func:`use` made current there (else the shared one)
_local = threading.local()


def manual_seed(seed: int) -> None:
    """Seed the generator used by initializers, Dropout and shuffling."""
    global _seed
    _seed = int(seed)
    reset()


def reset() -> None:
    """Recreate the generator for the active backend from the last seed."""
    global _generator
    _generator = generator(_seed)


def generator(seed: int | None = None) -> Any:
    """A new generator of the active backend, seeded (fresh entropy when ``seed`` is None)."""
    if backend.name == "cupy":
        return backend.module.random.default_rng(seed)
    if backend.name == "torch":
        gen = backend.module.Generator()
        if seed is None:
            gen.seed()
        else:
            gen.manual_seed(int(seed))
        return gen
    return np.random.default_rng(seed)


@contextmanager
def use(gen: Any) -> Iterator[None]:
    """Within the block, this thread's draws come from ``gen`` (from :func:`generator`)."""
    previous = getattr(_local, "generator", None)
    _local.generator = gen
    try:
        yield
    finally:
        _local.generator = previous


def _current() -> Any:
    gen = getattr(_local, "generator", None)
    return _generator if gen is None else gen


def get_state() -> dict[str, Any]:
    """The generator's state as plain data (for exact resume)."""
    if backend.name == "torch":
        return {"torch": backend.to_numpy(_generator.get_state())}
    if backend.name == "cupy":
        return {"seed": _seed}
    return {"numpy": _generator.bit_generator.state}


def set_state(state: dict[str, Any]) -> None:
    """Restore a state returned by :func:`get_state` on the same backend."""
    if "torch" in state and backend.name == "torch":
        _generator.set_state(backend.module.as_tensor(np.asarray(state["torch"])))
    elif "numpy" in state and backend.name not in ("torch", "cupy"):
        _generator.bit_generator.state = state["numpy"]


def _dtype(dtype: Any) -> Any:
    return backend.default_dtype() if dtype is None else dtype


def _np_dtype(dtype: Any) -> Any:
    return np.dtype(str(dtype).rsplit(".", 1)[-1].strip("'>"))


def uniform(shape: tuple[int, ...], low: float = 0.0, high: float = 1.0, dtype: Any = None) -> Any:
    """Samples of U(low, high) with the given shape and floating dtype."""
    dtype = _dtype(dtype)
    if backend.name == "torch":
        out = backend.module.empty(shape, dtype=dtype)
        return out.uniform_(low, high, generator=_current())
    if backend.name == "cupy":  # cupy's Generator draws float32 natively
        return _current().uniform(low, high, size=shape, dtype=dtype)
    sample = _current().uniform(low, high, size=shape).astype(_np_dtype(dtype))
    return backend.asarray(sample, dtype=dtype)


def normal(shape: tuple[int, ...], mean: float = 0.0, std: float = 1.0, dtype: Any = None) -> Any:
    """Samples of N(mean, std²) with the given shape and floating dtype."""
    dtype = _dtype(dtype)
    if backend.name == "torch":
        out = backend.module.empty(shape, dtype=dtype)
        return out.normal_(mean, std, generator=_current())
    if backend.name == "cupy":  # cupy's Generator has standard_normal, not normal
        return _current().standard_normal(size=shape, dtype=dtype) * std + mean
    sample = _current().normal(mean, std, size=shape).astype(_np_dtype(dtype))
    return backend.asarray(sample, dtype=dtype)


def permutation(n: int) -> Any:
    """A random permutation of ``0..n-1`` as a backend integer array."""
    if backend.name == "torch":
        return backend.module.randperm(n, generator=_current())
    if backend.name == "cupy":  # no Generator.permutation in cupy: sort random keys
        return backend.module.argsort(_current().random(n))  # float64 keys: ties negligible
    return backend.asarray(_current().permutation(n))


def bernoulli(shape: tuple[int, ...], p_keep: float, dtype: Any = None) -> Any:
    """A 0/1 mask of the given floating dtype, 1 with probability ``p_keep``."""
    xp = backend.xp
    return xp.astype(uniform(shape, dtype=dtype) < p_keep, _dtype(dtype))


def integers(low: int, high: int, shape: tuple[int, ...]) -> Any:
    """Uniform integers in ``[low, high)`` with the given shape, as a backend int64 array."""
    if backend.name == "torch":
        return backend.module.randint(low, high, shape, generator=_current())
    if backend.name == "cupy":
        return _current().integers(low, high, size=shape, dtype=backend.module.int64)
    return backend.asarray(_current().integers(low, high, size=shape, dtype=np.int64))


reset()
