"""Transposed 2-D convolution (PyTorch's ``ConvTranspose2d``) on NCHW images.

Its forward is the input gradient of a Conv2D, and its backward is a Conv2D forward.
With W (in, out, kh, kw), stride s, padding p and output padding a, every input pixel
scatters a kh × kw patch of its weights into the output:

    y[n, o, s·p + i − p₀, s·q + j − p₁] += Σ_c x[n, c, p, q] · W[c, o, i, j]   (+ b[o])

    H_out = (H − 1)·s − 2·p + kh + a        (likewise W_out)

that is, y = col2im(X₂ @ W₂) + b: X₂ (N·H·W, in) is x in NHWC rows, W₂ (in, kh·kw·out) the
kernel permuted to (in, kh, kw, out) and flattened, and col2im (:mod:`dnn.backend.windows`)
adds each row's kh·kw·out entries back onto the (N, out, H_out, W_out) output, exactly as a
Conv2D (out → in channels, kernel W, stride s, padding p) computes dL/dx from dL/dy. The
output padding a < s only makes the output a rows/columns larger at the bottom/right
(rows no window reads: they get b alone), so that H_out can be any size a stride-s Conv2D
maps back to H.

Backward, with G = dL/dy: the windows of G are the rows of cols = im2col(G) (N·H·W,
kh·kw·out), a Conv2D forward of G, and

    dL/dx = cols @ W₂ᵀ   (N·H·W, in, i.e. NHWC),    dL/dW₂ = X₂ᵀ @ cols,    dL/db = Σ_{n,h,w} G.

Penalties: ``l1``/``l2`` on the weight (not the bias).

PyTorch oracle: ``torch.nn.ConvTranspose2d(in, out, kernel_size, stride, padding,
output_padding, bias=...)``, the same weight (in, out, kh, kw) and bias (its default
groups=1, dilation=1).
"""

from __future__ import annotations

from typing import Any

from dnn import backend
from dnn.backend import windows
from dnn.errors import ShapeError
from dnn.layers.base import Context, register
from dnn.layers.conv_base import _ConvND, ints


@register
class Conv2DTranspose(_ConvND):
    """``Conv2DTranspose(in_channels, out_channels, kernel_size, stride=1, padding=0,
    output_padding=0, bias=True, init="he_uniform", l1=0, l2=0)``: NCHW in, NCHW out;
    weight (in, out, kh, kw), bias (out,); ``output_padding`` < ``stride`` per axis."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        output_padding: int | tuple[int, int] = 0,
        bias: bool = True,
        init: str = "he_uniform",
        l1: float = 0.0,
        l2: float = 0.0,
    ) -> None:
        if isinstance(padding, str):
            raise ValueError(f"Conv2DTranspose: padding must be int(s) >= 0 (as in PyTorch's "
                             f"ConvTranspose2d), got {padding!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, 1, 1, bias,
                         init, l1, l2)
        self.output_padding = ints(output_padding, "output_padding", "Conv2DTranspose", 0, 2)
        if any(a >= s for a, s in zip(self.output_padding, self.stride)):
            raise ValueError(
                f"Conv2DTranspose: output_padding must be smaller than stride in each axis, "
                f"got output_padding={output_padding!r} with stride={stride!r}"
            )

    def weight_shape(self) -> tuple[int, ...]:
        return (self.in_channels, self.out_channels, *self.kernel_size)

    def _out_sizes(self, sizes: tuple[int, ...]) -> tuple[int, ...]:
        """H_out = (H − 1)·s − p₀ − p₁ + kh + a per axis."""
        return tuple((size - 1) * s - 2 * p + k + a for size, s, p, k, a in
                     zip(sizes, self.stride, self.padding, self.kernel_size, self.output_padding))

    def check_input(self, x: Any) -> None:
        self._check_rank_and_channels(x)
        sizes = self._out_sizes(tuple(x.shape[2:]))
        if min(sizes) < 1:
            raise ShapeError(f"{self.describe()}: input shape {tuple(x.shape)} gives an empty "
                             f"output {sizes[0]}x{sizes[1]} (padding {self.padding} too large)")

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        self.check_input(x)
        xp = backend.xp
        n = x.shape[0]
        x_rows = xp.reshape(xp.permute_dims(x, (0, 2, 3, 1)), (-1, self.in_channels))  # X₂
        w2 = self._flat_kernel(self.weight.data)  # (in, kh·kw·out)
        y = self._fold_gemm(x_rows, w2, (n, self.out_channels, *self._out_sizes(x.shape[2:])))
        if self.bias is not None:
            y += xp.reshape(self.bias.data, (1, self.out_channels, 1, 1))
        ctx.x_rows, ctx.w2, ctx.x_shape = x_rows, w2, tuple(x.shape)
        return y

    def backward_with(self, ctx: Context, grad: Any) -> Any:
        xp = backend.xp
        x_rows, w2 = ctx.x_rows, ctx.w2
        n, _, h, w = ctx.x_shape
        workspace = backend.library.take_workspace(windows.im2col_shape(
            tuple(grad.shape), self._kernel2, self._stride2, self.pads), grad.dtype)
        cols = windows.im2col(grad, self._kernel2, self._stride2, self.pads, out=workspace)
        if self.weight.trainable:
            self.weight.add_grad(self._unflat_kernel(self._weight_gemm(x_rows, cols)))
        self._add_bias_grad(self._rows(grad))
        dx = None
        if ctx.needs_input_grad:
            dx_rows = cols @ w2.T  # (N·H·W, in)
            dx = xp.permute_dims(xp.reshape(dx_rows, (n, h, w, self.in_channels)), (0, 3, 1, 2))
        backend.library.give_workspace(cols)
        return dx

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        del config["dilation"], config["groups"]
        config["output_padding"] = list(self.output_padding)
        return config
