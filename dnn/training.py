"""The pieces of the training loop that are not math: batching, progress, input checks."""

from __future__ import annotations

import numbers
from collections.abc import Iterator
from typing import Any

from dnn import backend
from dnn.backend import random
from dnn.errors import ShapeError


def batches(x: Any, y: Any, batch_size: int, shuffle: bool) -> Iterator[tuple[Any, Any]]:
    """Mini-batches of (x, y) in order, or in a fresh random order each call."""
    n = x.shape[0]
    bounds = [(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]
    if not shuffle:
        for start, stop in bounds:
            yield x[start:stop, ...], y[start:stop, ...]
        return
    xp = backend.xp
    order = random.permutation(n)
    for start, stop in bounds:
        index = order[start:stop]
        yield xp.take(x, index, axis=0), xp.take(y, index, axis=0)


class _Silent:
    def update(self, n: int = 1) -> None: ...

    def set_postfix(self, **kwargs: Any) -> None: ...

    def close(self) -> None: ...


def progress(total: int, desc: str, verbose: int) -> Any:
    """A tqdm progress bar over ``total`` steps, or a silent stand-in for verbose=0."""
    if not verbose:
        return _Silent()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)


def check_fit_inputs(model: Any, x: Any, y: Any, batch_size: int, epochs: int,
                     validation_split: float, where: str = "fit") -> tuple[Any, Any]:
    """Validate training arguments once per call and move (x, y) to the backend.

    Floating inputs take the default dtype; integer inputs become floating
    unless the first layer reads integers (Embedding). Raises a clear error
    for empty or mismatched data, bad batch sizes and non-finite values.
    ``where`` ("fit", "evaluate") starts every message.
    """
    for arg, value, low in (("batch_size", batch_size, 1), ("epochs", epochs, 0)):
        if not _is_int(value) or value < low:
            raise ValueError(f"{where}: {arg} must be an int >= {low}, got {value!r}")
    if not 0.0 <= validation_split < 1.0:
        raise ValueError(f"{where}: validation_split must be in [0, 1), got {validation_split!r}")
    if x is None or y is None:
        raise ValueError(f"{where}: x and y are both required")
    if not model.layers:
        raise ValueError(f"{where}: the model has no layers")
    x, y = _numeric(x, "x", where), _numeric(y, "y", where)
    x_shape, y_shape = tuple(x.shape), tuple(y.shape)
    if len(x_shape) == 0 or x_shape[0] == 0:
        raise ValueError(f"{where}: x is empty (shape {x_shape})")
    if len(y_shape) == 0 or y_shape[0] != x_shape[0]:
        raise ShapeError(
            f"{where}: x and y must have the same number of samples, got x {x_shape} and y {y_shape}"
        )
    integer_input = getattr(model.layers[0], "integer_input", False) if model.layers else False
    x = _to_backend(x, keep_integers=integer_input)
    y = _to_backend(y, keep_integers=True)
    for name, arr in (("x", x), ("y", y)):
        _check_finite(arr, name, where)
    _check_targets(model, x, y, where)
    return x, y


def check_validation_data(model: Any, data: Any, batch_size: int) -> tuple[Any, Any]:
    """``validation_data`` must be a pair (x_val, y_val), checked as fit's own data."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        length = f" of length {len(data)}" if hasattr(data, "__len__") else ""
        raise ValueError(f"fit: validation_data must be a pair (x_val, y_val), got "
                         f"{type(data).__name__}{length}")
    return check_fit_inputs(model, data[0], data[1], batch_size, 1, 0.0, where="fit: validation_data")


def check_fit_args(initial_epoch: int, log_every: int) -> None:
    """The counters of ``fit`` other than epochs and batch_size."""
    for arg, value, low in (("initial_epoch", initial_epoch, 0), ("log_every", log_every, 1)):
        if not _is_int(value) or value < low:
            raise ValueError(f"fit: {arg} must be an int >= {low}, got {value!r}")


def check_predict_inputs(model: Any, x: Any, batch_size: int) -> Any:
    """Validate ``predict``'s input (non-empty, numeric, finite) and move it to the backend."""
    if not _is_int(batch_size) or batch_size < 1:
        raise ValueError(f"predict: batch_size must be an int >= 1, got {batch_size!r}")
    if x is None:
        raise ValueError("predict: x is required")
    if not model.layers:
        raise ValueError("predict: the model has no layers")
    x = _numeric(x, "x", "predict")
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"predict: x is empty (shape {tuple(x.shape)})")
    x = _to_backend(x, keep_integers=getattr(model.layers[0], "integer_input", False))
    _check_finite(x, "x", "predict")
    return x


def _is_int(value: Any) -> bool:
    """A Python or NumPy integer (both are ``numbers.Integral``), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _numeric(arr: Any, name: str, where: str) -> Any:
    """NumPy or backend arrays pass; lists become backend arrays; strings/objects are refused."""
    if not hasattr(arr, "shape") or not hasattr(arr, "dtype"):
        try:
            arr = backend.asarray(arr)
        except Exception as exc:
            raise TypeError(f"{where}: {name} must be an array, got {type(arr).__name__}") from exc
    if getattr(arr.dtype, "kind", "f") not in "biuf":  # NumPy dtypes say their kind
        raise TypeError(f"{where}: {name} must hold numbers, got dtype {arr.dtype}")
    return arr


def _check_finite(arr: Any, name: str, where: str) -> None:
    """One device reduction and one host sync per call (not per step)."""
    xp = backend.xp
    if not xp.isdtype(arr.dtype, "real floating"):
        return
    # a finite sum proves every element finite (NaN and ±Inf propagate) in one read-only
    # pass; only when it is not (or it overflowed) look element by element
    if bool(xp.isfinite(xp.sum(arr))) or bool(xp.all(xp.isfinite(arr))):
        return
    bad = xp.logical_not(xp.isfinite(xp.reshape(arr, (arr.shape[0], -1))))
    rows = xp.nonzero(xp.any(bad, axis=1))[0]
    raise ValueError(
        f"{where}: {name} contains NaN or Inf values ({int(rows.shape[0])} of "
        f"{arr.shape[0]} samples, the first at index {int(rows[0])})"
    )


def _to_backend(arr: Any, keep_integers: bool) -> Any:
    xp = backend.xp
    arr = backend.asarray(arr)
    if xp.isdtype(arr.dtype, "real floating"):
        if arr.dtype != backend.default_dtype():
            arr = xp.astype(arr, backend.default_dtype())
    elif not keep_integers or xp.isdtype(arr.dtype, "bool"):
        arr = xp.astype(arr, backend.default_dtype())
    return arr


def _check_targets(model: Any, x: Any, y: Any, where: str = "fit") -> None:
    """Class-index labels must lie in [0, classes); one-hot rows must sum to 1."""
    from dnn.losses import CategoricalCrossentropy, SoftmaxCrossEntropy

    if not isinstance(model.loss, (CategoricalCrossentropy, SoftmaxCrossEntropy)):
        return
    xp = backend.xp
    try:
        classes = model.output_shape((1, *x.shape[1:]))[-1]
    except Exception:  # a layer without output_shape: skip the range check
        return
    if y.ndim == 1 and not xp.isdtype(y.dtype, "real floating"):
        low, high = int(xp.min(y)), int(xp.max(y))
        if low < 0 or high >= classes:
            first = int(xp.nonzero((y < 0) | (y >= classes))[0][0])
            raise ValueError(
                f"{where}: class labels must be in [0, {classes}) for a model with {classes} "
                f"outputs, got labels from {low} to {high} (the first bad one, {int(y[first])}, "
                f"at index {first})"
            )
    elif y.ndim == 2:
        if y.shape[1] != classes:
            raise ShapeError(
                f"{where}: one-hot targets must have {classes} columns, got {y.shape[1]}"
            )
        sums = xp.sum(xp.astype(y, backend.default_dtype()), axis=1)
        if not bool(xp.all(xp.abs(sums - 1.0) < 1e-3)):
            first = int(xp.nonzero(xp.logical_not(xp.abs(sums - 1.0) < 1e-3))[0][0])
            raise ValueError(f"{where}: one-hot target rows must each sum to 1; row {first} "
                             f"sums to {float(sums[first]):g}")
