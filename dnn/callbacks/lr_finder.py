"""The learning-rate range test (Leslie Smith, 2015; the fast.ai ``lr_find``).

Train for at most N batches while the learning rate grows geometrically from
``start_lr`` to ``end_lr``:

    lr_k = start · (end / start)^(k / (N − 1)),   k = 0, …, N − 1

and record each batch's loss ℓ_k. The raw losses are noisy, so they are
smoothed with an exponential moving average, bias-corrected as in Adam:

    a_k = β·a_{k−1} + (1 − β)·ℓ_k,  a_{−1} = 0;     L_k = a_k / (1 − β^(k+1))

The test stops early once L_k > diverge_factor · min_{j≤k} L_j or ℓ_k is not
finite: the rate has become too large. Plotted against log lr, L falls slowly
at tiny rates, steeply where the rate is useful, and shoots up past it. The
suggested rate is the one where L falls fastest (:meth:`LRFinder.suggestion`).

The test trains the model, so it snapshots the weights (and buffers), the
optimizer's state, learning rate and schedule when training begins and
restores them exactly when it ends: the model is left as it was.

    finder = dnn.callbacks.find_lr(model, x, y, batch_size=64)
    finder.plot("lr.png")
    model.optimizer.lr = finder.suggestion()
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from dnn import backend
from dnn.backend import random
from dnn.callbacks.base import Callback, _copy_state
from dnn.optim.base import check_count, check_number

#: fit's batch size for arrays when none is given
_FIT_BATCH_SIZE = 32


class LRFinder(Callback):
    """Sweep the learning rate from ``start_lr`` to ``end_lr`` over ``num_steps`` batches.

    Add it to ``fit`` (with enough epochs for ``num_steps`` batches), or let
    :func:`find_lr` do that. ``smoothing`` is β of the moving average of the
    loss; the test stops when the smoothed loss exceeds ``diverge_factor``
    times its minimum. After training: ``lrs`` (the rate of each recorded
    batch), ``losses`` (smoothed), ``raw_losses``, ``diverged``, and the model
    restored. A non-finite loss stops the test without being recorded.

    The optimizer's per-step schedule, if any, is suspended during the test.
    An optimizer that accumulates gradients (``gradient_accumulation_steps >
    1``) is refused: test with the accumulated batch size instead.
    """

    def __init__(self, start_lr: float = 1e-7, end_lr: float = 10.0, num_steps: int = 100,
                 smoothing: float = 0.98, diverge_factor: float = 4.0) -> None:
        name = type(self).__name__
        self.start_lr = check_number(name, "start_lr", start_lr, 0.0, low_open=True)
        self.end_lr = check_number(name, "end_lr", end_lr, 0.0, low_open=True)
        if self.end_lr <= self.start_lr:
            raise ValueError(f"{name}: end_lr must be larger than start_lr (the rate grows "
                             f"from start_lr to end_lr), got start_lr={start_lr!r}, "
                             f"end_lr={end_lr!r}")
        self.num_steps = check_count(name, "num_steps", num_steps, 2)
        self.smoothing = check_number(name, "smoothing", smoothing, 0.0, 1.0, high_open=True)
        self.diverge_factor = check_number(name, "diverge_factor", diverge_factor, 1.0,
                                           low_open=True)
        self.lrs: list[float] = []
        self.losses: list[float] = []
        self.raw_losses: list[float] = []
        #: True when the test stopped because the loss blew up (not after num_steps)
        self.diverged = False
        self._saved: dict[str, Any] | None = None

    def lr_at(self, step: int) -> float:
        """lr_k = start · (end / start)^(k / (N − 1))."""
        return self.start_lr * (self.end_lr / self.start_lr) ** (step / (self.num_steps - 1))

    # ------------------------------------------------------------------ the test
    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None:
            raise RuntimeError(f"{type(self).__name__}: the model has no optimizer; call "
                               "model.compile(loss=..., optimizer=...) first")
        k = optimizer.gradient_accumulation_steps
        if k > 1:
            raise ValueError(
                f"{type(self).__name__}: the optimizer accumulates gradients over {k} batches, "
                "so the learning rate could not change per update; run the test with "
                "gradient_accumulation_steps=1 and a batch size k times larger")
        state = optimizer.state_dict(self.model.optimizer_parameters)
        copies = {key: backend.xp.asarray(value, copy=True) for key, value in state["arrays"].items()}
        self._saved = {"weights": _copy_state(self.model), "optimizer": optimizer,
                       "optimizer_state": {**state, "arrays": copies},
                       "schedule": optimizer.schedule, "epoch": self.model.epoch}
        self.lrs, self.losses, self.raw_losses = [], [], []
        self.diverged = False
        self._average, self._best = 0.0, math.inf
        optimizer.schedule = None  # the test sets lr itself, batch by batch
        optimizer.lr = self.lr_at(0)

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        loss = float((logs or {})["loss"])  # one host read per batch: fine for a short test
        step = len(self.lrs)
        if not math.isfinite(loss):
            self.diverged = self.model.stop_training = True
            return
        beta = self.smoothing
        self._average = beta * self._average + (1.0 - beta) * loss
        smoothed = self._average / (1.0 - beta ** (step + 1))
        self.lrs.append(self.model.optimizer.lr)
        self.raw_losses.append(loss)
        self.losses.append(smoothed)
        self._best = min(self._best, smoothed)
        if smoothed > self.diverge_factor * self._best:
            self.diverged = self.model.stop_training = True
        elif step + 1 >= self.num_steps:
            self.model.stop_training = True
        else:
            self.model.optimizer.lr = self.lr_at(step + 1)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self.restore()

    def restore(self) -> None:
        """Put back the weights, optimizer state, lr, schedule and epoch counter saved when
        training began (done by ``on_train_end``; a no-op when nothing is pending)."""
        saved, self._saved = self._saved, None
        if saved is None:
            return
        optimizer = saved["optimizer"]
        self.model.load_state_dict(saved["weights"])
        optimizer.load_state_dict(self.model.optimizer_parameters, saved["optimizer_state"])
        optimizer.schedule = saved["schedule"]
        self.model.epoch = saved["epoch"]

    # ------------------------------------------------------------------ reading it
    def suggestion(self) -> float:
        """The learning rate where the smoothed loss falls fastest against log lr.

        The slope dL/d(log lr) is taken by central differences (``numpy.gradient``)
        over all n recorded points; as fast.ai does, the first ⌊n/10⌋ and the last
        ⌊n/20⌋ points (at least one at each end) are ignored — at the start the
        moving average is still settling, at the end the loss is blowing up — and the
        lr of the most negative slope among the rest is returned. Needs n ≥ 4.
        """
        index = self._steepest()
        if index is None:
            n = len(self.losses)
            raise ValueError(
                f"{type(self).__name__}.suggestion: only {n} point(s) were recorded "
                f"({'the loss diverged early' if self.diverged else 'has the test run?'}); "
                "at least 4 are needed: raise num_steps or lower end_lr")
        return self.lrs[index]

    def _steepest(self) -> int | None:
        """The index :meth:`suggestion` picks, or None with fewer than 4 points."""
        n = len(self.losses)
        skip_start, skip_end = max(1, n // 10), max(1, n // 20)
        if n < skip_start + skip_end + 2:
            return None
        slopes = np.gradient(np.asarray(self.losses), np.log(np.asarray(self.lrs)))
        return skip_start + int(np.argmin(slopes[skip_start:n - skip_end]))

    def plot(self, path: str | os.PathLike[str] | None = None, ax: Any = None) -> Any:
        """The smoothed loss against lr on a log axis, the raw losses faint behind it (the
        y range fits the smoothed curve) and the suggestion marked; drawn on ``ax`` if
        given, else on a new figure. Returns the matplotlib Figure, written as a PNG
        (atomically) when ``path`` is given."""
        if not self.losses:
            raise ValueError(f"{type(self).__name__}.plot: nothing was recorded; run the test "
                             "first (dnn.callbacks.find_lr, or fit with this callback)")
        if ax is None:
            from dnn.plot import _figure

            ax = _figure(6.4, 4.2).subplots()
        ax.plot(self.lrs, self.raw_losses, color="C0", alpha=0.25, label="loss")
        ax.plot(self.lrs, self.losses, color="C0", label="smoothed loss")
        best = self._steepest()
        if best is not None:  # (too few points: the curve alone)
            ax.plot([self.lrs[best]], [self.losses[best]], "o", color="C3",
                    label=f"suggestion {self.lrs[best]:.3g}")
        low, high = min(self.losses), max(self.losses)
        margin = 0.05 * (high - low) or 0.05 * abs(high) or 0.05
        ax.set_ylim(low - margin, high + margin)
        ax.set_xscale("log")
        ax.set(xlabel="learning rate", ylabel="loss", title="Learning-rate range test")
        ax.grid(alpha=0.3)
        ax.legend()
        figure = ax.figure
        if path is not None:
            from dnn.io.files import atomic_write

            atomic_write(path, lambda f: figure.savefig(f, format="png"))
        return figure


def find_lr(model: Any, x: Any, y: Any = None, *, start_lr: float = 1e-7, end_lr: float = 10.0,
            num_steps: int = 100, batch_size: int | None = None, seed: int | None = None,
            smoothing: float = 0.98, diverge_factor: float = 4.0, **fit_kwargs: Any) -> LRFinder:
    """Run the learning-rate range test on a compiled model; returns the :class:`LRFinder`.

    Calls ``model.fit(x, y, ...)`` with an :class:`LRFinder` (``start_lr``, ``end_lr``,
    ``num_steps``, ``smoothing``, ``diverge_factor``) as its one callback, ``verbose=0``
    unless given, ``seed``, ``batch_size`` (None: fit's default, 32 for arrays; leave it
    None for a DataLoader), the other ``fit_kwargs``, and enough epochs for ``num_steps``
    batches: ⌈num_steps / B⌉ with B = ``steps_per_epoch`` if given, ⌈len(x) /
    batch_size⌉ for arrays, ``len(x)`` for a DataLoader; for other data ``num_steps``
    epochs (an upper bound: the finder stops fit). Afterwards — even if fit raised —
    the model is as before: weights, optimizer state, lr, schedule, ``epoch``,
    ``history``, ``rng_state``; so is the random generator, so a later ``fit`` runs
    as it would have without the test.
    """
    if getattr(model, "optimizer", None) is None or not getattr(model, "losses", None):
        raise RuntimeError(f"find_lr: the {type(model).__name__} is not compiled; call "
                           "model.compile(loss=..., optimizer=...) first")
    taken = sorted({"epochs", "callbacks", "initial_epoch"} & set(fit_kwargs))
    if taken:
        raise TypeError(f"find_lr: {', '.join(f'{k}=' for k in taken)} cannot be given: find_lr "
                        "chooses the epochs and adds the finder as fit's only callback")
    finder = LRFinder(start_lr, end_lr, num_steps, smoothing, diverge_factor)
    if batch_size is not None:
        fit_kwargs["batch_size"] = check_count("find_lr", "batch_size", batch_size, 1)
    per_epoch = _batches_per_epoch(x, batch_size or _FIT_BATCH_SIZE, fit_kwargs)
    epochs = finder.num_steps if per_epoch is None else math.ceil(finder.num_steps / per_epoch)
    fit_kwargs.setdefault("verbose", 0)
    had_history = hasattr(model, "history")
    saved = {"rng": random.get_state(), "rng_state": model.rng_state,
             "history": getattr(model, "history", None)}
    try:
        model.fit(x, y, epochs=epochs, seed=seed, callbacks=[finder], **fit_kwargs)
    finally:
        finder.restore()  # (done by on_train_end, unless fit raised before it)
        random.set_state(saved["rng"])
        model.rng_state = saved["rng_state"]
        if had_history:
            model.history = saved["history"]
        elif hasattr(model, "history"):
            del model.history
    return finder


def _batches_per_epoch(x: Any, batch_size: int, fit_kwargs: dict[str, Any]) -> int | None:
    """Batches in one epoch of fit on ``x``, or None when that cannot be known up front."""
    if fit_kwargs.get("steps_per_epoch"):
        return int(fit_kwargs["steps_per_epoch"])
    if fit_kwargs.get("validation_split"):
        return None  # fewer samples than len(x) train; the upper bound is safe
    first = next(iter(x.values()), None) if isinstance(x, dict) else (
        x[0] if isinstance(x, (list, tuple)) and x else x)
    shape = getattr(first, "shape", None)
    if shape is not None and len(shape) > 0:
        return max(1, math.ceil(int(shape[0]) / batch_size))
    if isinstance(x, (list, tuple, dict)) or not hasattr(x, "__len__"):
        return None
    try:
        return max(1, len(x))  # a DataLoader: batches per pass
    except TypeError:  # an iterable dataset that does not know its length
        return None


__all__ = ["LRFinder", "find_lr"]
