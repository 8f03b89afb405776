"""Position information added to a sequence of vectors x (N, T, dim).

Learned (``PositionalEmbedding(max_len, dim)``, BERT / GPT-2):
  y[n, t, :] = x[n, t, :] + W[t, :]          W: (max_len, dim), t < T <= max_len
  dL/dW[t, :] = Σ_n g[n, t, :] for t < T, 0 for the rows beyond T;   dL/dx = g
  W starts as N(0, 0.02²) (the BERT / GPT-2 initialisation: small next to the
  token embeddings it is added to); ``l1``/``l2`` penalise it.

Fixed (``SinusoidalPositionalEncoding(dim, max_len=10000)``, Vaswani et al. 2017):
  y = x + PE[:T],  PE[t, 2i] = sin(t / 10000^(2i/dim)),  PE[t, 2i+1] = cos(t / 10000^(2i/dim))
  dL/dx = g (no parameters). An odd ``dim`` ends with a sine column (PE has
  ⌈dim/2⌉ sine and ⌊dim/2⌋ cosine columns). The table is computed in float64,
  cast to the input's dtype and kept for the latest (T, dtype, backend).

Both refuse T > max_len with a ShapeError. PyTorch has no module for either;
the oracle is the formula itself (the learned one is ``x + weight[:T]``, as a
``nn.Parameter`` sliced and broadcast over the batch).
"""

from __future__ import annotations

import math
from typing import Any

from dnn import backend
from dnn.backend import random
from dnn.errors import ShapeError
from dnn.layers.base import Context, Layer, check_penalties, positive_ints, register
from dnn.parameter import Parameter


def _check_floating(layer: Layer, x: Any) -> None:
    """Positions are added to floating vectors (an integer input would round the table)."""
    if not backend.xp.isdtype(x.dtype, "real floating"):
        raise TypeError(f"{layer.describe()}: expected floating vectors (batch, length, dim), "
                        f"got dtype {x.dtype}; embed integer ids first (Embedding)")


def _check_sequence(layer: Layer, shape: tuple[int, ...], max_len: int, dim: int) -> int:
    """T of an input of shape (N, T, dim) with T <= max_len; a ShapeError otherwise."""
    if len(shape) != 3 or shape[-1] != dim:
        raise ShapeError(f"{layer.describe()}: expected input of shape (batch, length, {dim}), "
                         f"got {tuple(shape)}")
    if shape[1] > max_len:
        raise ShapeError(f"{layer.describe()}: the sequence has {shape[1]} positions, more "
                         f"than max_len={max_len}")
    return int(shape[1])


@register
class PositionalEmbedding(Layer):
    """``PositionalEmbedding(max_len, dim, l1=0, l2=0)``: y = x + W[:T] for x (N, T, dim)."""

    param_names = ("weight",)

    def __init__(self, max_len: int, dim: int, l1: float = 0.0, l2: float = 0.0) -> None:
        max_len, dim = positive_ints("PositionalEmbedding", max_len=max_len, dim=dim)
        self.l1, self.l2 = check_penalties("PositionalEmbedding", l1=l1, l2=l2)
        self.max_len, self.dim = max_len, dim
        self.weight = Parameter(random.normal((max_len, dim), 0.0, 0.02), "weight",
                                l1=self.l1, l2=self.l2)

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        _check_floating(self, x)
        ctx.length = t = _check_sequence(self, tuple(x.shape), self.max_len, self.dim)
        return x + self.weight.data[:t, :]

    def backward_with(self, ctx: Context, grad: Any) -> Any:
        if self.weight.trainable:
            xp = backend.xp
            grad_w = xp.zeros_like(self.weight.data)
            grad_w[:ctx.length, :] = xp.sum(grad, axis=0)
            self.weight.add_grad(grad_w)
        return grad if ctx.needs_input_grad else None

    def get_config(self) -> dict[str, Any]:
        return {"max_len": self.max_len, "dim": self.dim, "l1": self.l1, "l2": self.l2}

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        _check_sequence(self, tuple(input_shape), self.max_len, self.dim)
        return tuple(input_shape)


@register
class SinusoidalPositionalEncoding(Layer):
    """``SinusoidalPositionalEncoding(dim, max_len=10000)``: y = x + PE[:T] (no parameters)."""

    def __init__(self, dim: int, max_len: int = 10000) -> None:
        self.dim, self.max_len = positive_ints("SinusoidalPositionalEncoding", dim=dim,
                                               max_len=max_len)
        self._table: tuple[tuple[Any, ...], Any] | None = None

    def table(self, length: int, dtype: Any, device: Any = None) -> Any:
        """PE[:length] (length, dim) in ``dtype`` on ``device``, computed once per (length,
        dtype, device, backend) in a row."""
        key = (length, str(dtype), str(device), backend.name)
        if self._table is not None and self._table[0] == key:
            return self._table[1]
        xp = backend.xp
        position = xp.arange(length, dtype=xp.float64, device=device)[:, None]      # t
        even = xp.arange(0, self.dim, 2, dtype=xp.float64, device=device)          # 2i
        angle = position * xp.exp(even * (-math.log(10000.0) / self.dim))  # t / 10000^(2i/dim)
        half = self.dim // 2
        pairs = xp.stack([xp.sin(angle[:, :half]), xp.cos(angle[:, :half])], axis=-1)
        pe = xp.reshape(pairs, (length, 2 * half))
        if self.dim % 2:
            pe = xp.concat([pe, xp.sin(angle[:, half:])], axis=-1)
        pe = xp.astype(pe, dtype)
        self._table = (key, pe)
        return pe

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        _check_floating(self, x)
        t = _check_sequence(self, tuple(x.shape), self.max_len, self.dim)
        return x + self.table(t, x.dtype, x.device)

    def backward_with(self, ctx: Context, grad: Any) -> Any:
        return grad if ctx.needs_input_grad else None

    def get_config(self) -> dict[str, Any]:
        return {"dim": self.dim, "max_len": self.max_len}

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        _check_sequence(self, tuple(input_shape), self.max_len, self.dim)
        return tuple(input_shape)
