"""Pooling over kh × kw windows of NCHW images (PyTorch semantics, floor mode).

The windows are read as kh·kw strided slices of the (padded) input, one per
window offset (i, j) (:func:`dnn.backend.windows.window_slices`): each is an
(N, C, OH, OW) view, so pooling is kh·kw vectorised elementwise passes and
never a loop over samples or pixels. For the common non-overlapping case
(stride = kernel) the slices are exactly ``x.reshape(N, C, OH, kh, OW, kw)[:, :, :, i, :, j]``
and the backward assigns each slice's gradient in place (no zero fill, no adds).

MaxPool2D:  y = max_(i,j) X[.., s·p + i, s·q + j]  (X padded with −∞);
            dL/dx routes g[.., p, q] to the first arg-max of its window (row-major
            order, as PyTorch picks it: ties have one winner); other entries get 0.
AvgPool2D:  y = (1 / kh·kw) Σ_(i,j) X[.., s·p + i, s·q + j]  (X zero-padded; the
            padding counts in the divisor, PyTorch's count_include_pad=True);
            dL/dx: each window entry receives g / (kh·kw), summed where windows overlap.
GlobalAvgPool2D: (N, C, H, W) -> (N, C), y = mean over H, W;  dL/dx = g / (H·W) everywhere.
GlobalMaxPool2D: (N, C, H, W) -> (N, C), y = max over H, W;  dL/dx = g at the arg-max of each
            feature map, 0 elsewhere. Ties: ONE winner, the first maximum in row-major order
            (as ``torch.nn.AdaptiveMaxPool2d(1)`` and MaxPool2D pick it); ``torch.amax`` would
            instead split g evenly among the tied maxima — the same function, another subgradient.

With Numba installed (the ``fast`` extra), MaxPool2D on NumPy runs both directions as one
compiled loop each (:mod:`dnn.backend.numba_pool`), with the same results.

PyTorch oracles: ``torch.nn.functional.max_pool2d`` / ``avg_pool2d`` (kernel, stride, padding),
``adaptive_avg_pool2d(x, 1)`` and ``adaptive_max_pool2d(x, 1)`` flattened to (N, C).
"""

from __future__ import annotations

from typing import Any

from dnn import backend
from dnn.backend import windows
from dnn.errors import ShapeError
from dnn.layers.base import Context, Layer, register
from dnn.layers.conv_base import check_nchw, pair


class _Pool2D(Layer):
    """Shared arguments, checks, shapes and config of MaxPool2D and AvgPool2D."""

    def __init__(self, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] | None = None,
                 padding: int | tuple[int, int] = 0) -> None:
        name = type(self).__name__
        self.kernel_size = pair(kernel_size, "kernel_size", name, 1)
        self.stride = self.kernel_size if stride is None else pair(stride, "stride", name, 1)
        self.padding = pair(padding, "padding", name, 0)
        for p, k in zip(self.padding, self.kernel_size):
            if p > k // 2:
                raise ValueError(
                    f"{name}: padding must be at most half the kernel size, got padding="
                    f"{padding!r} for kernel_size={kernel_size!r}"
                )

    def _check_grad(self, ctx: Context, grad: Any) -> None:
        if tuple(grad.shape) != ctx.out_shape:
            raise ShapeError(f"{self.describe()}.backward: expected a gradient of the output's "
                             f"shape {ctx.out_shape}, got {tuple(grad.shape)}")

    def _windows(self, x: Any, pad_value: float) -> tuple[list[Any], tuple[int, ...]]:
        check_nchw(self, x, None, self.kernel_size, self.padding)
        xpad = windows.pad2d(x, self.padding, value=pad_value)
        return windows.window_slices(xpad, self.kernel_size, self.stride), tuple(xpad.shape)

    def get_config(self) -> dict[str, Any]:
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding)}

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        n, c, h, w = input_shape
        return (
            n, c,
            windows.out_size(h, self.kernel_size[0], self.stride[0], self.padding[0]),
            windows.out_size(w, self.kernel_size[1], self.stride[1], self.padding[1]),
        )


@register
class MaxPool2D(_Pool2D):
    """``MaxPool2D(kernel_size, stride=None, padding=0)``; stride defaults to kernel_size."""

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        xp = backend.xp
        fused = backend.library.fused("max_pool2d", x.dtype)
        if fused is not None:  # the same maximum and arg-max in one compiled pass
            check_nchw(self, x, None, self.kernel_size, self.padding)
            out_shape = self.output_shape(tuple(x.shape))
            best, ctx.index = fused(x, self.kernel_size, self.stride, self.padding, out_shape[2:])
            n, c, h, w = x.shape
            ph, pw = self.padding
            ctx.input_shape, ctx.out_shape = tuple(x.shape), out_shape
            ctx.padded_shape = (n, c, h + 2 * ph, w + 2 * pw)
            return best
        pieces, padded_shape = self._windows(x, float("-inf"))
        count = len(pieces)
        index_dtype = xp.int8 if count < 128 else xp.int32
        best, index = pieces[0], None
        for t in range(1, count):
            piece = pieces[t]
            better = piece > best  # strict: the first maximum keeps the window
            best = xp.maximum(best, piece)
            # t exceeds every index so far: max(index, t·[better]) sets t where better
            marked = windows.masked(better, xp.asarray(t, dtype=index_dtype))
            index = marked if index is None else xp.maximum(index, marked)
        if count == 1:
            best = best * 1.0  # a copy, never a view of the input
            index = xp.zeros(tuple(best.shape), dtype=index_dtype)
        ctx.index, ctx.padded_shape, ctx.input_shape = index, padded_shape, None
        ctx.out_shape = tuple(best.shape)
        return best

    def backward_with(self, ctx: Context, grad: Any) -> Any:
        self._check_grad(ctx, grad)
        index, padded_shape = ctx.index, ctx.padded_shape
        # after the fused forward, its backward routes g in one pass (the portable one
        # below reads the same index where the kernel does not serve g's dtype)
        fused = backend.library.fused("max_pool2d_grad", grad.dtype) \
            if ctx.input_shape is not None else None
        if fused is not None:
            return fused(grad, index, ctx.input_shape, self.kernel_size, self.stride, self.padding)
        count = self.kernel_size[0] * self.kernel_size[1]
        pieces = (windows.masked(index == t, grad) for t in range(count))
        dx = windows.fold_slices(pieces, padded_shape, self.kernel_size, self.stride, like=grad)
        return windows.crop2d(dx, self.padding)


@register
class AvgPool2D(_Pool2D):
    """``AvgPool2D(kernel_size, stride=None, padding=0)``; stride defaults to kernel_size."""

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        pieces, padded_shape = self._windows(x, 0.0)
        total = pieces[0]
        for piece in pieces[1:]:
            total = total + piece
        ctx.padded_shape = padded_shape
        y = total * (1.0 / len(pieces))
        ctx.out_shape = tuple(y.shape)
        return y

    def backward_with(self, ctx: Context, grad: Any) -> Any:
        self._check_grad(ctx, grad)
        padded_shape = ctx.padded_shape
        count = self.kernel_size[0] * self.kernel_size[1]
        share = grad * (1.0 / count)
        dx = windows.fold_slices((share for _ in range(count)), padded_shape,
                                 self.kernel_size, self.stride, like=grad)
        return windows.crop2d(dx, self.padding)


@register
class GlobalAvgPool2D(Layer):
    """``GlobalAvgPool2D()``: (N, C, H, W) -> (N, C), the mean over each feature map."""

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        check_nchw(self, x, None, (1, 1), (0, 0))
        ctx.shape = tuple(x.shape)
        return backend.xp.mean(x, axis=(2, 3))

    def backward_with(self, ctx: Context, grad: Any) -> Any:
        xp = backend.xp
        _, _, h, w = ctx.shape
        return grad[:, :, None, None] * xp.full((1, 1, h, w), 1.0 / (h * w), dtype=grad.dtype)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(input_shape[:2])


@register
class GlobalMaxPool2D(Layer):
    """``GlobalMaxPool2D()``: (N, C, H, W) -> (N, C), the maximum of each feature map; the
    gradient goes to its first arg-max (row-major), as in ``torch.nn.AdaptiveMaxPool2d(1)``."""

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        check_nchw(self, x, None, (1, 1), (0, 0))
        xp = backend.xp
        n, c, h, w = x.shape
        flat = xp.reshape(x, (n, c, h * w))
        ctx.index, ctx.shape = xp.argmax(flat, axis=2), tuple(x.shape)  # the first maximum
        return xp.max(flat, axis=2)

    def backward_with(self, ctx: Context, grad: Any) -> Any:
        xp = backend.xp
        n, c, h, w = ctx.shape
        index = ctx.index
        winner = xp.arange(h * w, dtype=index.dtype, device=index.device) == index[:, :, None]  # (N, C, H·W)
        return xp.reshape(windows.masked(winner, grad[:, :, None]), (n, c, h, w))

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(input_shape[:2])
