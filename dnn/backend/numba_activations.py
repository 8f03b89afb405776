"""ReLU's backward in one compiled pass (Numba; see :mod:`dnn.backend.kernels`).

dL/dx = g · [y > 0]: NumPy makes it two passes (the comparison into a boolean array,
then a mixed-type product); here one loop reads y and g once and writes dL/dx once,
over the arrays' memory in its own order (an NCHW view of channels-last memory
included). On the reference CNN's first ReLU (64×32×28×28 float32): 1.00 → 0.67 ms.
Where g ≠ 0 but y ≤ 0 this writes +0 (the product gives −0 for a negative g, and NaN
for a NaN g, which no gradient should carry past an inactive unit).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from dnn.backend.kernels import spread


@spread
def _relu_grad(y: Any, grad: Any, out: Any) -> None:
    zero = out.dtype.type(0)
    for i in numba.prange(y.shape[0]):
        out[i] = grad[i] if y[i] > zero else zero


def _memory_order(a: np.ndarray) -> np.ndarray:
    """``a``'s elements in memory order as a 1-D view, or None when they are not one block."""
    if a.flags.c_contiguous:
        return a.reshape(-1)
    order = np.argsort([-abs(s) for s in a.strides], kind="stable")
    flat = a.transpose(order)
    return flat.reshape(-1) if flat.flags.c_contiguous else None


def relu_grad(y: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """g · [y > 0], laid out in memory as ``y``."""
    if grad.shape != y.shape:  # the loop below reads both without bounds checks
        raise ValueError(f"relu_grad: the gradient {grad.shape} must have the shape of y {y.shape}")
    if _memory_order(y) is None:  # y is a strided view: a compact copy
        y = np.ascontiguousarray(y)
    if grad.strides != y.strides or _memory_order(grad) is None:  # g in y's layout
        grad, given = np.empty_like(y, dtype=grad.dtype), grad
        grad[...] = given
    out = np.empty_like(y, dtype=grad.dtype)
    _relu_grad(_memory_order(y), _memory_order(grad), _memory_order(out))
    return out
