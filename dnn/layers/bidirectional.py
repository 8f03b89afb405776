"""Bidirectional wrapper around a recurrent layer (Schuster & Paliwal 1997), Keras semantics.

``Bidirectional(rnn, merge="concat")`` runs two layers of the same type and config on
x (B, T, in): ``rnn`` itself (the forward direction) and a fresh layer built from
``rnn.get_config()`` (the backward direction; independent weights) on the input
reversed in time, x⃖[t] = x[T−1−t]:

  f = forward(x),   b = backward(x⃖)   reversed back in time when the sequence is
                                        returned (b[t] then belongs to step t)
  return_sequences=True:   f, b (B, T, H) — b[t] has read x[T−1] … x[t]
  return_sequences=False:  f = h_T of the forward layer, b = the backward layer's last
                           state, the one after reading x[0]; both (B, H)
  y = merge(f, b):  "concat" [f | b] on the last axis (width 2H), "sum" f + b,
                    "mul" f ⊙ b, "ave" (f + b)/2

Backward (g = dL/dy): g_f, g_b = g[..., :H], g[..., H:] (concat); g, g (sum);
g ⊙ b, g ⊙ f (mul); g/2, g/2 (ave). g_b is reversed in time when the sequence is
returned; each layer runs its own backward (BPTT) and adds its weight gradients, and
dL/dx = dx_f + reverse(dx_b).

The two layers are the sub-layers ``"forward"`` and ``"backward"`` (Keras's
``forward_layer`` / ``backward_layer`` attributes): state-dict keys
``"forward.weight_ih"``, ``"backward.bias"``, ...; parameters, penalties (the
wrapped layer's ``l1``/``l2`` hold for both directions) and freezing go through the
base-class traversal. ``get_config()`` is ``{"rnn": <the forward layer>, "merge": ...}``,
as Residual stores its block: a model file keeps the layer as a nested spec and the
loader rebuilds it, then the backward layer from it, and the state dict fills both.
Each application keeps one context per direction (plus f and b for "mul").

PyTorch oracle: ``torch.nn.LSTM/GRU/RNN(in, H, batch_first=True, bidirectional=True)``:
``weight_ih_l0`` = forward.weight_ihᵀ, ``weight_ih_l0_reverse`` = backward.weight_ihᵀ
(and so on, see :mod:`dnn.layers.rnn`); its output is the "concat" sequence, and its
h_n[0], h_n[1] are f and b of return_sequences=False.
"""

from __future__ import annotations

from typing import Any

from dnn import backend
from dnn.errors import ShapeError
from dnn.layers.base import Context, Layer, register
from dnn.layers.recurrent import Recurrent

#: how the two directions' outputs are combined
MERGE_MODES = ("concat", "sum", "mul", "ave")


@register
class Bidirectional(Layer):
    """``Bidirectional(rnn, merge="concat")``: ``rnn`` (an RNN, LSTM or GRU) forwards in
    time and a fresh copy of it (same config, own weights) backwards."""

    def __init__(self, rnn: Recurrent, merge: str = "concat") -> None:
        if not isinstance(rnn, Recurrent):
            raise TypeError(f"Bidirectional: rnn must be a recurrent layer (RNN, LSTM, GRU), "
                            f"got {type(rnn).__name__}")
        if merge not in MERGE_MODES:
            raise ValueError(f"Bidirectional: merge must be one of {', '.join(MERGE_MODES)}, "
                             f"got {merge!r}")
        self.forward_layer = rnn
        self.backward_layer = type(rnn)(**rnn.get_config())
        # what the config does not carry: the frozen flags (the layer's, then each weight's)
        # and the penalties set on the weights
        self.backward_layer.trainable = rnn.trainable
        for mine, theirs in zip(self.backward_layer.parameters(), rnn.parameters(), strict=True):
            mine.trainable, mine.l1, mine.l2 = theirs.trainable, theirs.l1, theirs.l2
        self.merge = merge
        self._label = None  # names the directions "Bidirectional > forward (LSTM)"

    # ``Sequential.add`` sets ``_label``; pass it on so errors inside a direction name both
    @property
    def _label(self) -> str | None:
        return self._label_text

    @_label.setter
    def _label(self, text: str | None) -> None:
        self._label_text = text
        prefix = text or "Bidirectional"
        for key, layer in self.named_children():
            layer._label = f"{prefix} > {key} ({type(layer).__name__})"

    def named_children(self) -> list[tuple[str, Layer]]:
        return [("forward", self.forward_layer), ("backward", self.backward_layer)]

    @property
    def return_sequences(self) -> bool:
        return self.forward_layer.return_sequences

    def _reverse(self, a: Any) -> Any:
        """``a`` reversed along time (axis 1)."""
        return backend.xp.flip(a, axis=1)

    def forward_with(self, ctx: Context, x: Any, *, training: bool = False) -> Any:
        xp = backend.xp
        ctx.fwd, ctx.bwd = Context(), Context()
        f = self.forward_layer.forward_with(ctx.fwd, x, training=training)
        b = self.backward_layer.forward_with(ctx.bwd, self._reverse(x), training=training)
        if self.return_sequences:
            b = self._reverse(b)
        if self.merge == "concat":
            y = xp.concat([f, b], axis=-1)
        elif self.merge == "sum":
            y = f + b
        elif self.merge == "ave":
            y = 0.5 * (f + b)
        else:
            ctx.f, ctx.b = f, b
            y = f * b
        ctx.out_shape = tuple(y.shape)
        return y

    def backward_with(self, ctx: Context, grad: Any) -> Any:
        if tuple(grad.shape) != ctx.out_shape:
            raise ShapeError(f"{self.describe()}.backward: expected a gradient of shape "
                             f"{ctx.out_shape}, got {tuple(grad.shape)}")
        h = self.forward_layer.hidden_size
        if self.merge == "concat":
            g_f, g_b = grad[..., :h], grad[..., h:]
        elif self.merge == "sum":
            g_f = g_b = grad
        elif self.merge == "ave":
            g_f = g_b = 0.5 * grad
        else:
            g_f, g_b = grad * ctx.b, grad * ctx.f
        if self.return_sequences:
            g_b = self._reverse(g_b)
        ctx.fwd.needs_input_grad = ctx.bwd.needs_input_grad = ctx.needs_input_grad
        dx_f = self.forward_layer.backward_with(ctx.fwd, g_f)
        dx_b = self.backward_layer.backward_with(ctx.bwd, g_b)
        if not ctx.needs_input_grad:
            return None
        return dx_f + self._reverse(dx_b)

    def get_config(self) -> dict[str, Any]:
        return {"rnn": self.forward_layer, "merge": self.merge}

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        out = tuple(self.forward_layer.output_shape(tuple(input_shape)))
        return (*out[:-1], 2 * out[-1]) if self.merge == "concat" else out

    def __repr__(self) -> str:
        return f"Bidirectional({self.forward_layer!r}, merge={self.merge!r})"
