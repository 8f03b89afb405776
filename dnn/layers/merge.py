"""Merge layers: one output from a list of inputs x_0 … x_{k−1} (fan-in of a graph).

Add:          y = Σᵢ xᵢ                         dL/dxᵢ = g
Subtract:     y = x₀ − x₁                       dL/dx₀ = g,  dL/dx₁ = −g
Multiply:     y = Πᵢ xᵢ (elementwise)           dL/dxᵢ = g · Π_{j≠i} xⱼ
Average:      y = (1/k)·Σᵢ xᵢ                   dL/dxᵢ = g / k
Concatenate:  y = [x₀, …, x_{k−1}] along axis   dL/dxᵢ = the slice of g that xᵢ filled

Inputs of Add/Subtract/Multiply/Average must have one shape; those of
Concatenate may differ along ``axis`` only. ``backward`` returns a list, one
gradient per input.
"""

from __future__ import annotations

from typing import Any

from dnn import backend
from dnn.errors import ShapeError
from dnn.layers.base import Context, Layer, register


class _Merge(Layer):
    """Checks the list of inputs: a list of ``min_inputs`` or more arrays of one shape."""

    min_inputs, max_inputs = 2, None

    def _check(self, xs: Any) -> list[Any]:
        if not isinstance(xs, (list, tuple)):
            raise TypeError(f"{self.describe()}: expected a list of inputs, got {type(xs).__name__}")
        count = len(xs)
        if count < self.min_inputs or (self.max_inputs is not None and count > self.max_inputs):
            wanted = (f"exactly {self.max_inputs}" if self.max_inputs == self.min_inputs
                      else f"at least {self.min_inputs}")
            raise ValueError(f"{self.describe()}: expected {wanted} inputs, got {count}")
        self._check_shapes([tuple(x.shape) for x in xs])
        return list(xs)

    def _check_shapes(self, shapes: list[tuple[int, ...]]) -> None:
        for i, shape in enumerate(shapes[1:], 1):
            if shape != shapes[0]:
                raise ShapeError(f"{self.describe()}: all inputs must have the same shape, got "
                                 f"input 0 of shape {shapes[0]} and input {i} of shape {shape}")

    def output_shape(self, input_shape: Any) -> tuple[int, ...]:
        return tuple(input_shape[0])


def _sum(xs: list[Any]) -> Any:
    """x₀ + x₁ + … in one new array."""
    y = xs[0] + xs[1]
    for other in xs[2:]:
        y += other
    return y


@register
class Add(_Merge):
    """y = Σᵢ xᵢ;  dL/dxᵢ = g."""

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        xs = self._check(x)
        ctx.count = len(xs)
        return _sum(xs)

    def backward_with(self, ctx: Context, grad: Any) -> list[Any]:
        return [grad] * ctx.count


@register
class Subtract(_Merge):
    """y = x₀ − x₁;  dL/dx₀ = g, dL/dx₁ = −g."""

    max_inputs = 2

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        a, b = self._check(x)
        return a - b

    def backward_with(self, ctx: Context, grad: Any) -> list[Any]:
        return [grad, -grad]


@register
class Multiply(_Merge):
    """y = Πᵢ xᵢ;  dL/dxᵢ = g · Π_{j≠i} xⱼ."""

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        ctx.xs = xs = self._check(x)
        y = xs[0] * xs[1]
        for other in xs[2:]:
            y *= other
        return y

    def backward_with(self, ctx: Context, grad: Any) -> list[Any]:
        xs = ctx.xs
        grads = []
        for i in range(len(xs)):
            g = grad
            for j, other in enumerate(xs):
                if j != i:
                    g = g * other
            grads.append(g)
        return grads


@register
class Average(_Merge):
    """y = (1/k)·Σᵢ xᵢ;  dL/dxᵢ = g / k."""

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        xs = self._check(x)
        ctx.count = len(xs)
        return _sum(xs) * (1.0 / len(xs))

    def backward_with(self, ctx: Context, grad: Any) -> list[Any]:
        return [grad * (1.0 / ctx.count)] * ctx.count


@register
class Concatenate(_Merge):
    """``Concatenate(axis=-1)``: y = [x₀, …, x_{k−1}] along ``axis`` (not the batch axis);
    dL/dxᵢ = g[..., offsetᵢ : offsetᵢ + sizeᵢ, ...]."""

    def __init__(self, axis: int = -1) -> None:
        if not isinstance(axis, int) or isinstance(axis, bool) or axis == 0:
            raise ValueError(f"Concatenate: axis must be a non-zero int (axis 0 is the batch), "
                             f"got {axis!r}")
        self.axis = axis

    def _check_shapes(self, shapes: list[tuple[int, ...]]) -> None:
        ndim = len(shapes[0])
        axis = self.axis % ndim if -ndim <= self.axis < ndim else None
        if axis is None or axis == 0:
            raise ShapeError(f"{self.describe()}: axis {self.axis} is not a feature axis of "
                             f"inputs of shape {shapes[0]}")
        for i, shape in enumerate(shapes[1:], 1):
            if len(shape) != ndim or any(a != b for k, (a, b) in enumerate(zip(shape, shapes[0]))
                                         if k != axis):
                raise ShapeError(f"{self.describe()}: inputs must match except along axis "
                                 f"{self.axis}, got input 0 of shape {shapes[0]} and input {i} "
                                 f"of shape {shape}")

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        xs = self._check(x)
        ctx.axis = self.axis % xs[0].ndim
        ctx.sizes = [int(v.shape[ctx.axis]) for v in xs]
        return backend.xp.concat(xs, axis=ctx.axis)

    def backward_with(self, ctx: Context, grad: Any) -> list[Any]:
        grads, start = [], 0
        for size in ctx.sizes:
            index = [slice(None)] * grad.ndim
            index[ctx.axis] = slice(start, start + size)
            grads.append(grad[tuple(index)])
            start += size
        return grads

    def get_config(self) -> dict[str, Any]:
        return {"axis": self.axis}

    def output_shape(self, input_shape: Any) -> tuple[int, ...]:
        shapes = [tuple(s) for s in input_shape]
        axis = self.axis % len(shapes[0])
        total = sum(s[axis] for s in shapes)
        return (*shapes[0][:axis], total, *shapes[0][axis + 1:])
