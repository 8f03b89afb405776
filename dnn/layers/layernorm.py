"""Layer normalisation (Ba, Kiros & Hinton 2016) over the last dimensions.

For ``normalized_shape`` S (the last len(S) axes, m = prod(S) values per sample):
  μ = mean(x),  σ² = mean((x − μ)²)  (biased),  x̂ = (x − μ) / √(σ² + ε),
  y = γ ⊙ x̂ + β            γ, β of shape S (ones and zeros at start)

Backward (g = dL/dy, ĝ = g ⊙ γ, Σ over the normalised axes of one sample):
  dL/dγ = Σ_batch g ⊙ x̂,   dL/dβ = Σ_batch g
  dL/dx = 1/(m·√(σ² + ε)) · (m·ĝ − Σ ĝ − x̂·Σ ĝ·x̂)

The statistics are per sample, so training and eval compute the same function
(as in PyTorch's ``nn.LayerNorm``). Each application keeps x̂ and one scale per
sample on its context.
"""

from __future__ import annotations

from typing import Any

from dnn import backend
from dnn import init as initializers
from dnn.errors import ShapeError
from dnn.layers.base import Context, Layer, check_penalties, register
from dnn.parameter import Parameter


@register
class LayerNorm(Layer):
    param_names = ("weight", "bias")

    def __init__(self, normalized_shape: int | tuple[int, ...] | list[int], eps: float = 1e-5,
                 l1: float = 0.0, l2: float = 0.0) -> None:
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        if not shape or any(not isinstance(d, int) or isinstance(d, bool) or d <= 0 for d in shape):
            raise ValueError(
                f"LayerNorm: normalized_shape must be a positive int or a tuple of them, "
                f"got {normalized_shape!r}"
            )
        if not eps > 0.0:
            raise ValueError(f"LayerNorm: eps must be > 0, got {eps!r}")
        self.normalized_shape, self.eps = shape, float(eps)
        self.l1, self.l2 = check_penalties("LayerNorm", l1=l1, l2=l2)  # on γ, as Keras's gamma_regularizer
        self.weight = Parameter(initializers.ones(shape), "weight", l1=self.l1, l2=self.l2)
        self.bias = Parameter(initializers.zeros(shape), "bias")

    def _check(self, shape: tuple[int, ...]) -> None:
        k = len(self.normalized_shape)
        if len(shape) <= k or tuple(shape[-k:]) != self.normalized_shape:
            raise ShapeError(
                f"{self.describe()}: expected input of shape (batch, ..., "
                f"{', '.join(map(str, self.normalized_shape))}), got {tuple(shape)}"
            )

    def _axes(self) -> tuple[int, ...]:
        return tuple(range(-len(self.normalized_shape), 0))

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        xp = backend.xp
        self._check(tuple(x.shape))
        axes = self._axes()
        centred = x - xp.mean(x, axis=axes, keepdims=True)
        inv_std = 1.0 / xp.sqrt(xp.mean(centred * centred, axis=axes, keepdims=True) + self.eps)
        x_hat = centred * inv_std
        ctx.x_hat, ctx.inv_std = x_hat, inv_std
        return x_hat * self.weight.data + self.bias.data

    def backward_with(self, ctx: Context, grad: Any) -> Any:
        xp = backend.xp
        x_hat, inv_std = ctx.x_hat, ctx.inv_std
        axes = self._axes()
        lead = tuple(range(grad.ndim - len(axes)))
        if self.weight.trainable:
            self.weight.add_grad(xp.sum(grad * x_hat, axis=lead))
        if self.bias.trainable:
            self.bias.add_grad(xp.sum(grad, axis=lead))
        if not ctx.needs_input_grad:
            return None
        g_hat = grad * self.weight.data
        mean_g = xp.mean(g_hat, axis=axes, keepdims=True)
        mean_gx = xp.mean(g_hat * x_hat, axis=axes, keepdims=True)
        return inv_std * ((g_hat - mean_g) - x_hat * mean_gx)

    def get_config(self) -> dict[str, Any]:
        return {"normalized_shape": list(self.normalized_shape), "eps": self.eps,
                "l1": self.l1, "l2": self.l2}

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        self._check(tuple(input_shape))
        return tuple(input_shape)
