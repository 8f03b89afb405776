"""Long short-term memory (Hochreiter & Schmidhuber 1997), gate order i, f, g, o.

Forward, per step (x: (B, T, in), W_ih: (in, 4H), W_hh: (H, 4H), b: (4H,)):
    z = x_t @ W_ih + b + h_{t-1} @ W_hh = [z_i | z_f | z_g | z_o]
    i = σ(z_i),  f = σ(z_f),  g = tanh(z_g),  o = σ(z_o)
    c_t = f ⊙ c_{t-1} + i ⊙ g,     h_t = o ⊙ tanh(c_t)

Backward (BPTT), with dh = dL/dh_t (from the output and from step t+1) and
dc = dL/dc_t carried from step t+1:
    dc  += dh ⊙ o ⊙ (1 − tanh²(c_t))
    do = dh ⊙ tanh(c_t),   di = dc ⊙ g,   df = dc ⊙ c_{t-1},   dg = dc ⊙ i
    dz = [di·i(1−i) | df·f(1−f) | dg·(1−g²) | do·o(1−o)]
    dh_{t-1} = dz @ W_hhᵀ,   dc_{t-1} = dc ⊙ f
and after the loop dW_ih = Σ_t x_tᵀ dz_t, dW_hh = Σ_t h_{t-1}ᵀ dz_t, db = Σ dz,
dx_t = dz_t @ W_ihᵀ (see :mod:`dnn.layers.recurrent` for the GEMM layout).

All four gates go through ONE tanh per step: σ(z) = ½·tanh(½z) + ½, so the
pre-activations are computed already scaled by s = [½, ½, 1, ½] (the weights
are scaled once per forward) and act = a ⊙ tanh(s ⊙ z) + c with
a = [½, ½, 1, ½], c = [½, ½, 0, ½]. Backward gets every gate's derivative from
its activation in one expression over the (B, 4H) block: u + act ⊙ (v − act)
with u = [0, 0, 1, 0], v = [1, 1, 0, 1] (σ(1 − σ) and 1 − g²). Each application
keeps, per step, the activations (4H), c_t and tanh(c_t) and h_t on its context:
7·B·H numbers.

Initialisation: W_ih Glorot-uniform, W_hh orthogonal (one block per gate),
b zeros except the forget-gate bias, which is 1 (``unit_forget_bias=True``,
the Keras default; Jozefowicz et al. 2015): the cell starts out remembering,
which helps gradients flow through long sequences. PyTorch's ``nn.LSTM`` has
two biases; ``bias`` here equals their sum.
"""

from __future__ import annotations

from typing import Any

from dnn import backend
from dnn.backend import ops
from dnn.layers.base import Context, register
from dnn.layers.recurrent import Recurrent
from dnn.parameter import Parameter


@register
class LSTM(Recurrent):
    """LSTM over (batch, time, features); returns h_T (B, H) or all h_t (B, T, H)."""

    param_names = ("weight_ih", "weight_hh", "bias")
    gates = 4
    state_size = 2

    def __init__(self, input_size: int, hidden_size: int, return_sequences: bool = False,
                 unit_forget_bias: bool = True, l1: float = 0.0, l2: float = 0.0) -> None:
        super().__init__(input_size, hidden_size, return_sequences, l1=l1, l2=l2)
        self.unit_forget_bias = bool(unit_forget_bias)
        xp = backend.xp
        h = hidden_size
        dtype = backend.default_dtype()
        forget = 1.0 if unit_forget_bias else 0.0
        self.bias = Parameter(xp.concat([xp.zeros((h,), dtype=dtype), xp.full((h,), forget, dtype=dtype),
                                         xp.zeros((2 * h,), dtype=dtype)]), "bias")

    def _affine(self, dtype: Any) -> tuple[Any, Any, Any]:
        """(s, a, c): the per-column scale, slope and offset of the one-tanh trick."""
        xp = backend.xp
        h = self.hidden_size

        def cols(i: float, g: float) -> Any:
            return xp.concat([xp.full((2 * h,), i, dtype=dtype), xp.full((h,), g, dtype=dtype),
                              xp.full((h,), i, dtype=dtype)])

        return cols(0.5, 1.0), cols(0.5, 1.0), cols(0.5, 0.0)

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False,
                     initial_state: Any = None) -> Any:
        xp = backend.xp
        self._check_input(x)
        batch, steps, _ = x.shape
        h, c = self._check_state(initial_state, batch, x.dtype)
        hsz = self.hidden_size
        s, a, off = self._affine(x.dtype)
        w_hh = self.weight_hh.data * s
        cell = backend.library.fused("lstm_cell", x.dtype)  # float32 (see its tanh)
        bias = self.bias.data * s
        # the fused cell adds the bias to x_t @ W_ih itself (one pass less over (T, B, 4H))
        x_tm, xw = self._project_inputs(x, self.weight_ih.data * s, None if cell else bias)
        hs = xp.empty((steps + 1, batch, hsz), dtype=x.dtype)
        hs[0, ...] = h
        if cell is not None:  # the same cell in one compiled pass, into per-sequence blocks
            acts = xp.empty((steps, batch, 4 * hsz), dtype=x.dtype)
            cells = xp.empty((steps + 1, batch, hsz), dtype=x.dtype)
            tanh_cells = xp.empty((steps, batch, hsz), dtype=x.dtype)
            cells[0, ...] = c
            z = xp.empty((batch, 4 * hsz), dtype=x.dtype)
            for t in range(steps):
                backend.library.matmul_into(hs[t, ...], w_hh, out=z)
                cell(z, xw[t, ...], bias, cells[t, ...], acts[t, ...], cells[t + 1, ...],
                     tanh_cells[t, ...], hs[t + 1, ...])
        else:
            acts, cells, tanh_cells = [], [c], []
            for t in range(steps):
                z = h @ w_hh
                z += xw[t, ...]
                act = xp.tanh(z)
                act *= a
                act += off
                i, f = act[:, :hsz], act[:, hsz:2 * hsz]
                g, o = act[:, 2 * hsz:3 * hsz], act[:, 3 * hsz:]
                c = f * c
                c += i * g
                tc = xp.tanh(c)
                h = o * tc
                hs[t + 1, ...] = h
                acts.append(act)
                cells.append(c)
                tanh_cells.append(tc)
        ctx.x_tm, ctx.hs, ctx.batch, ctx.steps = x_tm, hs, batch, steps
        ctx.acts, ctx.cells, ctx.tanh_cells = acts, cells, tanh_cells
        return self._outputs(hs)

    def backward_with(self, ctx: Context, grad: Any) -> Any:
        xp = backend.xp
        self._check_grad(grad, ctx)
        batch, steps, hsz = ctx.batch, ctx.steps, self.hidden_size
        acts, cells, tanh_cells = ctx.acts, ctx.cells, ctx.tanh_cells
        # every gate's derivative from its activation: σ' = σ(1 − σ), tanh' = 1 − g², i.e.
        # u + act ⊙ (v − act) with u = [0, 0, 1, 0] and v = [1, 1, 0, 1] per gate block
        slope = self._affine(grad.dtype)[1]  # ½ for σ gates, 1 for g
        v = 2.0 - 2.0 * slope
        u = 1.0 - v
        w_hh_t = self._recurrent_t()
        grad_seq, dh = self._output_grads(grad)
        hs = ctx.hs
        dc = None
        # dz of every step is written straight into one (T, B, 4H) array that the
        # weight-gradient GEMMs read after the loop (no per-step list, no final concat)
        dz_all = xp.empty((steps, batch, 4 * hsz), dtype=grad.dtype)
        cell_grad = backend.library.fused("lstm_cell_grad", grad.dtype)
        for t in range(steps - 1, -1, -1):
            if grad_seq is not None:
                dh = grad_seq[t, ...] if dh is None else dh + grad_seq[t, ...]
            if cell_grad is not None:  # the same formulas in one compiled pass
                dc = cell_grad(dh, dc, acts[t], tanh_cells[t], hs[t + 1, ...], cells[t],
                               dz_all[t, ...])
                dh = dz_all[t, ...] @ w_hh_t
                continue
            act, tc = acts[t], tanh_cells[t]
            i, f = act[:, :hsz], act[:, hsz:2 * hsz]
            g, o = act[:, 2 * hsz:3 * hsz], act[:, 3 * hsz:]
            dct = o - hs[t + 1, ...] * tc  # o ⊙ (1 − tanh²(c)), as h = o ⊙ tanh(c)
            dct *= dh
            if dc is not None:
                dct += dc
            dz = dz_all[t, ...]
            dz[:, :hsz] = dct * g
            dz[:, hsz:2 * hsz] = dct * cells[t]
            dz[:, 2 * hsz:3 * hsz] = dct * i
            dz[:, 3 * hsz:] = dh * tc
            deriv = v - act
            deriv *= act
            deriv += u
            dz *= deriv
            dh = dz @ w_hh_t
            dc = dct * f
        self._set_initial_state_grad(ctx, (dh, dc))
        dz_all = xp.reshape(dz_all, (steps * batch, 4 * hsz))
        h_prev = xp.reshape(hs[:-1, ...], (steps * batch, hsz))
        self.weight_hh.add_grad_matmul(h_prev.T, dz_all)
        if self.bias.trainable:
            self.bias.add_grad(ops.column_sums(dz_all))
        return self._input_grads(ctx, dz_all)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "unit_forget_bias": self.unit_forget_bias}
