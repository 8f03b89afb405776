"""Weight initializers: ``init(shape, dtype=None) -> array`` drawn from the backend RNG.

Fan-in and fan-out follow PyTorch: for a 2-D ``(in, out)`` Dense weight
fan_in = in, fan_out = out; for a ``(out, in, kh, kw)`` convolution kernel
fan_in = in·kh·kw and fan_out = out·kh·kw; recurrent ``(in, k·H)`` weights
use their first two dimensions as for Dense.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from dnn import backend
from dnn.backend import random

Initializer = Callable[..., Any]


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of this shape."""
    if len(shape) < 2:
        return (shape[0], shape[0]) if shape else (1, 1)
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def zeros(shape: tuple[int, ...], dtype: Any = None) -> Any:
    return backend.xp.zeros(shape, dtype=dtype or backend.default_dtype())


def ones(shape: tuple[int, ...], dtype: Any = None) -> Any:
    return backend.xp.ones(shape, dtype=dtype or backend.default_dtype())


def uniform(shape: tuple[int, ...], dtype: Any = None, low: float = -0.05, high: float = 0.05) -> Any:
    return random.uniform(shape, low, high, dtype=dtype)


def normal(shape: tuple[int, ...], dtype: Any = None, std: float = 0.01) -> Any:
    """N(0, std²); std=0.01 is the NNFS book's ``0.01 * randn``."""
    return random.normal(shape, 0.0, std, dtype=dtype)


def xavier_uniform(shape: tuple[int, ...], dtype: Any = None) -> Any:
    """U(-a, a) with a = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010)."""
    fan_in, fan_out = fans(shape)
    a = math.sqrt(6.0 / (fan_in + fan_out))
    return random.uniform(shape, -a, a, dtype=dtype)


def xavier_normal(shape: tuple[int, ...], dtype: Any = None) -> Any:
    """N(0, 2 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(shape)
    return random.normal(shape, 0.0, math.sqrt(2.0 / (fan_in + fan_out)), dtype=dtype)


def he_uniform(shape: tuple[int, ...], dtype: Any = None) -> Any:
    """U(-a, a) with a = sqrt(6 / fan_in) (He et al. 2015, for ReLU)."""
    a = math.sqrt(6.0 / fans(shape)[0])
    return random.uniform(shape, -a, a, dtype=dtype)


def he_normal(shape: tuple[int, ...], dtype: Any = None) -> Any:
    """N(0, 2 / fan_in)."""
    return random.normal(shape, 0.0, math.sqrt(2.0 / fans(shape)[0]), dtype=dtype)


def lecun_normal(shape: tuple[int, ...], dtype: Any = None) -> Any:
    """N(0, 1 / fan_in) (LeCun 1998, for SELU/tanh)."""
    return random.normal(shape, 0.0, math.sqrt(1.0 / fans(shape)[0]), dtype=dtype)


def lecun_uniform(shape: tuple[int, ...], dtype: Any = None) -> Any:
    """U(-a, a) with a = sqrt(3 / fan_in)."""
    a = math.sqrt(3.0 / fans(shape)[0])
    return random.uniform(shape, -a, a, dtype=dtype)


def orthogonal(shape: tuple[int, ...], dtype: Any = None, gain: float = 1.0) -> Any:
    """A (semi-)orthogonal matrix from the QR decomposition of a Gaussian one.

    The weight is seen as (shape[0], prod(rest)); its rows or columns, whichever
    are fewer, are orthonormal (computed in float64 with the standard's linalg.qr).
    """
    xp = backend.xp
    rows, cols = shape[0], math.prod(shape[1:]) if len(shape) > 1 else 1
    gaussian = random.normal((max(rows, cols), min(rows, cols)), dtype=xp.float64)
    q, r = xp.linalg.qr(gaussian)
    q = q * xp.sign(xp.linalg.diagonal(r))  # make the decomposition unique
    if rows < cols:
        q = xp.matrix_transpose(q)
    return xp.astype(gain * xp.reshape(q, shape), dtype or backend.default_dtype())


glorot_uniform, glorot_normal = xavier_uniform, xavier_normal
kaiming_uniform, kaiming_normal = he_uniform, he_normal
lecun = lecun_normal

INITIALIZERS: dict[str, Initializer] = {
    f.__name__ if not alias else alias: f
    for alias, f in [
        ("", zeros), ("", ones), ("", uniform), ("", normal),
        ("", xavier_uniform), ("", xavier_normal), ("glorot_uniform", xavier_uniform),
        ("glorot_normal", xavier_normal), ("", he_uniform), ("", he_normal),
        ("kaiming_uniform", he_uniform), ("kaiming_normal", he_normal),
        ("", lecun_normal), ("", lecun_uniform), ("lecun", lecun_normal), ("", orthogonal),
    ]
}


def get(init: str | Initializer) -> Initializer:
    """An initializer by name (``"he_normal"``, ``"glorot_uniform"``, ...) or itself."""
    if callable(init):
        return init
    try:
        return INITIALIZERS[init]
    except KeyError:
        raise ValueError(
            f"unknown initializer {init!r}; valid names are {', '.join(sorted(INITIALIZERS))}"
        ) from None
