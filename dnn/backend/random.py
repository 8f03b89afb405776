"""Seeded random numbers for the active backend (the Array API has no RNG).

One generator class per kind of random source, each with the same methods
(``random`` — unit floats drawn in the dtype asked for, the fast path of Dropout
masks —, ``uniform``, ``normal``, ``permutation``, ``integers``) and a
state that round-trips through plain data (``get_state`` / ``set_state``, so a
saved model resumes its exact random stream):

- :class:`NumpyGenerator` — a ``numpy.random.Generator`` (PCG64) on the host,
  for NumPy and array-api-strict; its state is PCG64's state dict;
- :class:`TorchGenerator` — a ``torch.Generator``; its state is a uint8 array;
- :class:`CounterGenerator` — portable, counter-based, written in ``xp`` alone:
  draw k of a generator seeded s is ``mix(s + k·γ)`` with SplitMix64's mixing
  function ``mix`` and γ = 0x9E3779B97F4A7C15 (Steele, Lea & Flood 2014), so
  its whole state is the pair (seed, counter) and a draw of n numbers is one
  vectorised pass on the device. CuPy uses it: ``cupy.random.Generator``'s
  state lives in device memory that CuPy offers no way to read back, and
  re-seeding one allocates ~13 MB of curand states.

Random arrays are born where they are used. A Dropout mask is drawn in its own
dtype (float32: no float64 detour); initial weights are drawn in float64 and
rounded, so a seed gives the same weights in float32 and float64.
``manual_seed`` reseeds the one generator that initializers, Dropout and
shuffling share.

A :class:`~dnn.data.DataLoader` draws its shuffling and augmentation from a
generator of its own (:func:`generator`), made current for its thread with
:func:`use`: the draws of a background loader thread then never interleave
with those of the training thread (Dropout), so a seeded run is reproducible.
"""

from __future__ import annotations

import math
import secrets
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

_MASK64 = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15  # SplitMix64's increment: 2⁶⁴ / φ, odd
_MIX1, _MIX2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def _np_dtype(dtype: Any) -> Any:
    return np.dtype(str(dtype).rsplit(".", 1)[-1].strip("'>"))


class NumpyGenerator:
    """Draws on the host from NumPy's PCG64 and hands them to the active backend."""

    kind = "numpy"
    #: initial weights are drawn in float64 on the host, then cast (a temporary to budget)
    draws_float64 = True

    def __init__(self, seed: int | None) -> None:
        self.gen = np.random.default_rng(seed)

    def random(self, shape: tuple[int, ...], dtype: Any) -> Any:
        """U[0, 1) drawn in ``dtype`` itself (float32: one 32-bit draw per value)."""
        return backend.asarray(self.gen.random(size=shape, dtype=_np_dtype(dtype)), dtype=dtype)

    def uniform(self, shape: tuple[int, ...], low: float, high: float, dtype: Any) -> Any:
        """U(low, high) drawn in float64, then rounded to ``dtype`` (initial weights)."""
        sample = self.gen.uniform(low, high, size=shape).astype(_np_dtype(dtype))
        return backend.asarray(sample, dtype=dtype)

    def normal(self, shape: tuple[int, ...], mean: float, std: float, dtype: Any) -> Any:
        sample = self.gen.normal(mean, std, size=shape).astype(_np_dtype(dtype))
        return backend.asarray(sample, dtype=dtype)

    def permutation(self, n: int) -> Any:
        return backend.asarray(self.gen.permutation(n))

    def integers(self, low: int, high: int, shape: tuple[int, ...]) -> Any:
        return backend.asarray(self.gen.integers(low, high, size=shape, dtype=np.int64))

    def get_state(self) -> dict[str, Any]:
        return {"kind": self.kind, "state": self.gen.bit_generator.state}

    @staticmethod
    def check_state(state: dict[str, Any]) -> None:
        """Raise unless ``state`` is a valid saved state of this kind (e.g. read from a file)."""
        inner = state.get("state")
        if not isinstance(inner, dict) or inner.get("bit_generator") != "PCG64":
            raise ValueError("expected a PCG64 state object")
        np.random.PCG64().state = inner

    def set_state(self, state: dict[str, Any]) -> None:
        self.gen.bit_generator.state = state["state"]


class TorchGenerator:
    """A ``torch.Generator`` on the tensors' device."""

    kind = "torch"
    draws_float64 = False

    def __init__(self, seed: int | None) -> None:
        self.gen = backend.module.Generator()
        if seed is None:
            self.gen.seed()
        else:
            self.gen.manual_seed(int(seed))

    def random(self, shape: tuple[int, ...], dtype: Any) -> Any:
        return self.uniform(shape, 0.0, 1.0, dtype)

    def uniform(self, shape: tuple[int, ...], low: float, high: float, dtype: Any) -> Any:
        return backend.module.empty(shape, dtype=dtype).uniform_(low, high, generator=self.gen)

    def normal(self, shape: tuple[int, ...], mean: float, std: float, dtype: Any) -> Any:
        return backend.module.empty(shape, dtype=dtype).normal_(mean, std, generator=self.gen)

    def permutation(self, n: int) -> Any:
        return backend.module.randperm(n, generator=self.gen)

    def integers(self, low: int, high: int, shape: tuple[int, ...]) -> Any:
        return backend.module.randint(low, high, shape, generator=self.gen)

    def get_state(self) -> dict[str, Any]:
        return {"kind": self.kind, "state": backend.to_numpy(self.gen.get_state())}

    def set_state(self, state: dict[str, Any]) -> None:
        self.gen.set_state(backend.module.as_tensor(np.asarray(state["state"], dtype=np.uint8)))

    @staticmethod
    def check_state(state: dict[str, Any]) -> None:
        try:
            import torch
        except ImportError:  # cannot be checked here, and never applied without torch
            return
        torch.Generator().set_state(torch.from_numpy(np.array(state["state"], dtype=np.uint8)))


class CounterGenerator:
    """Counter-based SplitMix64 in ``xp``: draw k (k = 1, 2, ...) is ``mix(seed + k·γ)``,

        mix(z):  z ← (z ⊕ z≫30)·0xBF58476D1CE4E5B9;  z ← (z ⊕ z≫27)·0x94D049BB133111EB;
                 z ⊕ z≫31                                            (all mod 2⁶⁴),

    the exact output stream of SplitMix64 seeded ``seed``. n draws are one vectorised
    pass over ``counter + 1 … counter + n``; the state is (seed, counter). Floats take
    the top 53 (float64) or 24 (float32) bits: k·2⁻⁵³ is exact and uniform on [0, 1);
    normals use Box–Muller on two such uniforms."""

    kind = "counter"
    draws_float64 = False

    def __init__(self, seed: int | None) -> None:
        self.seed = secrets.randbits(64) if seed is None else int(seed) & _MASK64
        self.counter = 0

    def bits(self, n: int) -> Any:
        """The next ``n`` 64-bit outputs as a uint64 array (the counter advances by n)."""
        xp = backend.xp
        u64 = xp.uint64
        start = (self.seed + (self.counter + 1) * _GAMMA) & _MASK64
        self.counter = (self.counter + n) & _MASK64  # the stream has period 2⁶⁴
        k = xp.arange(n, dtype=u64)
        z = xp.asarray(start, dtype=u64) + k * xp.asarray(_GAMMA, dtype=u64)
        z = (z ^ (z >> xp.asarray(30, dtype=u64))) * xp.asarray(_MIX1, dtype=u64)
        z = (z ^ (z >> xp.asarray(27, dtype=u64))) * xp.asarray(_MIX2, dtype=u64)
        return z ^ (z >> xp.asarray(31, dtype=u64))

    def random(self, shape: tuple[int, ...], dtype: Any) -> Any:
        xp = backend.xp
        n = math.prod(shape)
        mantissa = 24 if dtype == xp.float32 else 53
        top = self.bits(n) >> xp.asarray(64 - mantissa, dtype=xp.uint64)
        unit = xp.astype(top, dtype) * (2.0 ** -mantissa)
        return xp.reshape(unit, shape)

    def uniform(self, shape: tuple[int, ...], low: float, high: float, dtype: Any) -> Any:
        return self.random(shape, dtype) * (high - low) + low

    def normal(self, shape: tuple[int, ...], mean: float, std: float, dtype: Any) -> Any:
        xp = backend.xp
        n = math.prod(shape)
        u = self.random((2, n), xp.float64)
        radius = xp.sqrt(-2.0 * xp.log(1.0 - u[0, :]))  # 1 − u ∈ (0, 1]: log is finite
        z = radius * xp.cos((2.0 * math.pi) * u[1, :])
        return xp.reshape(xp.astype(z * std + mean, dtype), shape)

    def permutation(self, n: int) -> Any:
        xp = backend.xp
        return xp.argsort(self.bits(n))  # 64-bit keys: ties have probability < n²/2⁶⁵

    def integers(self, low: int, high: int, shape: tuple[int, ...]) -> Any:
        xp = backend.xp
        if not high > low:
            raise ValueError(f"integers: high must be greater than low, got low={low}, "
                             f"high={high}")
        span = xp.asarray(high - low, dtype=xp.uint64)
        draws = xp.astype(self.bits(math.prod(shape)) % span, xp.int64) + low
        return xp.reshape(draws, shape)

    def get_state(self) -> dict[str, Any]:
        return {"kind": self.kind, "seed": self.seed, "counter": self.counter}

    def set_state(self, state: dict[str, Any]) -> None:
        self.check_state(state)
        self.seed, self.counter = int(state["seed"]), int(state["counter"])

    @staticmethod
    def check_state(state: dict[str, Any]) -> None:
        for key, limit in (("seed", 1 << 64), ("counter", 1 << 64)):
            value = state.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < limit:
                raise ValueError(f"{key} must be an int in [0, 2^{limit.bit_length() - 1}), "
                                 f"got {value!r:.40}")


#: a saved state's ``kind`` -> the class that reads it
GENERATOR_KINDS: dict[str, type] = {cls.kind: cls for cls in
                                    (NumpyGenerator, TorchGenerator, CounterGenerator)}


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
    """A new generator of the active backend, seeded (fresh entropy when ``seed`` is None):
    the class its library object names (``backend.library.generator_class``)."""
    return backend.library.generator(seed)


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
    """The shared generator's state as plain data (``{"kind": ..., ...}``, for exact resume)."""
    return _generator.get_state()


def set_state(state: dict[str, Any]) -> None:
    """Restore a state returned by :func:`get_state`; a state of another kind of generator
    (saved on another backend) leaves the generator as it is."""
    if state.get("kind") == _generator.kind:
        _generator.set_state(state)


def _dtype(dtype: Any) -> Any:
    return backend.default_dtype() if dtype is None else dtype


def uniform(shape: tuple[int, ...], low: float = 0.0, high: float = 1.0, dtype: Any = None) -> Any:
    """Samples of U(low, high) with the given shape and floating dtype."""
    return _current().uniform(tuple(shape), low, high, _dtype(dtype))


def normal(shape: tuple[int, ...], mean: float = 0.0, std: float = 1.0, dtype: Any = None) -> Any:
    """Samples of N(mean, std²) with the given shape and floating dtype."""
    return _current().normal(tuple(shape), mean, std, _dtype(dtype))


def permutation(n: int) -> Any:
    """A random permutation of ``0..n-1`` as a backend integer array."""
    return _current().permutation(n)


def bernoulli(shape: tuple[int, ...], p_keep: float, dtype: Any = None) -> Any:
    """A 0/1 mask of the given floating dtype, 1 with probability ``p_keep``."""
    dtype = _dtype(dtype)
    return backend.xp.astype(_current().random(tuple(shape), dtype) < p_keep, dtype)


def integers(low: int, high: int, shape: tuple[int, ...]) -> Any:
    """Uniform integers in ``[low, high)`` with the given shape, as a backend int64 array."""
    return _current().integers(low, high, tuple(shape))
