"""Inverted dropout.

Training: y = x · m / (1 − p) with m ~ Bernoulli(1 − p) drawn per element;
dL/dx = g · m / (1 − p). Not training: y = x, dL/dx = g.
``forward(x, training=True, mask=m)`` uses a given 0/1 mask (deterministic tests).
Each application draws its own mask and keeps it (scaled) on its context.
"""

from __future__ import annotations

from typing import Any

from dnn import backend
from dnn.backend import random
from dnn.errors import ShapeError
from dnn.layers.base import Context, Layer, register


@register
class Dropout(Layer):
    def __init__(self, p: float = 0.5) -> None:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p!r}")
        self.p = float(p)

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False,
                     mask: Any = None) -> Any:
        ctx.scaled_mask = None
        if not training or self.p == 0.0:
            return x
        if mask is None:
            mask = random.bernoulli(tuple(x.shape), 1.0 - self.p, dtype=x.dtype)
        elif tuple(mask.shape) != tuple(x.shape):
            raise ShapeError(
                f"{self.describe()}: mask shape {tuple(mask.shape)} does not match "
                f"input shape {tuple(x.shape)}"
            )
        else:
            mask = backend.xp.astype(backend.asarray(mask), x.dtype)
        ctx.scaled_mask = scaled_mask = mask * (1.0 / (1.0 - self.p))
        return x * scaled_mask

    def backward_with(self, ctx: Context, grad: Any) -> Any:
        return grad if ctx.scaled_mask is None else grad * ctx.scaled_mask

    def get_config(self) -> dict[str, Any]:
        return {"p": self.p}
