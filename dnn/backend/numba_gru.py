"""The GRU cell of one time step in one compiled pass (Numba; see :mod:`dnn.backend.kernels`).

:class:`dnn.layers.GRU` computes, per step, the recurrent GEMM u = h_{t-1} @ W_hh (the r
and z columns of the weights and biases pre-scaled by ½, the one-tanh trick of its
docstring) and then the cell, a dozen small NumPy passes:

    u += b_hh;   [r | z] = ½·tanh(a_rz + u_rz) + ½;   n = tanh(r ⊙ u_n + a_n)
    h_t = (h_{t-1} − n) ⊙ z + n

and backward, from dh:

    dn̂ = (dh − dh ⊙ z) ⊙ (1 − n²);   da = [dn̂ ⊙ u_n | dh ⊙ (h_{t-1} − n)] ⊙ rz(1 − rz) ‖ dn̂
    du = [da_r | da_z | dn̂ ⊙ r];      dh_{t-1} = dh ⊙ z + du @ W_hhᵀ (the GEMM stays NumPy's)

Here each direction is one loop over the batch and hidden units, the same operations in
the same order in float32, with the float32 tanh of :mod:`dnn.backend.numba_lstm`
(largest error 3.95e-7). Not parallel: a step is too small to share out.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from dnn.backend.numba_lstm import _tanh


@numba.njit(cache=True, error_model="numpy")
def _cell(u: Any, b_hh: Any, xw: Any, b_ih: Any, h_prev: Any, rz: Any, n: Any, u_n: Any,
          h: Any) -> None:
    batch, hsz = h.shape
    half = u.dtype.type(0.5)
    for b in range(batch):  # a = x_t W_ih + b_ih, summed as the portable path does
        for j in range(2 * hsz):
            rz[b, j] = half * _tanh((xw[b, j] + b_ih[j]) + (u[b, j] + b_hh[j])) + half
        for k in range(hsz):
            u_n[b, k] = u[b, 2 * hsz + k] + b_hh[2 * hsz + k]
        for k in range(hsz):
            n[b, k] = _tanh(rz[b, k] * u_n[b, k] + (xw[b, 2 * hsz + k] + b_ih[2 * hsz + k]))
        for k in range(hsz):
            h[b, k] = (h_prev[b, k] - n[b, k]) * rz[b, hsz + k] + n[b, k]


@numba.njit(cache=True, error_model="numpy")
def _cell_grad(dh: Any, rz: Any, n: Any, h_prev: Any, u_n: Any, da: Any, du: Any,
               dh_z: Any) -> None:
    batch, hsz = n.shape
    one = dh.dtype.type(1)
    for b in range(batch):
        for k in range(hsz):  # dn̂, kept in da's n block
            da[b, 2 * hsz + k] = (dh[b, k] - dh[b, k] * rz[b, hsz + k]) * (one - n[b, k] * n[b, k])
        for k in range(hsz):
            da[b, k] = da[b, 2 * hsz + k] * u_n[b, k]
        for k in range(hsz):
            da[b, hsz + k] = dh[b, k] * (h_prev[b, k] - n[b, k])
        for j in range(2 * hsz):
            da[b, j] = da[b, j] * (rz[b, j] * (one - rz[b, j]))
            du[b, j] = da[b, j]
        for k in range(hsz):
            du[b, 2 * hsz + k] = da[b, 2 * hsz + k] * rz[b, k]
        for k in range(hsz):
            dh_z[b, k] = dh[b, k] * rz[b, hsz + k]


def gru_cell(u: np.ndarray, b_hh: np.ndarray, xw: np.ndarray, b_ih: np.ndarray,
             h_prev: np.ndarray, rz: np.ndarray, n: np.ndarray, u_n: np.ndarray,
             h: np.ndarray) -> None:
    """One step forward: writes [r | z] (B, 2H), n, u_n = u_n + b_hn and h_t (B, H) from
    u = h_{t-1} @ W_hh (B, 3H), b_hh, the step's x_t @ W_ih (B, 3H), b_ih and h_{t-1}."""
    _cell(u, b_hh, xw, b_ih, h_prev, rz, n, u_n, h)


def gru_cell_grad(dh: np.ndarray, rz: np.ndarray, n: np.ndarray, h_prev: np.ndarray,
                  u_n: np.ndarray, da: np.ndarray, du: np.ndarray) -> np.ndarray:
    """One step backward: writes da and du (B, 3H) and returns dh ⊙ z (to which the caller
    adds du @ W_hhᵀ)."""
    dh_z = np.empty_like(dh)
    _cell_grad(dh, rz, n, h_prev, u_n, da, du, dh_z)
    return dh_z
