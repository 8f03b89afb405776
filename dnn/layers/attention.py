"""Multi-head scaled dot-product attention (Vaswani et al. 2017), batch first.

Shapes: N batch, T query positions, S key positions, E = ``embed_dim``, h heads
of d = E / h features each. Self-attention reads one x (N, T, E) as q = k = v
(so S = T); cross-attention reads ``[q, k, v]``: q (N, T, E), k and v (N, S, E).

Forward (projections in the Dense convention, y = x @ W + b):
  Q = q W_q + b_q,  K = k W_k + b_k,  V = v W_v + b_v        (N, ·, E)
  split heads: (N, ·, E) -> (N, ·, h, d) -> (N, h, ·, d);  Q̂ = Q / √d
  S = Q̂ Kᵀ                                                   (N, h, T, S)
  hidden keys: S_ij -> the most negative finite float (see below)
  P = softmax_j(S) = exp(S − max_j S) / Σ_j exp(S − max_j S)  (stable)
  P̃ = P ⊙ M / (1 − p)   attention dropout, training only, M ~ Bernoulli(1 − p)
  O = P̃ V               (N, h, T, d), heads merged back to (N, T, E)
  y = O W_o + b_o

Backward (g = dL/dy), line by line as ``backward_with`` computes it:
  dW_o = Oᵀ g,  db_o = Σ g,  dO = g W_oᵀ (split into heads)
  dV = P̃ᵀ dO,  dP̃ = dO Vᵀ,  dP = dP̃ ⊙ M / (1 − p)
  dS = P ⊙ (dP − D),  D_i = Σ_j dP_ij P_ij = dO_i · O_i   softmax backward, row by row
  dQ = dS K / √d,  dK = dSᵀ Q / √d = dSᵀ Q̂    (heads merged back to (N, ·, E))
  dW_q = qᵀ dQ,  db_q = Σ dQ,  dq = dQ W_qᵀ    (likewise for k with dK, v with dV)
  self-attention: dL/dx = dq + dk + dv.
The row sums D use FlashAttention's identity Σ_j dP_ij P_ij = Σ_j dP̃_ij P̃_ij =
Σ_j (dO_i · V_j) P̃_ij = dO_i · O_i: one product over (N, h, T, d) instead of a
product and a sum over (N, h, T, S). The three input projections are three
GEMMs: one x @ [W_q | W_k | W_v] (then strided head views) was measured no
faster on NumPy (benchmarks/bench_attention.py, "qkv projections").

Inputs and masks:
  - ``forward(x)``: self-attention; ``forward([q, k, v])``: cross-attention.
  - ``mask`` (N, S), key padding in the Keras convention: True / nonzero = a real
    key to attend to, False / 0 = padding to ignore (bool, integer or float 0/1).
    Give it as ``forward(x, mask)`` / ``forward([q, k, v], mask=mask)``, or as the
    last list element — ``[x, mask]`` (self-attention) or ``[q, k, v, mask]`` —
    which is how a functional model (``dnn.Input``) passes it, since calls on
    symbolic tensors take no keyword arguments; ``mha(x, mask)`` on symbolic
    tensors builds the ``[x, mask]`` node. The mask gets no gradient (None).
  - ``causal=True`` hides key j from query i when j > i (decoder self-attention).
  - Hidden scores are replaced (``where``) by the most negative finite float of the
    dtype, never −inf, so nothing overflows into NaN. A query row whose keys are
    ALL hidden (a fully padded sample) gets P = 0 for that row, hence O = 0 and
    y = b_o there, and a zero gradient through it (PyTorch returns NaN there,
    Keras a uniform average of the values). No host read is made to detect it.

Memory (per application, kept on the context until backward, then freed): the
attention probabilities P, N·h·T·S values — the O(N·h·T²) term that dominates
for long sequences — plus the inputs and the projections Q̂, K, V and the merged
O: 5·N·T·E values for self-attention, 3·N·T·E + 4·N·S·E for cross-attention
(eval mode or p = 0). Training with dropout p > 0 also keeps M / (1 − p),
another N·h·T·S values.

PyTorch oracle: ``torch.nn.MultiheadAttention(E, h, dropout=p, bias=bias,
batch_first=True)``; its packed ``in_proj_weight`` (3E, E) = [W_qᵀ; W_kᵀ; W_vᵀ],
``in_proj_bias`` = [b_q; b_k; b_v], ``out_proj.weight`` = W_oᵀ, ``out_proj.bias``
= b_o; our ``mask`` is its ``key_padding_mask=~mask`` (True = ignore there) and
``causal=True`` its ``attn_mask`` = upper-triangular True (j > i), ``is_causal``.

Initialisation: every W is Glorot-uniform on (E, E), every b zero (Keras's
``MultiHeadAttention`` defaults; PyTorch also zeroes the biases). ``l1``/``l2``
put the penalty l1·Σ|W| + l2·ΣW² on each of the four weights (not the biases).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from dnn import backend
from dnn import init as initializers
from dnn.backend import deferred, ops, random
from dnn.errors import ShapeError
from dnn.graph import is_symbolic
from dnn.layers.base import Context, Layer, check_penalties, positive_ints, register
from dnn.parameter import Parameter

Shape = tuple[int, ...]


@register
class MultiHeadAttention(Layer):
    """``MultiHeadAttention(embed_dim, num_heads, dropout=0.0, bias=True, causal=False, l1=0,
    l2=0)`` (l1/l2: penalties on the four weights, not the biases):
    ``forward(x, mask=None, *, training=False, dropout_mask=None)``; ``x`` is (N, T, E)
    for self-attention or ``[q, k, v]``; see the module docstring for masks and shapes."""

    param_names = ("weight_q", "weight_k", "weight_v", "weight_o",
                   "bias_q", "bias_k", "bias_v", "bias_o")
    #: a list input is one call ([q, k, v, mask]), not a merge: the graph lets
    #: ``output_shape`` check the list when a model file is loaded
    accepts_list = True

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 causal: bool = False, l1: float = 0.0, l2: float = 0.0) -> None:
        embed_dim, num_heads = positive_ints("MultiHeadAttention", embed_dim=embed_dim,
                                             num_heads=num_heads)
        if embed_dim % num_heads:
            raise ValueError(f"MultiHeadAttention: embed_dim must be divisible by num_heads "
                             f"(d = embed_dim / num_heads features per head), got "
                             f"embed_dim={embed_dim} and num_heads={num_heads}")
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) \
                or not 0.0 <= dropout < 1.0:
            raise ValueError(f"MultiHeadAttention: dropout must be a float in [0, 1), "
                             f"got {dropout!r}")
        for arg, value in (("bias", bias), ("causal", causal)):
            if not isinstance(value, bool):
                raise ValueError(f"MultiHeadAttention: {arg} must be True or False, got {value!r}")
        self.l1, self.l2 = check_penalties("MultiHeadAttention", l1=l1, l2=l2)
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout, self.use_bias, self.causal = float(dropout), bias, causal
        glorot = initializers.get("glorot_uniform")
        for part in "qkvo":
            setattr(self, f"weight_{part}",
                    Parameter(glorot((embed_dim, embed_dim)), f"weight_{part}", l1=self.l1,
                              l2=self.l2))
            setattr(self, f"bias_{part}",
                    Parameter(initializers.zeros((embed_dim,)), f"bias_{part}") if bias else None)
        if not bias:
            self.param_names = self.param_names[:4]

    # ------------------------------------------------------------------ calling
    def forward(self, x: Any, mask: Any = None, *, training: bool = False,
                **kwargs: Any) -> Any:
        """y for ``x`` (N, T, E) or ``[q, k, v]``; ``mask`` (N, S): True/1 = attend."""
        return super().forward(x, training=training, mask=mask, **kwargs)

    def __call__(self, x: Any, mask: Any = None, *, training: bool = False,
                 **kwargs: Any) -> Any:
        """As ``forward``; on symbolic tensors ``mha(x, mask)`` is the node ``mha([x, mask])``."""
        if mask is not None and is_symbolic(mask) and not kwargs and not training:
            return super().__call__([*x, mask] if isinstance(x, (list, tuple)) else [x, mask])
        if mask is not None:
            kwargs["mask"] = mask
        return super().__call__(x, training=training, **kwargs)

    # ------------------------------------------------------------------ the math
    def forward_with(self, ctx: Context, x: Any, *, training: bool = False, mask: Any = None,
                     dropout_mask: Any = None) -> Any:
        xp = backend.xp
        q, k, v, mask, ctx.layout = self._unpack(x, mask)
        q, k, v, mask = self._check_arrays(q, k, v, mask)
        self._check_shapes(tuple(q.shape), tuple(k.shape), tuple(v.shape),
                           None if mask is None else tuple(mask.shape))
        n, t, e = q.shape
        s = k.shape[1]
        ctx.self_attention = ctx.layout in (0, 2)
        q2 = xp.reshape(q, (n * t, e))
        k2 = q2 if ctx.self_attention else xp.reshape(k, (n * s, e))
        v2 = q2 if ctx.self_attention else xp.reshape(v, (n * s, e))
        scale = 1.0 / math.sqrt(self.head_dim)
        q_hat = self._split(_linear(q2, self.weight_q, self.bias_q, scale), n, t)
        k_h = self._split(_linear(k2, self.weight_k, self.bias_k), n, s)
        v_h = self._split(_linear(v2, self.weight_v, self.bias_v), n, s)
        probs = attention_weights(q_hat, k_h, *self._visible(mask, t, s, q.device))
        scaled_mask = self._dropout_mask(dropout_mask, tuple(probs.shape), probs.dtype) \
            if training and self.dropout > 0.0 else None
        probs_used = probs if scaled_mask is None else probs * scaled_mask
        o2 = self._merge(probs_used @ v_h)                             # (N·T, E)
        y = _linear(o2, self.weight_o, self.bias_o)
        ctx.saved = (q2, k2, v2, q_hat, k_h, v_h, probs, scaled_mask, o2)
        ctx.shape = (n, t, s)
        return xp.reshape(y, (n, t, e))

    def backward_with(self, ctx: Context, grad: Any) -> Any:
        xp = backend.xp
        (q2, k2, v2, q_hat, k_h, v_h, probs, scaled_mask, o2), ctx.saved = ctx.saved, None
        n, t, s = ctx.shape
        g2 = xp.reshape(grad, (n * t, self.embed_dim))
        _linear_grads(o2, g2, self.weight_o, self.bias_o)
        grad_o = self._split(g2 @ self.weight_o.data.T, n, t)             # (N, h, T, d)
        grad_q_hat, grad_k, grad_v = attention_backward(
            grad_o, q_hat, k_h, v_h, probs, self._split(o2, n, t), scaled_mask)
        grad_q_hat *= 1.0 / math.sqrt(self.head_dim)                    # dQ = dQ̂ / √d
        grad_q, grad_k, grad_v = (self._merge(a) for a in (grad_q_hat, grad_k, grad_v))
        for inp, g, w, b in ((q2, grad_q, self.weight_q, self.bias_q),
                             (k2, grad_k, self.weight_k, self.bias_k),
                             (v2, grad_v, self.weight_v, self.bias_v)):
            _linear_grads(inp, g, w, b)
        if not ctx.needs_input_grad:
            return None
        dq = grad_q @ self.weight_q.data.T
        dk = grad_k @ self.weight_k.data.T
        dv = grad_v @ self.weight_v.data.T
        e = self.embed_dim
        if ctx.self_attention:
            dq += dk
            dq += dv
            dx = xp.reshape(dq, (n, t, e))
            return dx if ctx.layout == 0 else [dx, None]
        grads = [xp.reshape(dq, (n, t, e)), xp.reshape(dk, (n, s, e)), xp.reshape(dv, (n, s, e))]
        return grads if ctx.layout == 3 else [*grads, None]

    # ------------------------------------------------------------------ pieces
    def _split(self, x2: Any, n: int, length: int) -> Any:
        """(N·L, E) -> (N, h, L, d)."""
        xp = backend.xp
        return xp.permute_dims(xp.reshape(x2, (n, length, self.num_heads, self.head_dim)),
                               (0, 2, 1, 3))

    def _merge(self, xh: Any) -> Any:
        """(N, h, L, d) -> (N·L, E)."""
        xp = backend.xp
        n, _, length, _ = xh.shape
        return xp.reshape(xp.permute_dims(xh, (0, 2, 1, 3)), (n * length, self.embed_dim))

    def _visible(self, mask: Any, t: int, s: int, device: Any) -> tuple[Any, Any]:
        """(which scores are kept: a bool array broadcasting to (N, h, T, S), or None;
        per row whether any key is kept, (N, 1, 1, 1) or None when every row has one)."""
        xp = backend.xp
        visible = keep_row = None
        if mask is not None:
            keys = mask if xp.isdtype(mask.dtype, "bool") else mask != 0
            visible = keys[:, None, None, :]                            # (N, 1, 1, S)
            keep_row = xp.any(visible, axis=-1, keepdims=True)
        if self.causal:
            lower = xp.arange(t, device=device)[:, None] >= xp.arange(s, device=device)[None, :]
            visible = lower if visible is None else (visible & lower)   # j <= i
            if keep_row is not None:
                keep_row = xp.any(visible, axis=-1, keepdims=True)
        return visible, keep_row

    def _dropout_mask(self, given: Any, shape: Shape, dtype: Any) -> Any:
        """M / (1 − p): drawn, or the given 0/1 mask of shape (N, h, T, S)."""
        if given is None:
            mask = random.bernoulli(shape, 1.0 - self.dropout, dtype=dtype)
        elif tuple(given.shape) != shape:
            raise ShapeError(f"{self.describe()}: dropout_mask must have the shape (N, heads, "
                             f"T, S) = {shape} of the attention weights, got {tuple(given.shape)}")
        else:
            mask = backend.xp.astype(backend.asarray(given), dtype)
        return mask * (1.0 / (1.0 - self.dropout))

    def _unpack(self, x: Any, mask: Any) -> tuple[Any, Any, Any, Any, int]:
        """(q, k, v, mask, layout) where layout is 0 for a plain array, else the list length."""
        if not isinstance(x, (list, tuple)):
            return x, x, x, mask, 0
        if len(x) not in (2, 3, 4):
            raise ValueError(f"{self.describe()}: a list input must be [x, mask], [q, k, v] or "
                             f"[q, k, v, mask], got a list of {len(x)}")
        if len(x) in (2, 4) and mask is not None:
            raise ValueError(f"{self.describe()}: the mask is given twice, as the last list "
                             "element and as mask=")
        if len(x) == 2:
            return x[0], x[0], x[0], x[1], 2
        return x[0], x[1], x[2], x[3] if len(x) == 4 else mask, len(x)

    def _check_arrays(self, q: Any, k: Any, v: Any, mask: Any) -> tuple[Any, Any, Any, Any]:
        """Floating arrays of this backend for q, k, v; a bool, integer or finite floating
        mask (NumPy or a list welcome: it becomes a backend array)."""
        xp = backend.xp
        for name, a in (("query", q), ("key", k), ("value", v)):
            if not backend.is_array(a) or not xp.isdtype(a.dtype, "real floating"):
                raise TypeError(f"{self.describe()}: the {name} must be a floating "
                                f"{backend.name} array, got {_describe(a)}")
            if len(a.shape) == 3 and a.shape[1] == 0:
                raise ShapeError(f"{self.describe()}: the {name} has no positions (shape "
                                 f"{tuple(a.shape)}); attention needs at least one")
        if mask is not None:
            try:
                mask = backend.asarray(mask) if not backend.is_array(mask) else mask
            except (TypeError, ValueError) as exc:
                raise TypeError(f"{self.describe()}: the key-padding mask must be a bool, integer "
                                f"or 0/1 float array, got {_describe(mask)}") from exc
            if not xp.isdtype(mask.dtype, ("bool", "integral", "real floating")):
                raise TypeError(f"{self.describe()}: the key-padding mask must be a bool, integer "
                                f"or 0/1 float array, got dtype {mask.dtype}")
            if xp.isdtype(mask.dtype, "real floating"):
                deferred.check(xp.logical_not(xp.isfinite(mask)),
                               f"{self.describe()}: the key-padding mask has NaN or inf values")
        return q, k, v, mask

    def _check_shapes(self, q: Shape, k: Shape, v: Shape, mask: Shape | None) -> None:
        e = self.embed_dim
        for name, shape in (("query", q), ("key", k), ("value", v)):
            if len(shape) != 3 or shape[-1] != e:
                raise ShapeError(f"{self.describe()}: expected the {name} of shape "
                                 f"(batch, length, {e}), got {shape}")
        if k != v or k[0] != q[0]:
            raise ShapeError(f"{self.describe()}: key and value must have one shape (N, S, {e}) "
                             f"with the query's batch size; got query {q}, key {k}, value {v}")
        if mask is not None and mask != (k[0], k[1]):
            hint = " (cross-attention takes [q, k, v]: a list of two is [x, mask])" \
                if len(mask) == 3 else ""
            raise ShapeError(f"{self.describe()}: the key-padding mask must have the shape "
                             f"(N, S) = {(k[0], k[1])}, got {mask}{hint}")

    # ------------------------------------------------------------------ description
    def get_config(self) -> dict[str, Any]:
        return {"embed_dim": self.embed_dim, "num_heads": self.num_heads,
                "dropout": self.dropout, "bias": self.use_bias, "causal": self.causal,
                "l1": self.l1, "l2": self.l2}

    def output_shape(self, input_shape: Any) -> Shape:
        shapes = list(input_shape) if isinstance(input_shape[0], (list, tuple)) \
            else [input_shape]
        if len(shapes) not in (1, 2, 3, 4):
            raise ValueError(f"{self.describe()}: a list input must be [x, mask], [q, k, v] or "
                             f"[q, k, v, mask], got a list of {len(shapes)}")
        q = tuple(shapes[0])
        k, v = (q, q) if len(shapes) <= 2 else (tuple(shapes[1]), tuple(shapes[2]))
        mask = tuple(shapes[-1]) if len(shapes) in (2, 4) else None
        self._check_shapes(q, k, v, mask)
        return q


def _describe(a: Any) -> str:
    shape = getattr(a, "shape", None)
    return f"a {type(a).__name__}" + (f" of dtype {a.dtype} and shape {tuple(shape)}"
                                      if shape is not None and hasattr(a, "dtype") else "")


def _linear(x2: Any, weight: Parameter, bias: Parameter | None, scale: float = 1.0) -> Any:
    """(x2 W + b)·scale for x2 (rows, E), in place on the product."""
    y = x2 @ weight.data
    if bias is not None:
        y += bias.data
    if scale != 1.0:
        y *= scale
    return y


def _linear_grads(x2: Any, grad2: Any, weight: Parameter, bias: Parameter | None) -> None:
    """dW = x2ᵀ g, db = Σ g into the parameters (skipped when frozen)."""
    weight.add_grad_matmul(x2.T, grad2)
    if bias is not None and bias.trainable:
        bias.add_grad(ops.column_sums(grad2))


def attention_weights(q_hat: Any, k_h: Any, visible: Any = None, keep_row: Any = None) -> Any:
    """P = softmax_j(Q̂ Kᵀ) (N, h, T, S) for Q̂ (N, h, T, d) and K (N, h, S, d), stable; hidden
    scores (``visible`` False) get P = 0, rows with nothing visible (``keep_row`` False)
    get P = 0 throughout. In place on the scores where it can."""
    xp = backend.xp
    scores = q_hat @ xp.matrix_transpose(k_h)
    if visible is not None:
        hidden = xp.full((), xp.finfo(scores.dtype).min, dtype=scores.dtype,
                         device=scores.device)
        scores = xp.where(visible, scores, hidden)
    scores -= xp.max(scores, axis=-1, keepdims=True)
    probs = xp.exp(scores)
    total = xp.sum(probs, axis=-1, keepdims=True)
    if keep_row is None:
        probs /= total
    else:
        probs *= xp.where(keep_row, 1.0 / total, xp.zeros((), dtype=total.dtype,
                                                           device=total.device))
    return probs


def attention_backward(grad_o: Any, q_hat: Any, k_h: Any, v_h: Any, probs: Any, out: Any,
                       scaled_mask: Any = None) -> tuple[Any, Any, Any]:
    """(dQ̂, dK, dV) of O = P̃ V (``out``, (N, h, T, d)) with P̃ = P ⊙ M/(1 − p)
    (``scaled_mask``; None: P̃ = P) and P = softmax(Q̂ Kᵀ), from dO (N, h, T, d)."""
    xp = backend.xp
    probs_used = probs if scaled_mask is None else probs * scaled_mask
    grad_v = xp.matrix_transpose(probs_used) @ grad_o           # dV = P̃ᵀ dO
    grad_p = grad_o @ xp.matrix_transpose(v_h)                  # dP̃ = dO Vᵀ
    if scaled_mask is not None:
        grad_p *= scaled_mask                                   # dP = dP̃ ⊙ M/(1 − p)
    grad_p -= xp.sum(grad_o * out, axis=-1, keepdims=True)      # dP − D, D = dO · O
    grad_p *= probs                                             # dS
    return grad_p @ k_h, xp.matrix_transpose(grad_p) @ q_hat, grad_v   # dS K, dSᵀ Q̂
