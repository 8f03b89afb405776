"""Turning a model file's architecture and compile settings into a model, within
what the file can back.

:func:`build_model` builds the layers under an :class:`~dnn.io.budget.AllocationBudget`
whose limit comes from the file's own array headers, read before any layer
exists: the bytes of the arrays loading will read (at most the file size),
plus the parameters the file lists as tied (each tied layer allocates its own
copy before loading ties it; at most three times the arrays), plus
:data:`~dnn.io.budget.SLACK_BYTES`; temporaries that live only during one call
(NumPy draws float64 numbers, then casts them) may use twice the arrays' bytes
more. So a few-kilobyte file cannot make loading allocate gigabytes, whatever
its sizes and however they are nested, while the layers of a file that dnn
saved fit exactly. No layer runs while a file is loaded: the graph of a model
is built symbolically (:func:`dnn.graph.symbolic_shapes`), each node's output
shape from its layer's ``output_shape`` and a nested model's from its own
outputs, so a file describing huge activations allocates none of them, and a
model nested in another costs its node count, not a forward pass.

Metrics and losses allocate later, from their settings (a confusion matrix is
``num_classes``² counts): every integer in their configs must be at most
:func:`setting_limit` — the widest dimension of any array in the file (a
classifier's class count is one) or the side of a square the budget could hold
in int64, whichever is larger — checked before they are constructed.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

from dnn import backend
from dnn.backend import random
from dnn.graph import symbolic_shapes
from dnn.io.budget import SLACK_BYTES, AllocationBudget, AllocationRefused
from dnn.io.container import Archive, fail
from dnn.io.sharing import restore_ties_and_flags
from dnn.io.specs import SpecError, decode_layer, decode_loss, decode_metric, decode_optimizer

#: tied parameters may add at most this many times the file's parameter bytes
_MAX_TIE_FACTOR = 3


def file_budget(ar: Archive, training_state: bool = True) -> tuple[AllocationBudget, int]:
    """The allocation budget for building the model of ``ar`` and the widest dimension
    of its parameter arrays (headers only; raises SerializationError for a bad header).
    ``training_state=False``: the optimizer arrays, which will not be read, do not count."""
    headers = {n: ar.header(n) for n in sorted(ar.names)
               if training_state or not n.startswith("optimizer/")}
    stored = min(sum(h.nbytes for h in headers.values()), ar.size)
    tied = ar.meta.get("ties")
    credit = 0
    if isinstance(tied, dict):
        credit = sum(headers[f"state/{first}"].nbytes for first in tied.values()
                     if isinstance(first, str) and f"state/{first}" in headers)
    credit = min(credit, _MAX_TIE_FACTOR * stored)
    held = (f"this {ar.size:,}-byte file can back (its arrays: {stored:,} bytes, {credit:,} "
            f"more for tied parameters, {SLACK_BYTES:,} to spare)")
    budget = AllocationBudget(stored + credit + SLACK_BYTES, held, transient=2 * stored)
    widest = max((max(h.shape, default=1) for n, h in headers.items() if n.startswith("state/")),
                 default=1)
    return budget, widest


def setting_limit(budget: AllocationBudget, widest: int) -> int:
    """The largest integer a metric or loss setting may have (see the module docstring)."""
    return max(widest, math.isqrt(budget.limit // 8), 2)


def build_model(ar: Archive, arch: dict[str, Any], dtype: str, comp: dict[str, Any] | None) -> Any:
    """The model of ``arch`` in ``dtype``, compiled with ``comp`` (unless None), with
    ties and frozen flags restored; SerializationError naming ``ar.path`` otherwise."""
    budget, widest = file_budget(ar, training_state=comp is not None)
    try:
        with _default_dtype(dtype), _rng_untouched(), symbolic_shapes():
            with budget:
                model = decode_layer(arch)
                if not callable(getattr(model, "compile", None)):  # a model, not a bare layer
                    raise SpecError(f"architecture: the top level must be a model (Sequential "
                                    f"or Model), got {type(model).__name__}")
                restore_ties_and_flags(ar, model)
                settings = None if comp is None else decode_compile(comp, setting_limit(budget, widest))
            if budget.refusal:  # refused, even if a layer caught the error and went on
                raise SpecError(budget.refusal)
            if settings is not None:
                try:
                    model.compile(**settings)
                except Exception as exc:  # ValueError (losses vs outputs), TypeError, ...
                    raise SpecError(f"compile: the file's settings do not fit the model "
                                    f"({type(exc).__name__}: {exc})") from exc
    except SpecError as exc:  # a refusal caught and rewrapped by a layer still reads as one
        refused = isinstance(exc, AllocationRefused) or not budget.refusal
        raise fail(ar.path, str(exc) if refused else budget.refusal) from exc
    except RecursionError as exc:
        raise fail(ar.path, "architecture is nested too deeply") from exc
    except MemoryError as exc:
        raise fail(ar.path, "building the model ran out of memory: the architecture asks for "
                            "more than this machine has (MemoryError)") from exc
    return model


def decode_compile(comp: dict[str, Any], limit: int) -> dict[str, Any]:
    """``model.compile`` keyword arguments from the file's compile settings (format 2:
    one loss and one metric list per output; format 1: one loss), with every integer
    setting of a loss or metric at most ``limit``."""
    loss, metrics = comp.get("loss"), comp.get("metrics", [])
    if not isinstance(metrics, list):
        raise SpecError(f"compile.metrics must be a list, got {metrics!r:.80}")
    optimizer = decode_optimizer(comp.get("optimizer"))
    if not isinstance(loss, list):  # format 1
        check_settings(loss, "compile.loss", limit)
        check_settings(metrics, "compile.metrics", limit)
        return {"loss": decode_loss(loss), "optimizer": optimizer,
                "metrics": [decode_metric(m) for m in metrics]}
    if not all(isinstance(ms, list) for ms in metrics) or len(metrics) != len(loss):
        raise SpecError("compile.metrics must hold one list per output")
    check_settings(loss, "compile.loss", limit)
    check_settings(metrics, "compile.metrics", limit)
    losses = [decode_loss(v) for v in loss]
    metric_lists = [[decode_metric(m) for m in ms] for ms in metrics]
    weights = comp.get("loss_weights")
    if (not isinstance(weights, list) or len(weights) != len(losses) or not all(
            isinstance(w, (int, float)) and not isinstance(w, bool) for w in weights)):
        raise SpecError(f"compile.loss_weights must be a list of {len(losses)} numbers, "
                        f"got {weights!r:.80}")
    single = len(losses) == 1
    return {"loss": losses[0] if single else losses, "optimizer": optimizer,
            "metrics": metric_lists[0] if single else metric_lists, "loss_weights": weights}


def check_settings(value: Any, where: str, limit: int) -> None:
    """Refuse any integer in ``value`` (JSON) larger than ``limit`` in magnitude."""
    stack: list[tuple[str, Any]] = [(where, value)]
    while stack:
        at, item = stack.pop()
        if isinstance(item, dict):
            stack.extend((f"{at}.{k}", v) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((f"{at}[{i}]", v) for i, v in enumerate(item))
        elif isinstance(item, int) and not isinstance(item, bool) and abs(item) > limit:
            raise SpecError(f"{at} = {item} is larger than the model's widest array and than "
                            f"what this file can back (at most {limit}); refusing to build it")


@contextlib.contextmanager
def _default_dtype(name: str) -> Iterator[None]:
    old = backend._default_dtype_name
    backend.set_default_dtype(name)
    try:
        yield
    finally:
        backend.set_default_dtype(old)


@contextlib.contextmanager
def _rng_untouched() -> Iterator[None]:
    """Building layers draws initial weights that the file then overwrites; put the
    generator back so that loading a model does not shift anyone's random stream."""
    state = random.get_state()
    try:
        yield
    finally:
        random.set_state(state)
