"""The pieces of the training loop that are not math: batching, progress, input checks."""

from __future__ import annotations

import math
import numbers
from typing import Any

from dnn import backend
from dnn.backend.ops import class_indices
from dnn.errors import ShapeError


class _Silent:
    def update(self, n: int = 1) -> None: ...

    def set_postfix(self, **kwargs: Any) -> None: ...

    def close(self) -> None: ...


def progress(total: int | None, desc: str, verbose: int) -> Any:
    """A tqdm progress bar over ``total`` steps for verbose=1, else a silent stand-in."""
    if verbose != 1:
        return _Silent()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)


def resolve_verbose(verbose: Any) -> Any:
    """Keras' ``verbose="auto"``: a progress bar (1) on a terminal, else one line per
    epoch (2); other values pass through to be checked."""
    if isinstance(verbose, str) and verbose == "auto":
        import sys

        return 1 if sys.stdout.isatty() and sys.stderr.isatty() else 2
    return verbose


def check_counts(batch_size: int | None, epochs: int, validation_split: float,
                 where: str) -> None:
    """``batch_size`` >= 1 (or None: the default), ``epochs`` >= 0, ``validation_split``
    in [0, 1)."""
    for arg, value, low in (("batch_size", batch_size, 1), ("epochs", epochs, 0)):
        if value is None and arg == "batch_size":
            continue
        if not is_int(value) or value < low:
            raise ValueError(f"{where}: {arg} must be an int >= {low}, got {value!r}")
    if (not isinstance(validation_split, numbers.Real) or isinstance(validation_split, bool)
            or not 0.0 <= validation_split < 1.0):
        raise ValueError(f"{where}: validation_split must be a number in [0, 1), got "
                         f"{validation_split!r}")


def split_validation(model: Any, x: Any, y: Any, validation_split: float,
                     validation_data: Any) -> tuple[Any, Any, Any]:
    """Hold out the last ``validation_split`` of the arrays (x, y) as Keras does:
    (train x, train y, (validation x, validation y)), each in the structure given
    (array, list or dict). A split that leaves no training or no validation sample is
    refused with both counts."""
    if validation_data is not None:
        raise ValueError("fit: pass validation_split or validation_data, not both (got "
                         f"validation_split={validation_split!r} and validation_data)")
    if x is None or y is None:
        raise ValueError("fit: x and y are both required")
    xs = [_numeric(a, "x", "fit") for a in per_name(x, model.input_names, "x", "input", "fit")]
    ys = [_numeric(a, "y", "fit") for a in per_name(y, model.output_names, "y", "output", "fit")]
    n = xs[0].shape[0] if xs[0].ndim else 0
    held_out = math.ceil(n * validation_split)
    split = n - held_out
    if split < 1 or held_out < 1:
        raise ValueError(
            f"fit: validation_split={validation_split!r} of {n} samples leaves {split} training "
            f"and {held_out} validation samples; both need at least 1 (use a smaller "
            "validation_split, more data, or validation_data=)")

    def part(arrays: list[Any], names: list[str], like: Any, rows: slice) -> Any:
        parts = [a[rows, ...] for a in arrays]
        if isinstance(like, dict):
            return dict(zip(names, parts))
        return parts if len(names) > 1 else parts[0]

    train, held = slice(0, split), slice(split, None)
    return (part(xs, model.input_names, x, train), part(ys, model.output_names, y, train),
            (part(xs, model.input_names, x, held), part(ys, model.output_names, y, held)))


def check_predictions(model: Any, outs: list[Any], where: str) -> None:
    """Each output's loss looks at the model's output for the first batch of a fit or
    evaluate call (``loss.check_predictions``): logits given to a loss on probabilities,
    for one, raise here rather than train to a meaningless loss."""
    names = model.output_names
    for name, loss, out in zip(names, model.losses, outs):
        try:
            loss.check_predictions(out)
        except ValueError as exc:
            label = f"{where}: " if len(names) == 1 else f"{where}: output {name!r}: "
            raise ValueError(label + str(exc)) from None


def per_output(value: Any, names: list[str], arg: str, broadcast: bool = True) -> list[Any]:
    """One entry per output from a single value (when ``broadcast``), a list or a dict."""
    if isinstance(value, dict):
        if set(value) != set(names):
            raise ValueError(f"compile: {arg} is a dict with keys {sorted(value)}; the model's "
                             f"outputs are named {names}")
        return [value[n] for n in names]
    if isinstance(value, (list, tuple)):
        if len(value) != len(names):
            raise ValueError(f"compile: {arg} must have one entry per output ({len(names)}: "
                             f"{', '.join(names)}), got {len(value)}")
        return list(value)
    if not broadcast:
        raise ValueError(f"compile: {arg} must be a list or a dict with one entry per output, "
                         f"got {value!r}")
    return [value] * len(names)


def compile_metrics(metrics: Any, names: list[str], losses: list[Any]) -> list[list[Any]]:
    """Metrics per output: a flat list applies to every output (fresh instances each).
    Each metric is told its output's loss (a binary accuracy on logits thresholds at 0)."""
    from dnn import metrics as metric_lib

    losses = list(losses) or [None] * len(names)  # the metrics setter may run before compile
    if metrics is None:
        metrics = []
    elif isinstance(metrics, (str, metric_lib.Metric)) or isinstance(metrics, type):
        metrics = [metrics]  # one metric, as Keras users write compile(metrics="accuracy")
    if isinstance(metrics, dict) or (
            isinstance(metrics, (list, tuple)) and len(names) > 1
            and all(isinstance(m, (list, tuple)) for m in metrics) and metrics):
        per = per_output(metrics, names, "metrics", broadcast=False)
        return [[metric_lib.get(m, loss=loss) for m in (ms if isinstance(ms, (list, tuple))
                                                        else [ms])]
                for ms, loss in zip(per, losses)]
    flat = list(metrics)
    if len(names) > 1 and any(isinstance(m, metric_lib.Metric) for m in flat):
        raise ValueError("compile: with several outputs, pass metric instances per output "
                         "(a dict or a list of lists); a flat list may hold names only")
    return [[metric_lib.get(m, loss=loss) for m in flat] for loss in losses]


def metric_log_names(names: list[str], output_metrics: list[list[Any]]) -> list[tuple[str, Any]]:
    """(log name, metric): ``accuracy``, or ``<output>_accuracy`` with several outputs; a
    name taken already (two metrics named alike, or a loss key) gets ``_1``, ``_2``, ..."""
    taken = {"loss"}
    if len(names) > 1:
        taken |= {f"{n}_loss" for n in names}
    items = []
    for i, ms in enumerate(output_metrics):
        for m in ms:
            base = m.name if len(names) == 1 else f"{names[i]}_{m.name}"
            key, k = base, 0
            while key in taken:
                k += 1
                key = f"{base}_{k}"
            taken.add(key)
            items.append((key, m))
    return items


def check_log_keys(names: list[str], items: list[tuple[str, Any]]) -> None:
    """Refuse output and metric names whose training log keys start with ``val_``: ``fit``
    logs validation results as ``val_<key>``, so an output named ``val`` (training key
    ``val_loss``) or a metric named ``val_accuracy`` would overwrite or be overwritten by a
    validation entry in the History."""
    if len(names) > 1:
        for name in names:
            if f"{name}_loss".startswith("val_"):
                raise ValueError(
                    f"compile: the output named {name!r} would log its loss as "
                    f"'{name}_loss', which clashes with the validation keys fit writes "
                    "('val_<key>'); give the output layer another name (not 'val' or 'val_...')")
    for key, metric in items:
        if key.startswith("val_"):
            raise ValueError(
                f"compile: the metric named {metric.name!r} would log as {key!r}, which clashes "
                "with the validation keys fit writes ('val_<key>'); give the metric a name that "
                "does not start with 'val_'")


def check_fit_inputs(model: Any, x: Any, y: Any, where: str = "fit") -> tuple[list[Any], list[Any]]:
    """Validate (x, y) once per call and move them to the backend, as one list of
    arrays per model input and one per output.

    ``x`` is an array (one input), a list in the order of ``model.inputs`` or a
    dict keyed by input names; ``y`` likewise for the outputs. Floating inputs
    take the default dtype; integer inputs stay integer where the model's Input
    declares an integer dtype, else become floating. Raises a clear error for
    empty or mismatched data and non-finite values; ``where`` starts every message.
    """
    if x is None or y is None:
        raise ValueError(f"{where}: x and y are both required")
    xs = inputs_list(model, x, where)
    ys = per_name(y, model.output_names, "y", "output", where)
    ys = [_numeric(v, name, where) for v, name in zip(ys, _labels("y", model.output_names))]
    n = xs[0].shape[0]
    for v, name in zip(ys, _labels("y", model.output_names)):
        if v.ndim == 0 or v.shape[0] != n:
            raise ShapeError(f"{where}: x and {name} must have the same number of samples, "
                             f"got {n} and shape {tuple(v.shape)}")
    ys = [_to_backend(v, keep_integers=True) for v in ys]
    for v, name in zip(ys, _labels("y", model.output_names)):
        _check_finite(v, name, where)
    ys = [_integral_labels(loss, v, name, where)
          for v, loss, name in zip(ys, model.losses, _labels("y", model.output_names))]
    for i, (v, loss, name) in enumerate(zip(ys, model.losses, _labels("y", model.output_names))):
        shape = model.output_shape_at(i, xs)
        _check_targets(loss, model.output_width(i, xs), v, where,
                       out_ndim=len(shape) if shape is not None else 2)
        _check_binary_targets(loss, v, name, where)
    return xs, ys


def _check_binary_targets(loss: Any, y: Any, name: str, where: str) -> None:
    """A binary cross-entropy reads targets as 0/1 labels or probabilities: values outside
    [0, 1] (class 2 of a three-class problem, say) are refused, not trained on silently."""
    from dnn.losses import BinaryCrossentropy, SigmoidBinaryCrossentropy

    if not isinstance(loss, (BinaryCrossentropy, SigmoidBinaryCrossentropy)) or y.shape[0] == 0:
        return
    xp = backend.xp
    if xp.isdtype(y.dtype, "bool"):
        return
    low, high = (float(v) for v in backend.to_numpy(xp.stack(
        [xp.astype(xp.min(y), xp.float64), xp.astype(xp.max(y), xp.float64)])))
    if low < 0.0 or high > 1.0:
        flat = xp.reshape(y, (-1,))
        first = int(xp.nonzero((flat < 0) | (flat > 1))[0][0])
        raise ValueError(
            f"{where}: {type(loss).__name__} reads {name} as 0/1 labels or probabilities in "
            f"[0, 1], got values from {low:g} to {high:g} (the first bad one, "
            f"{float(flat[first]):g}, at flat index {first}); for more than two classes use an "
            "output with one unit per class and SoftmaxCrossEntropy")


def _integral_labels(loss: Any, y: Any, name: str, where: str) -> Any:
    """Class indices given as floats (0.0 … 9.0, as pandas/CSV data often are) become
    int64 for a class-index loss, as Keras accepts them; fractional values are refused."""
    from dnn.losses import CategoricalCrossentropy, SoftmaxCrossEntropy

    xp = backend.xp
    if (y.ndim != 1 or not xp.isdtype(y.dtype, "real floating")
            or not isinstance(loss, (CategoricalCrossentropy, SoftmaxCrossEntropy))):
        return y
    if not bool(xp.all(y == xp.round(y))):
        bad = int(xp.nonzero(y != xp.round(y))[0][0])
        raise ValueError(f"{where}: {name} holds class indices for {type(loss).__name__}, but "
                         f"{name}[{bad}] = {float(y[bad])} is not a whole number; pass integer "
                         f"labels ({name}.astype(int)) or one-hot rows of shape (N, classes)")
    return xp.astype(y, xp.int64)


def fix_labels(loss: Any, y: Any) -> Any:
    """Class indices given as floats become int64 for a class-index loss (the check that
    they are whole numbers, :func:`_integral_labels`, ran on the first batch)."""
    from dnn.losses import CategoricalCrossentropy, SoftmaxCrossEntropy

    xp = backend.xp
    if (y.ndim == 1 and xp.isdtype(y.dtype, "real floating")
            and isinstance(loss, (CategoricalCrossentropy, SoftmaxCrossEntropy))):
        return xp.astype(y, xp.int64)
    return y


def inputs_list(model: Any, x: Any, where: str) -> list[Any]:
    """The model's inputs from ``x`` (array, list or dict): checked, on the backend."""
    if x is None:
        raise ValueError(f"{where}: x is required")
    xs = per_name(x, model.input_names, "x", "input", where)
    labels = _labels("x", model.input_names)
    xs = [_numeric(v, name, where) for v, name in zip(xs, labels)]
    n = xs[0].shape[0] if xs[0].ndim else 0
    for v, name in zip(xs, labels):
        if v.ndim == 0 or v.shape[0] == 0:
            raise ValueError(f"{where}: {name} is empty (shape {tuple(v.shape)})")
        if v.shape[0] != n:
            raise ShapeError(f"{where}: every input must have the same number of samples, "
                             f"got {n} and {name} of shape {tuple(v.shape)}")
    xs = [input_array(v, dtype) for v, dtype in zip(xs, model.input_dtypes)]
    for v, name in zip(xs, labels):
        _check_finite(v, name, where)
    return xs


def input_array(arr: Any, dtype: str | None) -> Any:
    """One model input on the backend: integers kept where the Input declares an integer
    dtype (token ids), else everything in the default floating dtype."""
    return _to_backend(arr, keep_integers=_is_integer_dtype(dtype))


def _is_integer_dtype(name: str | None) -> bool:
    return name is not None and name.startswith("int")


def _labels(arg: str, names: list[str]) -> list[str]:
    return [arg] if len(names) == 1 else [f"{arg}[{n!r}]" for n in names]


def per_name(value: Any, names: list[str], arg: str, kind: str, where: str) -> list[Any]:
    """One entry per model input/output from an array, a list or a dict keyed by name."""
    if isinstance(value, dict):
        if set(value) != set(names):
            raise ValueError(f"{where}: {arg} is a dict with keys {sorted(value)}; the model's "
                             f"{kind}s are named {names}")
        return [value[n] for n in names]
    if isinstance(value, (list, tuple)) and len(names) > 1:
        if len(value) != len(names):
            raise ValueError(f"{where}: {arg} must hold {len(names)} arrays, one per model {kind} "
                             f"({', '.join(names)}), got {len(value)}")
        return list(value)
    if len(names) > 1:
        raise ValueError(f"{where}: the model has {len(names)} {kind}s ({', '.join(names)}); "
                         f"pass {arg} as a list or a dict of {len(names)} arrays, got "
                         f"{type(value).__name__}")
    return [value]


def check_fit_args(where: str = "fit", **values: Any) -> None:
    """The counters of ``fit``/``evaluate``/``predict`` other than epochs and batch_size:
    ``initial_epoch`` >= 0, ``log_every`` >= 1, ``verbose`` in {0, 1, 2}, and the step
    counts (``steps_per_epoch``, ``validation_steps``, ``steps``) >= 1 or None."""
    for arg, value in values.items():
        if arg == "verbose":
            if value not in (0, 1, 2) or isinstance(value, float):
                raise ValueError(f"{where}: verbose must be 0 (silent), 1 (a progress bar) or 2 "
                                 f"(one line per epoch), got {value!r}")
            continue
        if value is None and "steps" in arg:
            continue
        low = 0 if arg == "initial_epoch" else 1
        if not is_int(value) or value < low:
            extra = " or None" if "steps" in arg else ""
            raise ValueError(f"{where}: {arg} must be an int >= {low}{extra}, got {value!r}")


def is_int(value: Any) -> bool:
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


def _check_targets(loss: Any, classes: int | None, y: Any, where: str = "fit",
                   out_ndim: int = 2) -> None:
    """Class-index labels must lie in [0, classes); one-hot rows must sum to 1. An output of
    ``out_ndim`` axes (N, ..., classes) takes labels of one axis fewer (N, ...), of shape
    (N, ..., 1), or one-hot rows along its last axis (per-position classes: a sequence)."""
    from dnn.losses import CategoricalCrossentropy, SoftmaxCrossEntropy

    if classes is None or not isinstance(loss, (CategoricalCrossentropy, SoftmaxCrossEntropy)):
        return
    xp = backend.xp
    integral = not xp.isdtype(y.dtype, "real floating")
    sparse_column = y.ndim == out_ndim and y.shape[-1] == 1 and classes > 1
    if integral and (y.ndim == out_ndim - 1 or sparse_column):
        y = class_indices(xp.reshape(y, (-1,)))  # compare in int64: ``uint8 >= 300`` wraps in torch
        low, high = int(xp.min(y)), int(xp.max(y))
        if low < 0 or high >= classes:
            first = int(xp.nonzero((y < 0) | (y >= classes))[0][0])
            raise ValueError(
                f"{where}: class labels must be in [0, {classes}) for a model with {classes} "
                f"outputs, got labels from {low} to {high} (the first bad one, {int(y[first])}, "
                f"at index {first})"
            )
    elif y.ndim == out_ndim:
        if y.shape[-1] != classes:
            raise ShapeError(
                f"{where}: one-hot targets must have {classes} columns, got {y.shape[-1]}"
                + (f" (or give class labels with {out_ndim - 1} axes, one per position)"
                   if out_ndim > 2 else "")
            )
        sums = xp.reshape(xp.sum(xp.astype(y, backend.default_dtype()), axis=-1), (-1,))
        if not bool(xp.all(xp.abs(sums - 1.0) < 1e-3)):
            first = int(xp.nonzero(xp.logical_not(xp.abs(sums - 1.0) < 1e-3))[0][0])
            raise ValueError(f"{where}: one-hot target rows must each sum to 1; row {first} "
                             f"sums to {float(sums[first]):g}")
