"""2-D convolution (cross-correlation, as PyTorch's ``Conv2d``) on NCHW images.

Forward, with X the zero-padded input, stride s and kernel W of shape (out, C, kh, kw):

    y[n, o, p, q] = b[o] + Σ_{c, i, j} W[o, c, i, j] · X[n, c, s·p + i, s·q + j]

computed as ONE matrix product: the windows of X become the rows of
``cols`` (N·OH·OW, kh·kw·C) (:func:`dnn.backend.windows.im2col`), the kernel is
flattened to W₂ (out, kh·kw·C) in the same (i, j, c) order, and

    Y = cols @ W₂ᵀ + b        (N·OH·OW, out), i.e. y in NHWC memory.

Backward, with G = dL/dY laid out the same way (N·OH·OW, out):

    dL/dW₂ = Gᵀ @ cols,   dL/db = Σ_rows G = 1ᵀ G,   dL/dcols = G @ W₂,
    dL/dx  = col2im(dL/dcols)   (each window entry added back where it was read);
    with 16 or more input channels the last two run fused, one GEMM block of W₂
    per kernel offset (:func:`dnn.backend.windows.col2im_matmul`).

``cols`` is kept on the call's context between forward and backward
(recomputing it would cost a second gather of kh·kw times the input; keeping
it costs that much memory). A frozen weight skips Gᵀ @ cols; a Conv2D reading
the data skips the dL/dx GEMM and col2im (``ctx.needs_input_grad`` is False).

Workspace reuse: a fresh multi-megabyte array per step costs more in page
faults than the im2col copy itself, so the layer keeps one spare ``cols``
buffer. A forward takes it (the layer holds none while a call owns it) and
writes into it when the shape matches; the backward gives it back at its end,
for the next forward. A layer applied twice in one pass thus never shares a
buffer between its calls: the second call, finding none spare, allocates its
own. A forward that no backward follows (inference) keeps its buffer, which
is freed with its context.
"""

from __future__ import annotations

import numbers
from typing import Any

from dnn import backend
from dnn import init as initializers
from dnn.backend import windows
from dnn.errors import ShapeError
from dnn.layers.base import Context, Layer, positive_ints, register
from dnn.layers.dense import init_config_name
from dnn.parameter import Parameter


def _pair(value: Any, arg: str, layer: str, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints as a pair, each >= ``minimum``."""
    is_int = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    pair = (value, value) if is_int else value
    try:
        a, b = pair
    except (TypeError, ValueError):
        raise ValueError(f"{layer}: {arg} must be an int or a pair of ints, got {value!r}") from None
    for v in (a, b):
        if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < minimum:
            raise ValueError(f"{layer}: {arg} must be int(s) >= {minimum}, got {value!r}")
    return int(a), int(b)


def check_nchw(layer: Layer, x: Any, channels: int | None, kernel: tuple[int, int],
               padding: tuple[int, int]) -> None:
    """Raise ShapeError unless x is (N, C, H, W), with C = ``channels`` when given and the
    padded image at least as large as the kernel."""
    if x.ndim != 4:
        c = "C" if channels is None else channels
        raise ShapeError(
            f"{layer.describe()}: expected a 4-D input (batch, {c}, height, width), "
            f"got shape {tuple(x.shape)}"
        )
    if channels is not None and x.shape[1] != channels:
        raise ShapeError(
            f"{layer.describe()}: expected {channels} input channels (axis 1 of NCHW), "
            f"got {x.shape[1]} in shape {tuple(x.shape)}"
        )
    h, w = x.shape[2] + 2 * padding[0], x.shape[3] + 2 * padding[1]
    if h < kernel[0] or w < kernel[1]:
        raise ShapeError(
            f"{layer.describe()}: the padded input ({h}x{w}) is smaller than the kernel "
            f"{kernel[0]}x{kernel[1]}; got input shape {tuple(x.shape)}"
        )


@register
class Conv2D(Layer):
    """``Conv2D(in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True,
    init="he_uniform")``: NCHW in, NCHW out; weight (out, in, kh, kw), bias (out,).

    ``init`` is an initializer name (``dnn.init``) or a function ``shape -> array``. A
    custom function is not saved: the model file names the default ``"he_uniform"``
    instead (the loaded weights come from the file, so they are identical)."""

    param_names = ("weight", "bias")

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        bias: bool = True,
        init: str = "he_uniform",
    ) -> None:
        in_channels, out_channels = positive_ints("Conv2D", in_channels=in_channels,
                                                  out_channels=out_channels)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(kernel_size, "kernel_size", "Conv2D", 1)
        self.stride = _pair(stride, "stride", "Conv2D", 1)
        self.padding = _pair(padding, "padding", "Conv2D", 0)
        self.use_bias, self.init = bool(bias), init
        kh, kw = self.kernel_size
        self.weight = Parameter(
            initializers.get(init)((out_channels, in_channels, kh, kw)), "weight"
        )
        self.bias = Parameter(initializers.zeros((out_channels,)), "bias") if bias else None
        self.param_names = ("weight", "bias") if bias else ("weight",)
        self._workspace: Any = None  # a spare im2col buffer, None while a call holds it

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        check_nchw(self, x, self.in_channels, self.kernel_size, self.padding)
        xp = backend.xp
        n, _, h, w = x.shape
        kh, kw = self.kernel_size
        oh = windows.out_size(h, kh, self.stride[0], self.padding[0])
        ow = windows.out_size(w, kw, self.stride[1], self.padding[1])
        workspace, self._workspace = self._workspace, None  # this call holds it until backward
        cols = windows.im2col(x, self.kernel_size, self.stride, self.padding, out=workspace)
        w2 = xp.reshape(xp.permute_dims(self.weight.data, (0, 2, 3, 1)), (self.out_channels, -1))
        y = cols @ w2.T  # (N·OH·OW, out): the one GEMM
        if self.bias is not None:
            y += self.bias.data
        ctx.cols, ctx.w2, ctx.x_shape = cols, w2, tuple(x.shape)
        return xp.permute_dims(xp.reshape(y, (n, oh, ow, self.out_channels)), (0, 3, 1, 2))

    def backward_with(self, ctx: Context, grad: Any) -> Any:
        xp = backend.xp
        cols, w2, x_shape = ctx.cols, ctx.w2, ctx.x_shape
        out = self.out_channels
        c = self.in_channels
        kh, kw = self.kernel_size
        # (N, out, OH, OW) -> (N·OH·OW, out): free when grad is channels-last in memory
        g = xp.reshape(xp.permute_dims(grad, (0, 2, 3, 1)), (-1, out))
        if self.weight.trainable:
            dw2 = g.T @ cols  # (out, kh·kw·C)
            self.weight.add_grad(xp.permute_dims(xp.reshape(dw2, (out, kh, kw, c)), (0, 3, 1, 2)))
        if self.bias is not None and self.bias.trainable:
            # Σ over rows as a GEMV: several times faster than sum(axis=0) on NumPy
            self.bias.add_grad(xp.ones((g.shape[0],), dtype=g.dtype) @ g)
        if not ctx.needs_input_grad:
            dx = None
        elif c < 16:  # few channels: one GEMM, then the scatter-add of its (N·OH·OW, kh·kw·C) rows
            dx = windows.col2im(g @ w2, x_shape, self.kernel_size, self.stride, self.padding)
        else:  # dL/dx = col2im(g @ w2), one (N·OH·OW, C) GEMM block per kernel offset
            dx = windows.col2im_matmul(g, w2, x_shape, self.kernel_size, self.stride, self.padding)
        del ctx.cols  # the buffer is free again: the next forward writes into it
        self._workspace = cols
        return dx

    def get_config(self) -> dict[str, Any]:
        return {
            "in_channels": self.in_channels, "out_channels": self.out_channels,
            "kernel_size": list(self.kernel_size), "stride": list(self.stride),
            "padding": list(self.padding), "bias": self.use_bias,
            "init": init_config_name(self.init, "he_uniform"),
        }

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        n, _, h, w = input_shape
        return (
            n, self.out_channels,
            windows.out_size(h, self.kernel_size[0], self.stride[0], self.padding[0]),
            windows.out_size(w, self.kernel_size[1], self.stride[1], self.padding[1]),
        )
