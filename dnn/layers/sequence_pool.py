"""SequenceAvgPool: the mean over the tokens (time steps) of a sequence.

  Forward:  y[n, c] = (1/T) Σ_t x[n, t, c]          (N, T, C) -> (N, C)
  Backward: dL/dx[n, t, c] = g[n, c] / T              the same share for every token

The pooling a Vision Transformer can use instead of a class token (mean-pooled
ViTs, e.g. Beyer et al. 2022), and a sequence classifier's summary of its
tokens. The axes are batch-first and channels-last, as ``MultiHeadAttention``,
``Dense`` and ``LayerNorm`` read tokens (Keras' ``GlobalAveragePooling1D``
with the default ``channels_last``); ``GlobalAvgPool2D`` is its NCHW image cousin.

PyTorch oracle: ``x.mean(dim=1)``.
"""

from __future__ import annotations

from typing import Any

from dnn import backend
from dnn.errors import ShapeError
from dnn.layers.base import Context, Layer, register


@register
class SequenceAvgPool(Layer):
    """``SequenceAvgPool()``: (N, T, C) -> (N, C), the mean over the T tokens."""

    def _check(self, shape: tuple[int, ...]) -> None:
        if len(shape) != 3 or shape[1] == 0:
            raise ShapeError(f"{self.describe()}: expected tokens (batch, tokens, channels) with "
                             f"at least one token, got {tuple(shape)}")

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        self._check(tuple(x.shape))
        ctx.tokens = int(x.shape[1])
        return backend.xp.mean(x, axis=1)

    def backward_with(self, ctx: Context, grad: Any) -> Any:
        if not ctx.needs_input_grad:
            return None
        tokens = ctx.tokens
        return grad[:, None, :] * backend.xp.full((1, tokens, 1), 1.0 / tokens, dtype=grad.dtype)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        self._check(tuple(input_shape))
        return (input_shape[0], input_shape[2])
