"""Trainable arrays and the flat storage that makes optimizer steps cheap.

A :class:`Parameter` holds ``data`` and ``grad``. :func:`flat_groups` packs a
list of parameters into one contiguous buffer per dtype (one for the data, one
for the gradients) and rebinds every ``p.data`` / ``p.grad`` to a view of it.
An optimizer then updates all parameters of a model with a handful of large
vectorised operations instead of a few small ones per parameter — on NumPy the
per-call overhead of many small updates costs more than the matrix products.

Gradients of one backward pass. A backward pass is numbered (:func:`backward_pass`);
a layer hands each contribution to :meth:`Parameter.add_grad` (or
:meth:`Parameter.add_grad_matmul` for a matrix product): the first contribution
of a pass REPLACES what ``grad`` held (written in place, into the flat buffer
when there is one: no temporary, no ``zero_grad`` to forget), later ones of
the same pass ADD to it — a layer applied twice, or a parameter tied to two
layers, gets the sum of its uses. A frozen parameter (``trainable = False``)
receives nothing: layers skip computing its gradient.

Weight penalties belong to the parameter, not to the layer: ``Parameter(data,
name, l1=, l2=)`` adds

    l1·Σ|w| + l2·Σ w²     to the loss, and     l1·sign(w) + 2·l2·w     to dL/dw

(the NNFS book's regularizers, ch. 14), once per backward pass however often
the parameter is used (:func:`penalty` and :func:`add_penalty_grads`). Every
layer's ``l1=``/``l2=`` (and Dense's ``bias_l1=``/``bias_l2=``) just sets these.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Iterator
from typing import Any

from dnn import backend

#: number of the backward pass running now (0: none has run yet)
_pass = 0
#: True while a pass is open; nested ``backward_pass()`` calls join it
_open = False
#: bumped whenever a parameter's ``trainable`` changes (graphs cache what depends on it)
trainable_version = 0


@contextlib.contextmanager
def backward_pass() -> Iterator[int]:
    """Open a numbered backward pass (or join the one already open): within it,
    gradient contributions to the same parameter add up."""
    global _pass, _open
    if _open:
        yield _pass
        return
    _pass += 1
    _open = True
    try:
        yield _pass
    finally:
        _open = False


class Parameter:
    """A trainable array: ``data``, its gradient ``grad`` (or None), a ``name`` and
    ``trainable`` (False freezes it: no gradient is computed, no optimizer touches it)."""

    __slots__ = ("_grad", "_l1", "_l2", "_pass", "_trainable", "data", "group", "name")

    def __init__(self, data: Any, name: str = "", trainable: bool = True,
                 l1: float = 0.0, l2: float = 0.0) -> None:
        self.data = data
        self.name = name
        #: penalty coefficients: l1·Σ|w| + l2·Σw² is added to the training loss
        self.l1, self.l2 = l1, l2
        self._grad: Any = None
        self.name = name
        self.group: FlatGroup | None = None
        self._trainable = bool(trainable)
        self._pass = -1  # the backward pass whose gradient ``grad`` holds

    @property
    def l1(self) -> float:
        """The l1 penalty coefficient (a finite number >= 0)."""
        return self._l1

    @l1.setter
    def l1(self, value: float) -> None:
        self._l1 = _coefficient(self, "l1", value)

    @property
    def l2(self) -> float:
        """The l2 penalty coefficient (a finite number >= 0)."""
        return self._l2

    @l2.setter
    def l2(self, value: float) -> None:
        self._l2 = _coefficient(self, "l2", value)

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        global trainable_version
        if bool(value) != self._trainable:
            self._trainable = bool(value)
            trainable_version += 1

    def add_grad(self, value: Any) -> None:
        """Add ``value`` to this pass's gradient (the first contribution replaces the old one)."""
        if not self.trainable:
            return
        if self._pass == _pass:
            if self.group is not None:
                self._grad += value
            else:
                self._grad = self._grad + value
            return
        self.grad = value
        self._pass = _pass

    def add_grad_matmul(self, a: Any, b: Any) -> None:
        """``add_grad(a @ b)``; the first contribution of a pass is written straight into
        the flat gradient buffer (no temporary). Skipped, product and all, when frozen."""
        if not self.trainable:
            return
        if self._pass != _pass and self.group is not None:
            backend.library.matmul_into(a, b, out=self._grad)
            self._pass = _pass
        else:
            self.add_grad(a @ b)

    def clear_stale_grad(self, pass_id: int) -> None:
        """After pass ``pass_id``: a parameter it did not reach has gradient zero
        (None when it has no flat buffer)."""
        if self.trainable and self._pass != pass_id:
            self.grad = None
            self._pass = pass_id

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

    def ungroup(self) -> None:
        """Leave the flat group: own storage again, no gradient (a parameter being frozen)."""
        if self.group is None:
            return
        data = backend.xp.reshape(backend.xp.asarray(self.data, copy=True), self.shape)
        self.group = None
        self.data, self._grad = data, None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def size(self) -> int:
        return _size(self.data.shape)

    def __repr__(self) -> str:
        return f"Parameter(name={self.name!r}, shape={self.shape}, dtype={self.data.dtype})"


def _coefficient(param: Parameter, arg: str, value: Any) -> float:
    """A penalty coefficient as a float: finite and >= 0 (a negative one would reward large
    weights, NaN would destroy them)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0:
        raise ValueError(f"Parameter {param.name!r}: {arg} must be a finite number >= 0, got "
                         f"{value!r}")
    return float(value)


def penalty(params: list[Parameter]) -> Any:
    """Σ over ``params`` (each once) of l1·Σ|w| + l2·Σw²; 0.0 when none is penalised."""
    xp = backend.xp
    total: Any = 0.0
    for p in {id(p): p for p in params}.values():
        if p.l1:
            total = total + p.l1 * xp.sum(xp.abs(p.data))
        if p.l2:
            total = total + p.l2 * xp.sum(p.data * p.data)
    return total


def add_penalty_grads(params: list[Parameter]) -> None:
    """Add d(penalty)/dw = l1·sign(w) + 2·l2·w to each trainable penalised parameter, once."""
    for p in {id(p): p for p in params}.values():
        if p.trainable and p.l1:
            p.add_grad(p.l1 * backend.library.sign(p.data))
        if p.trainable and p.l2:
            p.add_grad((2.0 * p.l2) * p.data)


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
