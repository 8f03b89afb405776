"""Simple (Elman) recurrent layer with tanh.

Forward, per step (x: (B, T, in), W_ih: (in, H), W_hh: (H, H), b: (H,)):
    h_t = tanh(x_t @ W_ih + b + h_{t-1} @ W_hh)

Backward (BPTT), with dh = dL/dh_t from the output and from step t+1:
    dz_t = dh ⊙ (1 − h_t²),   dh_{t-1} = dz_t @ W_hhᵀ
and after the loop dW_ih = Σ_t x_tᵀ dz_t, dW_hh = Σ_t h_{t-1}ᵀ dz_t,
db = Σ dz, dx_t = dz_t @ W_ihᵀ (see :mod:`dnn.layers.recurrent` for the GEMM
layout). Each application keeps only X and the hidden states h_0 … h_T.

Initialisation: W_ih Glorot-uniform, W_hh orthogonal, b zeros (Keras'
SimpleRNN). PyTorch's ``nn.RNN`` has two biases; ``bias`` here is their sum.
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
class RNN(Recurrent):
    """tanh RNN over (batch, time, features); returns h_T (B, H) or all h_t (B, T, H)."""

    param_names = ("weight_ih", "weight_hh", "bias")
    gates = 1

    def __init__(self, input_size: int, hidden_size: int, return_sequences: bool = False,
                 l1: float = 0.0, l2: float = 0.0) -> None:
        super().__init__(input_size, hidden_size, return_sequences, l1=l1, l2=l2)
        self.bias = Parameter(initializers.zeros((hidden_size,)), "bias")

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False,
                     initial_state: Any = None) -> Any:
        xp = backend.xp
        self._check_input(x)
        batch, steps, _ = x.shape
        (h,) = self._check_state(initial_state, batch, x.dtype)
        w_hh = self.weight_hh.data
        x_tm, xw = self._project_inputs(x, self.weight_ih.data, self.bias.data)
        hs = xp.empty((steps + 1, batch, self.hidden_size), dtype=x.dtype)
        hs[0, ...] = h
        for t in range(steps):
            z = h @ w_hh
            z += xw[t, ...]
            h = xp.tanh(z)
            hs[t + 1, ...] = h
        ctx.x_tm, ctx.hs, ctx.batch, ctx.steps = x_tm, hs, batch, steps
        return self._outputs(hs)

    def backward_with(self, ctx: Context, grad: Any) -> Any:
        xp = backend.xp
        self._check_grad(grad, ctx)
        batch, steps, hsz = ctx.batch, ctx.steps, self.hidden_size
        hs = ctx.hs
        w_hh_t = self._recurrent_t()
        grad_seq, dh = self._output_grads(grad)
        dz_all = xp.empty((steps, batch, hsz), dtype=grad.dtype)
        for t in range(steps - 1, -1, -1):
            if grad_seq is not None:
                dh = grad_seq[t, ...] if dh is None else dh + grad_seq[t, ...]
            h = hs[t + 1, ...]
            dz = 1.0 - h * h
            dz *= dh
            dz_all[t, ...] = dz
            dh = dz @ w_hh_t
        self._set_initial_state_grad(ctx, dh)
        dz_all = xp.reshape(dz_all, (steps * batch, hsz))
        h_prev = xp.reshape(hs[:-1, ...], (steps * batch, hsz))
        self.weight_hh.add_grad_matmul(h_prev.T, dz_all)
        if self.bias.trainable:
            self.bias.add_grad(ops.column_sums(dz_all))
        return self._input_grads(ctx, dz_all)
