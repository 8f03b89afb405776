"""Stochastic gradient descent with momentum and Nesterov (torch.optim.SGD).

g ← g + λ·θ;   b ← g (first step), else b ← μ·b + (1 − τ)·g;
g ← g + μ·b (Nesterov) or g ← b (momentum);   θ ← θ − lr·g
"""

from __future__ import annotations

from typing import Any

from dnn import backend
from dnn.optim.base import Optimizer, check_number, register


@register
class SGD(Optimizer):
    def __init__(
        self, lr: Any = 1e-3, momentum: float = 0.0, nesterov: bool = False,
        weight_decay: float = 0.0, dampening: float = 0.0, **kwargs: Any,
    ) -> None:
        super().__init__(lr, weight_decay, **kwargs)
        name = type(self).__name__
        momentum = check_number(name, "momentum", momentum, 0.0, 1.0)
        dampening = check_number(name, "dampening", dampening, 0.0, 1.0)
        if not isinstance(nesterov, bool):
            raise ValueError(f"{name}: nesterov must be True or False, got {nesterov!r}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(f"{name}: nesterov needs momentum > 0 and dampening = 0, got "
                             f"momentum={momentum!r}, dampening={dampening!r}")
        self.momentum, self.nesterov, self.dampening = momentum, nesterov, dampening
        self.state_names = ("momentum_buffer",) if momentum else ()

    def update(self, param: Any, grad: Any, state: dict[str, Any]) -> None:
        if self.weight_decay:
            grad = grad + self.weight_decay * param
        into = backend.library.elementwise_into
        first = self.iterations == 1
        flats = (param, grad, state["momentum_buffer"]) if self.momentum else (param, grad)
        fused = backend.library.fused("sgd_momentum", param.dtype) if self.momentum else None
        if fused is not None:  # one compiled pass over θ, g, b (dnn.backend.kernels)
            fused(param, grad, state["momentum_buffer"], self.lr, self.momentum,
                  1.0 - self.dampening, self.nesterov, first)
            return
        # in place, chunk by chunk, with one scratch array (see Optimizer._for_chunks)

        def update(p: Any, g: Any, *rest: Any) -> None:
            tmp = rest[-1]
            if self.momentum:
                buf = rest[0]
                if first:
                    buf[...] = g
                else:
                    buf *= self.momentum                # b ← μ·b + (1 − τ)·g
                    into("multiply", g, 1.0 - self.dampening, out=tmp)
                    buf += tmp
                if self.nesterov:                       # g ← g + μ·b
                    into("multiply", buf, self.momentum, out=tmp)
                    tmp += g
                    g = tmp
                else:                                   # g ← b
                    g = buf
            into("multiply", g, self.lr, out=tmp)       # θ ← θ − lr·g
            p -= tmp

        self._for_chunks(state, update, *flats)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov,
                "dampening": self.dampening}
