"""Batch transforms: augmentation and normalisation of whole device batches.

A transform maps a floating batch x of shape (N, C, H, W) — or (N, H, W), or
(N, …, H, W) — to a batch of the same dtype:

- :class:`Normalize`: y = (x − μ) / σ, with μ, σ scalars or one value per channel
  (axis 1); σ > 0.
- :class:`RandomHorizontalFlip`: y_n = x_n[…, ::−1] where u_n < p, else x_n, with
  u_n ~ U(0, 1) drawn per sample; each sample is flipped with probability p.
- :class:`RandomCrop`: pad H and W by ``padding`` cells of ``fill`` (size
  H_p × W_p = (H + 2·padding) × (W + 2·padding)), then cut an h × w window per
  sample at (r_n, c_n) with r_n ~ U{0, …, H_p − h} and c_n ~ U{0, …, W_p − w}
  drawn independently (torchvision's ``RandomCrop(size, padding)`` applied to each
  sample on its own).
- :class:`Rescale`: y = x · scale + offset in the default floating dtype — integer
  images (uint8 pixels, say, from a memory-mapped file) become floats,
  e.g. ``Rescale(1 / 255)`` maps 0…255 to [0, 1].
- :class:`Compose`: t_k ∘ … ∘ t_1, applied in the order given.

Everything is written against the Array API (``backend.xp``), so each transform
runs on every backend and on the device the batch lives on. A crop never loops
over samples: samples are sorted by their offset (at most (2·padding + 1)² distinct
ones, and at most N), each group of equal offset is one slice copy, and one
gather along the batch axis restores the order.

Randomness. Random transforms draw only through :mod:`dnn.backend.random`, i.e.
from the calling thread's current generator (``random.use(gen)``, as a
:class:`~dnn.data.DataLoader` does), so a seeded loader is reproducible. The draws
per call, in this order, are part of the contract:

- :class:`RandomHorizontalFlip`: ``random.uniform((N,), dtype=float64)``;
- :class:`RandomCrop`: ``random.integers(0, H_p − h + 1, (N,))`` (rows), then
  ``random.integers(0, W_p − w + 1, (N,))`` (columns).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np

from dnn import backend
from dnn.backend import random
from dnn.errors import ShapeError


class Transform(ABC):
    """A batch-to-batch function; subclasses implement ``__call__(x) -> x``.

    ``repr`` shows the public attributes, which are the constructor's arguments.
    """

    @abstractmethod
    def __call__(self, x: Any) -> Any:
        """The transformed batch: same dtype, same leading axes as ``x``."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"

    def _check(self, x: Any) -> None:
        """Refuse anything but a floating backend array of ndim >= 3, saying what it got."""
        name = type(self).__name__
        if not backend.is_array(x):
            raise TypeError(f"{name}: expected a batch as a {backend.name} array of shape "
                            f"(N, C, H, W) or (N, H, W), got {type(x).__name__}")
        if x.ndim < 3:
            raise ShapeError(f"{name}: expected a batch of shape (N, C, H, W) or (N, H, W), "
                             f"got shape {tuple(x.shape)}")
        if not backend.xp.isdtype(x.dtype, "real floating"):
            raise ShapeError(f"{name}: expected a floating batch (float32 or float64), got dtype "
                             f"{x.dtype}; convert it first, e.g. xp.astype(x, xp.float32) / 255")


def _real(owner: str, arg: str, value: Any) -> float:
    """``value`` as a finite float; TypeError/ValueError naming ``owner`` and ``arg`` if not."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{owner}: {arg} must be a real number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{owner}: {arg} must be finite, got {value!r}")
    return float(value)


def _count(owner: str, arg: str, value: Any, low: int) -> int:
    """``value`` as an int >= ``low``; TypeError/ValueError naming ``owner`` and ``arg`` if not."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{owner}: {arg} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{owner}: {arg} must be >= {low}, got {value!r}")
    return int(value)


class Rescale(Transform):
    """y = x · scale + offset, as the default floating dtype (integer batches included):
    the first step for uint8 images, e.g. ``Rescale(1 / 255)``."""

    def __init__(self, scale: float, offset: float = 0.0) -> None:
        self.scale = _real("Rescale", "scale", scale)
        self.offset = _real("Rescale", "offset", offset)

    def __call__(self, x: Any) -> Any:
        xp = backend.xp
        if not backend.is_array(x):
            raise TypeError(f"Rescale: expected a batch as a {backend.name} array, got "
                            f"{type(x).__name__}")
        if not xp.isdtype(x.dtype, ("integral", "real floating", "bool")):
            raise ShapeError(f"Rescale: expected a numeric batch, got dtype {x.dtype}")
        dtype = x.dtype if xp.isdtype(x.dtype, "real floating") else backend.default_dtype()
        y = xp.astype(x, dtype) * self.scale
        return y + self.offset if self.offset else y


class Normalize(Transform):
    """y = (x − mean) / std, per channel (axis 1) or for all values at once.

    ``mean`` and ``std`` are numbers or sequences of one value per channel (a
    length-1 sequence counts as a number); every std must be > 0. Per-channel
    values need an input of shape (N, C, …) with C equal to their length.
    """

    def __init__(self, mean: float | Sequence[float], std: float | Sequence[float]) -> None:
        self._mean = self._values("mean", mean)
        self._std = self._values("std", std)
        #: as given, made immutable: a float, or a tuple of one float per channel
        self.mean = self._mean[0] if isinstance(mean, Real) else self._mean
        self.std = self._std[0] if isinstance(std, Real) else self._std
        if any(s <= 0.0 for s in self._std):
            raise ValueError(f"Normalize: every std must be > 0, got std={std!r}")
        if len(self._mean) > 1 and len(self._std) > 1 and len(self._mean) != len(self._std):
            raise ValueError(f"Normalize: mean has {len(self._mean)} values and std has "
                             f"{len(self._std)}; give one value per channel for each (or a number)")

    @staticmethod
    def _values(arg: str, value: Any) -> tuple[float, ...]:
        if isinstance(value, Real) and not isinstance(value, bool):
            return (_real("Normalize", arg, value),)
        if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
            raise TypeError(f"Normalize: {arg} must be a number or a sequence of numbers (one per "
                            f"channel), got {value!r}")
        values = tuple(_real("Normalize", f"{arg}[{i}]", v) for i, v in enumerate(value))
        if not values:
            raise ValueError(f"Normalize: {arg} must not be empty")
        return values

    @staticmethod
    def _like(values: tuple[float, ...], x: Any) -> Any:
        """A number, or (1, C, 1, …) values of x's dtype and device."""
        if len(values) == 1:
            return values[0]
        xp = backend.xp
        array = xp.asarray(values, dtype=x.dtype, device=x.device)
        return xp.reshape(array, (1, len(values)) + (1,) * (x.ndim - 2))

    def __call__(self, x: Any) -> Any:
        self._check(x)
        channels = max(len(self._mean), len(self._std))
        if channels > 1 and (x.ndim < 4 or x.shape[1] != channels):
            got = (f"{x.shape[1]} channels (axis 1 of shape {tuple(x.shape)})" if x.ndim >= 4 else
                   f"shape {tuple(x.shape)}, which has no channel axis")
            raise ShapeError(f"Normalize: {channels} per-channel values need a batch of shape "
                             f"(N, {channels}, H, W); got {got}")
        return (x - self._like(self._mean, x)) / self._like(self._std, x)


class RandomHorizontalFlip(Transform):
    """Each sample flipped along the last axis (W) with probability ``p``, independently."""

    def __init__(self, p: float = 0.5) -> None:
        p = _real("RandomHorizontalFlip", "p", p)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p!r}")
        self.p = p

    def __call__(self, x: Any) -> Any:
        self._check(x)
        xp = backend.xp
        flip = random.uniform((x.shape[0],), dtype=xp.float64) < self.p
        flip = xp.reshape(flip, (x.shape[0],) + (1,) * (x.ndim - 1))
        return xp.where(flip, xp.flip(x, axis=-1), x)


class RandomCrop(Transform):
    """Pad H and W by ``padding`` cells of ``fill``, then cut a random ``size`` window
    per sample (``size``: an int for a square, or (h, w)); every valid position of the
    window in the padded image is equally likely."""

    def __init__(self, size: int | tuple[int, int], padding: int = 0, fill: float = 0.0) -> None:
        if isinstance(size, Sequence) and not isinstance(size, (str, bytes)):
            if len(size) != 2:
                raise ValueError(f"RandomCrop: size must be an int or a pair (h, w), got {size!r}")
            self.size = (_count("RandomCrop", "size[0]", size[0], 1),
                         _count("RandomCrop", "size[1]", size[1], 1))
        else:
            side = _count("RandomCrop", "size", size, 1)
            self.size = (side, side)
        self.padding = _count("RandomCrop", "padding", padding, 0)
        self.fill = _real("RandomCrop", "fill", fill)

    def __call__(self, x: Any) -> Any:
        self._check(x)
        xp = backend.xp
        n, (height, width), (h, w), pad = x.shape[0], x.shape[-2:], self.size, self.padding
        rows, cols = height + 2 * pad - h + 1, width + 2 * pad - w + 1  # window positions
        if rows < 1 or cols < 1:
            raise ShapeError(f"RandomCrop: crop size {(h, w)} is larger than the padded image "
                             f"{(height + 2 * pad, width + 2 * pad)} (input {(height, width)} + "
                             f"2·padding={pad}); lower size or raise padding")
        top = backend.to_numpy(random.integers(0, rows, (n,)))
        left = backend.to_numpy(random.integers(0, cols, (n,)))
        offset = top * cols + left
        order = np.argsort(offset, kind="stable")  # the samples of one offset become adjacent
        offset, top, left = offset[order], top[order], left[order]
        starts = np.flatnonzero(np.diff(offset, prepend=-1))  # where each group begins
        stops = np.append(starts[1:], n)
        x = xp.take(x, xp.asarray(order, device=x.device), axis=0)
        out = xp.full((*x.shape[:-2], h, w), self.fill, dtype=x.dtype, device=x.device)
        for a, b in zip(starts.tolist(), stops.tolist()):
            dy, dx = int(top[a]), int(left[a])  # window origin in padded coordinates
            r0, r1 = max(dy, pad), min(dy + h, pad + height)  # rows of the window on the image
            c0, c1 = max(dx, pad), min(dx + w, pad + width)
            if r0 < r1 and c0 < c1:
                out[a:b, ..., r0 - dy:r1 - dy, c0 - dx:c1 - dx] = (
                    x[a:b, ..., r0 - pad:r1 - pad, c0 - pad:c1 - pad])
        return xp.take(out, xp.asarray(np.argsort(order), device=x.device), axis=0)


class Compose(Transform):
    """The transforms (or any batch -> batch callables) applied in the order given."""

    def __init__(self, transforms: Sequence[Callable[[Any], Any]]) -> None:
        if isinstance(transforms, (str, bytes)) or not isinstance(transforms, Sequence):
            raise TypeError(f"Compose: expected a list of transforms, got {transforms!r}")
        for i, t in enumerate(transforms):
            if not callable(t):
                raise TypeError(f"Compose: transforms[{i}] must be callable (a Transform), got {t!r}")
        self.transforms = list(transforms)

    def __call__(self, x: Any) -> Any:
        for t in self.transforms:  # each checks what it reads (the first may convert)
            x = t(x)
        return x

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t!r}," for t in self.transforms)
        return f"Compose([{inner}\n])" if inner else "Compose([])"
