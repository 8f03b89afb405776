"""Shared and frozen parameters in model files.

A parameter reachable under several state-dict keys (a tied weight, or a layer
nested twice) is stored ONCE, under its first key; ``ties`` maps every later
key to that first one, and loading puts the one parameter back at each key
(:meth:`dnn.layers.Layer.set_parameter`). ``frozen`` lists the keys of the
parameters with ``trainable = False``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dnn.errors import ShapeError
from dnn.io.container import Archive
from dnn.io.specs import SpecError


def ties(model: Any) -> dict[str, str]:
    """State keys whose parameter is the one at an earlier key (tied or shared weights)."""
    first: dict[int, str] = {}
    ties = {}
    for key, p in model.named_parameters():
        if id(p) in first:
            ties[key] = first[id(p)]
        else:
            first[id(p)] = key
    return ties


def unique_state(model: Any) -> dict[str, Any]:
    """``model.state_dict()`` without the keys of :func:`ties` (each array once)."""
    tied = ties(model)
    return {k: v for k, v in model.state_dict().items() if k not in tied}


def load_state(model: Any, state: dict[str, np.ndarray]) -> None:
    """``model.load_state_dict`` with each tied key given its first key's array."""
    tied = ties(model)
    model.load_state_dict({**state, **{k: state[first] for k, first in tied.items()}})


def restore_ties_and_flags(ar: Archive, model: Any) -> None:
    """Tie the parameters the file lists as tied; freeze those it lists as frozen; give each
    listed parameter its penalties."""
    tied, frozen = ar.meta.get("ties") or {}, ar.meta.get("frozen") or []
    if not isinstance(tied, dict) or not isinstance(frozen, list):
        raise SpecError(f"metadata 'ties' must be an object and 'frozen' a list, got "
                        f"{tied!r:.80} and {frozen!r:.80}")
    params = dict(model.named_parameters())
    for key, first in tied.items():
        if not isinstance(first, str) or key not in params or first not in params:
            raise SpecError(f"ties: {key!r} -> {first!r} names a parameter the architecture "
                            "does not have")
        if params[key] is not params[first]:
            try:
                model.set_parameter(key, params[first])
            except (KeyError, ShapeError) as exc:
                raise SpecError(f"ties: cannot tie {key!r} to {first!r}: {exc}") from exc
    params = dict(model.named_parameters())
    for key in frozen:
        if not isinstance(key, str) or key not in params:
            raise SpecError(f"frozen: {key!r} names a parameter the architecture does not have")
        params[key].trainable = False
    penalties = ar.meta.get("penalties") or {}
    if not isinstance(penalties, dict):
        raise SpecError(f"metadata 'penalties' must be an object, got {penalties!r:.80}")
    for key, pair in penalties.items():
        if key not in params or not isinstance(pair, list) or len(pair) != 2:
            raise SpecError(f"penalties: {key!r}: {pair!r:.60} must name a parameter of the "
                            "architecture and give [l1, l2]")
        try:
            params[key].l1, params[key].l2 = pair
        except ValueError as exc:
            raise SpecError(f"penalties: {key!r}: {exc}") from exc
