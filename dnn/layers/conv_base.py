"""What the convolution family (Conv1D, Conv2D, Conv2DTranspose) shares: arguments,
geometry, parameters and the im2col-GEMM core. Each layer file holds only its own math.

Geometry, per spatial axis, for kernel k, stride s, dilation d and padding p₀ (before)
and p₁ (after): a window spans d·(k − 1) + 1 input pixels and reads every d-th, and

    out = ⌊(size + p₀ + p₁ − d·(k − 1) − 1) / s⌋ + 1.

``padding`` is an int (both sides of every axis), one int per axis, ``"valid"`` (0) or
``"same"``: output size = input size, as PyTorch does it — stride 1 only (a strided
"same" raises, as in PyTorch), total padding d·(k − 1) per axis, ⌊total / 2⌋ before and
the rest after (an even kernel gets its odd extra row/column at the bottom/right).

The core works on a 2-D view, (N, C, H, W) with a (out, C/groups, kh, kw) kernel (Conv1D
is one row of it: (N, C, 1, L), kernel (1, k)), and writes the convolution as GEMMs
on the im2col matrix (:mod:`dnn.backend.windows`):

    cols = im2col(x)                  (N·OH·OW, kh·kw·C), columns (i, j, c)
    Y    = cols @ W₂ᵀ (+ b)           (N·OH·OW, out) = y in NHWC memory   (:meth:`_windows_gemm`)
    dW₂  = Gᵀ @ cols                                                       (:meth:`_weight_gemm`)
    dx   = col2im(G @ W₂)             each window entry added back where it was read
                                                                           (:meth:`_fold_gemm`)

with W₂ the kernel permuted to (out, kh, kw, C/groups) and flattened, G = dL/dY in the
layout of Y. A grouped convolution (``groups`` = g) runs the same three products once per
group of C/g input and out/g output channels, as one batched GEMM over (g, N·OH·OW,
kh·kw·C/g) blocks of cols. A depthwise one (g = C: one kernel per channel, m = out/C
outputs each) has GEMMs of inner size kh·kw only, so it skips im2col and sums the kh·kw
taps instead (:func:`dnn.backend.windows.depthwise` and its two gradients). The transposed
convolution uses the same three products the other way round (its forward is
``_fold_gemm``, its backward ``_windows_gemm`` and ``_weight_gemm``).

Workspace reuse: a fresh multi-megabyte array per step costs more in page faults than
the im2col copy itself, so a layer keeps one spare ``cols`` buffer. A call takes it (the
layer holds none while a call owns it) and writes into it when the shape matches; the
backward gives it back at its end. A layer applied twice in one pass thus never shares a
buffer between its calls: the second, finding none spare, allocates its own.
"""

from __future__ import annotations

import numbers
from typing import Any

from dnn import backend
from dnn import init as initializers
from dnn.backend import ops, windows
from dnn.errors import ShapeError
from dnn.layers.base import Layer, check_flags, check_penalties, positive_ints
from dnn.layers.dense import init_config_name
from dnn.parameter import Parameter

#: with fewer input channels the input gradient is one GEMM then col2im; with more, one
#: GEMM block per kernel offset folded in as it comes (:func:`windows.col2im_matmul`),
#: unless col2im is a compiled one-pass kernel (then one GEMM and col2im always)
FUSED_FOLD_CHANNELS = 16


def ints(value: Any, arg: str, layer: str, minimum: int, count: int) -> tuple[int, ...]:
    """An int, or ``count`` ints, as a tuple of ``count`` ints, each >= ``minimum``."""
    is_int = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    values = (value,) * count if is_int else value
    what = "an int" if count == 1 else f"an int or {count} ints"
    try:
        values = tuple(values)
    except TypeError:
        raise ValueError(f"{layer}: {arg} must be {what}, got {value!r}") from None
    if len(values) != count:
        raise ValueError(f"{layer}: {arg} must be {what}, got {value!r}")
    for v in values:
        if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < minimum:
            raise ValueError(f"{layer}: {arg} must be int(s) >= {minimum}, got {value!r}")
    return tuple(int(v) for v in values)


def pair(value: Any, arg: str, layer: str, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints as a pair, each >= ``minimum``."""
    a, b = ints(value, arg, layer, minimum, 2)
    return a, b


def same_padding(kernel: int, dilation: int) -> tuple[int, int]:
    """(before, after) of stride-1 "same" padding: total d·(k − 1), the odd one after."""
    total = dilation * (kernel - 1)
    return total // 2, total - total // 2


def conv_padding(padding: Any, layer: str, kernel: tuple[int, ...], stride: tuple[int, ...],
                 dilation: tuple[int, ...]) -> tuple[Any, tuple[tuple[int, int], ...]]:
    """``(spec, pads)``: ``spec`` is what the layer keeps and saves ("same", "valid" or one
    int per axis), ``pads`` the (before, after) padding of each axis."""
    count = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return "valid", ((0, 0),) * count
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(
                    f"{layer}: padding='same' needs stride 1 (as in PyTorch), got stride="
                    f"{stride if count > 1 else stride[0]}; give the padding as numbers instead, "
                    f"e.g. padding={(kernel[0] - 1) // 2} for kernel_size {kernel[0]}"
                )
            return "same", tuple(same_padding(k, d) for k, d in zip(kernel, dilation))
        raise ValueError(f"{layer}: padding must be 'same', 'valid' or int(s) >= 0, "
                         f"got {padding!r}")
    spec = ints(padding, "padding", layer, 0, count)
    return spec, tuple((p, p) for p in spec)


def check_nchw(layer: Layer, x: Any, channels: int | None, kernel: tuple[int, int],
               padding: tuple[int, int]) -> None:
    """Raise ShapeError unless x is (N, C, H, W), with C = ``channels`` when given and the
    padded image at least as large as the kernel. A convolution layer checks its own input
    (:meth:`_ConvND.check_input`: its rank, dilation and padding), whatever is passed."""
    if isinstance(layer, _ConvND):
        layer.check_input(x)
        return
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


class _ConvND(Layer):
    """Family base: validated arguments (one value per spatial axis), weight and bias
    Parameters, the 2-D view of the geometry, input checks, config, and the GEMM core."""

    param_names = ("weight", "bias")
    #: number of spatial axes of the input: 1 (N, C, L) or 2 (N, C, H, W)
    spatial = 2
    #: how errors name the input layout
    layout = "NCHW"

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any,
                 padding: Any, dilation: Any, groups: int, bias: bool, init: Any,
                 l1: float, l2: float) -> None:
        name, count = type(self).__name__, self.spatial
        in_channels, out_channels, groups = positive_ints(
            name, in_channels=in_channels, out_channels=out_channels, groups=groups)
        for arg, channels in (("in_channels", in_channels), ("out_channels", out_channels)):
            if channels % groups:
                raise ValueError(f"{name}: {arg} must be divisible by groups={groups}, "
                                 f"got {arg}={channels}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = ints(kernel_size, "kernel_size", name, 1, count)
        self.stride = ints(stride, "stride", name, 1, count)
        self.dilation = ints(dilation, "dilation", name, 1, count)
        self.padding, pads = conv_padding(padding, name, self.kernel_size, self.stride,
                                          self.dilation)
        self.l1, self.l2 = check_penalties(name, l1=l1, l2=l2)
        (self.use_bias,), self.init = check_flags(type(self).__name__, bias=bias), init
        # the 2-D view the core works on: a 1-D layer is one row (kernel (1, k))
        lead = (1,) * (2 - count)
        self._kernel2 = (*lead, *self.kernel_size)
        self._stride2 = (*lead, *self.stride)
        self._dilation2 = (*lead, *self.dilation)
        self._pads = ((0, 0),) * (2 - count) + pads  # ((top, bottom), (left, right))
        #: how many input pixels a window covers along each axis: d·(k − 1) + 1
        self._spans = tuple(d * (k - 1) + 1 for k, d in zip(self.kernel_size, self.dilation))
        self.weight = Parameter(initializers.get(init)(self.weight_shape()), "weight",
                                l1=self.l1, l2=self.l2)
        self.bias = Parameter(initializers.zeros((out_channels,)), "bias") if bias else None
        self.param_names = ("weight", "bias") if bias else ("weight",)

    # ------------------------------------------------------------ what each layer defines
    def weight_shape(self) -> tuple[int, ...]:
        """The weight's shape: (out, in/groups, *kernel) unless the layer says otherwise."""
        return (self.out_channels, self.in_channels // self.groups, *self.kernel_size)

    # ------------------------------------------------------------ geometry
    @property
    def pads(self) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) padding of the 2-D view."""
        (top, bottom), (left, right) = self._pads
        return top, bottom, left, right

    def _out_sizes(self, sizes: tuple[int, ...]) -> tuple[int, ...]:
        """Spatial output sizes of the windows over input sizes ``sizes``."""
        return tuple(
            windows.out_size(size, k, s, p, d)
            for size, k, s, p, d in zip(sizes, self.kernel_size, self.stride,
                                        self._pads[2 - self.spatial:], self.dilation)
        )

    def check_input(self, x: Any) -> None:
        """ShapeError unless ``x`` is (N, in_channels, *spatial) and, padded, no smaller
        than the kernel's span (reads only ``x.ndim`` and ``x.shape``)."""
        self._check_rank_and_channels(x)
        padded = tuple(size + a + b for size, (a, b) in
                       zip(x.shape[2:], self._pads[2 - self.spatial:]))
        spans = self._spans
        if any(p < span for p, span in zip(padded, spans)):
            kernel = "x".join(map(str, self.kernel_size))
            spread = ("" if all(d == 1 for d in self.dilation) else
                      f" (dilation {'x'.join(map(str, self.dilation))}: it spans "
                      f"{'x'.join(map(str, spans))})")
            raise ShapeError(
                f"{self.describe()}: the padded input ({'x'.join(map(str, padded))}) is smaller "
                f"than the kernel {kernel}{spread}; got input shape {tuple(x.shape)}"
            )

    def _check_rank_and_channels(self, x: Any) -> None:
        axes = "length" if self.spatial == 1 else "height, width"
        if x.ndim != 2 + self.spatial:
            raise ShapeError(
                f"{self.describe()}: expected a {2 + self.spatial}-D input (batch, "
                f"{self.in_channels}, {axes}), got shape {tuple(x.shape)}"
            )
        if x.shape[1] != self.in_channels:
            raise ShapeError(
                f"{self.describe()}: expected {self.in_channels} input channels (axis 1 of "
                f"{self.layout}), got {x.shape[1]} in shape {tuple(x.shape)}"
            )

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (input_shape[0], self.out_channels, *self._out_sizes(tuple(input_shape[2:])))

    # ------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        padding = self.padding if isinstance(self.padding, str) else list(self.padding)
        return {
            "in_channels": self.in_channels, "out_channels": self.out_channels,
            "kernel_size": list(self.kernel_size), "stride": list(self.stride),
            "padding": padding, "dilation": list(self.dilation), "groups": self.groups,
            "bias": self.use_bias, "init": init_config_name(self.init, "he_uniform"),
            "l1": self.l1, "l2": self.l2,
        }

    # ------------------------------------------------------------ the correlation (Conv1D/2D)
    @property
    def is_depthwise(self) -> bool:
        """One kernel per input channel (groups = in_channels > 1): the tap-sum path."""
        return self.groups == self.in_channels > 1

    def _correlate(self, ctx: Any, x4: Any, w4: Any) -> Any:
        """y = x ⋆ W (+ b) on the 2-D view: x4 (N, C, H, W), w4 (out, C/groups, kh, kw);
        returns (N, out, OH, OW) and keeps on ``ctx`` what :meth:`_correlate_backward` needs."""
        xp = backend.xp
        out = self.out_channels
        if self.is_depthwise:
            xpad = windows.pad2d(x4, self.pads)
            w_dw = xp.reshape(w4, (self.in_channels, out // self.in_channels, *self._kernel2))
            y = windows.depthwise(xpad, w_dw, self._stride2, self._dilation2)
            if self.bias is not None:
                y += xp.reshape(self.bias.data, (1, out, 1, 1))
            ctx.xpad, ctx.w_dw, ctx.x_shape = xpad, w_dw, tuple(x4.shape)
            return y
        n, _, h, w = x4.shape
        oh, ow = (windows.out_size(size, k, s, p, d) for size, k, s, p, d in
                  zip((h, w), self._kernel2, self._stride2, self._pads, self._dilation2))
        w2 = self._flat_kernel(w4)
        # a spare im2col matrix of the library's (this call holds it until its backward)
        workspace = backend.library.take_workspace(windows.im2col_shape(
            tuple(x4.shape), self._kernel2, self._stride2, self.pads, dilation=self._dilation2,
            groups=self.groups), x4.dtype)
        y, cols = self._windows_gemm(x4, w2, workspace)
        if self.bias is not None:
            y += self.bias.data
        ctx.cols, ctx.w2, ctx.x_shape = cols, w2, tuple(x4.shape)
        return xp.permute_dims(xp.reshape(y, (n, oh, ow, out)), (0, 3, 1, 2))

    def _correlate_backward(self, ctx: Any, g4: Any) -> tuple[Any, Any]:
        """(dL/dx4 or None, dL/dw4 or None) from g4 = dL/dy (N, out, OH, OW); the bias
        gradient goes straight to the bias."""
        xp = backend.xp
        if self.is_depthwise:
            if self.bias is not None and self.bias.trainable:
                self._add_bias_grad(self._rows(g4))
            dw4 = dx4 = None
            if self.weight.trainable:
                dw = windows.depthwise_weight_grad(ctx.xpad, g4, self._kernel2, self._stride2,
                                                   self._dilation2)
                dw4 = xp.reshape(dw, (self.out_channels, 1, *self._kernel2))
            if ctx.needs_input_grad:
                dx4 = windows.depthwise_input_grad(g4, ctx.w_dw, ctx.x_shape, self._stride2,
                                                   self.pads, self._dilation2)
            return dx4, dw4
        cols, w2 = ctx.cols, ctx.w2
        g = self._rows(g4)
        self._add_bias_grad(g)
        dw4 = self._unflat_kernel(self._weight_gemm(g, cols)) if self.weight.trainable else None
        # dW₂ has read the im2col rows: G @ W₂ may overwrite them (where it has their dtype)
        spare = self.groups == 1 and cols.dtype == g.dtype == w2.dtype
        dx4 = self._fold_gemm(g, w2, ctx.x_shape, scratch=cols if spare else None) \
            if ctx.needs_input_grad else None
        del ctx.cols  # the buffer is free again: the next forward writes into it
        backend.library.give_workspace(cols)
        return dx4, dw4

    def _rows(self, g4: Any) -> Any:
        """(N, out, OH, OW) -> (N·OH·OW, out): free when g4 is channels-last in memory."""
        xp = backend.xp
        return xp.reshape(xp.permute_dims(g4, (0, 2, 3, 1)), (-1, g4.shape[1]))

    def _add_bias_grad(self, g: Any) -> None:
        """dL/db = Σ over the rows of g (N·OH·OW, out), as a GEMV (:func:`ops.column_sums`)."""
        if self.bias is not None and self.bias.trainable:
            self.bias.add_grad(ops.column_sums(g))

    # ------------------------------------------------------------ the GEMM core
    def _flat_kernel(self, w4: Any) -> Any:
        """(rows, C/groups, kh, kw) -> W₂ (rows, kh·kw·C/groups), columns (i, j, c); per
        group (groups, rows/groups, kh·kw·C/groups) when groups > 1."""
        xp = backend.xp
        w2 = xp.permute_dims(w4, (0, 2, 3, 1))
        if self.groups == 1:
            return xp.reshape(w2, (w4.shape[0], -1))
        return xp.reshape(w2, (self.groups, w4.shape[0] // self.groups, -1))

    def _unflat_kernel(self, w2: Any) -> Any:
        """The inverse of :meth:`_flat_kernel`: (rows, C/groups, kh, kw)."""
        xp = backend.xp
        kh, kw = self._kernel2
        rows = w2.shape[0] * w2.shape[1] if self.groups > 1 else w2.shape[0]
        return xp.permute_dims(xp.reshape(w2, (rows, kh, kw, -1)), (0, 3, 1, 2))

    def _windows_gemm(self, x4: Any, w2: Any, workspace: Any) -> tuple[Any, Any]:
        """(Y, cols): cols = im2col(x4) and Y = cols @ W₂ᵀ (N·OH·OW, rows), per group when
        grouped (a batched GEMM whose (groups, N·OH·OW, rows/groups) result is laid out as
        (N·OH·OW, rows))."""
        xp = backend.xp
        cols = windows.im2col(x4, self._kernel2, self._stride2, self.pads, out=workspace,
                              dilation=self._dilation2, groups=self.groups)
        if self.groups == 1:
            return cols @ w2.T, cols  # (N·OH·OW, rows): the one GEMM
        y = cols @ xp.permute_dims(w2, (0, 2, 1))  # (groups, N·OH·OW, rows/groups)
        return xp.reshape(xp.permute_dims(y, (1, 0, 2)), (cols.shape[1], -1)), cols

    def _grouped(self, g: Any) -> Any:
        """(N·OH·OW, rows) -> (groups, N·OH·OW, rows/groups)."""
        xp = backend.xp
        return xp.permute_dims(xp.reshape(g, (g.shape[0], self.groups, -1)), (1, 0, 2))

    def _weight_gemm(self, g: Any, cols: Any) -> Any:
        """dW₂ = Gᵀ @ cols (per group when grouped)."""
        if self.groups == 1:
            return g.T @ cols
        return backend.xp.permute_dims(self._grouped(g), (0, 2, 1)) @ cols

    def _fold_gemm(self, g: Any, w2: Any, x_shape: tuple[int, ...], scratch: Any = None) -> Any:
        """col2im(G @ W₂) into an (N, C, H, W) array of shape ``x_shape``; ``scratch``: a
        spare array of the shape of G @ W₂ (the im2col buffer) the product may go into."""
        args = (x_shape, self._kernel2, self._stride2, self.pads)
        if self.groups == 1 and (x_shape[1] < FUSED_FOLD_CHANNELS
                                 or backend.library.fused("col2im", g.dtype) is not None):
            # few channels, or a one-pass col2im: one GEMM, then the scatter-add of its rows
            product = g @ w2 if scratch is None else backend.library.matmul_into(g, w2, out=scratch)
            return windows.col2im(product, *args, dilation=self._dilation2)
        # one (N·OH·OW, C) GEMM block (a batched GEMM per group) per kernel offset, folded in
        return windows.col2im_matmul(g, w2, *args, dilation=self._dilation2, groups=self.groups)
