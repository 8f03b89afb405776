"""Group normalisation (Wu & He 2018) over groups of channels, per sample.

Input x: (N, C, *) (e.g. (N, C), (N, C, L), (N, C, H, W)); the C channels form G
groups of C/G consecutive channels. For each sample n and group k (m = C/G·prod(*)
values, viewed as x of shape (N, G, m)):
  μ = mean(x),  σ² = mean((x − μ)²)  (biased),  x̂ = (x − μ) / √(σ² + ε),
  y = γ_c ⊙ x̂ + β_c           γ, β of shape (C,), per channel (ones and zeros at start)

Backward (g = dL/dy, ĝ = g ⊙ γ_c, Σ over the m values of one sample's group):
  dL/dγ_c = Σ_{n, *} g ⊙ x̂,   dL/dβ_c = Σ_{n, *} g
  dL/dx = 1/(m·√(σ² + ε)) · (m·ĝ − Σ ĝ − x̂·Σ ĝ·x̂)      (LayerNorm's, per group)

G = 1 normalises each sample over all its values (LayerNorm over (C, *) with a
per-channel affine), G = C each channel of each sample on its own (instance
normalisation). The statistics are per sample, so training and eval compute the
same function. Each application keeps x̂ and one scale per (sample, group).

``l1``/``l2`` penalise γ (Keras's ``gamma_regularizer``; as LayerNorm and BatchNorm).

PyTorch oracle: ``torch.nn.GroupNorm(num_groups, num_channels, eps)``; its
``weight`` and ``bias`` (C,) are ours.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from dnn import backend
from dnn import init as initializers
from dnn.errors import ShapeError
from dnn.layers.base import Context, Layer, check_penalties, positive_ints, register
from dnn.parameter import Parameter


@register
class GroupNorm(Layer):
    """``GroupNorm(num_groups, num_channels, eps=1e-5, l1=0, l2=0)`` on (N, C, *) inputs."""

    param_names = ("weight", "bias")

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5,
                 l1: float = 0.0, l2: float = 0.0) -> None:
        num_groups, num_channels = positive_ints("GroupNorm", num_groups=num_groups,
                                                 num_channels=num_channels)
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels must be divisible by num_groups, got "
                             f"num_channels={num_channels}, num_groups={num_groups}")
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not 0.0 < eps < math.inf:
            raise ValueError(f"GroupNorm: eps must be a finite number > 0, got {eps!r}")
        self.num_groups, self.num_channels, self.eps = num_groups, num_channels, float(eps)
        self.l1, self.l2 = check_penalties("GroupNorm", l1=l1, l2=l2)
        self.weight = Parameter(initializers.ones((num_channels,)), "weight", l1=self.l1, l2=self.l2)
        self.bias = Parameter(initializers.zeros((num_channels,)), "bias")

    def _check(self, shape: tuple[int, ...]) -> None:
        if len(shape) < 2 or shape[1] != self.num_channels:
            raise ShapeError(f"{self.describe()}: expected input of shape (batch, "
                             f"{self.num_channels}, ...), got {tuple(shape)}")

    def _grouped(self, shape: tuple[int, ...]) -> tuple[int, int, int]:
        """(N, G, m): the (N, C, *) shape viewed as one row of m values per (sample, group)."""
        m = self.num_channels // self.num_groups
        for d in shape[2:]:
            m *= int(d)
        return (shape[0], self.num_groups, m)

    def _per_channel(self, p: Parameter, ndim: int) -> Any:
        """γ or β as (C, 1, ..., 1), broadcasting over the axes after the channels."""
        return backend.xp.reshape(p.data, (self.num_channels,) + (1,) * (ndim - 2))

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        xp = backend.xp
        self._check(tuple(x.shape))
        grouped = xp.reshape(x, self._grouped(tuple(x.shape)))
        centred = grouped - xp.mean(grouped, axis=2, keepdims=True)
        inv_std = 1.0 / xp.sqrt(xp.mean(centred * centred, axis=2, keepdims=True) + self.eps)
        x_hat = xp.reshape(centred * inv_std, tuple(x.shape))
        ctx.x_hat, ctx.inv_std = x_hat, inv_std
        return x_hat * self._per_channel(self.weight, x.ndim) + self._per_channel(self.bias, x.ndim)

    def backward_with(self, ctx: Context, grad: Any) -> Any:
        xp = backend.xp
        x_hat, inv_std = ctx.x_hat, ctx.inv_std
        others = (0, *range(2, grad.ndim))  # every axis but the channels
        if self.weight.trainable:
            self.weight.add_grad(xp.sum(grad * x_hat, axis=others))
        if self.bias.trainable:
            self.bias.add_grad(xp.sum(grad, axis=others))
        if not ctx.needs_input_grad:
            return None
        shape = self._grouped(tuple(grad.shape))
        g_hat = xp.reshape(grad * self._per_channel(self.weight, grad.ndim), shape)
        x_hat_g = xp.reshape(x_hat, shape)
        mean_g = xp.mean(g_hat, axis=2, keepdims=True)
        mean_gx = xp.mean(g_hat * x_hat_g, axis=2, keepdims=True)
        return xp.reshape(inv_std * ((g_hat - mean_g) - x_hat_g * mean_gx), tuple(grad.shape))

    def get_config(self) -> dict[str, Any]:
        return {"num_groups": self.num_groups, "num_channels": self.num_channels, "eps": self.eps,
                "l1": self.l1, "l2": self.l2}

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        self._check(tuple(input_shape))
        return tuple(input_shape)
