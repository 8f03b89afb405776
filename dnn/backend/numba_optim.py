"""The optimizers' updates in one compiled pass (Numba; see :mod:`dnn.backend.kernels`).

Written with NumPy ufuncs, Adam makes twelve passes over the flat buffers
(:meth:`dnn.optim.Adam._adam_step`), each reading and writing memory. Compiled, the
same formula is ONE pass over p, g, m and v, split over the cores (``prange``):

    m ← β₁·m + (1 − β₁)·g;   v ← β₂·v + (1 − β₂)·g²;   θ ← θ − s·m / (√v·b + ε)

with s = lr / (1 − β₁ᵗ) and b = 1 / √(1 − β₂ᵗ) (Adam), in the same order of operations
as the NumPy path, so both give the same bits; SGD with momentum is
b ← μ·b + (1 − τ)·g, θ ← θ − lr·(g + μ·b or b). Measured on 535,818 float32
parameters (the MLP 784-512-256-10): NumPy chunks 0.85 ms per step on one
thread and no faster on two; this kernel 0.73 ms on one thread, 0.36 ms on two.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from dnn.backend.kernels import spread


@spread
def _adam(p: Any, g: Any, m: Any, v: Any, beta1: float, rest1: float, beta2: float,
          rest2: float, step_size: float, inv_bias2: float, eps: float) -> None:
    for i in numba.prange(p.shape[0]):
        gi = g[i]
        mi = beta1 * m[i] + rest1 * gi
        vi = beta2 * v[i] + rest2 * (gi * gi)
        m[i] = mi
        v[i] = vi
        p[i] -= step_size * (mi / (np.sqrt(vi) * inv_bias2 + eps))


@spread
def _sgd_momentum(p: Any, g: Any, buf: Any, lr: float, momentum: float, rest: float,
                  nesterov: bool, first: bool) -> None:
    for i in numba.prange(p.shape[0]):
        gi = g[i]
        bi = gi if first else momentum * buf[i] + rest * gi
        buf[i] = bi
        p[i] -= lr * (gi + momentum * bi if nesterov else bi)


def _in_dtype(args: tuple[Any, ...]) -> tuple[Any, ...]:
    # Python floats become the arrays' dtype: float32 arithmetic for float32 arrays, as
    # the NumPy path does (a float64 scalar would promote every operation); the callers
    # pass 1 − β as a Python float, rounded once, as the NumPy path has it
    scalar = args[0].dtype.type
    return tuple(scalar(a) if isinstance(a, float) else a for a in args)


def adam(*args: Any) -> None:
    """``adam(p, g, m, v, β₁, 1 − β₁, β₂, 1 − β₂, s, b, ε)``, in place."""
    _adam(*_in_dtype(args))


def sgd_momentum(*args: Any) -> None:
    """``sgd_momentum(p, g, buf, lr, μ, 1 − τ, nesterov, first)``, in place."""
    _sgd_momentum(*_in_dtype(args))
