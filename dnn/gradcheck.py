"""Numerical gradient checks: central differences against a layer's or loss's backward.

For a scalar probe L = Σ (f(x) ⊙ r) with a fixed random r, the analytic
gradient from ``backward(r)`` is compared with (L(x + h·eᵢ) − L(x − h·eᵢ)) / 2h
for every element i of the input and of every parameter. Run it in float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dnn import backend
from dnn.layers.base import Layer
from dnn.losses.base import Loss


def _rel_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    scale = np.maximum(np.abs(analytic) + np.abs(numeric), 1e-8)
    return float(np.max(np.abs(analytic - numeric) / scale)) if analytic.size else 0.0


def _numeric(f: Any, arr: Any, h: float) -> np.ndarray:
    """Central differences of the scalar function f() with respect to the array ``arr``
    (perturbed in place through a flat host copy written back element by element)."""
    host = backend.to_numpy(arr).astype(np.float64).copy()
    grad = np.zeros_like(host)
    flat, out = host.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        original = flat[i]
        flat[i] = original + h
        arr[...] = backend.asarray(host, dtype=arr.dtype)
        plus = f()
        flat[i] = original - h
        arr[...] = backend.asarray(host, dtype=arr.dtype)
        minus = f()
        flat[i] = original
        out[i] = (plus - minus) / (2 * h)
    arr[...] = backend.asarray(host, dtype=arr.dtype)
    return grad


def check_layer(layer: Layer, x: Any, *, training: bool = False, h: float = 1e-6,
                seed: int = 0, forward_kwargs: dict[str, Any] | None = None) -> float:
    """Max relative error between the analytic and numeric gradients of a layer,
    over its input (if floating) and all its parameters. Penalties (l1/l2) count."""
    kwargs = forward_kwargs or {}
    xp = backend.xp
    x = backend.asarray(x)
    y = layer.forward(x, training=training, **kwargs)
    probe = backend.asarray(np.random.default_rng(seed).standard_normal(tuple(y.shape)),
                            dtype=y.dtype)

    def objective() -> float:
        out = layer.forward(x, training=training, **kwargs)
        return float(xp.sum(out * probe)) + float(layer.regularization_loss())

    layer.forward(x, training=training, **kwargs)
    grad_x = layer.backward(probe)
    analytic = [(backend.to_numpy(p.grad).copy(), p.data) for p in layer.parameters()]
    errors = []
    if xp.isdtype(x.dtype, "real floating"):
        errors.append(_rel_error(backend.to_numpy(grad_x), _numeric(objective, x, h)))
    errors += [_rel_error(g, _numeric(objective, data, h)) for g, data in analytic]
    return max(errors)


def check_loss(loss: Loss, y_pred: Any, y_true: Any, *, h: float = 1e-6) -> float:
    """Max relative error between ``loss.backward()`` and central differences of the loss."""
    y_pred = backend.asarray(y_pred)
    y_true = backend.asarray(y_true)
    loss(y_pred, y_true)
    analytic = backend.to_numpy(loss.backward()).copy()
    numeric = _numeric(lambda: float(loss(y_pred, y_true)), y_pred, h)
    return _rel_error(analytic, numeric)


def gradcheck(obj: Layer | Loss, *args: Any, **kwargs: Any) -> float:
    """``gradcheck(layer, x)`` or ``gradcheck(loss, y_pred, y_true)``: max relative error."""
    if isinstance(obj, Loss):
        return check_loss(obj, *args, **kwargs)
    return check_layer(obj, *args, **kwargs)
