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
        alpha, eps, momentum, lr = self.alpha, self.eps, self.momentum, self.lr
        into = backend.library.elementwise_into
        flats = (param, grad, state["square_avg"])
        if momentum:
            flats += (state["momentum_buffer"],)

        def update(p: Any, g: Any, square_avg: Any, *rest: Any) -> None:
            tmp = rest[-1]
            square_avg *= alpha                         # v ← α·v + (1 − α)·g²
            into("multiply", g, 1.0 - alpha, out=tmp)
            tmp *= g
            square_avg += tmp
            into("sqrt", square_avg, out=tmp)           # d = g / (√v + ε)
            tmp += eps
            into("divide", g, tmp, out=tmp)
            direction = tmp
            if momentum:                                # b ← μ·b + d
                buf = rest[0]
                buf *= momentum
                buf += tmp
                direction = buf
            into("multiply", direction, lr, out=tmp)    # θ ← θ − lr·d (or lr·b)
            p -= tmp

        self._for_chunks(state, update, *flats)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "alpha": self.alpha, "eps": self.eps,
                "momentum": self.momentum}
