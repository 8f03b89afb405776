"""The LSTM cell of one time step in one compiled pass (Numba; see :mod:`dnn.backend.kernels`).

:class:`dnn.layers.LSTM` computes, per step, the recurrent GEMM z = h_{t-1} @ W_hh (with
the columns pre-scaled by s = [½, ½, 1, ½], the one-tanh trick of its docstring) and then
the cell, which written with NumPy ufuncs is a dozen small passes, each a Python call:

    act = a ⊙ tanh(z + (x_t W_ih + b)) + c₀          i, f, g, o = the four blocks of act
    c_t = f ⊙ c_{t-1} + i ⊙ g,   tanh(c_t),   h_t = o ⊙ tanh(c_t)

and backward, from dh and the dc carried from step t+1:

    dc = dh ⊙ (o − h_t ⊙ tanh(c_t)) + dc_{t+1}
    dz = [dc ⊙ g | dc ⊙ c_{t-1} | dc ⊙ i | dh ⊙ tanh(c_t)] ⊙ [(1 − a)a | (1 − a)a | 1 − a² | (1 − a)a]
    dc_{t-1} = dc ⊙ f

Here each direction is one loop over the batch and the hidden units, with the same
operations in the same order, in float32 (the kernels serve float32 sequences; float64
takes the portable path).

tanh. Numba calls the C library's ``tanhf`` once per number (14 ns: 458 µs for one
step's 64 × 512 pre-activations, against 9 µs for NumPy's vectorised tanh), so the
cell uses the rational approximation of Eigen (the one XLA's CPU backend compiles
for float32 tanh), which vectorises:

    tanh(x) ≈ x·P(x²) / Q(x²)   for |x| ≤ 7.9053 (clamped beyond; x itself below 4e-4),

P of degree 6 and Q of degree 3 in x². Measured against float64 tanh on 3,000,001
float32 points in [−10, 10] and N(0, 9): largest error 3.95e-7 (6.6 ulp, mean 0.92
ulp), against 6.0e-8 (1.4 ulp) for NumPy's float32 tanh — rounding-level, as the
fused Adam's reordering is not. A NaN stays NaN.

Not parallel: a step's B × 4H numbers are too few to share out.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

_f32 = np.float32
#: Eigen's float32 tanh: x·P(x²)/Q(x²), P's coefficients α₁ … α₁₃, Q's β₀ … β₆
_ALPHA = tuple(_f32(a) for a in (4.89352455891786e-03, 6.37261928875436e-04,
                                 1.48572235717979e-05, 5.12229709037114e-08,
                                 -8.60467152213735e-11, 2.00018790482477e-13,
                                 -2.76076847742355e-16))
_BETA = tuple(_f32(b) for b in (4.89352518554385e-03, 2.26843463243900e-03,
                                1.18534705686654e-04, 1.19825839466702e-06))
_A1, _A3, _A5, _A7, _A9, _A11, _A13 = _ALPHA
_B0, _B2, _B4, _B6 = _BETA
_CLAMP, _TINY = _f32(7.90531110763549805), _f32(4e-4)


@numba.njit(inline="always", error_model="numpy")
def _tanh(x: Any) -> Any:
    clamped = min(max(x, -_CLAMP), _CLAMP)
    x2 = clamped * clamped
    p = ((((((_A13 * x2 + _A11) * x2 + _A9) * x2 + _A7) * x2 + _A5) * x2 + _A3) * x2 + _A1)
    q = ((_B6 * x2 + _B4) * x2 + _B2) * x2 + _B0
    if abs(x) >= _TINY:
        return clamped * p / q
    return x  # tiny: tanh(x) = x in float32; NaN: stays NaN


def tanh(x: np.ndarray) -> np.ndarray:
    """The approximation elementwise (for the tests that measure it)."""
    return _tanh_array(np.ascontiguousarray(x, dtype=np.float32).reshape(-1)).reshape(np.shape(x))


@numba.njit(cache=True, error_model="numpy")
def _tanh_array(x: Any) -> Any:
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = _tanh(x[i])
    return out


@numba.njit(cache=True, error_model="numpy")
def _cell(z: Any, xw: Any, bias: Any, c_prev: Any, act: Any, c: Any, tc: Any, h: Any) -> None:
    # one simple loop per formula and row (each vectorises; one loop doing all would not)
    batch, hsz = c.shape
    half, zero = z.dtype.type(0.5), z.dtype.type(0)
    for b in range(batch):
        for j in range(4 * hsz):  # z + (x_t W + b): the portable path's order of the sums
            act[b, j] = _tanh(z[b, j] + (xw[b, j] + bias[j]))
        for j in range(2 * hsz):  # i, f: σ(u) = ½·tanh(½u) + ½
            act[b, j] = half * act[b, j] + half
        for j in range(2 * hsz, 3 * hsz):  # g: tanh itself (+ 0, as the portable offset)
            act[b, j] = act[b, j] + zero
        for j in range(3 * hsz, 4 * hsz):  # o
            act[b, j] = half * act[b, j] + half
        for k in range(hsz):
            c[b, k] = act[b, hsz + k] * c_prev[b, k] + act[b, k] * act[b, 2 * hsz + k]
        for k in range(hsz):
            tc[b, k] = _tanh(c[b, k])
        for k in range(hsz):
            h[b, k] = act[b, 3 * hsz + k] * tc[b, k]


@numba.njit(cache=True, error_model="numpy")
def _cell_grad(dh: Any, dc_next: Any, carried: bool, act: Any, tc: Any, h: Any, c_prev: Any,
               dz: Any, dc_prev: Any) -> None:
    batch, hsz = h.shape
    one, zero = dh.dtype.type(1), dh.dtype.type(0)
    for b in range(batch):
        for k in range(hsz):  # dc, kept in dc_prev until the last line
            dc_prev[b, k] = (act[b, 3 * hsz + k] - h[b, k] * tc[b, k]) * dh[b, k]
        if carried:
            for k in range(hsz):
                dc_prev[b, k] += dc_next[b, k]
        for k in range(hsz):
            gi = act[b, k]
            dz[b, k] = (dc_prev[b, k] * act[b, 2 * hsz + k]) * ((one - gi) * gi + zero)
        for k in range(hsz):
            gf = act[b, hsz + k]
            dz[b, hsz + k] = (dc_prev[b, k] * c_prev[b, k]) * ((one - gf) * gf + zero)
        for k in range(hsz):
            gg = act[b, 2 * hsz + k]
            dz[b, 2 * hsz + k] = (dc_prev[b, k] * act[b, k]) * ((zero - gg) * gg + one)
        for k in range(hsz):
            go = act[b, 3 * hsz + k]
            dz[b, 3 * hsz + k] = (dh[b, k] * tc[b, k]) * ((one - go) * go + zero)
        for k in range(hsz):
            dc_prev[b, k] = dc_prev[b, k] * act[b, hsz + k]


def lstm_cell(z: np.ndarray, xw: np.ndarray, bias: np.ndarray, c_prev: np.ndarray,
              act: np.ndarray, c: np.ndarray, tc: np.ndarray, h: np.ndarray) -> None:
    """One step forward: writes act (B, 4H), c_t, tanh(c_t) and h_t (B, H) from the scaled
    pre-activations z + (xw + b) (B, 4H) and c_{t-1}."""
    _cell(z, xw, bias, c_prev, act, c, tc, h)


def lstm_cell_grad(dh: np.ndarray, dc: np.ndarray | None, act: np.ndarray, tc: np.ndarray,
                   h: np.ndarray, c_prev: np.ndarray, dz: np.ndarray) -> np.ndarray:
    """One step backward: writes dz (B, 4H) and returns dc_{t-1}, from dh, the carried dc
    (None at the last step), and the step's act, tanh(c_t), h_t and c_{t-1}."""
    dc_prev = np.empty_like(dh)
    _cell_grad(dh, dh if dc is None else dc, dc is not None, act, tc, h, c_prev, dz, dc_prev)
    return dc_prev
