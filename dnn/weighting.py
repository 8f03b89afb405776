"""Per-sample weights for ``fit``/``evaluate``: ``sample_weight=`` and ``class_weight=``.

A weight wᵢ ≥ 0 scales sample i's loss: the loss of a batch becomes
Σᵢ wᵢ·lᵢ / N (Keras' weighted mean; see :mod:`dnn.losses.base`).
``class_weight={c: w_c}`` is the same thing with wᵢ = w_{yᵢ} (classes not
named weigh 1): for class indices a gather, for one-hot (or smoothed) rows the
expectation Σ_c y_ic·w_c, for a single binary output w₀·(1 − y) + w₁·y. Given
both, the weights multiply, as in Keras.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from dnn import backend
from dnn.errors import ShapeError


def sample_weights(model: Any, weight: Any) -> list[Any]:
    """One (N,) backend array per output, in the default floating dtype, from one array
    (every output) or a list/dict with one per output; (N, 1) columns become (N,)."""
    names = model.output_names
    if isinstance(weight, dict):
        if set(weight) != set(names):
            raise ValueError(f"sample_weight is a dict with keys {sorted(weight)}; the model's "
                             f"outputs are named {names}")
        weights = [weight[n] for n in names]
    elif isinstance(weight, (list, tuple)) and len(names) > 1:
        if len(weight) != len(names):
            raise ValueError(f"sample_weight must hold one array per output ({len(names)}), "
                             f"got {len(weight)}")
        weights = list(weight)
    else:
        weights = [weight] * len(names)
    xp = backend.xp
    out = []
    for w in weights:
        if not backend.is_array(w):
            w = np.asarray(w)
            if w.dtype.kind not in "biuf":
                raise TypeError(f"sample_weight must hold numbers, got dtype {w.dtype}")
        w = xp.astype(backend.asarray(w), backend.default_dtype())
        if w.ndim == 2 and w.shape[1] == 1:
            w = xp.reshape(w, (-1,))
        out.append(w)
    return out


def check_sample_weight(model: Any, weight: Any, n: int, where: str) -> list[Any]:
    """:func:`sample_weights`, each checked: shape (N,), finite, >= 0 (one host read)."""
    try:
        weights = sample_weights(model, weight)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{where}: {exc}") from None
    xp = backend.xp
    for w in weights:
        if w.ndim != 1 or w.shape[0] != n:
            raise ShapeError(f"{where}: sample_weight must have shape ({n},) (one weight per "
                             f"sample), got {tuple(w.shape)}")
        bad = xp.logical_not(xp.isfinite(w)) | (w < 0)
        if bool(xp.any(bad)):
            first = int(xp.nonzero(bad)[0][0])
            raise ValueError(f"{where}: sample_weight must be finite and >= 0, got "
                             f"{float(w[first])} at index {first}")
    return weights


def check_class_weight(model: Any, class_weight: Any, where: str) -> None:
    """``{class index: weight >= 0}`` for a model with one classification output."""
    if class_weight is None:
        return
    from dnn.losses import (
        BinaryCrossentropy,
        CategoricalCrossentropy,
        SigmoidBinaryCrossentropy,
        SoftmaxCrossEntropy,
    )

    if len(model.output_names) > 1:
        raise ValueError(f"{where}: class_weight is for a model with one output; this one has "
                         f"{len(model.output_names)} ({', '.join(model.output_names)}): pass "
                         "sample_weight per output instead")
    classifying = (CategoricalCrossentropy, SoftmaxCrossEntropy, BinaryCrossentropy,
                   SigmoidBinaryCrossentropy)
    if not isinstance(model.losses[0], classifying):
        raise ValueError(f"{where}: class_weight weighs samples by their class, but the loss "
                         f"{type(model.losses[0]).__name__} does not read classes; pass "
                         "sample_weight instead")
    if not isinstance(class_weight, dict) or not class_weight:
        raise TypeError(f"{where}: class_weight must be a non-empty dict {{class index: "
                        f"weight}}, got {class_weight!r}")
    for c, w in class_weight.items():
        if not isinstance(c, numbers.Integral) or isinstance(c, bool) or c < 0:
            raise ValueError(f"{where}: class_weight keys must be class indices (ints >= 0), "
                             f"got {c!r}")
        if (not isinstance(w, numbers.Real) or isinstance(w, bool) or not w >= 0
                or w == float("inf")):
            raise ValueError(f"{where}: class_weight[{c}] must be a finite number >= 0, got {w!r}")


def class_weight_vector(model: Any, class_weight: dict[int, float], where: str, xs: list[Any],
                        y: Any) -> Any:
    """``{class: weight}`` as a backend vector over the output's classes (those not named
    weigh 1). The number of classes is the output's width (2 for one binary unit); a key
    beyond it is refused."""
    xp = backend.xp
    shape = model.output_shape_at(0, xs)
    if shape is not None and len(shape) > 2:
        raise ValueError(f"{where}: class_weight weighs whole samples by their one class, but "
                         f"this model's output {tuple(shape)} has a class per position; weigh "
                         "positions through the loss instead, or pass sample_weight per sample")
    width = model.output_width(0, xs)
    if y.ndim == 2 and y.shape[1] > 1:
        width = int(y.shape[1])
    elif width is None or width == 1:  # one binary unit, or an output of unknown width
        width = 2 if width == 1 or xp.isdtype(y.dtype, "real floating") else (
            int(xp.max(y)) + 1 if y.shape[0] else 1)
    if max(class_weight) >= width:
        raise ValueError(f"{where}: class_weight names class {max(class_weight)}, but the "
                         f"model's output has {width} classes (0 to {width - 1})")
    values = [float(class_weight.get(c, 1.0)) for c in range(width)]
    return backend.asarray(values, dtype=backend.default_dtype())


def with_class_weight(vector: Any, y: Any, weights: list[Any] | None) -> list[Any]:
    """The per-sample weights of ``class_weight`` for targets ``y``, times ``weights``."""
    xp = backend.xp
    if y.ndim == 1 and not xp.isdtype(y.dtype, "real floating"):
        w = xp.take(vector, xp.astype(y, xp.int64), axis=0)
    elif y.ndim == 2 and y.shape[1] > 1:
        w = xp.astype(y, vector.dtype) @ vector
    else:  # one binary output: targets in [0, 1]
        t = xp.reshape(xp.astype(y, vector.dtype), (-1,))
        w = vector[0] * (1.0 - t) + vector[1] * t
    return [w if weights is None else w * weights[0]]
