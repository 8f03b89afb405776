"""Fully connected layer.

Forward:  y = x @ W + b                      x: (N, in), W: (in, out), b: (out,)
Backward: dL/dW = xᵀ @ g,  dL/db = Σ_n g,  dL/dx = g @ Wᵀ     with g = dL/dy
Penalty:  l1·Σ|W| + l2·Σ W² (+ bias_l1·Σ|b| + bias_l2·Σ b²) adds l1·sign(W) + 2·l2·W
          to dL/dW (NNFS ch. 14), once per backward pass however often the layer was
          applied: the coefficients live on the parameters (``dnn.parameter.penalty``).

A frozen weight (``trainable = False``) skips the xᵀ @ g product; a Dense
reading the data skips g @ Wᵀ (``ctx.needs_input_grad`` is False there).

Inputs with more than two dimensions, e.g. (batch, time, in), are treated as
a batch of rows: the layer acts on the last axis, as in Keras and PyTorch.
"""

from __future__ import annotations

from typing import Any

from dnn import backend
from dnn import init as initializers
from dnn.backend import ops
from dnn.errors import ShapeError
from dnn.layers.base import Context, Layer, check_flags, check_penalties, positive_ints, register
from dnn.parameter import Parameter


def init_config_name(init: Any, default: str) -> str:
    """The initializer name a layer's config stores: ``init`` itself when it is a name, the
    registered name of a built-in initializer function, else the layer's ``default``. A
    custom function cannot be stored, and need not be: a loaded model takes its weights
    from the file, so the name only has to be one that ``dnn.init.get`` knows."""
    if isinstance(init, str):
        return init
    for name, fn in initializers.INITIALIZERS.items():
        if fn is init:
            return name
    return default


@register
class Dense(Layer):
    """``Dense(in_features, out_features, bias=True, init="glorot_uniform", l1=0, l2=0,
    bias_l1=0, bias_l2=0)``.

    ``init`` is an initializer name (``dnn.init``) or a function ``shape -> array``. A
    custom function is not saved: the model file names the default ``"glorot_uniform"``
    instead (the loaded weights come from the file, so they are identical)."""

    param_names = ("weight", "bias")

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        init: str = "glorot_uniform",
        l1: float = 0.0,
        l2: float = 0.0,
        bias_l1: float = 0.0,
        bias_l2: float = 0.0,
    ) -> None:
        in_features, out_features = positive_ints("Dense", in_features=in_features,
                                                  out_features=out_features)
        self.l1, self.l2, self.bias_l1, self.bias_l2 = check_penalties(
            "Dense", l1=l1, l2=l2, bias_l1=bias_l1, bias_l2=bias_l2)
        if not bias and (self.bias_l1 or self.bias_l2):
            raise ValueError("Dense: bias_l1/bias_l2 need a bias; got bias=False with "
                             f"bias_l1={bias_l1}, bias_l2={bias_l2}")
        self.in_features, self.out_features = in_features, out_features
        (self.use_bias,), self.init = check_flags("Dense", bias=bias), init
        self.weight = Parameter(initializers.get(init)((in_features, out_features)), "weight",
                                l1=self.l1, l2=self.l2)
        self.bias = Parameter(initializers.zeros((out_features,)), "bias", l1=self.bias_l1,
                              l2=self.bias_l2) if bias else None
        self.param_names = ("weight", "bias") if bias else ("weight",)

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        if x.ndim < 2 or x.shape[-1] != self.in_features:
            raise ShapeError(
                f"{self.describe()}: expected input of shape (batch, {self.in_features}), "
                f"got {tuple(x.shape)}"
            )
        ctx.x = x
        y = x @ self.weight.data
        if self.bias is not None:
            y += self.bias.data
        return y

    def backward_with(self, ctx: Context, grad: Any) -> Any:
        """dL/dW, dL/db into the parameters; dL/dx (None when nothing needs it)."""
        xp = backend.xp
        x, grad_2d = ctx.x, grad
        if x.ndim > 2:
            x = xp.reshape(x, (-1, self.in_features))
            grad_2d = xp.reshape(grad, (-1, self.out_features))
        self.weight.add_grad_matmul(x.T, grad_2d)
        if self.bias is not None and self.bias.trainable:
            self.bias.add_grad(ops.column_sums(grad_2d))
        return grad @ self.weight.data.T if ctx.needs_input_grad else None

    def get_config(self) -> dict[str, Any]:
        return {
            "in_features": self.in_features, "out_features": self.out_features,
            "bias": self.use_bias, "init": init_config_name(self.init, "glorot_uniform"),
            "l1": self.l1, "l2": self.l2, "bias_l1": self.bias_l1, "bias_l2": self.bias_l2,
        }

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (*input_shape[:-1], self.out_features)

