"""2-D convolution (cross-correlation, as PyTorch's ``Conv2d``) on NCHW images.

Forward, with X the padded input, stride s, dilation d, ``groups`` = g and kernel W of
shape (out, C/g, kh, kw); output channel o belongs to group γ = ⌊o / (out/g)⌋ and reads
the input channels γ·C/g + c, c < C/g:

    y[n, o, p, q] = b[o] + Σ_{c, i, j} W[o, c, i, j] · X[n, γ·C/g + c, s·p + d·i, s·q + d·j]

groups = 1 is the ordinary convolution; groups = C (depthwise) gives each input channel
its own out/C kernels. Padding: an int or a pair (both sides), "valid" (none) or "same"
(stride 1 only, as in PyTorch: total d·(k − 1) per axis, the odd extra row/column at the
bottom/right; see :mod:`dnn.layers.conv_base`).

Computed, for groups = 1, as ONE matrix product: the windows of X become the rows of
``cols`` (N·OH·OW, kh·kw·C) (:func:`dnn.backend.windows.im2col`), the kernel is flattened
to W₂ (out, kh·kw·C) in the same (i, j, c) order, and

    Y = cols @ W₂ᵀ + b        (N·OH·OW, out), i.e. y in NHWC memory.

Backward, with G = dL/dY laid out the same way (N·OH·OW, out):

    dL/dW₂ = Gᵀ @ cols,   dL/db = Σ_rows G = 1ᵀ G,   dL/dcols = G @ W₂,
    dL/dx  = col2im(dL/dcols)   (each window entry added back where it was read);
    with 16 or more input channels the last two run fused, one GEMM block of W₂
    per kernel offset (:func:`dnn.backend.windows.col2im_matmul`).

Grouped (1 < g < C): the same three products per group, as batched GEMMs over the
(g, N·OH·OW, kh·kw·C/g) blocks of cols. Depthwise (g = C): the GEMMs would have inner
size kh·kw, so the layer sums the kh·kw taps instead, y = Σ_{i,j} W[:, i, j] · X_ij
(X_ij the strided slice of offset (d·i, d·j)), dL/dW[:, i, j] = Σ_{n,p,q} G · X_ij and
dL/dx = Σ_{i,j} G · W[:, i, j] folded back at (d·i, d·j) (:func:`dnn.backend.windows.depthwise`).

Penalties: ``l1``/``l2`` on the weight (not the bias) add l1·Σ|W| + l2·Σ W² to the loss.

``cols`` (depthwise: the padded input) is kept on the call's context between forward and
backward. A frozen weight skips Gᵀ @ cols; a Conv2D reading the data skips the dL/dx
GEMM and col2im (``ctx.needs_input_grad`` is False). The im2col buffer is reused between
steps (:mod:`dnn.layers.conv_base`).

PyTorch oracle: ``torch.nn.Conv2d(in, out, kernel_size, stride, padding, dilation, groups,
bias)`` with the same weight (out, in/groups, kh, kw) and bias; padding "same"/"valid"
as torch's strings.
"""

from __future__ import annotations

from typing import Any

from dnn.layers.base import Context, register
from dnn.layers.conv_base import _ConvND, check_nchw, pair

__all__ = ["Conv2D", "check_nchw", "pair"]


@register
class Conv2D(_ConvND):
    """``Conv2D(in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
    groups=1, bias=True, init="he_uniform", l1=0, l2=0)``: NCHW in, NCHW out; weight
    (out, in/groups, kh, kw), bias (out,). ``padding``: int, pair, "same" or "valid".

    ``init`` is an initializer name (``dnn.init``) or a function ``shape -> array``. A
    custom function is not saved: the model file names the default ``"he_uniform"``
    instead (the loaded weights come from the file, so they are identical)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        dilation: int | tuple[int, int] = 1,
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
        return self._correlate(ctx, x, self.weight.data)

    def backward_with(self, ctx: Context, grad: Any) -> Any:
        dx, dw = self._correlate_backward(ctx, grad)
        if dw is not None:
            self.weight.add_grad(dw)
        return dx
