"""Elementwise (and softmax) activation layers, each with its exact derivative.

Every class states y = f(x) and dL/dx in terms of g = dL/dy. Each application
keeps one array of the input's size on its context (x or y, whichever the
derivative needs; GELU, SiLU and Mish keep x and one more).

PyTorch oracles: ``nn.ReLU``, ``nn.LeakyReLU(alpha)``, ``nn.ELU(alpha)``,
``nn.GELU(approximate="tanh" | "none")``, ``nn.SiLU``, ``nn.Mish``,
``nn.PReLU(num_parameters, init)`` (its ``weight`` is ours), ``nn.Sigmoid``,
``nn.Tanh``, ``nn.Softmax(dim)``, ``nn.LogSoftmax(dim)``, ``nn.Softplus``
(beta=1; ours has no threshold), ``nn.Identity``.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

from dnn import backend
from dnn import init as initializers
from dnn.backend import windows
from dnn.errors import ShapeError
from dnn.layers.base import REGISTRY, Context, Layer, check_penalties, positive_ints, register
from dnn.parameter import Parameter


@register
class ReLU(Layer):
    """y = max(x, 0);  dL/dx = g · [y > 0]."""

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        ctx.y = y = backend.xp.maximum(x, 0.0)
        return y

    def backward_with(self, ctx: Context, grad: Any) -> Any:
        fused = backend.library.fused("relu_grad", grad.dtype)
        if fused is not None and ctx.y.dtype == grad.dtype and ctx.y.shape == grad.shape:
            return fused(ctx.y, grad)
        return windows.masked(ctx.y > 0, grad)  # g·[y > 0], branch-free


@register
class LeakyReLU(Layer):
    """y = x if x > 0 else α·x;  dL/dx = g if x > 0 else α·g."""

    def __init__(self, alpha: float = 0.01) -> None:
        self.alpha = float(alpha)

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        ctx.x = x
        return backend.xp.where(x > 0, x, self.alpha * x)

    def backward_with(self, ctx: Context, grad: Any) -> Any:
        return backend.xp.where(ctx.x > 0, grad, self.alpha * grad)

    def get_config(self) -> dict[str, Any]:
        return {"alpha": self.alpha}


@register
class ELU(Layer):
    """y = x if x > 0 else α·(eˣ − 1);  dL/dx = g if x > 0 else g·(y + α)."""

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = float(alpha)

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        xp = backend.xp
        ctx.y = y = xp.where(x > 0, x, self.alpha * xp.expm1(xp.minimum(x, 0.0)))
        return y

    def backward_with(self, ctx: Context, grad: Any) -> Any:
        y = ctx.y
        return backend.xp.where(y > 0, grad, grad * (y + self.alpha))

    def get_config(self) -> dict[str, Any]:
        return {"alpha": self.alpha}


_GELU_C = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@register
class GELU(Layer):
    """``GELU(approximate="tanh")``, the tanh approximation (the default):
    y = ½·x·(1 + t), t = tanh(c·(x + 0.044715·x³)), c = √(2/π);
    dL/dx = g·(½·(1 + t) + ½·x·(1 − t²)·c·(1 + 3·0.044715·x²)).

    ``GELU(approximate="none")``, the exact function: y = x·Φ(x) with the normal CDF
    Φ(x) = ½·(1 + erf(x/√2)) (:meth:`dnn.backend.library.ArrayLibrary.erf`);
    dL/dx = g·(Φ(x) + x·φ(x)),  φ(x) = e^{−x²/2}/√(2π).
    """

    def __init__(self, approximate: str = "tanh") -> None:
        if approximate not in ("tanh", "none"):
            raise ValueError(f"GELU: approximate must be 'tanh' or 'none', got {approximate!r}")
        self.approximate = approximate

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        ctx.x = x
        if self.approximate == "none":
            ctx.cdf = cdf = 0.5 * (1.0 + backend.library.erf(_INV_SQRT_2 * x))
            return x * cdf
        t = backend.xp.tanh(_GELU_C * (x + 0.044715 * x * x * x))
        ctx.t = t
        return 0.5 * x * (1.0 + t)

    def backward_with(self, ctx: Context, grad: Any) -> Any:
        x = ctx.x
        if self.approximate == "none":
            pdf = _INV_SQRT_2PI * backend.xp.exp(-0.5 * x * x)
            return grad * (ctx.cdf + x * pdf)
        t = ctx.t
        dt = (1.0 - t * t) * (_GELU_C * (1.0 + 3 * 0.044715 * x * x))
        return grad * (0.5 * (1.0 + t) + 0.5 * x * dt)

    def get_config(self) -> dict[str, Any]:
        return {"approximate": self.approximate}


def sigmoid(x: Any) -> Any:
    """σ(x) = 1 / (1 + e⁻ˣ) with no overflow and full relative precision where σ is tiny:
    with e = e^(−|x|) ∈ (0, 1],  σ = 1/(1 + e) for x ≥ 0 and e/(1 + e) for x < 0.
    (½·(1 + tanh(x/2)) cancels for x < 0: σ(−20) would be 0 in float32, not 2e-9.)"""
    xp = backend.xp
    e = xp.exp(-xp.abs(x))
    r = 1.0 / (1.0 + e)
    return xp.where(x >= 0, r, e * r)


@register
class SiLU(Layer):
    """SiLU / swish (Hendrycks & Gimpel 2016; Ramachandran et al. 2017): y = x·s,
    s = σ(x) (:func:`sigmoid`);  dL/dx = g·s·(1 + x·(1 − s))."""

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        s = sigmoid(x)
        ctx.x, ctx.s = x, s
        return x * s

    def backward_with(self, ctx: Context, grad: Any) -> Any:
        x, s = ctx.x, ctx.s
        return grad * (s * (1.0 + x * (1.0 - s)))


@register
class Mish(Layer):
    """Mish (Misra 2019): y = x·t,  t = tanh(softplus(x)), with the stable
    softplus(x) = max(x, 0) + log1p(e^−|x|) (no overflow for large |x|);
    dL/dx = g·(t + x·(1 − t²)·σ(x)),  σ(x) = d softplus/dx (:func:`sigmoid`)."""

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        xp = backend.xp
        t = xp.tanh(xp.maximum(x, 0.0) + xp.log1p(xp.exp(-xp.abs(x))))
        ctx.x, ctx.t = x, t
        return x * t

    def backward_with(self, ctx: Context, grad: Any) -> Any:
        x, t = ctx.x, ctx.t
        return grad * (t + x * (1.0 - t * t) * sigmoid(x))


@register
class PReLU(Layer):
    """Parametric ReLU (He et al. 2015): y = x if x > 0 else a·x, with a learned slope
    ``weight`` a of shape (num_parameters,): one shared by every element
    (``num_parameters=1``) or one per channel on axis 1 (input (N, C, ...), C =
    num_parameters), initialised to ``init``, as ``torch.nn.PReLU``.

    dL/dx = g if x > 0 else a·g;   dL/da_c = Σ over everything but the channel of
    g·min(x, 0).  ``l1``/``l2`` penalise a (Keras's ``alpha_regularizer``; 0 by
    default: He et al. train a without weight decay).
    """

    param_names = ("weight",)

    def __init__(self, num_parameters: int = 1, init: float = 0.25, l1: float = 0.0,
                 l2: float = 0.0) -> None:
        (self.num_parameters,) = positive_ints("PReLU", num_parameters=num_parameters)
        if isinstance(init, bool) or not isinstance(init, numbers.Real) or not math.isfinite(init):
            raise ValueError(f"PReLU: init must be a finite number, got {init!r}")
        self.init = float(init)
        self.l1, self.l2 = check_penalties("PReLU", l1=l1, l2=l2)
        slopes = initializers.ones((self.num_parameters,)) * self.init
        self.weight = Parameter(slopes, "weight", l1=self.l1, l2=self.l2)

    def _slope(self, x: Any) -> Any:
        """a broadcast against x: shared, or (C, 1, ..., 1) for the channel axis 1."""
        if self.num_parameters == 1:
            return self.weight.data
        if x.ndim < 2 or x.shape[1] != self.num_parameters:
            raise ShapeError(f"{self.describe()}: expected input of shape (batch, "
                             f"{self.num_parameters}, ...) (one slope per channel on axis 1), "
                             f"got {tuple(x.shape)}")
        return backend.xp.reshape(self.weight.data, (self.num_parameters,) + (1,) * (x.ndim - 2))

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        xp = backend.xp
        ctx.x = x
        return xp.where(x > 0, x, self._slope(x) * x)

    def backward_with(self, ctx: Context, grad: Any) -> Any:
        xp = backend.xp
        x = ctx.x
        if self.weight.trainable:
            dslope = grad * xp.minimum(x, 0.0)
            if self.num_parameters == 1:
                self.weight.add_grad(xp.reshape(xp.sum(dslope), (1,)))
            else:
                self.weight.add_grad(xp.sum(dslope, axis=(0, *range(2, x.ndim))))
        if not ctx.needs_input_grad:
            return None
        return xp.where(x > 0, grad, self._slope(x) * grad)

    def get_config(self) -> dict[str, Any]:
        return {"num_parameters": self.num_parameters, "init": self.init,
                "l1": self.l1, "l2": self.l2}

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if self.num_parameters > 1 and (len(input_shape) < 2 or input_shape[1] != self.num_parameters):
            raise ShapeError(f"{self.describe()}: expected input of shape (batch, "
                             f"{self.num_parameters}, ...), got {tuple(input_shape)}")
        return tuple(input_shape)


@register
class Sigmoid(Layer):
    """y = σ(x) = 1 / (1 + e⁻ˣ) (:func:`sigmoid`); dL/dx = g·y·(1 − y)."""

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        ctx.y = y = sigmoid(x)
        return y

    def backward_with(self, ctx: Context, grad: Any) -> Any:
        y = ctx.y
        return grad * y * (1.0 - y)


@register
class Tanh(Layer):
    """y = tanh(x);  dL/dx = g·(1 − y²)."""

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        ctx.y = y = backend.xp.tanh(x)
        return y

    def backward_with(self, ctx: Context, grad: Any) -> Any:
        y = ctx.y
        return grad * (1.0 - y * y)


@register
class Softmax(Layer):
    """y = exp(x − max x) / Σ exp(x − max x) along ``axis``;
    dL/dx = y · (g − Σ_axis g·y)."""

    def __init__(self, axis: int = -1) -> None:
        self.axis = int(axis)

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        xp = backend.xp
        e = xp.exp(x - xp.max(x, axis=self.axis, keepdims=True))
        ctx.y = y = e / xp.sum(e, axis=self.axis, keepdims=True)
        return y

    def backward_with(self, ctx: Context, grad: Any) -> Any:
        y = ctx.y
        return y * (grad - backend.xp.sum(grad * y, axis=self.axis, keepdims=True))

    def get_config(self) -> dict[str, Any]:
        return {"axis": self.axis}


@register
class LogSoftmax(Layer):
    """y = x − max x − log Σ exp(x − max x) along ``axis``;
    dL/dx = g − exp(y) · Σ_axis g."""

    def __init__(self, axis: int = -1) -> None:
        self.axis = int(axis)

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        xp = backend.xp
        shifted = x - xp.max(x, axis=self.axis, keepdims=True)
        ctx.y = y = shifted - xp.log(xp.sum(xp.exp(shifted), axis=self.axis, keepdims=True))
        return y

    def backward_with(self, ctx: Context, grad: Any) -> Any:
        xp = backend.xp
        return grad - xp.exp(ctx.y) * xp.sum(grad, axis=self.axis, keepdims=True)

    def get_config(self) -> dict[str, Any]:
        return {"axis": self.axis}


@register
class Softplus(Layer):
    """y = log(1 + eˣ) = max(x, 0) + log1p(e^−|x|);  dL/dx = g·sigmoid(x)."""

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        xp = backend.xp
        ctx.x = x
        return xp.maximum(x, 0.0) + xp.log1p(xp.exp(-xp.abs(x)))

    def backward_with(self, ctx: Context, grad: Any) -> Any:
        return grad * (0.5 * (backend.xp.tanh(0.5 * ctx.x) + 1.0))


@register
class Identity(Layer):
    """y = x;  dL/dx = g (the identity; Keras's "linear" activation, the NNFS book's
    ``Activation_Linear``, PyTorch's ``nn.Identity``)."""

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        return x

    def backward_with(self, ctx: Context, grad: Any) -> Any:
        return grad


# Model files written before the rename name the identity "Linear": they still load.
REGISTRY.add_alias("Linear", "Identity")


class _LinearMeta(type):
    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, Identity)


class Linear(metaclass=_LinearMeta):
    """The old name of :class:`Identity` — NOT PyTorch's ``nn.Linear``.

    ``Linear()`` (no arguments) still builds an :class:`Identity`, with a
    ``DeprecationWarning``. ``Linear(784, 512)``, the PyTorch spelling of a
    fully connected layer, raises a ``TypeError`` that points to
    :class:`dnn.layers.Dense` instead of silently building one: dnn's
    ``Dense.weight`` is (in, out) where ``nn.Linear.weight`` is (out, in), so a
    layer that looked like PyTorch's but stored its weight transposed would
    surprise exactly the user who typed it (copying torch weights, reading
    ``layer.weight.shape``), and a model file would say ``Dense`` anyway.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Identity:  # type: ignore[misc]
        if args or set(kwargs) - {"name"}:
            given = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
            sizes = ", ".join(map(str, args[:2])) if len(args) >= 2 else "in_features, out_features"
            raise TypeError(
                f"dnn.layers.Linear({given}): Linear is the identity activation (renamed "
                f"Identity) and takes no sizes. For a fully connected layer like PyTorch's "
                f"nn.Linear use dnn.layers.Dense({sizes}) — note that Dense.weight has shape "
                "(in_features, out_features), the transpose of nn.Linear.weight"
            )
        warnings.warn("dnn.layers.Linear() is the identity activation and is now called "
                      "dnn.layers.Identity(); the old name will be removed", DeprecationWarning,
                      stacklevel=2)
        return Identity(**kwargs)


ACTIVATIONS: dict[str, type[Layer]] = {
    "relu": ReLU, "leaky_relu": LeakyReLU, "elu": ELU, "gelu": GELU,
    "sigmoid": Sigmoid, "tanh": Tanh, "softmax": Softmax, "log_softmax": LogSoftmax,
    "softplus": Softplus, "identity": Identity, "linear": Identity,
    "silu": SiLU, "swish": SiLU, "mish": Mish, "prelu": PReLU,
}


def activation(name: str, **kwargs: Any) -> Layer:
    """An activation layer by name, e.g. ``activation("relu")``."""
    try:
        cls = ACTIVATIONS[name.lower()]
    except (KeyError, AttributeError):
        raise ValueError(
            f"unknown activation {name!r}; valid names are {', '.join(ACTIVATIONS)}"
        ) from None
    return cls(**kwargs)
