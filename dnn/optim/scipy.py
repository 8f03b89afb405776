"""Full-batch training with ``scipy.optimize.minimize`` (L-BFGS and friends).

SciPy's optimizers work on one float64 vector θ. A compiled model already
keeps all its parameters in one flat buffer per dtype (:mod:`dnn.parameter`),
so θ is just those buffers copied to the host and joined, and the gradient
is the flat gradient buffers likewise: one device→host copy per evaluation,
whatever the number of layers, on any backend (CuPy and torch-on-GPU too).

Each evaluation of f(θ) runs a full-batch forward pass in eval mode (so the
objective is deterministic: Dropout is off), the loss plus the layers'
l1/l2 penalties, and — for the gradient-based methods — one backward pass.
``batch_size`` splits that pass into chunks to bound memory; the result is
the same mean loss and gradient.

    result = dnn.optim.LBFGS(model, "mse", x, y, maxiter=200)
    result = dnn.optim.ScipyOptimizer("BFGS", maxiter=100).minimize(model, loss, x, y)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dnn import backend, losses
from dnn.data import ArrayDataset, DataLoader
from dnn.optim.base import check_number
from dnn.parameter import flat_groups

#: methods of scipy.optimize.minimize that use the gradient (``jac``)
GRADIENT_METHODS = {"cg", "bfgs", "newton-cg", "l-bfgs-b", "tnc", "slsqp", "trust-constr",
                    "dogleg", "trust-ncg", "trust-krylov", "trust-exact"}


@dataclass
class ScipyResult:
    """What a run did: final and initial loss, iterations, evaluations, SciPy's verdict."""

    loss: float
    initial_loss: float
    nit: int
    nfev: int
    success: bool
    message: str
    method: str
    seconds: float
    #: loss after each iteration (the last evaluation SciPy made in it)
    history: list[float] = field(default_factory=list)
    raw: Any = None  # scipy's OptimizeResult


class ScipyOptimizer:
    """Train a model's parameters with any ``scipy.optimize.minimize`` method.

    ``method``: "L-BFGS-B" (default), "BFGS", "CG", "Newton-CG", "TNC",
    "Nelder-Mead", "Powell", ... — gradient-free methods get only f(θ) and
    suit tiny models. ``maxiter`` and ``tol`` go to SciPy; ``options`` adds
    method-specific options (e.g. ``{"maxcor": 20}`` for L-BFGS-B).
    """

    def __init__(self, method: str = "L-BFGS-B", maxiter: int = 200, tol: float | None = None,
                 options: dict[str, Any] | None = None, batch_size: int | None = None) -> None:
        if not isinstance(maxiter, int) or maxiter < 1:
            raise ValueError(f"ScipyOptimizer: maxiter must be an int >= 1, got {maxiter!r}")
        if tol is not None:
            tol = check_number("ScipyOptimizer", "tol", tol, 0.0)
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"ScipyOptimizer: batch_size must be an int >= 1 or None, "
                             f"got {batch_size!r}")
        self.method, self.maxiter, self.tol = method, maxiter, tol
        self.options = dict(options or {})
        self.batch_size = batch_size

    def minimize(self, model: Any, loss: str | losses.Loss | None, x: Any, y: Any) -> ScipyResult:
        """Minimise the mean ``loss`` (default: the model's compiled loss) over all of (x, y).

        The model's parameters end at the best point SciPy returns.
        """
        try:
            from scipy.optimize import minimize
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("dnn.optim.ScipyOptimizer needs SciPy: pip install scipy (or, from "
                              'a dnn checkout, pip install -e ".[scipy]")') from exc
        if loss is None:
            loss = getattr(model, "loss", None)
            if loss is None:
                raise ValueError("ScipyOptimizer.minimize: pass a loss or compile the model first")
        loss_fn = losses.get(loss)
        params = model.parameters()
        if not params:
            raise ValueError("ScipyOptimizer.minimize: the model has no parameters")
        groups = flat_groups(params)
        x, y = _device(x, model), _device(y, None, keep_integers=True)
        n = x.shape[0]
        chunk = self.batch_size or n
        use_grad = self.method.lower() in GRADIENT_METHODS
        sizes = [int(g.data.shape[0]) for g in groups]
        bounds = np.cumsum([0, *sizes])

        def set_theta(theta: np.ndarray) -> None:
            for g, lo, hi in zip(groups, bounds[:-1], bounds[1:]):
                g.data[...] = backend.asarray(theta[lo:hi], dtype=g.data.dtype)

        def objective(theta: np.ndarray) -> Any:
            set_theta(theta)
            total: Any = 0.0
            grad = np.zeros_like(theta) if use_grad else None
            for xb, yb in DataLoader(ArrayDataset(x, y), chunk, prefetch=0):
                weight = xb.shape[0] / n
                value = loss_fn(model.forward(xb, training=False), yb)
                total = total + value * weight
                if use_grad:
                    model.backward(loss_fn.backward())
                    grad += weight * np.concatenate(
                        [backend.to_numpy(g.grad).astype(np.float64) for g in groups])
            penalty = model.regularization_loss() if hasattr(model, "regularization_loss") else 0.0
            # (each chunk's backward adds the l1/l2 gradient; the chunk weights sum to 1)
            f = float(total + penalty)
            state["last"] = f
            state["nfev"] += 1
            return (f, grad) if use_grad else f

        state: dict[str, Any] = {"last": float("nan"), "nfev": 0}
        theta0 = np.concatenate([backend.to_numpy(g.data).astype(np.float64) for g in groups])
        history: list[float] = []
        start = time.perf_counter()
        initial = objective(theta0)
        initial_loss = initial[0] if use_grad else initial
        options = {"maxiter": self.maxiter, **self.options}
        result = minimize(objective, theta0, method=self.method, jac=True if use_grad else None,
                          tol=self.tol, options=options,
                          callback=lambda *args, **kw: history.append(state["last"]))
        set_theta(np.asarray(result.x, dtype=np.float64))
        final = objective(np.asarray(result.x, dtype=np.float64))
        final_loss = final[0] if use_grad else final
        return ScipyResult(
            loss=float(final_loss), initial_loss=float(initial_loss),
            nit=int(getattr(result, "nit", len(history))), nfev=state["nfev"],
            success=bool(result.success), message=str(result.message), method=self.method,
            seconds=time.perf_counter() - start, history=history, raw=result,
        )


def _device(arr: Any, model: Any, keep_integers: bool = False) -> Any:
    xp = backend.xp
    arr = backend.asarray(arr)
    if xp.isdtype(arr.dtype, "real floating") and arr.dtype != backend.default_dtype():
        arr = xp.astype(arr, backend.default_dtype())
    elif not keep_integers and not xp.isdtype(arr.dtype, "real floating"):
        arr = xp.astype(arr, backend.default_dtype())
    return arr


def LBFGS(model: Any, loss: str | losses.Loss | None, x: Any, y: Any, maxiter: int = 200,
          tol: float | None = None, batch_size: int | None = None, **options: Any) -> ScipyResult:
    """Train ``model`` on all of (x, y) with L-BFGS-B; returns a :class:`ScipyResult`.

    A quasi-Newton method: on small, smooth problems it reaches a far lower
    loss than the same number of gradient-descent steps. ``options`` go to
    SciPy (``maxcor``, ``ftol``, ``gtol``, ...).
    """
    return ScipyOptimizer("L-BFGS-B", maxiter=maxiter, tol=tol, options=options,
                          batch_size=batch_size).minimize(model, loss, x, y)


__all__ = ["GRADIENT_METHODS", "LBFGS", "ScipyOptimizer", "ScipyResult"]
