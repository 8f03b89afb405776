"""RMSprop (torch.optim.RMSprop, not centered).

g ← g + λ·θ;   v ← α·v + (1 − α)·g²;   d = g / (√v + ε)
θ ← θ − lr·d, or with momentum μ:  b ← μ·b + d,  θ ← θ − lr·b

Keras names are accepted too: ``learning_rate`` (lr), ``rho`` (α), ``epsilon`` (ε).
"""

from __future__ import annotations

from typing import Any, ClassVar

from dnn import backend
from dnn.optim.base import KerasAlias, Optimizer, check_eps, check_number, register


@register
class RMSprop(Optimizer):
    keras_aliases: ClassVar[dict[str, KerasAlias]] = {"epsilon": "eps", "rho": "alpha"}

    def __init__(self, lr: Any = 0.01, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, **kwargs: Any) -> None:
        super().__init__(lr, weight_decay, **kwargs)
        name = type(self).__name__
        self.alpha = check_number(name, "alpha", alpha, 0.0, 1.0)
        self.eps = check_eps(name, eps)
        self.momentum = check_number(name, "momentum", momentum, 0.0, 1.0)
        self.state_names = ("square_avg", "momentum_buffer") if momentum else ("square_avg",)

    def update(self, param: Any, grad: Any, state: dict[str, Any]) -> None:
        if self.weight_decay:
            grad = grad + self.weight_decay * param
        square_avg = state["square_avg"]
        square_avg *= self.alpha
        square_avg += (1.0 - self.alpha) * grad * grad
        direction = grad / (backend.xp.sqrt(square_avg) + self.eps)
        if self.momentum:
            buf = state["momentum_buffer"]
            buf *= self.momentum
            buf += direction
            direction = buf
        param -= self.lr * direction

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "alpha": self.alpha, "eps": self.eps,
                "momentum": self.momentum}
