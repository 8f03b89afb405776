"""The loss protocol, reductions and per-sample weights.

``loss(y_pred, y_true, sample_weight=None)`` computes per-sample losses lᵢ
(i = 1..N, the batch axis first) and reduces them with optional weights wᵢ ≥ 0:

- ``reduction="mean"`` (default):  L = (1/N) Σᵢ wᵢ·lᵢ,   dL/dlᵢ = wᵢ / N
  (Keras' ``sum_over_batch_size``: divided by N, not by Σ w; wᵢ = 1 without weights)
- ``reduction="sum"``:             L = Σᵢ wᵢ·lᵢ,         dL/dlᵢ = wᵢ
- ``reduction="none"``:            Lᵢ = wᵢ·lᵢ (shape (N,)); with an upstream
  gradient gᵢ (default 1, the gradient of Σᵢ Lᵢ):  dL/dlᵢ = gᵢ·wᵢ.

A loss over classes reads (N, ..., C) predictions with the classes on the last
axis and has lᵢ = (1/K) Σ_p Σ_c eᵢ_pc, the mean over the sample's K positions p
(K = 1 for (N, C); K = T for per-token logits (N, T, C)) of its rows of terms;
an elementwise loss has lᵢ = (1/K) Σ_j eᵢ_j, the mean over the sample's K
non-batch elements. Either way the unweighted mean is the mean over all N·K
positions or elements. ``loss.backward()`` returns dL/dy_pred = dL/dlᵢ · dlᵢ/dy_pred,
i.e. each term's own gradient deᵢ_j/dy_pred times the factor (dL/dlᵢ)/K, one
multiply over the array.

The default (``"mean"``, no weights) is the hot path of every training step: it
reduces all terms in one sum and scales the gradient by the Python number 1/M,
with no per-sample pass.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dnn import backend
from dnn.errors import ShapeError
from dnn.registry import Registry

#: loss class name or alias (``"mse"``) -> class, for model files and ``compile(loss="...")``
REGISTRY = Registry("loss")

#: the reductions, and the Keras name that means the same as ``"mean"``
REDUCTIONS = ("mean", "sum", "none")
_REDUCTION_ALIASES = {"sum_over_batch_size": "mean"}


def register(cls: type[Loss] | None = None, *, aliases: tuple[str, ...] = ()) -> Any:
    """Class decorator (``@register`` or ``@register(aliases=("mse",))``): make a loss
    nameable by its class name (and aliases) in ``compile(loss=...)`` and model files."""
    return REGISTRY.register(cls, aliases=aliases)


class Loss:
    """Subclasses implement ``forward`` (reduces its terms with :meth:`_reduce_rows` or
    :meth:`_reduce_elements`, caches what ``gradient`` needs in ``_cache``) and
    ``gradient`` (returns dL/dy_pred, scaling each term's gradient by :meth:`_scale`)."""

    #: whether ``y_pred`` is read as logits (raw scores): metrics that threshold binary
    #: outputs (``"binary_accuracy"``) then use 0 instead of 0.5
    from_logits = False
    reduction = "mean"
    #: the (N,) weights of the last call (None: unweighted)
    _weights: Any = None
    #: dL/dlᵢ set by backward: None (the unweighted mean), a number, or an (N,) array
    _coef: Any = None
    #: whether the last call checks its targets and weights (``check=``)
    _check = True

    def __init__(self, reduction: str = "mean") -> None:
        self.reduction = _check_reduction(self, reduction)

    def __call__(self, y_pred: Any, y_true: Any, sample_weight: Any = None, *,
                 check: bool = True) -> Any:
        """The reduced loss; ``sample_weight`` is (N,) or (N, 1), NumPy or backend, ≥ 0.
        ``check=False`` skips the checks of the targets and weights (class labels in
        range, weights finite and non-negative: a device read each), for data the
        training loop has checked already."""
        y_true = backend.asarray(y_true) if not backend.is_array(y_true) else y_true
        self._weights = None
        self._check = check
        if sample_weight is None and self.reduction == "mean":
            return self.forward(y_pred, y_true)
        if y_pred.ndim == 0:
            raise ShapeError(f"{type(self).__name__}: sample weights and reduction="
                             f"{self.reduction!r} need predictions with a batch axis, got a 0-d array")
        if sample_weight is not None:
            self._weights = sample_weights(self, sample_weight, y_pred.shape[0], y_pred.dtype,
                                           check=check)
        return self.forward(y_pred, y_true)

    def forward(self, y_pred: Any, y_true: Any) -> Any:
        raise NotImplementedError

    def backward(self, grad: Any = None) -> Any:
        """dL/dy_pred for the last call; frees the cache. ``grad``: only with
        ``reduction="none"``, the (N,) upstream gradient dL/dLᵢ (default ones)."""
        if grad is not None and self.reduction != "none":
            raise ValueError(f"{type(self).__name__}(reduction={self.reduction!r}) returns one "
                             "number; backward takes an upstream gradient only with "
                             "reduction='none'")
        try:
            self._coef = self._sample_coefficients(grad)
            return self.gradient()
        except (TypeError, AttributeError) as exc:
            if getattr(self, "_cache", None) is not None:
                raise
            raise RuntimeError(
                f"{type(self).__name__}.backward called before a forward call "
                "(or twice for one forward): call loss(y_pred, y_true) first"
            ) from exc

    def gradient(self) -> Any:
        raise NotImplementedError

    def check_predictions(self, y_pred: Any) -> None:
        """Raise ``ValueError`` when ``y_pred`` cannot be what this loss reads (e.g. logits
        given to a loss on probabilities). ``fit`` and ``evaluate`` call it on the model's
        output for the first batch of each call only (it may read the device); the base
        class accepts everything."""

    def get_config(self) -> dict[str, Any]:
        return {"reduction": self.reduction}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def _check_same_shape(self, y_pred: Any, y_true: Any) -> None:
        if tuple(y_pred.shape) != tuple(y_true.shape):
            raise ShapeError(
                f"{type(self).__name__}: y_true must have the shape of y_pred "
                f"{tuple(y_pred.shape)}, got {tuple(y_true.shape)}"
            )

    # ---------------------------------------------------------------- reductions
    def _reduce_rows(self, terms: Any) -> Any:
        """Reduce (N, ..., C) terms: a row's sum is the loss at one position, the mean over
        a sample's K positions its loss lᵢ ((N, C): K = 1, the row sum itself)."""
        xp = backend.xp
        positions = numel(tuple(terms.shape[1:-1]))
        if self._weights is None and self.reduction == "mean":
            return xp.sum(terms) / (terms.shape[0] * positions)
        per_sample = xp.sum(terms, axis=tuple(range(1, terms.ndim)))
        return self._weigh(per_sample if positions == 1 else per_sample / positions)

    def _reduce_elements(self, terms: Any) -> Any:
        """Reduce terms whose per-sample means (over the non-batch axes) are the losses."""
        xp = backend.xp
        if self._weights is None and self.reduction == "mean":
            return xp.mean(terms)
        per_sample = terms if terms.ndim == 1 else xp.mean(terms, axis=tuple(range(1, terms.ndim)))
        return self._weigh(per_sample)

    def _weigh(self, per_sample: Any) -> Any:
        """Σᵢ wᵢ·lᵢ / N, Σᵢ wᵢ·lᵢ or the vector wᵢ·lᵢ."""
        self._rows = (per_sample.shape[0], per_sample.dtype)  # for an upstream gradient
        weighted = per_sample if self._weights is None else per_sample * self._weights
        if self.reduction == "none":
            return weighted
        total = backend.xp.sum(weighted)
        return total if self.reduction == "sum" else total / per_sample.shape[0]

    def _sample_coefficients(self, grad: Any) -> Any:
        """dL/dlᵢ of the reduction (see the module docstring); None for the unweighted mean."""
        weights = self._weights
        if grad is not None:  # reduction="none"
            n, dtype = self._rows  # AttributeError before the first forward call
            upstream = per_sample_array(self, grad, "the upstream gradient", n, dtype)
            return upstream if weights is None else upstream * weights
        if self.reduction == "mean":
            return None if weights is None else weights * (1.0 / weights.shape[0])
        return 1.0 if weights is None else weights

    def _scale(self, shape: tuple[int, ...], elementwise: bool) -> Any:
        """The factor (dL/dlᵢ)/K that multiplies each term's gradient for y_pred of ``shape``
        (K: the elements per sample, or its positions (N, ..., C) over classes): a Python
        number on the unweighted paths, else an (N, 1, ..., 1) array."""
        k = numel(shape[1:]) if elementwise else numel(shape[1:-1])
        coef = self._coef
        if coef is None:  # the unweighted mean: 1/M
            return 1.0 / (numel(shape[:1]) * k)
        if isinstance(coef, float):
            return coef / k
        coef = coef if k == 1 else coef * (1.0 / k)
        return coef if len(shape) == 1 else backend.xp.reshape(coef, (shape[0],) + (1,) * (len(shape) - 1))


def _check_reduction(loss: Loss, reduction: Any) -> str:
    canonical = _REDUCTION_ALIASES.get(reduction, reduction) if isinstance(reduction, str) else None
    if canonical not in REDUCTIONS:
        raise ValueError(f"{type(loss).__name__}: reduction must be one of "
                         f"{', '.join(map(repr, REDUCTIONS))} (or 'sum_over_batch_size', "
                         f"Keras' name for 'mean'), got {reduction!r}")
    return canonical


def per_sample_array(loss: Loss, value: Any, what: str, n: int, dtype: Any) -> Any:
    """``value`` (NumPy, list or backend; shape (n,) or (n, 1), numbers) as an (n,) backend
    array in ``dtype``."""
    name = type(loss).__name__
    if not backend.is_array(value):
        host = np.asarray(value)
        if host.dtype.kind not in "biuf":
            raise TypeError(f"{name}: {what} must be numbers, got dtype {host.dtype}")
        value = backend.asarray(host if host.dtype.kind == "f" else host.astype(np.float64))
    xp = backend.xp
    if not xp.isdtype(value.dtype, ("bool", "integral", "real floating")):
        raise TypeError(f"{name}: {what} must be numbers, got dtype {value.dtype}")
    shape = tuple(value.shape)
    if shape not in ((n,), (n, 1)):
        raise ShapeError(f"{name}: {what} must have shape ({n},) or ({n}, 1), one value per "
                         f"sample, got {shape}")
    value = value if value.dtype == dtype else xp.astype(value, dtype)
    return xp.reshape(value, (n,)) if len(shape) == 2 else value


def sample_weights(loss: Loss, sample_weight: Any, n: int, dtype: Any, *, check: bool = True) -> Any:
    """Per-sample weights as an (n,) backend array in ``dtype``: shape (n,) or (n, 1),
    finite and ≥ 0. NumPy weights are checked on the host; backend weights on the device
    with one host read (skipped with ``check=False``)."""
    name = type(loss).__name__
    host = None if backend.is_array(sample_weight) else np.asarray(sample_weight)
    weights = per_sample_array(loss, sample_weight if host is None else host, "sample_weight",
                               n, dtype)
    if host is not None:
        low, nonfinite = (float(np.min(host)), int(np.sum(~np.isfinite(host)))) if n else (0.0, 0)
    elif check and n:
        xp = backend.xp
        low, nonfinite = stats(xp.min(weights), xp.sum(xp.astype(~xp.isfinite(weights), weights.dtype)))
    else:
        return weights
    if nonfinite:
        raise ValueError(f"{name}: sample_weight must be finite, got {int(nonfinite)} NaN or "
                         "infinite value(s)")
    if low < 0:
        raise ValueError(f"{name}: sample_weight must be >= 0, got a weight of {low:g}")
    return weights


def stats(*values: Any) -> list[float]:
    """Several 0-d device values read to the host with one transfer."""
    xp = backend.xp
    stacked = xp.stack([xp.astype(v, xp.float64) for v in values])
    return [float(v) for v in backend.to_numpy(stacked)]


def numel(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def class_targets(loss: Loss, y_pred: Any, y_true: Any) -> Any:
    """Targets for (N, ..., C) predictions (classes on the last axis) as float rows of
    y_pred's shape: one-hot from integer class indices of shape (N, ...) (or (N, ..., 1),
    as Keras accepts them), or the given one-hot / probability rows of shape (N, ..., C)."""
    xp = backend.xp
    name = type(loss).__name__
    if y_pred.ndim < 2:
        raise ShapeError(f"{name}: expected predictions of shape (batch, classes) or (batch, ..., "
                         f"classes), got {tuple(y_pred.shape)}")
    shape, lead, classes = tuple(y_true.shape), tuple(y_pred.shape[:-1]), int(y_pred.shape[-1])
    if shape == tuple(y_pred.shape):
        return xp.astype(y_true, y_pred.dtype)
    if shape in (lead, (*lead, 1)):
        if xp.isdtype(y_true.dtype, "real floating"):
            raise ShapeError(f"{name}: class-index targets must be integers, got dtype {y_true.dtype}")
        from dnn.backend import deferred
        from dnn.backend.ops import class_indices, one_hot

        labels = class_indices(xp.reshape(y_true, (-1,)))
        # an id outside [0, C) would get an all-zero row and add nothing: refuse it (at once on
        # the CPU; on a GPU with the training loop's other checks, without a sync per step),
        # unless the caller checked the labels already (fit, evaluate: check=False)
        if loss._check:
            deferred.check((labels < 0) | (labels >= classes),
                           f"{name}: class labels must be in [0, {classes}) for {classes} "
                           "classes",
                           lambda: f", got labels from {int(xp.min(labels))} to "
                                   f"{int(xp.max(labels))}")
        rows = one_hot(labels, classes, y_pred.dtype)
        return rows if len(lead) == 1 else xp.reshape(rows, tuple(y_pred.shape))
    raise ShapeError(f"{name}: expected targets of shape {lead} (class indices) or "
                     f"{tuple(y_pred.shape)} (one-hot rows) for predictions of shape "
                     f"{tuple(y_pred.shape)} (classes on the last axis: (batch, classes) or "
                     f"(batch, ..., classes)), got {shape}")
