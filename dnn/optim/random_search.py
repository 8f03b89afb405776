"""Random search: training without gradients (NNFS, chapter 6).

The book's first attempt at optimisation, kept as a baseline that shows why
gradients matter. Start from random weights; then repeatedly add small
Gaussian noise to *all* parameters at once and keep the change only if the
loss went down, otherwise restore the best weights:

    θ_try = θ_best + scale·ε,  ε ~ N(0, I)
    θ_best ← θ_try  if L(θ_try) < L(θ_best)

On "vertical" data this finds a decent solution; on the spiral it stalls —
each accepted step is a lucky guess in a space with thousands of directions.

Everything runs on the device on the model's flat parameter buffers (one
noise draw and one copy per iteration); only the loss comparison reads one
number to the host per iteration, which this method cannot avoid.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from dnn import backend, losses
from dnn.backend import random
from dnn.optim.base import check_number
from dnn.parameter import flat_groups


@dataclass
class RandomSearchResult:
    loss: float
    initial_loss: float
    iterations: int
    accepted: int
    seconds: float
    #: best loss so far after each iteration
    history: list[float] = field(default_factory=list)


class RandomSearch:
    """Random-perturbation hill climbing over all of a model's parameters.

    ``scale``: std of the noise added per iteration (the book uses 0.05).
    ``init_scale``: if given, first redraw every parameter as N(0, init_scale²)
    (the book's 0.01·randn start); None keeps the model's current weights.
    ``minimize`` evaluates the loss on all of (x, y) in eval mode.
    """

    def __init__(self, scale: float = 0.05, iterations: int = 10_000,
                 init_scale: float | None = None) -> None:
        scale = check_number("RandomSearch", "scale", scale, 0.0, low_open=True)
        if not isinstance(iterations, int) or iterations < 1:
            raise ValueError(f"RandomSearch: iterations must be an int >= 1, got {iterations!r}")
        if init_scale is not None:
            init_scale = check_number("RandomSearch", "init_scale", init_scale, 0.0, low_open=True)
        self.scale, self.iterations, self.init_scale = scale, iterations, init_scale

    def minimize(self, model: Any, loss: str | losses.Loss | None, x: Any, y: Any,
                 iterations: int | None = None) -> RandomSearchResult:
        loss = loss if loss is not None else getattr(model, "loss", None)
        if loss is None:
            raise ValueError("RandomSearch.minimize: pass a loss or compile the model first")
        loss_fn = losses.get(loss)
        params = model.parameters()
        if not params:
            raise ValueError("RandomSearch.minimize: the model has no parameters")
        xp = backend.xp
        x = backend.asarray(x)
        if not xp.isdtype(x.dtype, "real floating"):
            x = xp.astype(x, backend.default_dtype())
        y = backend.asarray(y)
        groups = flat_groups(params)
        if self.init_scale is not None:
            for g in groups:
                g.data[...] = random.normal(tuple(g.data.shape), 0.0, self.init_scale, dtype=g.data.dtype)

        def evaluate() -> float:
            penalty = model.regularization_loss() if hasattr(model, "regularization_loss") else 0.0
            return float(loss_fn(model.forward(x, training=False), y) + penalty)  # the one host read

        start = time.perf_counter()
        best_loss = initial = evaluate()
        best = [xp.asarray(g.data, copy=True) for g in groups]
        history, accepted = [], 0
        for _ in range(iterations or self.iterations):
            for g, b in zip(groups, best):
                g.data[...] = b + random.normal(tuple(g.data.shape), 0.0, self.scale, dtype=g.data.dtype)
            current = evaluate()
            if current < best_loss:
                best_loss, accepted = current, accepted + 1
                for g, b in zip(groups, best):
                    b[...] = g.data
            history.append(best_loss)
        for g, b in zip(groups, best):
            g.data[...] = b
        return RandomSearchResult(loss=best_loss, initial_loss=initial, iterations=len(history),
                                  accepted=accepted, seconds=time.perf_counter() - start,
                                  history=history)


__all__ = ["RandomSearch", "RandomSearchResult"]
