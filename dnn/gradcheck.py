"""Numerical gradient checks: central differences against a layer's or loss's backward.

For a scalar probe L = Σ (f(x) ⊙ r) with a fixed random r, the analytic
gradient from ``backward(r)`` is compared with (L(x + h·eᵢ) − L(x − h·eᵢ)) / 2h
for every element i of the input and of every parameter. Run it in float64.

What the returned number means (scale-aware, so a correct gradient never looks
wrong because some of its entries are tiny): for each checked array (an input,
a parameter) with analytic gradient a and numeric gradient n,

    error = max_i |a_i − n_i| / max(‖a‖∞ + ‖n‖∞, floor)

— the worst discrepancy relative to that array's gradient scale — and the
check returns the largest error over the arrays. ``floor`` is the larger of
1e-8 and 1e-3 × the largest scale ‖a‖∞ + ‖n‖∞ of any array in the same check,
so an array whose true gradient is (near) zero, e.g. a bias followed by a
batch norm, is measured against the rest of the check rather than against its
own round-off. Central differences in float64 with h = 1e-6 carry an absolute
error of about 1e-10 × |L|, far below 1e-6 of any gradient scale that matters.

"Pass" means ``error < 1e-6`` (the threshold the tests use, float64): every
entry of every gradient agrees with the numeric one to a millionth of that
array's largest gradient. A wrong backward (a missing factor, a transposed or
dropped term, a gradient of the wrong entry) gives errors from about 1e-3 to 1.
The error is never larger than the older element-wise relative error
|a_i − n_i| / max(|a_i| + |n_i|, 1e-8), which reported false alarms (1e-2 and
more) wherever a correct gradient entry was near zero.

A trainable parameter that backward leaves without a gradient (``grad is None``)
fails the check: :class:`GradcheckError` names it.

What it cannot judge, by construction: float32 (round-off of h = 1e-6 swamps the
differences — a warning says so; use ``dnn.set_default_dtype("float64")``);
points where the function has a kink (ReLU at exactly 0, max-pool ties: the
two one-sided derivatives differ, and either is a valid subgradient); random
layers in training mode (Dropout draws a new mask per call: pass ``mask=`` via
``forward_kwargs``); and, because the floor scales with the largest gradient of
the check, errors in a gradient many orders of magnitude smaller than the rest
(the first layers of a deep saturating network): check such layers on their own.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from dnn import backend
from dnn.layers.base import Layer
from dnn.losses.base import Loss
from dnn.training import check_fit_inputs

#: the smallest gradient scale an error is measured against (absolute)
_FLOOR = 1e-8
#: arrays are measured against at least this fraction of the check's largest gradient scale
_RELATIVE_FLOOR = 1e-3


def _scale(analytic: np.ndarray, numeric: np.ndarray) -> float:
    return float(np.max(np.abs(analytic)) + np.max(np.abs(numeric))) if analytic.size else 0.0


def _rel_error(analytic: np.ndarray, numeric: np.ndarray, floor: float = _FLOOR) -> float:
    """max |a − n| / max(‖a‖∞ + ‖n‖∞, floor): the worst discrepancy relative to the
    array's gradient scale (see the module docstring)."""
    if not analytic.size:
        return 0.0
    worst = float(np.max(np.abs(np.asarray(analytic, np.float64) - numeric)))
    return worst / max(_scale(analytic, numeric), floor)


def _max_error(pairs: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """The largest :func:`_rel_error` over (analytic, numeric) pairs of one check, each
    measured against at least 1e-3 of the check's largest gradient scale."""
    floor = max(_FLOOR, _RELATIVE_FLOOR * max((_scale(a, n) for a, n in pairs), default=0.0))
    return max((_rel_error(a, n, floor) for a, n in pairs), default=0.0)


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
    """The error (see the module docstring) between the analytic and numeric gradients of a layer (or model),
    over its floating input(s) and all its trainable parameters. Penalties (l1/l2) count.
    ``x`` is an array, or a list of arrays for a layer with several inputs; a layer with
    several outputs is probed on each."""
    kwargs = forward_kwargs or {}
    xp = backend.xp
    xs = [backend.asarray(v) for v in x] if isinstance(x, (list, tuple)) else backend.asarray(x)
    _warn_if_not_float64([*_list(xs), *(p.data for p in layer.parameters())])
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
    analytic = [(_grad(p, layer), p.data) for p in params]
    pairs = [(backend.to_numpy(g), _numeric(objective, v, h))
             for v, g in zip(_list(xs), _list(grad_x)) if xp.isdtype(v.dtype, "real floating")]
    pairs += [(g, _numeric(objective, data, h)) for g, data in analytic]
    return _max_error(pairs)


def check_model_loss(model: Any, x: Any, y: Any, *, h: float = 1e-6) -> float:
    """The error (see the module docstring) between the parameter gradients of a compiled model's training
    loss (Σ weighted output losses + penalties, as ``train_step`` computes them before
    the optimizer step) and central differences of that loss."""
    xs, ys = check_fit_inputs(model, x, y, where="gradcheck")

    def objective() -> float:
        return float(model.compute_gradients(xs, ys, backward=False))

    model.compute_gradients(xs, ys)
    analytic = [(_grad(p, model), p.data) for p in model.optimizer_parameters]
    return _max_error([(g, _numeric(objective, data, h)) for g, data in analytic])


def _grad(p: Any, owner: Any) -> np.ndarray:
    """A trainable parameter's gradient as a host copy; a parameter that backward left
    without one (``grad is None``) fails the check with its name."""
    if p.grad is None:
        who = owner.describe() if hasattr(owner, "describe") else type(owner).__name__
        raise GradcheckError(
            f"gradcheck: the trainable parameter {p.name!r} of {who} has no gradient "
            "(grad is None) after backward: the layer's backward did not set it, so the "
            "check fails for that parameter (its backward must call add_grad/set the "
            "gradient, or the parameter must be frozen with trainable=False)")
    return backend.to_numpy(p.grad).copy()


class GradcheckError(AssertionError):
    """A gradient check that cannot compare: a trainable parameter got no gradient."""


def _warn_if_not_float64(arrays: list[Any]) -> None:
    xp = backend.xp
    low = sorted({str(a.dtype) for a in arrays
                  if xp.isdtype(a.dtype, "real floating") and a.dtype != xp.float64})
    if low:
        warnings.warn(f"gradcheck on {', '.join(low)} arrays: central differences need float64 "
                      "(round-off makes correct gradients look wrong); call "
                      "dnn.set_default_dtype('float64') before building the layer and its input",
                      stacklevel=3)


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def check_loss(loss: Loss, y_pred: Any, y_true: Any, *, h: float = 1e-6) -> float:
    """The error (see the module docstring) between ``loss.backward()`` and central
    differences of the loss."""
    y_pred = backend.asarray(y_pred)
    y_true = backend.asarray(y_true)
    loss(y_pred, y_true)
    analytic = backend.to_numpy(loss.backward()).copy()
    numeric = _numeric(lambda: float(loss(y_pred, y_true)), y_pred, h)
    return _max_error([(analytic, numeric)])


def gradcheck(obj: Layer | Loss, *args: Any, **kwargs: Any) -> float:
    """``gradcheck(layer, x)``, ``gradcheck(compiled_model, x, y)`` (its training loss) or
    ``gradcheck(loss, y_pred, y_true)``: the largest scale-relative error (pass: < 1e-6 in
    float64; see the module docstring)."""
    if isinstance(obj, Loss):
        return check_loss(obj, *args, **kwargs)
    if len(args) == 2 and getattr(obj, "optimizer", None) is not None:
        return check_model_loss(obj, *args, **kwargs)
    return check_layer(obj, *args, **kwargs)
