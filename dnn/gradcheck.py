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
from dnn.training import check_fit_inputs


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
    """Max relative error between the analytic and numeric gradients of a layer (or model),
    over its floating input(s) and all its trainable parameters. Penalties (l1/l2) count.
    ``x`` is an array, or a list of arrays for a layer with several inputs; a layer with
    several outputs is probed on each."""
    kwargs = forward_kwargs or {}
    xp = backend.xp
    xs = [backend.asarray(v) for v in x] if isinstance(x, (list, tuple)) else backend.asarray(x)
    rng = np.random.default_rng(seed)
    y = layer.forward(xs, training=training, **kwargs)
    probes = [backend.asarray(rng.standard_normal(tuple(v.shape)), dtype=v.dtype) for v in _list(y)]

    def objective() -> float:
        outs = _list(layer.forward(xs, training=training, **kwargs))
        return sum(float(xp.sum(o * r)) for o, r in zip(outs, probes)) + float(
            layer.regularization_loss())

    layer.forward(xs, training=training, **kwargs)
    grad_x = layer.backward(probes if isinstance(y, (list, tuple)) else probes[0])
    params = [p for p in layer.parameters() if p.trainable]
    analytic = [(backend.to_numpy(p.grad).copy(), p.data) for p in params]
    errors = [_rel_error(backend.to_numpy(g), _numeric(objective, v, h))
              for v, g in zip(_list(xs), _list(grad_x)) if xp.isdtype(v.dtype, "real floating")]
    errors += [_rel_error(g, _numeric(objective, data, h)) for g, data in analytic]
    return max(errors)


def check_model_loss(model: Any, x: Any, y: Any, *, h: float = 1e-6) -> float:
    """Max relative error between the parameter gradients of a compiled model's training
    loss (Σ weighted output losses + penalties, as ``train_step`` computes them before
    the optimizer step) and central differences of that loss."""
    xs, ys = check_fit_inputs(model, x, y, where="gradcheck")

    def objective() -> float:
        return float(model.compute_gradients(xs, ys, backward=False))

    model.compute_gradients(xs, ys)
    analytic = [(backend.to_numpy(p.grad).copy(), p.data) for p in model.optimizer_parameters]
    return max(_rel_error(g, _numeric(objective, data, h)) for g, data in analytic)


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def check_loss(loss: Loss, y_pred: Any, y_true: Any, *, h: float = 1e-6) -> float:
    """Max relative error between ``loss.backward()`` and central differences of the loss."""
    y_pred = backend.asarray(y_pred)
    y_true = backend.asarray(y_true)
    loss(y_pred, y_true)
    analytic = backend.to_numpy(loss.backward()).copy()
    numeric = _numeric(lambda: float(loss(y_pred, y_true)), y_pred, h)
    return _rel_error(analytic, numeric)


def gradcheck(obj: Layer | Loss, *args: Any, **kwargs: Any) -> float:
    """``gradcheck(layer, x)``, ``gradcheck(compiled_model, x, y)`` (its training loss) or
    ``gradcheck(loss, y_pred, y_true)``: the max relative error."""
    if isinstance(obj, Loss):
        return check_loss(obj, *args, **kwargs)
    if len(args) == 2 and getattr(obj, "optimizer", None) is not None:
        return check_model_loss(obj, *args, **kwargs)
    return check_layer(obj, *args, **kwargs)
