"""1-D convolution (cross-correlation, as PyTorch's ``Conv1d``) on NCL sequences.

Forward, with X the padded input (N, C, L), stride s, dilation d, ``groups`` = g and
kernel W (out, C/g, k); output channel o reads the input channels of its group γ:

    y[n, o, t] = b[o] + Σ_{c, i} W[o, c, i] · X[n, γ·C/g + c, s·t + d·i]

    L_out = ⌊(L + p₀ + p₁ − d·(k − 1) − 1) / s⌋ + 1

Backward, with G = dL/dy:

    dL/dW[o, c, i] = Σ_{n, t} G[n, o, t] · X[n, γ·C/g + c, s·t + d·i],   dL/db[o] = Σ_{n, t} G[n, o, t],
    dL/dx[n, γ·C/g + c, s·t + d·i − p₀] += Σ_o W[o, c, i] · G[n, o, t]   (summed over every (t, i)
                                                                     that reads the same position).

This is exactly a Conv2D on one image row: x (N, C, L) is viewed as (N, C, 1, L) and W as
(out, C/g, 1, k) (both free reshapes), so the im2col-GEMM core of
:mod:`dnn.layers.conv_base` (and its depthwise tap sums when groups = C) computes all of
the above; the layer only reshapes in and out. Padding: an int, "valid" or "same" (stride
1 only, as in PyTorch: total d·(k − 1), the odd extra one at the end).

Penalties: ``l1``/``l2`` on the weight (not the bias).

PyTorch oracle: ``torch.nn.Conv1d(in, out, kernel_size, stride, padding, dilation, groups,
bias)`` with the same weight (out, in/groups, k) and bias.
"""

from __future__ import annotations

from typing import Any

from dnn import backend
from dnn.layers.base import Context, register
from dnn.layers.conv_base import _ConvND


@register
class Conv1D(_ConvND):
    """``Conv1D(in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
    groups=1, bias=True, init="he_uniform", l1=0, l2=0)``: (N, C, L) in, (N, out, L_out)
    out; weight (out, in/groups, k), bias (out,). ``padding``: int, "same" or "valid"."""

    spatial = 1
    layout = "NCL"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int | str = 0,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
        init: str = "he_uniform",
        l1: float = 0.0,
        l2: float = 0.0,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, init, l1, l2)

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        self.check_input(x)
        xp = backend.xp
        n, c, length = x.shape
        w4 = xp.reshape(self.weight.data, (self.out_channels, c // self.groups, 1, -1))
        y4 = self._correlate(ctx, xp.reshape(x, (n, c, 1, length)), w4)
        return xp.reshape(y4, (n, self.out_channels, y4.shape[3]))

    def backward_with(self, ctx: Context, grad: Any) -> Any:
        xp = backend.xp
        n, out, length = grad.shape
        dx4, dw4 = self._correlate_backward(ctx, xp.reshape(grad, (n, out, 1, length)))
        if dw4 is not None:
            self.weight.add_grad(xp.reshape(dw4, tuple(self.weight.shape)))
        return None if dx4 is None else xp.reshape(dx4, (n, self.in_channels, dx4.shape[3]))
