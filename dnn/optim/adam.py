"""Adam, AdamW and NAdam (torch.optim formulas and defaults).

Adam:   g ← g + λ·θ;  m ← β₁·m + (1 − β₁)·g;  v ← β₂·v + (1 − β₂)·g²
        θ ← θ − lr·(m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε)
AdamW:  θ ← θ·(1 − lr·λ) first, then the Adam step without λ (decoupled decay).
NAdam:  μ_t = β₁·(1 − ½·0.96^(t·ψ)),  Π_t = Π_{k≤t} μ_k
        θ ← θ − lr·(1 − μ_t)/(1 − Π_t)·g/d − lr·μ_{t+1}/(1 − Π_t·μ_{t+1})·m/d,
        d = √(v / (1 − β₂ᵗ)) + ε

Keras names are accepted too: ``learning_rate`` (lr), ``beta_1``/``beta_2`` (β₁, β₂),
``epsilon`` (ε).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from dnn import backend
from dnn.optim.base import KerasAlias, Optimizer, check_eps, check_number, register


def _moments_into(g: Any, m: Any, v: Any, denom: Any, tmp: Any, betas: tuple[float, float],
                  inv_bias2: float, eps: float) -> None:
    """In place, the steps Adam and NAdam share (``tmp``: scratch; ``denom`` may be it):

        m ← β₁·m + (1 − β₁)·g;   v ← β₂·v + (1 − β₂)·g²;   denom ← √v / √(1 − β₂ᵗ) + ε
    """
    beta1, beta2 = betas
    into = backend.library.elementwise_into
    m *= beta1
    into("multiply", g, 1.0 - beta1, out=tmp)
    m += tmp
    v *= beta2
    into("multiply", g, g, out=tmp)
    tmp *= 1.0 - beta2
    v += tmp
    into("sqrt", v, out=denom)
    denom *= inv_bias2
    denom += eps


@register
class Adam(Optimizer):
    state_names = ("exp_avg", "exp_avg_sq")
    keras_aliases: ClassVar[dict[str, KerasAlias]] = {
        "beta_1": ("betas", 0), "beta_2": ("betas", 1), "epsilon": "eps"}

    def __init__(self, lr: Any = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, **kwargs: Any) -> None:
        super().__init__(lr, weight_decay, **kwargs)
        name = type(self).__name__
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{name}: betas must be a pair (beta1, beta2), each in [0, 1), "
                             f"got {betas!r}")
        beta1 = check_number(name, "betas[0]", betas[0], 0.0, 1.0, high_open=True)
        beta2 = check_number(name, "betas[1]", betas[1], 0.0, 1.0, high_open=True)
        self.betas, self.eps = (beta1, beta2), check_eps(name, eps)

    def update(self, param: Any, grad: Any, state: dict[str, Any]) -> None:
        if self.weight_decay:
            grad = grad + self.weight_decay * param
        self._adam_step(param, grad, state)

    def _adam_step(self, param: Any, grad: Any, state: dict[str, Any]) -> None:
        # The same operations, in the same order, as the formula in the module
        # docstring, done in place chunk by chunk with one scratch array: no
        # temporaries, 12 passes over cache-resident memory per chunk, the chunks
        # shared out over the cores (Optimizer._for_chunks).
        beta1, beta2 = self.betas
        t = self.iterations
        step_size = self.lr / (1.0 - beta1**t)
        inv_bias2 = 1.0 / math.sqrt(1.0 - beta2**t)
        fused = backend.library.fused("adam", param.dtype)
        if fused is not None:  # one compiled pass over p, g, m, v (dnn.backend.kernels)
            fused(param, grad, state["exp_avg"], state["exp_avg_sq"], beta1, 1.0 - beta1, beta2,
                  1.0 - beta2, step_size, inv_bias2, self.eps)
            return
        into = backend.library.elementwise_into

        def update(p: Any, g: Any, m: Any, v: Any, tmp: Any) -> None:
            _moments_into(g, m, v, tmp, tmp, self.betas, inv_bias2, self.eps)  # tmp ← d
            into("divide", m, tmp, out=tmp)             # θ ← θ − lr/(1 − β₁ᵗ) · m / d
            tmp *= step_size
            p -= tmp

        self._for_chunks(state, update, param, grad, state["exp_avg"], state["exp_avg_sq"])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "betas": list(self.betas), "eps": self.eps}


@register
class AdamW(Adam):
    def __init__(self, lr: Any = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01, **kwargs: Any) -> None:
        super().__init__(lr, betas, eps, weight_decay, **kwargs)

    def update(self, param: Any, grad: Any, state: dict[str, Any]) -> None:
        if self.weight_decay:
            param *= 1.0 - self.lr * self.weight_decay
        self._adam_step(param, grad, state)


@register
class NAdam(Adam):
    def __init__(self, lr: Any = 2e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0,
                 momentum_decay: float = 4e-3, **kwargs: Any) -> None:
        super().__init__(lr, betas, eps, weight_decay, **kwargs)
        self.momentum_decay = check_number(type(self).__name__, "momentum_decay",
                                           momentum_decay, 0.0)
        self._mu_product = (0, 1.0)  # (t, Π_t), advanced step by step

    def _mu(self, t: int) -> float:
        return self.betas[0] * (1.0 - 0.5 * 0.96 ** (t * self.momentum_decay))

    def _mu_product_at(self, t: int) -> float:
        """Π_{k≤t} μ_k, updated incrementally (recomputed after a resume)."""
        done, product = self._mu_product
        if done > t:
            done, product = 0, 1.0
        for k in range(done + 1, t + 1):
            product *= self._mu(k)
        self._mu_product = (t, product)
        return product

    def update(self, param: Any, grad: Any, state: dict[str, Any]) -> None:
        beta2 = self.betas[1]
        t = self.iterations
        if self.weight_decay:
            grad = grad + self.weight_decay * param
        mu, mu_next, mu_product = self._mu(t), self._mu(t + 1), self._mu_product_at(t)
        inv_bias2 = 1.0 / math.sqrt(1.0 - beta2**t)
        grad_step = self.lr * (1.0 - mu) / (1.0 - mu_product)
        momentum_step = self.lr * mu_next / (1.0 - mu_product * mu_next)
        eps, into = self.eps, backend.library.elementwise_into

        def update(p: Any, g: Any, m: Any, v: Any, denom: Any, tmp: Any) -> None:
            _moments_into(g, m, v, denom, tmp, self.betas, inv_bias2, eps)
            into("divide", g, denom, out=tmp)           # θ ← θ − lr·(1 − μ_t)/(1 − Π_t)·g/d
            tmp *= grad_step
            p -= tmp
            into("divide", m, denom, out=tmp)           #     − lr·μ_{t+1}/(1 − Π_t·μ_{t+1})·m/d
            tmp *= momentum_step
            p -= tmp

        self._for_chunks(state, update, param, grad, state["exp_avg"], state["exp_avg_sq"],
                         scratches=2)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "momentum_decay": self.momentum_decay}
