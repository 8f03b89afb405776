"""Gated recurrent unit (Cho et al. 2014), PyTorch/cuDNN variant, gate order r, z, n.

Forward, per step (x: (B, T, in), W_ih: (in, 3H), W_hh: (H, 3H), b_ih, b_hh: (3H,)):
    a = x_t @ W_ih + b_ih = [a_r | a_z | a_n],   u = h_{t-1} @ W_hh + b_hh = [u_r | u_z | u_n]
    r = σ(a_r + u_r),   z = σ(a_z + u_z),   n = tanh(a_n + r ⊙ u_n)
    h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}  =  n + z ⊙ (h_{t-1} − n)

Backward (BPTT), with dh = dL/dh_t from the output and from step t+1:
    dn̂ = dh ⊙ (1 − z) ⊙ (1 − n²)          (gradient of n's pre-activation)
    dr̂ = dn̂ ⊙ u_n ⊙ r(1 − r),   dẑ = dh ⊙ (h_{t-1} − n) ⊙ z(1 − z)
    da = [dr̂ | dẑ | dn̂],          du = [dr̂ | dẑ | dn̂ ⊙ r]
    dh_{t-1} = dh ⊙ z + du @ W_hhᵀ
and after the loop dW_ih = Σ_t x_tᵀ da_t, db_ih = Σ da, dW_hh = Σ_t h_{t-1}ᵀ du_t,
db_hh = Σ du, dx_t = da_t @ W_ihᵀ (see :mod:`dnn.layers.recurrent`).

r and z share one tanh: σ(v) = ½·tanh(½v) + ½, with the r/z columns of the
weights and biases scaled by ½ once per forward.

Initialisation: W_ih Glorot-uniform, W_hh orthogonal (one block per gate),
both biases zeros. The two biases are kept apart as in PyTorch (and Keras'
``reset_after=True``), because b_hn sits inside r ⊙ (…).
"""

from __future__ import annotations

from typing import Any

from dnn import backend
from dnn import init as initializers
from dnn.backend import ops
from dnn.layers.base import Context, register
from dnn.layers.recurrent import Recurrent
from dnn.parameter import Parameter


@register
class GRU(Recurrent):
    """GRU over (batch, time, features); returns h_T (B, H) or all h_t (B, T, H)."""

    param_names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    gates = 3

    def __init__(self, input_size: int, hidden_size: int, return_sequences: bool = False,
                 l1: float = 0.0, l2: float = 0.0) -> None:
        super().__init__(input_size, hidden_size, return_sequences, l1=l1, l2=l2)
        self.bias_ih = Parameter(initializers.zeros((3 * hidden_size,)), "bias_ih")
        self.bias_hh = Parameter(initializers.zeros((3 * hidden_size,)), "bias_hh")

    def _scale(self, dtype: Any) -> Any:
        xp = backend.xp
        h = self.hidden_size
        return xp.concat([xp.full((2 * h,), 0.5, dtype=dtype), xp.ones((h,), dtype=dtype)])

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False,
                     initial_state: Any = None) -> Any:
        xp = backend.xp
        self._check_input(x)
        batch, steps, _ = x.shape
        (h,) = self._check_state(initial_state, batch, x.dtype)
        hsz = self.hidden_size
        s = self._scale(x.dtype)
        w_hh = self.weight_hh.data * s
        b_hh = self.bias_hh.data * s
        cell = backend.library.fused("gru_cell", x.dtype)
        b_ih = self.bias_ih.data * s
        # the fused cell adds b_ih to x_t @ W_ih itself (one pass less over (T, B, 3H))
        x_tm, xw = self._project_inputs(x, self.weight_ih.data * s, None if cell else b_ih)
        hs = xp.empty((steps + 1, batch, hsz), dtype=x.dtype)
        hs[0, ...] = h
        if cell is not None:  # the same cell in one compiled pass, into per-sequence blocks
            gates = xp.empty((steps, batch, 2 * hsz), dtype=x.dtype)
            cands = xp.empty((steps, batch, hsz), dtype=x.dtype)
            u_ns = xp.empty((steps, batch, hsz), dtype=x.dtype)
            u = xp.empty((batch, 3 * hsz), dtype=x.dtype)
            for t in range(steps):
                backend.library.matmul_into(hs[t, ...], w_hh, out=u)
                cell(u, b_hh, xw[t, ...], b_ih, hs[t, ...], gates[t, ...], cands[t, ...],
                     u_ns[t, ...], hs[t + 1, ...])
        else:
            gates, cands, u_ns = [], [], []
            for t in range(steps):
                u = h @ w_hh
                u += b_hh
                a = xw[t, ...]
                rz = xp.tanh(a[:, :2 * hsz] + u[:, :2 * hsz])
                rz *= 0.5
                rz += 0.5
                u_n = u[:, 2 * hsz:]
                n = rz[:, :hsz] * u_n
                n += a[:, 2 * hsz:]
                n = xp.tanh(n)
                h = h - n
                h *= rz[:, hsz:]
                h += n
                hs[t + 1, ...] = h
                gates.append(rz)
                cands.append(n)
                u_ns.append(u_n)
        ctx.x_tm, ctx.hs, ctx.batch, ctx.steps = x_tm, hs, batch, steps
        ctx.gates, ctx.cands, ctx.u_ns = gates, cands, u_ns
        return self._outputs(hs)

    def backward_with(self, ctx: Context, grad: Any) -> Any:
        xp = backend.xp
        self._check_grad(grad, ctx)
        batch, steps, hsz = ctx.batch, ctx.steps, self.hidden_size
        hs, gates, cands, u_ns = ctx.hs, ctx.gates, ctx.cands, ctx.u_ns
        w_hh_t = self._recurrent_t()
        grad_seq, dh = self._output_grads(grad)
        # da_t and du_t of every step go straight into two (T, B, 3H) arrays that the
        # weight-gradient GEMMs read after the loop
        da_all = xp.empty((steps, batch, 3 * hsz), dtype=grad.dtype)
        du_all = xp.empty((steps, batch, 3 * hsz), dtype=grad.dtype)
        cell_grad = backend.library.fused("gru_cell_grad", grad.dtype)
        for t in range(steps - 1, -1, -1):
            if grad_seq is not None:
                dh = grad_seq[t, ...] if dh is None else dh + grad_seq[t, ...]
            rz, n, h_prev = gates[t], cands[t], hs[t, ...]
            if cell_grad is not None:  # the same formulas in one compiled pass
                dh_z = cell_grad(dh, rz, n, h_prev, u_ns[t], da_all[t, ...], du_all[t, ...])
                dh = dh_z + du_all[t, ...] @ w_hh_t
                continue
            r, z = rz[:, :hsz], rz[:, hsz:]
            dn = dh - dh * z
            dn *= 1.0 - n * n
            da, du = da_all[t, ...], du_all[t, ...]
            da[:, :hsz] = dn * u_ns[t]
            da[:, hsz:2 * hsz] = dh * (h_prev - n)
            drz = da[:, :2 * hsz]
            drz *= rz * (1.0 - rz)
            da[:, 2 * hsz:] = dn
            du[:, :2 * hsz] = drz
            du[:, 2 * hsz:] = dn * r
            dh = dh * z + du @ w_hh_t
        self._set_initial_state_grad(ctx, dh)
        da_all = xp.reshape(da_all, (steps * batch, 3 * hsz))
        du_all = xp.reshape(du_all, (steps * batch, 3 * hsz))
        h_prev = xp.reshape(hs[:-1, ...], (steps * batch, hsz))
        self.weight_hh.add_grad_matmul(h_prev.T, du_all)
        if self.bias_hh.trainable:
            self.bias_hh.add_grad(ops.column_sums(du_all))
        if self.bias_ih.trainable:
            self.bias_ih.add_grad(ops.column_sums(da_all))
        return self._input_grads(ctx, da_all)
