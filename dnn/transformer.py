"""Transformer encoder blocks, written as a composition of layers in the functional API.

A pre-norm block (Xiong et al. 2020; GPT-2, ViT) on tokens x of shape (N, T, E):

    h = x + Dropout(MultiHeadAttention(LayerNorm(x)))                     attention
    y = h + Dropout(Dense₂(Dropout(GELU(Dense₁(LayerNorm(h))))))            MLP, E -> mlp_dim -> E

:func:`transformer_block` adds exactly these nodes to a graph under construction
(every one visible in ``model.summary()``), so its backward is the layers' own
backwards run by the graph engine: nothing here has a gradient formula of its own.
Both residual additions are ``Add`` nodes, whose backward hands the gradient to
both branches; the graph sums the two that reach x.

PyTorch oracle: ``torch.nn.TransformerEncoderLayer(E, num_heads, mlp_dim, dropout,
activation=gelu, batch_first=True, norm_first=True)`` computes the same function,
with ``norm1``/``norm2`` = the two LayerNorms, ``self_attn`` = MultiHeadAttention
(its ``in_proj_weight`` = [W_qᵀ; W_kᵀ; W_vᵀ]), ``linear1``/``linear2`` = Dense₁/Dense₂
(weights transposed), and dropout in the same four places (attention weights,
after attention, after GELU, after Dense₂). Its ``activation="gelu"`` is the exact
erf GELU, ``GELU(approximate="none")`` here; the default here is the tanh form.

Two models built from blocks:

- :func:`vision_transformer` (Dosovitskiy et al. 2021): images cut into p×p
  patches (``Patches``), each linearly embedded (``Dense``), learned position
  embeddings added, ``depth`` blocks, a final LayerNorm, the mean over tokens
  (``SequenceAvgPool``, instead of a class token) and a Dense classifier.
- :func:`char_transformer` (a small GPT): token embeddings plus learned position
  embeddings, ``depth`` causal blocks (position t attends to positions ≤ t only),
  a final LayerNorm and a Dense to per-position logits (N, T, vocab) that predict
  the next token at every position; trained with ``SoftmaxCrossEntropy`` on
  (N, T) next-token targets.

:func:`generate` samples text from such a model autoregressively. Drawing the
samples is host work, done with a seeded NumPy generator so that a seed gives the
same text on every backend.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from dnn.graph import Input, SymbolicTensor
from dnn.layers import (
    GELU,
    Add,
    Dense,
    Dropout,
    Embedding,
    LayerNorm,
    MultiHeadAttention,
    Patches,
    PositionalEmbedding,
    SequenceAvgPool,
)
from dnn.layers.base import positive_ints
from dnn.model import Model


def _maybe_dropout(x: SymbolicTensor, p: float) -> SymbolicTensor:
    return Dropout(p)(x) if p > 0.0 else x


def transformer_block(x: SymbolicTensor, num_heads: int, mlp_dim: int, dropout: float = 0.0,
                      causal: bool = False, approximate: str = "tanh") -> SymbolicTensor:
    """One pre-norm encoder block on the symbolic tokens ``x`` (N, T, E); returns its output
    (N, T, E). ``causal=True`` masks future positions (a decoder-only language model);
    ``approximate`` is the GELU's (``"tanh"`` or ``"none"``, the exact erf form)."""
    if not isinstance(x, SymbolicTensor) or x.shape is None or len(x.shape) != 3:
        got = getattr(x, "shape", type(x).__name__)
        raise TypeError(f"transformer_block: x must be symbolic tokens of shape (batch, length, "
                        f"embed_dim) (from dnn.Input or a layer called on one), got {got}")
    (mlp_dim,) = positive_ints("transformer_block", mlp_dim=mlp_dim)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"transformer_block: dropout must be a number in [0, 1), got {dropout!r}")
    dim = int(x.shape[-1])
    h = MultiHeadAttention(dim, num_heads, dropout=float(dropout), causal=causal)(LayerNorm(dim)(x))
    x = Add()([x, _maybe_dropout(h, dropout)])
    h = GELU(approximate=approximate)(Dense(dim, mlp_dim)(LayerNorm(dim)(x)))
    h = Dense(mlp_dim, dim)(_maybe_dropout(h, dropout))
    return Add()([x, _maybe_dropout(h, dropout)])


def vision_transformer(image_shape: tuple[int, int, int], patch_size: int, num_classes: int,
                       dim: int, depth: int, heads: int, mlp_dim: int,
                       dropout: float = 0.0) -> Model:
    """A ViT classifier for images of ``image_shape`` (C, H, W): patches of ``patch_size``,
    ``depth`` blocks of width ``dim``, ``heads`` heads and MLP width ``mlp_dim``, mean-pooled
    tokens, ``num_classes`` logits."""
    if not isinstance(image_shape, (tuple, list)) or len(image_shape) != 3:
        raise ValueError(f"vision_transformer: image_shape must be (channels, height, width), "
                         f"got {image_shape!r}")
    c, h, w = positive_ints("vision_transformer", channels=image_shape[0], height=image_shape[1],
                            width=image_shape[2])
    (p,) = positive_ints("vision_transformer", patch_size=patch_size)
    if h % p or w % p:
        raise ValueError(f"vision_transformer: patch_size {p} must divide the image height {h} "
                         f"and width {w}")
    num_classes, dim, depth = positive_ints("vision_transformer", num_classes=num_classes,
                                            dim=dim, depth=depth)
    image = Input((c, h, w), name="image")
    tokens = Dense(c * p * p, dim)(Patches(p)(image))                 # (N, P, dim)
    x = PositionalEmbedding((h // p) * (w // p), dim)(tokens)
    for _ in range(depth):
        x = transformer_block(x, heads, mlp_dim, dropout)
    pooled = SequenceAvgPool()(LayerNorm(dim)(x))                     # (N, dim)
    return Model(image, Dense(dim, num_classes)(pooled))


def char_transformer(vocab_size: int, context: int, dim: int, depth: int, heads: int,
                     mlp_dim: int, dropout: float = 0.0) -> Model:
    """A causal character (token) language model: ids (N, T ≤ ``context``) -> logits
    (N, T, ``vocab_size``) for the next id at every position."""
    vocab_size, context, dim, depth = positive_ints(
        "char_transformer", vocab_size=vocab_size, context=context, dim=dim, depth=depth)
    ids = Input((context,), dtype="int64", name="ids")
    x = PositionalEmbedding(context, dim)(Embedding(vocab_size, dim)(ids))
    for _ in range(depth):
        x = transformer_block(x, heads, mlp_dim, dropout, causal=True)
    return Model(ids, Dense(dim, vocab_size)(LayerNorm(dim)(x)))


def generate(model: Any, prompt: Any, length: int, *, context: int, temperature: float = 1.0,
             seed: int | np.random.Generator = 0) -> np.ndarray:
    """Extend each row of ``prompt`` (int ids, (B, L) or (L,)) by ``length`` ids drawn one at a
    time from ``model``'s next-id distribution softmax(logits / temperature) at the last
    position, reading at most the last ``context`` ids (the window is cropped as the text
    grows). ``temperature=0`` takes the most likely id. ``seed``: an int or a NumPy
    Generator; the same seed gives the same ids. Returns (B, L + length) (or (L + length,))."""
    ids = np.asarray(prompt)
    single = ids.ndim == 1
    ids = ids[None, :] if single else ids
    if ids.ndim != 2 or ids.shape[1] == 0 or ids.dtype.kind not in "iu":
        raise ValueError(f"generate: prompt must be a non-empty int array (L,) or (B, L), got "
                         f"dtype {ids.dtype} and shape {ids.shape}")
    (context,) = positive_ints("generate", context=context)
    if not isinstance(length, numbers.Integral) or isinstance(length, bool) or length < 0:
        raise ValueError(f"generate: length must be an int >= 0, got {length!r}")
    length = int(length)
    if not isinstance(temperature, numbers.Real) or isinstance(temperature, bool) \
            or not 0 <= temperature < math.inf:
        raise ValueError(f"generate: temperature must be a finite number >= 0, got "
                         f"{temperature!r}")
    shape = model.output_shape_at(0, [np.zeros((1, min(context, ids.shape[1])), np.int64)]) \
        if hasattr(model, "output_shape_at") else None
    if shape is not None and len(shape) != 3:
        raise ValueError(f"generate: the model must give per-position logits (batch, time, "
                         f"vocab), its output has shape {tuple(shape)}")
    # a window longer than the model's positions would fail mid-way: try the longest first
    model.predict(np.zeros((1, context), np.int64) if length else ids[:1, -context:])
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    out = np.empty((ids.shape[0], ids.shape[1] + length), dtype=np.int64)
    out[:, :ids.shape[1]] = ids
    for end in range(ids.shape[1], out.shape[1]):
        window = out[:, max(0, end - context):end]
        logits = np.asarray(model.predict(window), dtype=np.float64)[:, -1, :]
        if not np.isfinite(logits).all():
            raise ValueError(f"generate: the model gave non-finite logits (NaN or inf) at "
                             f"position {end}; its weights may have diverged")
        out[:, end] = _draw(logits, temperature, rng)
    return out[0] if single else out


def _draw(logits: np.ndarray, temperature: float, rng: np.random.Generator) -> np.ndarray:
    """One id per row of (B, V) logits: argmax at temperature 0, else a draw from
    softmax(logits / temperature) by inverting its cumulative sum at a uniform number."""
    if temperature == 0:
        return np.argmax(logits, axis=1)
    scaled = logits / temperature
    probs = np.exp(scaled - scaled.max(axis=1, keepdims=True))
    cumulative = np.cumsum(probs, axis=1)
    u = rng.random((logits.shape[0], 1)) * cumulative[:, -1:]
    return np.minimum((cumulative <= u).sum(axis=1), logits.shape[1] - 1)
