"""Batch normalisation (Ioffe & Szegedy 2015) with PyTorch's semantics.

Input (N, C) or (N, C, *spatial), e.g. (N, C, H, W); statistics are taken per
channel C over every other axis (m = N·H·W values per channel).

Training:  μ = mean(x),  σ² = mean((x − μ)²)  (biased),  x̂ = (x − μ) / √(σ² + ε),
           y = γ·x̂ + β;
           running_mean ← (1 − momentum)·running_mean + momentum·μ
           running_var  ← (1 − momentum)·running_var  + momentum·σ²·m/(m − 1)  (unbiased)
Eval:      x̂ = (x − running_mean) / √(running_var + ε),  y = γ·x̂ + β.

Backward (g = dL/dy, Σ over the reduced axes):
  dL/dγ = Σ g·x̂,   dL/dβ = Σ g
  training: dL/dx = γ/(m·√(σ² + ε)) · (m·g − Σ g − x̂·Σ g·x̂)   (μ and σ² depend on x)
  eval:     dL/dx = g·γ/√(running_var + ε)                       (the statistics are constants)

The running statistics are buffers (``buffer_names``), saved in ``state_dict``
and updated in place, so arrays handed out by ``state_dict()`` stay current
(a layer applied twice in a training pass updates them once per application).
Each application keeps x̂ (the input's size) and one scale per channel on its
context.
"""

from __future__ import annotations

import math
from typing import Any

from dnn import backend
from dnn import init as initializers
from dnn.errors import ShapeError
from dnn.layers.base import Context, Layer, check_penalties, register
from dnn.parameter import Parameter


@register
class BatchNorm(Layer):
    param_names = ("weight", "bias")
    buffer_names = ("running_mean", "running_var")

    def __init__(self, num_features: int, momentum: float = 0.1, eps: float = 1e-5,
                 l1: float = 0.0, l2: float = 0.0) -> None:
        if not isinstance(num_features, int) or isinstance(num_features, bool) or num_features <= 0:
            raise ValueError(f"BatchNorm: num_features must be a positive int, got {num_features!r}")
        if not isinstance(momentum, (int, float)) or not 0.0 <= momentum <= 1.0:
            raise ValueError(
                f"BatchNorm: momentum must be a number in [0, 1], got {momentum!r} "
                "(PyTorch's momentum=None, a cumulative average, is not supported)"
            )
        if not eps > 0.0:
            raise ValueError(f"BatchNorm: eps must be > 0, got {eps!r}")
        self.num_features, self.momentum, self.eps = num_features, float(momentum), float(eps)
        self.l1, self.l2 = check_penalties("BatchNorm", l1=l1, l2=l2)  # on γ (Keras: gamma_regularizer)
        self.weight = Parameter(initializers.ones((num_features,)), "weight", l1=self.l1, l2=self.l2)
        self.bias = Parameter(initializers.zeros((num_features,)), "bias")
        self.running_mean = initializers.zeros((num_features,))
        self.running_var = initializers.ones((num_features,))

    def _check(self, x: Any) -> None:
        if x.ndim < 2 or x.shape[1] != self.num_features:
            raise ShapeError(
                f"{self.describe()}: expected input of shape (batch, {self.num_features}) or "
                f"(batch, {self.num_features}, H, W), got {tuple(x.shape)}"
            )

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        xp = backend.xp
        self._check(x)
        axes = (0, *range(2, x.ndim))
        bshape = (1, self.num_features) + (1,) * (x.ndim - 2)  # broadcast per channel
        count = math.prod(x.shape) // self.num_features
        if training:
            if count < 2:
                raise ValueError(
                    f"{self.describe()}: training needs more than 1 value per channel to "
                    f"compute batch statistics, got input of shape {tuple(x.shape)}"
                )
            mean = xp.mean(x, axis=axes, keepdims=True)
            centred = x - mean
            var = xp.mean(centred * centred, axis=axes, keepdims=True)
            m = self.momentum
            self.running_mean[...] = (1.0 - m) * self.running_mean + m * xp.reshape(mean, (-1,))
            unbiased = xp.reshape(var, (-1,)) * (count / (count - 1))
            self.running_var[...] = (1.0 - m) * self.running_var + m * unbiased
        else:
            centred = x - xp.reshape(self.running_mean, bshape)
            var = xp.reshape(self.running_var, bshape)
        inv_std = 1.0 / xp.sqrt(var + self.eps)
        x_hat = centred * inv_std
        ctx.x_hat, ctx.inv_std, ctx.training, ctx.axes, ctx.count = x_hat, inv_std, training, axes, count
        return x_hat * xp.reshape(self.weight.data, bshape) + xp.reshape(self.bias.data, bshape)

    def backward_with(self, ctx: Context, grad: Any) -> Any:
        xp = backend.xp
        x_hat, inv_std, axes, count = ctx.x_hat, ctx.inv_std, ctx.axes, ctx.count
        bshape = inv_std.shape
        # Σg and Σg·x̂ feed both the parameter gradients and the training-mode dL/dx
        need_sums = ctx.needs_input_grad and ctx.training
        sum_g = sum_gx = None
        if need_sums or self.bias.trainable:
            sum_g = xp.sum(grad, axis=axes, keepdims=True)
            self.bias.add_grad(xp.reshape(sum_g, (-1,)))
        if need_sums or self.weight.trainable:
            sum_gx = xp.sum(grad * x_hat, axis=axes, keepdims=True)
            self.weight.add_grad(xp.reshape(sum_gx, (-1,)))
        if not ctx.needs_input_grad:
            return None
        scale = xp.reshape(self.weight.data, bshape) * inv_std
        if not ctx.training:
            return grad * scale
        # = γ/(m·σ)·(m·g − Σg − x̂·Σg·x̂), arranged to need four full-size operations
        return scale * ((grad - sum_g * (1.0 / count)) - x_hat * (sum_gx * (1.0 / count)))

    def get_config(self) -> dict[str, Any]:
        return {"num_features": self.num_features, "momentum": self.momentum, "eps": self.eps,
                "l1": self.l1, "l2": self.l2}

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(input_shape) < 2 or input_shape[1] != self.num_features:
            raise ShapeError(
                f"{self.describe()}: expected input of shape (batch, {self.num_features}, ...), "
                f"got {tuple(input_shape)}"
            )
        return tuple(input_shape)
