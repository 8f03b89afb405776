"""Adagrad (torch.optim.Adagrad).

lr_t = lr / (1 + (t − 1)·η);   g ← g + λ·θ;   s ← s + g²;   θ ← θ − lr_t·g / (√s + ε)
"""

from __future__ import annotations

from typing import Any, ClassVar

from dnn import backend
from dnn.optim.base import KerasAlias, Optimizer, check_eps, check_number, register


@register
class Adagrad(Optimizer):
    state_names = ("sum",)
    keras_aliases: ClassVar[dict[str, KerasAlias]] = {"epsilon": "eps"}

    def __init__(self, lr: Any = 0.01, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 eps: float = 1e-10, **kwargs: Any) -> None:
        super().__init__(lr, weight_decay, **kwargs)
        name = type(self).__name__
        self.lr_decay = check_number(name, "lr_decay", lr_decay, 0.0)
        self.eps = check_eps(name, eps)

    def update(self, param: Any, grad: Any, state: dict[str, Any]) -> None:
        if self.weight_decay:
            grad = grad + self.weight_decay * param
        lr_t = self.lr / (1.0 + (self.iterations - 1) * self.lr_decay)
        eps, into = self.eps, backend.library.elementwise_into

        def update(p: Any, g: Any, total: Any, tmp: Any) -> None:
            into("multiply", g, g, out=tmp)             # s ← s + g²
            total += tmp
            into("sqrt", total, out=tmp)                # θ ← θ − lr_t·g / (√s + ε)
            tmp += eps
            into("divide", g, tmp, out=tmp)
            tmp *= lr_t
            p -= tmp

        self._for_chunks(state, update, param, grad, state["sum"])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "lr_decay": self.lr_decay, "eps": self.eps}
