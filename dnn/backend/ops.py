"""Array operations the Array API standard lacks, one small function each.

Each has a fast path for the namespaces that offer one (NumPy, CuPy, PyTorch)
and a portable path written in the standard, which array-api-strict runs.
"""

from __future__ import annotations

from typing import Any

from dnn import backend


def matmul_into(a: Any, b: Any, out: Any) -> Any:
    """``out[...] = a @ b`` without a temporary where the backend allows it."""
    if backend.name in ("numpy", "cupy", "torch"):
        return backend.module.matmul(a, b, out=out)
    out[...] = a @ b
    return out


def one_hot(labels: Any, num_classes: int, dtype: Any = None) -> Any:
    """(N,) integer labels -> (N, num_classes) rows of 0/1 in ``dtype``."""
    xp = backend.xp
    classes = xp.arange(num_classes, dtype=labels.dtype)
    return xp.astype(labels[:, None] == classes, dtype or backend.default_dtype())


def take_along_last(x: Any, labels: Any) -> Any:
    """``x[i, labels[i]]`` for each row i of a 2-D ``x`` (no integer-array indexing)."""
    xp = backend.xp
    if backend.name in ("numpy", "cupy"):
        return backend.module.take_along_axis(x, labels[:, None], axis=1)[:, 0]
    return xp.sum(x * one_hot(labels, x.shape[1], x.dtype), axis=1)
