"""Small synthetic data sets from the NNFS book ("Neural Networks from Scratch").

Each generator returns host NumPy arrays: ``X`` as float32 and, for the
classification sets, ``y`` as int64 class indices. They need no download and
are what ``dnn train spiral`` and the fast end-to-end tests use.

- :func:`spiral_data` — ``classes`` interleaved spiral arms in the plane.
  Sample ``i`` of class ``c`` has radius r = i / (samples - 1) and angle
  2.5 · t with t = 4c + 4r + noise · N(0, 1), as in the book's ``nnfs`` package.
- :func:`vertical_data` — ``classes`` vertical Gaussian blobs (easy, linearly
  separable).
- :func:`sine_data` — x in [0, 1), y = sin(2πx), a regression toy.
"""

from __future__ import annotations

import numpy as np


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def _check_counts(fn: str, samples: int, classes: int) -> None:
    for arg, value in (("samples", samples), ("classes", classes)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{fn}: {arg} must be an int >= 1, got {value!r}")


def spiral_data(
    samples: int,
    classes: int,
    noise: float = 0.2,
    seed: int | np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``samples`` points per class on ``classes`` spiral arms.

    Returns ``X`` (samples·classes, 2) float32 and ``y`` (samples·classes,)
    int64, ordered class by class. ``noise`` is the standard deviation of the
    jitter of the arm parameter t (0.2 in the book); ``seed`` makes it
    reproducible.
    """
    _check_counts("spiral_data", samples, classes)
    if noise < 0:
        raise ValueError(f"spiral_data: noise must be >= 0, got {noise!r}")
    rng = _rng(seed)
    radius = np.linspace(0.0, 1.0, samples)
    xs, ys = [], []
    for c in range(classes):
        t = np.linspace(c * 4.0, (c + 1) * 4.0, samples) + rng.standard_normal(samples) * noise
        xs.append(np.stack([radius * np.sin(t * 2.5), radius * np.cos(t * 2.5)], axis=1))
        ys.append(np.full(samples, c, dtype=np.int64))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys)


def vertical_data(
    samples: int,
    classes: int,
    seed: int | np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``samples`` points per class in vertical blobs centred at (c / 3, 0.5), sd 0.1.

    Returns ``X`` (samples·classes, 2) float32 and ``y`` (samples·classes,) int64.
    """
    _check_counts("vertical_data", samples, classes)
    rng = _rng(seed)
    xs, ys = [], []
    for c in range(classes):
        x0 = rng.standard_normal(samples) * 0.1 + c / 3
        x1 = rng.standard_normal(samples) * 0.1 + 0.5
        xs.append(np.stack([x0, x1], axis=1))
        ys.append(np.full(samples, c, dtype=np.int64))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys)


def sine_data(samples: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """x = i / samples for i in 0..samples-1 and y = sin(2πx), both (samples, 1) float32."""
    _check_counts("sine_data", samples, 1)
    x = (np.arange(samples, dtype=np.float64) / samples).reshape(-1, 1)
    return x.astype(np.float32), np.sin(2.0 * np.pi * x).astype(np.float32)
