"""Learning-rate schedules: callables ``schedule(step) -> lr`` (step counts from 0).

Pass one as ``lr`` to any optimizer; it is evaluated before every step. The
schedules a model file can store are those registered in :data:`SCHEDULES`
(decorate a subclass with :func:`register` to make it one).

Every constructor checks its arguments (a finite initial lr > 0, whole step
counts >= 1, decay factors > 0, ...), so a schedule never yields a negative
or NaN rate nor divides by zero; the optimizer also refuses a non-finite or
negative rate from any callable at step time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from dnn.optim.base import check_count, check_number
from dnn.registry import Registry

#: schedule class name -> class; the only way a model file can name a schedule
SCHEDULES = Registry("schedule")


def register(cls: type[Schedule]) -> type[Schedule]:
    """Class decorator: make a schedule type storable in (and loadable from) model files."""
    return SCHEDULES.register(cls)


class Schedule:
    def __call__(self, step: int) -> float:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return dict(vars(self))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@register
class InverseTimeDecay(Schedule):
    """lr_t = lr / (1 + decay·t) — the NNFS book's decay."""

    def __init__(self, lr: float, decay: float) -> None:
        self.lr = _initial_lr(self, lr)
        self.decay = check_number(type(self).__name__, "decay", decay, 0.0)

    def __call__(self, step: int) -> float:
        return self.lr / (1.0 + self.decay * step)


@register
class StepDecay(Schedule):
    """lr_t = lr · γ^⌊t / step_size⌋ (torch's StepLR, counted in steps)."""

    def __init__(self, lr: float, step_size: int, gamma: float = 0.1) -> None:
        name = type(self).__name__
        self.lr = _initial_lr(self, lr)
        self.step_size = check_count(name, "step_size", step_size, 1)
        self.gamma = check_number(name, "gamma", gamma, 0.0, low_open=True)

    def __call__(self, step: int) -> float:
        return self.lr * self.gamma ** (step // self.step_size)


@register
class ExponentialDecay(Schedule):
    """lr_t = lr · γ^(t / decay_steps)."""

    def __init__(self, lr: float, gamma: float, decay_steps: int = 1) -> None:
        name = type(self).__name__
        self.lr = _initial_lr(self, lr)
        self.gamma = check_number(name, "gamma", gamma, 0.0, low_open=True)
        self.decay_steps = check_count(name, "decay_steps", decay_steps, 1)

    def __call__(self, step: int) -> float:
        return self.lr * self.gamma ** (step / self.decay_steps)


@register
class CosineDecay(Schedule):
    """lr_t = min_lr + ½·(lr − min_lr)·(1 + cos(π·min(t, T)/T))."""

    def __init__(self, lr: float, total_steps: int, min_lr: float = 0.0) -> None:
        name = type(self).__name__
        self.lr = _initial_lr(self, lr)
        self.total_steps = check_count(name, "total_steps", total_steps, 1)
        self.min_lr = check_number(name, "min_lr", min_lr, 0.0, self.lr)

    def __call__(self, step: int) -> float:
        progress = min(step, self.total_steps) / self.total_steps
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1.0 + math.cos(math.pi * progress))


@register
class LinearWarmup(Schedule):
    """lr rises linearly from lr·start_factor to the schedule's value over ``warmup_steps``,
    then follows ``after`` (a schedule or a constant lr)."""

    def __init__(self, after: Callable[[int], float] | float, warmup_steps: int,
                 start_factor: float = 0.0) -> None:
        name = type(self).__name__
        self.after = after if callable(after) else _initial_lr(self, after, "after")
        self.warmup_steps = check_count(name, "warmup_steps", warmup_steps, 0)
        self.start_factor = check_number(name, "start_factor", start_factor, 0.0, 1.0)

    def __call__(self, step: int) -> float:
        target = self.after(step) if callable(self.after) else float(self.after)
        if step >= self.warmup_steps:
            return target
        return target * (self.start_factor + (1.0 - self.start_factor) * step / self.warmup_steps)


def _initial_lr(schedule: Schedule, lr: float, arg: str = "lr") -> float:
    return check_number(type(schedule).__name__, arg, lr, 0.0, low_open=True)
