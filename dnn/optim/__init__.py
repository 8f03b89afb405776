"""Optimizers (torch.optim update rules and defaults) and learning-rate schedules."""

from __future__ import annotations

from typing import Any

from dnn.optim import schedules
from dnn.optim.adagrad import Adagrad
from dnn.optim.adam import Adam, AdamW, NAdam
from dnn.optim.base import OPTIMIZERS, Optimizer
from dnn.optim.random_search import RandomSearch, RandomSearchResult
from dnn.optim.rmsprop import RMSprop
from dnn.optim.scipy import LBFGS, ScipyOptimizer, ScipyResult
from dnn.optim.sgd import SGD


def get(optimizer: str | Optimizer, **kwargs: Any) -> Optimizer:
    """An optimizer by name (``"adam"``, ``"SGD"``) with default arguments, or itself."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    return OPTIMIZERS.get(optimizer)(**kwargs)


__all__ = ["LBFGS", "OPTIMIZERS", "SGD", "Adagrad", "Adam", "AdamW", "NAdam", "Optimizer", "RMSprop",
           "RandomSearch", "RandomSearchResult", "ScipyOptimizer", "ScipyResult", "get", "schedules"]
