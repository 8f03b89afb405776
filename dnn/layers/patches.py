"""Patches: cut NCHW images into non-overlapping p_h × p_w tiles, one token per tile.

With P = (H/p_h)·(W/p_w) tiles in row-major order (tile k = i·(W/p_w) + j covers
rows i·p_h … i·p_h + p_h − 1 and columns j·p_w … j·p_w + p_w − 1):

  Forward:  y[n, k, (c, a, b)] = x[n, c, i·p_h + a, j·p_w + b]
            (N, C, H, W) -> (N, P, C·p_h·p_w), each token's features ordered (c, a, b)
  Backward: dL/dx[n, c, i·p_h + a, j·p_w + b] = g[n, k, (c, a, b)]
            the same permutation run backwards (each pixel lies in exactly one tile)

As array operations: reshape to (N, C, H/p_h, p_h, W/p_w, p_w), move the axes to
(N, H/p_h, W/p_w, C, p_h, p_w), reshape to (N, P, C·p_h·p_w); the backward undoes
the three steps. Nothing is learned: ``Patches(p)`` followed by ``Dense(C·p·p, E)``
is the patch embedding of a Vision Transformer (Dosovitskiy et al. 2021), the same
function as ``Conv2D(C, E, p, stride=p)`` with its (E, C, p, p) weight read as the
Dense weight ``weight.reshape(E, C·p·p).T``.

PyTorch oracle: ``torch.nn.functional.unfold(x, p, stride=p).transpose(1, 2)`` gives
the same (N, P, C·p_h·p_w) array (same tile order, same feature order).
"""

from __future__ import annotations

from typing import Any

from dnn import backend
from dnn.errors import ShapeError
from dnn.layers.base import Context, Layer, positive_ints, register


@register
class Patches(Layer):
    """``Patches(patch_size)``: (N, C, H, W) -> (N, P, C·p_h·p_w) tokens; ``patch_size`` is
    an int or a pair (p_h, p_w) that divides H and W."""

    def __init__(self, patch_size: int | tuple[int, int] | list[int]) -> None:
        pair = (patch_size, patch_size) if not isinstance(patch_size, (tuple, list)) else patch_size
        if len(pair) != 2:
            raise ValueError(f"Patches: patch_size must be an int or a pair of ints, got {patch_size!r}")
        self.patch_size = positive_ints("Patches", patch_height=pair[0], patch_width=pair[1])

    def _grid(self, shape: tuple[int, ...]) -> tuple[int, int]:
        """(H/p_h, W/p_w) for an input of ``shape``, after checking it."""
        ph, pw = self.patch_size
        if len(shape) != 4 or shape[2] % ph or shape[3] % pw:
            raise ShapeError(f"{self.describe()}: expected images (batch, channels, height, width) "
                             f"with height a multiple of {ph} and width a multiple of {pw}, got "
                             f"{tuple(shape)}")
        return shape[2] // ph, shape[3] // pw

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        xp = backend.xp
        rows, cols = self._grid(tuple(x.shape))
        (ph, pw), (n, c) = self.patch_size, x.shape[:2]
        ctx.shape = tuple(x.shape)
        tiles = xp.reshape(x, (n, c, rows, ph, cols, pw))
        tiles = xp.permute_dims(tiles, (0, 2, 4, 1, 3, 5))  # (N, rows, cols, C, p_h, p_w)
        return xp.reshape(tiles, (n, rows * cols, c * ph * pw))

    def backward_with(self, ctx: Context, grad: Any) -> Any:
        if not ctx.needs_input_grad:
            return None
        xp = backend.xp
        n, c, h, w = ctx.shape
        (ph, pw) = self.patch_size
        tiles = xp.reshape(grad, (n, h // ph, w // pw, c, ph, pw))
        tiles = xp.permute_dims(tiles, (0, 3, 1, 4, 2, 5))  # (N, C, rows, p_h, cols, p_w)
        return xp.reshape(tiles, (n, c, h, w))

    def get_config(self) -> dict[str, Any]:
        return {"patch_size": list(self.patch_size)}

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        rows, cols = self._grid(tuple(input_shape))
        ph, pw = self.patch_size
        return (input_shape[0], rows * cols, input_shape[1] * ph * pw)
