"""Layers that only change an array's shape (the batch axis stays first).

Flatten:  (N, d₁, …, d_k) -> (N, d₁·…·d_k) in C (row-major) order, as PyTorch's
          ``nn.Flatten`` and Keras's ``Flatten`` (channels_first) do;
Reshape:  (N, …) -> (N, *shape), one entry of ``shape`` may be −1 (inferred).
Backward of both: dL/dx = g reshaped back to the input's shape (kept on the
call's context).
"""

from __future__ import annotations

import math
from typing import Any

from dnn import backend
from dnn.errors import ShapeError
from dnn.layers.base import Context, Layer, register


class _ShapeOnly(Layer):
    def backward_with(self, ctx: Context, grad: Any) -> Any:
        return backend.xp.reshape(grad, ctx.input_shape)


@register
class Flatten(_ShapeOnly):
    """``Flatten()``: (N, ...) -> (N, prod(...))."""

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        if x.ndim < 1:
            raise ShapeError(f"{self.describe()}: expected an input with a batch axis, got a 0-d array")
        ctx.input_shape = tuple(x.shape)
        return backend.xp.reshape(x, (x.shape[0], math.prod(x.shape[1:])))

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (input_shape[0], math.prod(input_shape[1:]))


@register
class Reshape(_ShapeOnly):
    """``Reshape(shape)``: (N, ...) -> (N, *shape); ``shape`` excludes the batch axis."""

    def __init__(self, shape: tuple[int, ...] | list[int]) -> None:
        try:
            self.shape = tuple(int(d) for d in shape)
        except (TypeError, ValueError):
            raise ValueError(f"Reshape: shape must be a sequence of ints, got {shape!r}") from None
        if sum(d == -1 for d in self.shape) > 1 or any(d == 0 or d < -1 for d in self.shape):
            raise ValueError(
                f"Reshape: shape must hold positive ints and at most one -1, got {shape!r}"
            )

    def _target(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        size = math.prod(input_shape[1:])
        known = math.prod(d for d in self.shape if d != -1)
        if (-1 in self.shape and size % known) or (-1 not in self.shape and size != known):
            raise ShapeError(
                f"{self.describe()}: cannot reshape input of shape {tuple(input_shape)} "
                f"({size} values per sample) to (batch, {', '.join(map(str, self.shape))})"
            )
        return tuple(size // known if d == -1 else d for d in self.shape)

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        if x.ndim < 1:
            raise ShapeError(f"{self.describe()}: expected an input with a batch axis, got a 0-d array")
        target = self._target(tuple(x.shape))
        ctx.input_shape = tuple(x.shape)
        return backend.xp.reshape(x, (x.shape[0], *target))

    def get_config(self) -> dict[str, Any]:
        return {"shape": list(self.shape)}

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (input_shape[0], *self._target(tuple(input_shape)))
