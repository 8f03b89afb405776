"""Trainable arrays and the flat storage that makes optimizer steps cheap.

A :class:`Parameter` holds ``data`` and ``grad``. :func:`flat_groups` packs a
list of parameters into one contiguous buffer per dtype (one for the data, one
for the gradients) and rebinds every ``p.data`` / ``p.grad`` to a view of it.
An optimizer then updates all parameters of a model with a handful of large
vectorised operations instead of a few small ones per parameter — on NumPy the
per-call overhead of many small updates costs more than the matrix products.

Layers never notice: they read ``p.data`` and assign ``p.grad = ...``; once a
parameter lives in a flat group, that assignment copies into its view.
"""

from __future__ import annotations

from typing import Any

from dnn import backend


class Parameter:
    """A trainable array: ``data``, its gradient ``grad`` (or None) and a ``name``."""

    __slots__ = ("_grad", "data", "group", "name")

    def __init__(self, data: Any, name: str = "") -> None:
        self.data = data
        self._grad: Any = None
        self.name = name
        self.group: FlatGroup | None = None

    @property
    def grad(self) -> Any:
        return self._grad

    @grad.setter
    def grad(self, value: Any) -> None:
        if self.group is not None:
            # keep the view into the flat buffer; None (zero_grad style) zeroes it
            self._grad[...] = 0.0 if value is None else value
        else:
            self._grad = value

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def size(self) -> int:
        return _size(self.data.shape)

    def __repr__(self) -> str:
        return f"Parameter(name={self.name!r}, shape={self.shape}, dtype={self.data.dtype})"


def _size(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


class FlatGroup:
    """Parameters of one dtype whose data and grads are views of two flat arrays."""

    def __init__(self, params: list[Parameter]) -> None:
        xp = backend.xp
        self.params = list(params)
        dtype = params[0].data.dtype
        sizes = [p.size for p in params]
        total = sum(sizes)
        self.data = xp.zeros((total,), dtype=dtype)
        self.grad = xp.zeros((total,), dtype=dtype)
        self.slices: list[tuple[int, int]] = []
        start = 0
        for p, n in zip(params, sizes):
            stop = start + n
            self.slices.append((start, stop))
            old_data, old_grad = p.data, p.grad
            shape = tuple(old_data.shape)
            p.data = xp.reshape(self.data[start:stop], shape)
            p.data[...] = old_data
            p.group = None
            p.grad = xp.reshape(self.grad[start:stop], shape)
            if old_grad is not None:
                p.grad[...] = old_grad
            p.group = self
            start = stop

    def view(self, flat: Any, index: int) -> Any:
        """The slice of a flat array (data, grad or optimizer state) for parameter ``index``."""
        start, stop = self.slices[index]
        return backend.xp.reshape(flat[start:stop], self.params[index].shape)


def flat_groups(params: list[Parameter]) -> list[FlatGroup]:
    """The flat groups holding exactly ``params``, packing them if needed."""
    params = list({id(p): p for p in params}.values())  # a shared parameter counts once
    groups: list[FlatGroup] = []
    for p in params:
        if p.group is None:
            return _pack(params)
        if p.group not in groups:
            groups.append(p.group)
    if sum(len(g.params) for g in groups) != len(params):
        return _pack(params)
    return groups


def _pack(params: list[Parameter]) -> list[FlatGroup]:
    by_dtype: dict[str, list[Parameter]] = {}
    for p in params:
        by_dtype.setdefault(str(p.data.dtype), []).append(p)
    return [FlatGroup(ps) for ps in by_dtype.values()]
