"""What RNN, LSTM and GRU share: arguments, input checks, the layout of the time loop.

Input is batch-first, x: (B, T, in). Each cell computes, per time step t,
pre-activations z_t = x_t @ W_ih + b + h_{t-1} @ W_hh (GRU keeps the two
halves apart) and a new state from them. The loop is arranged so that the
only per-step matrix product is the recurrent one, (B, H) @ (H, k·H):

forward   X = x transposed to time-major and flattened to (T·B, in);
          XW = X @ W_ih + b for ALL steps in one GEMM, (T, B, k·H);
          for t: z_t = XW[t] + h_{t-1} @ W_hh, then elementwise gate math.
backward  (full backpropagation through time) for t = T−1 … 0: the
          elementwise gate derivatives give dZ[t], and dh_{t-1} = dZ[t] @ W_hhᵀ.
          After the loop, one GEMM each:
          dW_ih = Xᵀ @ dZ,  dW_hh = H_prevᵀ @ dZ  (H_prev: h_0 … h_{T−1} stacked),
          db = Σ dZ,        dx = dZ @ W_ihᵀ  (back to batch-first).

What each application keeps on its context for BPTT is O(B·T·H): the input,
the gate activations and the states of every step. A frozen weight skips its
GEMM (``add_grad_matmul``); a layer reading the data skips dx = dZ @ W_ihᵀ
(``ctx.needs_input_grad`` is False there).

Output: the last hidden state h_T (B, H), or the whole sequence (B, T, H)
with ``return_sequences=True``; ``backward`` takes the gradient of whichever
was returned. An initial state (h0, or (h0, c0) for LSTM) may be passed to
``forward`` (``initial_state=``); zeros otherwise. After ``backward`` the
gradient with respect to the initial state is in ``layer.grad_initial_state``
(same structure as the state: an array, or a tuple (dh0, dc0) for LSTM); it is
also left on the call's context as ``ctx.grad_initial_state``.

Penalties: ``l1``/``l2`` add l1·(Σ|W_ih| + Σ|W_hh|) + l2·(Σ W_ih² + Σ W_hh²) to the
loss (Keras's ``kernel_regularizer`` and ``recurrent_regularizer`` with one
coefficient pair; biases are not penalised), through the parameters' own
coefficients (:mod:`dnn.parameter`).
"""

from __future__ import annotations

from typing import Any

from dnn import backend
from dnn import init as initializers
from dnn.errors import ShapeError
from dnn.layers.base import Context, Layer, check_penalties, positive_ints
from dnn.parameter import Parameter


class Recurrent(Layer):
    """Base class of RNN, LSTM and GRU: arguments, checks and the shared GEMMs.

    Subclasses set ``gates`` (k in the k·H width of the weights), ``state_size``
    (1, or 2 for LSTM's (h, c)) and implement ``forward_with`` / ``backward_with``
    with the helpers below.
    """

    gates: int = 1
    state_size: int = 1

    def __init__(self, input_size: int, hidden_size: int, return_sequences: bool = False,
                 l1: float = 0.0, l2: float = 0.0) -> None:
        name = type(self).__name__
        input_size, hidden_size = positive_ints(name, input_size=input_size,
                                                hidden_size=hidden_size)
        if not isinstance(return_sequences, bool):
            raise ValueError(f"{name}: return_sequences must be a bool, got {return_sequences!r}")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.return_sequences = return_sequences
        self.l1, self.l2 = check_penalties(name, l1=l1, l2=l2)
        width = self.gates * hidden_size
        self.weight_ih = Parameter(initializers.glorot_uniform((input_size, width)), "weight_ih",
                                   l1=self.l1, l2=self.l2)
        self.weight_hh = Parameter(self._orthogonal_recurrent(), "weight_hh", l1=self.l1, l2=self.l2)
        #: gradient of the loss w.r.t. the initial state, set by ``backward``
        self.grad_initial_state: Any = None

    def _orthogonal_recurrent(self) -> Any:
        """(H, k·H) made of k orthogonal (H, H) blocks, one per gate (as Keras does)."""
        xp = backend.xp
        h = self.hidden_size
        blocks = [initializers.orthogonal((h, h)) for _ in range(self.gates)]
        return blocks[0] if self.gates == 1 else xp.concat(blocks, axis=1)

    # ----------------------------------------------------------------- checks
    def _check_input(self, x: Any) -> None:
        if x.ndim != 3 or x.shape[2] != self.input_size:
            raise ShapeError(
                f"{self.describe()}: expected input of shape (batch, time, {self.input_size}), "
                f"got {tuple(x.shape)}"
            )
        if x.shape[1] == 0:
            raise ShapeError(f"{self.describe()}: the input has no time steps (shape {tuple(x.shape)})")

    def _check_state(self, state: Any, batch: int, dtype: Any) -> Any:
        """The initial state as a tuple of (B, H) backend arrays (zeros when None)."""
        xp = backend.xp
        shape = (batch, self.hidden_size)
        if state is None:
            return tuple(xp.zeros(shape, dtype=dtype) for _ in range(self.state_size))
        if self.state_size == 1:
            parts = (state,)
        elif isinstance(state, (list, tuple)) and len(state) == self.state_size:
            parts = tuple(state)
        else:
            is_seq = isinstance(state, (list, tuple))
            given = f"a sequence of {len(state)}" if is_seq else type(state).__name__
            raise ShapeError(f"{self.describe()}: initial_state must be a pair (h0, c0), got {given}")
        out = []
        for part in parts:
            part = backend.asarray(part, dtype=dtype)
            if tuple(part.shape) != shape:
                raise ShapeError(
                    f"{self.describe()}: expected initial state of shape {shape}, "
                    f"got {tuple(part.shape)}"
                )
            out.append(part)
        return tuple(out)

    def _check_grad(self, grad: Any, ctx: Context) -> None:
        b, t = ctx.batch, ctx.steps
        want = (b, t, self.hidden_size) if self.return_sequences else (b, self.hidden_size)
        if tuple(grad.shape) != want:
            raise ShapeError(
                f"{self.describe()}.backward: expected a gradient of shape {want}, "
                f"got {tuple(grad.shape)}"
            )

    # ----------------------------------------------------------------- shared GEMMs
    def _project_inputs(self, x: Any, weight: Any, bias: Any) -> tuple[Any, Any]:
        """X (T·B, in) time-major and XW = X @ weight + bias as (T, B, k·H), one GEMM
        (``weight`` is W_ih, or W_ih with its columns scaled; ``bias`` None: left out, for a
        fused cell that adds it on its own pass)."""
        xp = backend.xp
        b, t, _ = x.shape
        x_tm = xp.reshape(xp.permute_dims(x, (1, 0, 2)), (t * b, self.input_size))
        xw = x_tm @ weight
        if bias is not None:
            xw += bias
        return x_tm, xp.reshape(xw, (t, b, self.gates * self.hidden_size))

    def _recurrent_t(self) -> Any:
        """W_hhᵀ (k·H, H) as a C-contiguous copy for the per-step dh = dz @ W_hhᵀ.

        Reshaping the transposed view to 1-D makes every backend copy it in row-major
        order; BLAS multiplies by a contiguous matrix ~15 % faster than by a transposed
        view, and this product runs once per time step.
        """
        xp = backend.xp
        w_t = self.weight_hh.data.T
        return xp.reshape(xp.reshape(w_t, (-1,)), tuple(w_t.shape))

    def _input_grads(self, ctx: Context, dz: Any) -> Any:
        """dW_ih = Xᵀ @ dZ (one GEMM) and dx = dZ @ W_ihᵀ back to (B, T, in)
        (None when ``ctx.needs_input_grad`` is False)."""
        xp = backend.xp
        self.weight_ih.add_grad_matmul(ctx.x_tm.T, dz)
        if not ctx.needs_input_grad:
            return None
        dx = xp.reshape(dz @ self.weight_ih.data.T, (ctx.steps, ctx.batch, self.input_size))
        return xp.permute_dims(dx, (1, 0, 2))

    def _set_initial_state_grad(self, ctx: Context, grad_state: Any) -> None:
        """``grad_initial_state`` on the layer (documented) and on the call's context."""
        ctx.grad_initial_state = self.grad_initial_state = grad_state

    def _outputs(self, hs: Any) -> Any:
        """hs: (T+1, B, H) with h_0 first -> the sequence (B, T, H) or the last state."""
        xp = backend.xp
        if self.return_sequences:
            return xp.permute_dims(hs[1:, ...], (1, 0, 2))
        return hs[-1, ...]

    def _output_grads(self, grad: Any) -> tuple[Any, Any]:
        """(per-step grads (T, B, H) or None, grad of the last h (B, H))."""
        xp = backend.xp
        if self.return_sequences:
            grad_tm = xp.permute_dims(grad, (1, 0, 2))
            return grad_tm, None
        return None, grad

    # ----------------------------------------------------------------- description
    def get_config(self) -> dict[str, Any]:
        return {"input_size": self.input_size, "hidden_size": self.hidden_size,
                "return_sequences": self.return_sequences, "l1": self.l1, "l2": self.l2}

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(input_shape) != 3 or input_shape[2] != self.input_size:
            raise ShapeError(
                f"{self.describe()}: expected input of shape (batch, time, {self.input_size}), "
                f"got {tuple(input_shape)}"
            )
        if self.return_sequences:
            return (input_shape[0], input_shape[1], self.hidden_size)
        return (input_shape[0], self.hidden_size)
