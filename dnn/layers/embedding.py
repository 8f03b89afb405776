"""Embedding: a lookup table of learned vectors, one row per token id.

Forward:  y[..., :] = W[i[...], :]        i: integer array of any shape (...),
                                          W: (num_embeddings, dim), y: (..., dim)
Backward: dL/dW[k, :] = Σ_{positions p with i[p] = k} g[p, :]   (a scatter-add of
          the rows of g = dL/dy into dW; repeated ids add up; rows never used get 0)

The input is a set of indices, not a quantity, so there is no input gradient:
``backward`` returns ``None`` (Embedding must therefore be the first layer of a
model, or sit where nothing before it needs a gradient). ``input_dtype = "int64"``
declares that it reads integers: a Sequential whose first layer declares it keeps
its data as integers. Each application keeps its flat index array on its context.
The weight starts as N(0, 1), as in ``torch.nn.Embedding``; ``l1``/``l2`` penalise it
(Keras's ``embeddings_regularizer``).
"""

from __future__ import annotations

from typing import Any

from dnn import backend
from dnn.backend import deferred, random
from dnn.errors import ShapeError
from dnn.layers.base import Context, Layer, check_penalties, positive_ints, register
from dnn.parameter import Parameter


@register
class Embedding(Layer):
    param_names = ("weight",)
    #: the dtype this layer reads; a Sequential whose first layer declares it keeps
    #: its data as integers
    input_dtype = "int64"

    def __init__(self, num_embeddings: int, dim: int, l1: float = 0.0, l2: float = 0.0) -> None:
        num_embeddings, dim = positive_ints("Embedding", num_embeddings=num_embeddings, dim=dim)
        self.l1, self.l2 = check_penalties("Embedding", l1=l1, l2=l2)
        self.num_embeddings, self.dim = num_embeddings, dim
        self.weight = Parameter(random.normal((num_embeddings, dim), 0.0, 1.0), "weight",
                                l1=self.l1, l2=self.l2)

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        xp = backend.xp
        if not xp.isdtype(x.dtype, "integral"):
            raise ShapeError(
                f"{self.describe()}: expected an integer array of token ids, got dtype {x.dtype} "
                f"(shape {tuple(x.shape)})"
            )
        if x.ndim == 0:
            raise ShapeError(f"{self.describe()}: expected ids of shape (batch, ...), got a scalar")
        index = xp.reshape(x, (-1,))
        if index.dtype not in (xp.int32, xp.int64):  # uint8/int16 ids: not every take accepts them
            index = xp.astype(index, xp.int64)
        # indexing alone would wrap (CuPy) or accept -1 (NumPy); on a GPU the check leaves a
        # device-side flag that the training loop reads with its others (no sync per step)
        deferred.check((index < 0) | (index >= self.num_embeddings),
                       f"{self.describe()}: ids must be in [0, {self.num_embeddings})",
                       lambda: f", got ids from {int(xp.min(index))} to {int(xp.max(index))}")
        ctx.index, ctx.in_shape = index, tuple(x.shape)
        rows = xp.take(self.weight.data, index, axis=0)
        return xp.reshape(rows, (*tuple(x.shape), self.dim))

    def backward_with(self, ctx: Context, grad: Any) -> None:
        """Adds the scatter-add of the rows of ``grad`` to ``weight``'s gradient; returns ``None``."""
        xp = backend.xp
        index, in_shape = ctx.index, ctx.in_shape
        if tuple(grad.shape) != (*in_shape, self.dim):
            raise ShapeError(
                f"{self.describe()}.backward: expected a gradient of shape "
                f"{(*in_shape, self.dim)}, got {tuple(grad.shape)}"
            )
        if self.weight.trainable:
            rows = xp.reshape(grad, (-1, self.dim))
            self.weight.add_grad(backend.library.scatter_add_rows(self.num_embeddings, index, rows))
        return None

    def get_config(self) -> dict[str, Any]:
        return {"num_embeddings": self.num_embeddings, "dim": self.dim, "l1": self.l1, "l2": self.l2}

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (*tuple(input_shape), self.dim)
