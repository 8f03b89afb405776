"""Learning-rate schedules: callables ``schedule(step) -> lr`` (step counts from 0).

Pass one as ``lr`` to any optimizer; it is evaluated before every step. The
schedules a model file can store are those registered in :data:`SCHEDULES`
(decorate a subclass with :func:`register` to make it one).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

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
        self.lr, self.decay = float(lr), float(decay)

    def __call__(self, step: int) -> float:
        return self.lr / (1.0 + self.decay * step)


@register
class StepDecay(Schedule):
    """lr_t = lr · γ^⌊t / step_size⌋ (torch's StepLR, counted in steps)."""

    def __init__(self, lr: float, step_size: int, gamma: float = 0.1) -> None:
        self.lr, self.step_size, self.gamma = float(lr), int(step_size), float(gamma)

    def __call__(self, step: int) -> float:
        return self.lr * self.gamma ** (step // self.step_size)


@register
class ExponentialDecay(Schedule):
    """lr_t = lr · γ^(t / decay_steps)."""

    def __init__(self, lr: float, gamma: float, decay_steps: int = 1) -> None:
        self.lr, self.gamma, self.decay_steps = float(lr), float(gamma), int(decay_steps)

    def __call__(self, step: int) -> float:
        return self.lr * self.gamma ** (step / self.decay_steps)


@register
class CosineDecay(Schedule):
    """lr_t = min_lr + ½·(lr − min_lr)·(1 + cos(π·min(t, T)/T))."""

    def __init__(self, lr: float, total_steps: int, min_lr: float = 0.0) -> None:
        self.lr, self.total_steps, self.min_lr = float(lr), int(total_steps), float(min_lr)

    def __call__(self, step: int) -> float:
        progress = min(step, self.total_steps) / self.total_steps
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1.0 + math.cos(math.pi * progress))


@register
class LinearWarmup(Schedule):
    """lr rises linearly from lr·start_factor to the schedule's value over ``warmup_steps``,
    then follows ``after`` (a schedule or a constant lr)."""

    def __init__(self, after: Callable[[int], float] | float, warmup_steps: int,
                 start_factor: float = 0.0) -> None:
        self.after, self.warmup_steps, self.start_factor = after, int(warmup_steps), float(start_factor)

    def __call__(self, step: int) -> float:
        target = self.after(step) if callable(self.after) else float(self.after)
        if step >= self.warmup_steps:
            return target
        return target * (self.start_factor + (1.0 - self.start_factor) * step / self.warmup_steps)
