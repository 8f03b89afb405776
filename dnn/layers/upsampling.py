"""Nearest-neighbour upsampling of NCHW images by integer factors (Keras's ``UpSampling2D``).

Forward, with scale (sh, sw): every pixel becomes an sh × sw block of copies,

    y[n, c, h, w] = x[n, c, ⌊h / sh⌋, ⌊w / sw⌋]        (N, C, sh·H, sw·W)

computed as a broadcast: x viewed as (N, C, H, 1, W, 1), repeated to (N, C, H, sh, W, sw)
and read as (N, C, sh·H, sw·W). Backward, the adjoint: each input pixel collects the
gradient of its block,

    dL/dx[n, c, p, q] = Σ_{a < sh, b < sw} g[n, c, sh·p + a, sw·q + b]
                      = sum over axes 3 and 5 of g viewed as (N, C, H, sh, W, sw).

PyTorch oracle: ``torch.nn.Upsample(scale_factor=(sh, sw), mode="nearest")`` (for integer
factors its source index ⌊h·(1/sh)⌋ is ⌊h / sh⌋). Only ``mode="nearest"`` is implemented.
"""

from __future__ import annotations

from typing import Any

from dnn import backend
from dnn.layers.base import Context, Layer, register
from dnn.layers.conv_base import check_nchw, pair

MODES = ("nearest",)


@register
class UpSampling2D(Layer):
    """``UpSampling2D(scale=2, mode="nearest")``: (N, C, H, W) -> (N, C, sh·H, sw·W);
    ``scale`` an int or a pair of ints >= 1."""

    def __init__(self, scale: int | tuple[int, int] = 2, mode: str = "nearest") -> None:
        self.scale = pair(scale, "scale", "UpSampling2D", 1)
        if mode not in MODES:
            raise ValueError(f"UpSampling2D: mode must be one of {list(MODES)} (bilinear is not "
                             f"implemented), got {mode!r}")
        self.mode = mode

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        check_nchw(self, x, None, (1, 1), (0, 0))
        xp = backend.xp
        n, c, h, w = x.shape
        sh, sw = self.scale
        ctx.shape = tuple(x.shape)
        if sh == sw == 1:
            return xp.asarray(x, copy=True)  # never a view of the input
        blocks = xp.broadcast_to(xp.reshape(x, (n, c, h, 1, w, 1)), (n, c, h, sh, w, sw))
        return xp.reshape(blocks, (n, c, h * sh, w * sw))

    def backward_with(self, ctx: Context, grad: Any) -> Any:
        xp = backend.xp
        n, c, h, w = ctx.shape
        sh, sw = self.scale
        return xp.sum(xp.reshape(grad, (n, c, h, sh, w, sw)), axis=(3, 5))

    def get_config(self) -> dict[str, Any]:
        return {"scale": list(self.scale), "mode": self.mode}

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        n, c, h, w = input_shape
        return (n, c, h * self.scale[0], w * self.scale[1])
