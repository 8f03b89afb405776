"""MultiHeadAttention, PositionalEmbedding and SinusoidalPositionalEncoding.

- gradients: float64 central differences (gradcheck < 1e-6) for self- and
  cross-attention, causal, key padding (a fully padded sample too), no bias,
  dropout with an explicit mask, 1 and 4 heads, penalties;
- PyTorch oracle: ``torch.nn.MultiheadAttention(batch_first=True)`` with our
  weights packed into its ``in_proj_weight``/``out_proj``: output, input
  gradient(s) and every parameter gradient agree to rtol 1e-8 (float64);
- a loop-over-heads NumPy reference for what torch cannot show (the dropout
  path, a fully padded sample);
- the functional API with a mask input, saved and loaded; the cache memory
  against N·h·T·S + O(N·T·E); argument and shape errors;
- positional layers: values against the formula, gradients, errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import dnn
from dnn import backend
from dnn.errors import ShapeError
from dnn.gradcheck import gradcheck
from dnn.layers import MultiHeadAttention, PositionalEmbedding, SinusoidalPositionalEncoding
from dnn.layers.base import Context
from tests.conftest import to_numpy

WEIGHTS = ("weight_q", "weight_k", "weight_v", "weight_o")
BIASES = ("bias_q", "bias_k", "bias_v", "bias_o")


def _build(embed_dim: int, num_heads: int, seed: int = 0, **kwargs) -> MultiHeadAttention:
    """A layer with random (not Glorot-small) weights and nonzero biases."""
    layer = MultiHeadAttention(embed_dim, num_heads, **kwargs)
    rng = np.random.default_rng(seed)
    layer.load_state_dict({k: 0.5 * rng.standard_normal(tuple(v.shape))
                           for k, v in layer.state_dict().items()})
    return layer


def _padding(n: int, s: int, lengths: list[int]) -> np.ndarray:
    """Key-padding mask (N, S): the first lengths[i] keys of sample i are real."""
    return np.arange(s)[None, :] < np.asarray(lengths)[:, None]


def _reference(layer: MultiHeadAttention, q, k, v, mask=None, dropout_mask=None) -> np.ndarray:
    """The forward pass written head by head in NumPy float64, independently of the layer:
    hidden keys get weight 0, a row with no visible key gets weights 0 (output b_o)."""
    w = {key: to_numpy(val).astype(np.float64) for key, val in layer.state_dict().items()}
    zero = np.zeros(layer.embed_dim)
    queries = q @ w["weight_q"] + w.get("bias_q", zero)
    keys = k @ w["weight_k"] + w.get("bias_k", zero)
    values = v @ w["weight_v"] + w.get("bias_v", zero)
    n, t, e = q.shape
    s = k.shape[1]
    d = layer.head_dim
    visible = np.ones((n, t, s), bool)
    if mask is not None:
        visible &= mask.astype(bool)[:, None, :]
    if layer.causal:
        visible &= np.tril(np.ones((t, s), bool))[None]
    out = np.zeros((n, t, e))
    for head in range(layer.num_heads):
        part = slice(head * d, (head + 1) * d)
        scores = queries[..., part] @ keys[..., part].transpose(0, 2, 1) / math.sqrt(d)
        scores = np.where(visible, scores, -np.inf)
        row_max = np.where(visible.any(-1, keepdims=True),
                           np.max(scores, axis=-1, keepdims=True), 0.0)
        weights = np.exp(scores - row_max)
        weights /= np.maximum(weights.sum(-1, keepdims=True), 1e-300)
        if dropout_mask is not None:
            weights = weights * dropout_mask[:, head] / (1.0 - layer.dropout)
        out[..., part] = weights @ values[..., part]
    return out @ w["weight_o"] + w.get("bias_o", zero)


# ------------------------------------------------------------------------------ gradients
#: id -> (layer kwargs, heads, (T, S or None for self-attention), mask lengths or None)
GRAD_CASES = {
    "self-1-head": ({}, 1, (4, None), None),
    "self-4-heads": ({}, 4, (4, None), None),
    "cross-S-ne-T": ({}, 2, (4, 3), None),
    "causal": ({"causal": True}, 2, (5, None), None),
    "key-padding": ({}, 2, (4, None), [4, 2]),
    "key-padding-cross": ({}, 2, (3, 5), [1, 4]),
    "fully-padded-sample": ({}, 2, (4, None), [3, 0]),
    "causal-left-padded-rows": ({"causal": True}, 2, (4, None), None),
    "no-bias": ({"bias": False}, 2, (4, 3), [3, 2]),
    "penalties": ({"l1": 0.01, "l2": 0.03}, 2, (4, None), None),
}


@pytest.mark.parametrize("case", GRAD_CASES, ids=list(GRAD_CASES))
def test_gradcheck(float64, case):
    kwargs, heads, (t, s), lengths = GRAD_CASES[case]
    rng = np.random.default_rng(1)
    layer = _build(8, heads, **kwargs)
    x = rng.standard_normal((2, t, 8))
    inputs = x if s is None else [x, rng.standard_normal((2, s, 8)), rng.standard_normal((2, s, 8))]
    length = t if s is None else s
    mask = None if lengths is None else _padding(2, length, lengths)
    if case == "causal-left-padded-rows":  # the first queries of sample 1 see no key at all
        mask = np.array([[True] * 4, [False, False, True, True]])
    kw = {} if mask is None else {"mask": backend.asarray(mask)}
    assert gradcheck(layer, inputs, forward_kwargs=kw) < 1e-6


def test_gradcheck_dropout_with_explicit_mask(float64):
    rng = np.random.default_rng(2)
    layer = _build(8, 2, dropout=0.3)
    q, kv = rng.standard_normal((2, 4, 8)), rng.standard_normal((2, 3, 8))
    drop = backend.asarray((rng.uniform(size=(2, 2, 4, 3)) > 0.3) * 1.0)
    kw = {"dropout_mask": drop, "mask": backend.asarray(_padding(2, 3, [3, 2]))}
    assert gradcheck(layer, [q, kv, kv + 0.1], training=True, forward_kwargs=kw) < 1e-6
    assert gradcheck(layer, q, training=True,
                     forward_kwargs={"dropout_mask": backend.asarray(
                         (rng.uniform(size=(2, 2, 4, 4)) > 0.3) * 1.0)}) < 1e-6


def test_gradcheck_mask_as_list_element(float64):
    rng = np.random.default_rng(3)
    layer = _build(8, 2, causal=True)
    x = rng.standard_normal((2, 4, 8))
    mask = backend.asarray(np.array([[1, 1, 1, 0], [1, 1, 0, 0]], np.int64))
    assert gradcheck(layer, [x, mask]) < 1e-6
    assert gradcheck(layer, [x, x + 1.0, x - 1.0, mask]) < 1e-6


def test_gradcheck_catches_a_wrong_backward(float64, monkeypatch):
    """The check can fail: the same backward without the softmax's Σ_j dP ⊙ P term is caught."""
    import dnn.layers.attention as attention

    original = backend.xp

    class _NoRowSum:
        def __getattr__(self, name):
            return getattr(original, name)

        @staticmethod
        def sum(a, axis=None, keepdims=False):
            total = original.sum(a, axis=axis, keepdims=keepdims)
            return original.zeros_like(total) if axis == -1 else total

    class Broken(MultiHeadAttention):
        def backward_with(self, ctx, grad):
            with monkeypatch.context() as patch:
                patch.setattr(attention.backend, "xp", _NoRowSum())
                return super().backward_with(ctx, grad)

    x = np.random.default_rng(4).standard_normal((2, 3, 8))
    broken, right = _build(8, 2), _build(8, 2)
    broken.__class__ = Broken
    assert gradcheck(right, x) < 1e-6
    assert gradcheck(broken, x) > 1e-3


# ------------------------------------------------------------------------------ PyTorch oracle
ORACLE_CASES = {
    "self": ({}, None, None),
    "cross": ({}, 3, None),
    "causal": ({"causal": True}, None, None),
    "key-padding": ({}, None, [5, 3]),
    "causal-padding": ({"causal": True}, None, [2, 5]),
    "cross-padding-no-bias": ({"bias": False}, 3, [1, 3]),
}


def _torch_module(torch, layer: MultiHeadAttention):
    """torch.nn.MultiheadAttention holding our weights (in_proj packs [W_qᵀ; W_kᵀ; W_vᵀ])."""
    w = {key: torch.from_numpy(to_numpy(val).astype(np.float64))
         for key, val in layer.state_dict().items()}
    module = torch.nn.MultiheadAttention(layer.embed_dim, layer.num_heads, bias=layer.use_bias,
                                         batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        module.in_proj_weight.copy_(torch.cat([w["weight_q"].T, w["weight_k"].T, w["weight_v"].T]))
        module.out_proj.weight.copy_(w["weight_o"].T)
        if layer.use_bias:
            module.in_proj_bias.copy_(torch.cat([w["bias_q"], w["bias_k"], w["bias_v"]]))
            module.out_proj.bias.copy_(w["bias_o"])
    return module


@pytest.mark.parametrize("case", ORACLE_CASES, ids=list(ORACLE_CASES))
def test_matches_torch(float64, case):
    torch = pytest.importorskip("torch")
    kwargs, s, lengths = ORACLE_CASES[case]
    rng = np.random.default_rng(5)
    n, t, e, heads = 2, 5, 8, 4
    layer = _build(e, heads, **kwargs)
    module = _torch_module(torch, layer)
    q = rng.standard_normal((n, t, e))
    k, v = (q, q) if s is None else (rng.standard_normal((n, s, e)), rng.standard_normal((n, s, e)))
    mask = None if lengths is None else _padding(n, k.shape[1], lengths)
    grad = rng.standard_normal((n, t, e))

    inputs = backend.asarray(q) if s is None else [backend.asarray(a) for a in (q, k, v)]
    y = layer.forward(inputs, None if mask is None else backend.asarray(mask))
    dx = layer.backward(backend.asarray(grad))

    tq = torch.tensor(q, requires_grad=True)
    tk, tv = (tq, tq) if s is None else (torch.tensor(k, requires_grad=True),
                                         torch.tensor(v, requires_grad=True))
    causal = torch.triu(torch.ones(t, k.shape[1], dtype=torch.bool), 1) if layer.causal else None
    ty, _ = module(tq, tk, tv, key_padding_mask=None if mask is None else torch.from_numpy(~mask),
                   attn_mask=causal, need_weights=False)
    ty.backward(torch.from_numpy(grad))

    def close(ours, theirs, what):
        np.testing.assert_allclose(to_numpy(ours), theirs.detach().numpy(), rtol=1e-8,
                                   atol=1e-12, err_msg=f"{case}: {what}")

    close(y, ty, "output")
    if s is None:
        close(dx, tq.grad, "dL/dx")
    else:
        for ours, theirs, name in zip(dx, (tq, tk, tv), "qkv"):
            close(ours, theirs.grad, f"dL/d{name}")
    packed = module.in_proj_weight.grad
    for i, name in enumerate(WEIGHTS[:3]):
        close(getattr(layer, name).grad, packed[i * e:(i + 1) * e].T, f"grad of {name}")
    close(layer.weight_o.grad, module.out_proj.weight.grad.T, "grad of weight_o")
    if layer.use_bias:
        for i, name in enumerate(BIASES[:3]):
            close(getattr(layer, name).grad, module.in_proj_bias.grad[i * e:(i + 1) * e],
                  f"grad of {name}")
        close(layer.bias_o.grad, module.out_proj.bias.grad, "grad of bias_o")
    assert np.abs(to_numpy(y)).max() > 0.1  # not a vacuous comparison


def test_eval_mode_ignores_dropout_like_torch(float64):
    torch = pytest.importorskip("torch")
    layer = _build(8, 2, dropout=0.5)
    module = _torch_module(torch, layer).eval()
    x = np.random.default_rng(6).standard_normal((3, 4, 8))
    want, _ = module(*(torch.from_numpy(x),) * 3, need_weights=False)
    got = layer.forward(backend.asarray(x))
    np.testing.assert_allclose(to_numpy(got), want.detach().numpy(), rtol=1e-8, atol=1e-12)


# ------------------------------------------------------------------------------ NumPy reference
def test_dropout_matches_hand_computed_reference(float64):
    rng = np.random.default_rng(7)
    layer = _build(8, 2, dropout=0.25)
    q, k, v = (rng.standard_normal((2, t, 8)) for t in (4, 3, 3))
    drop = (rng.uniform(size=(2, 2, 4, 3)) > 0.25) * 1.0
    mask = _padding(2, 3, [3, 2])
    y = layer.forward([backend.asarray(a) for a in (q, k, v)], backend.asarray(mask),
                      training=True, dropout_mask=backend.asarray(drop))
    np.testing.assert_allclose(to_numpy(y), _reference(layer, q, k, v, mask, drop), rtol=1e-10)
    # eval mode (or training without dropout) is the plain attention
    y_eval = layer.forward([backend.asarray(a) for a in (q, k, v)], backend.asarray(mask))
    np.testing.assert_allclose(to_numpy(y_eval), _reference(layer, q, k, v, mask), rtol=1e-10)
    assert np.abs(to_numpy(y) - to_numpy(y_eval)).max() > 1e-3


def test_dropout_draws_a_mask_in_training(backend_name):
    layer = MultiHeadAttention(8, 2, dropout=0.5)
    x = backend.asarray(np.random.default_rng(8).standard_normal((4, 6, 8)))
    ctx = Context()
    y = layer.forward_with(ctx, x, training=True)
    scaled = to_numpy(ctx.saved[7])
    assert scaled.shape == (4, 2, 6, 6)
    assert set(np.unique(scaled)) == {0.0, 2.0}  # M / (1 − p)
    assert 0.35 < np.mean(scaled == 0.0) < 0.65
    assert not np.allclose(to_numpy(y), to_numpy(layer.forward(x)))
    layer.backward_with(ctx, backend.xp.ones_like(y))


def test_fully_padded_sample_gives_bias_and_no_nan(float64):
    layer = _build(8, 2, causal=True)
    x = np.random.default_rng(9).standard_normal((3, 4, 8))
    mask = np.array([[1, 1, 1, 1], [0, 0, 0, 0], [0, 0, 1, 1]], np.int64)
    y = to_numpy(layer.forward(backend.asarray(x), backend.asarray(mask)))
    dx = to_numpy(layer.backward(backend.asarray(np.ones((3, 4, 8)))))
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx))
    bias_o = to_numpy(layer.bias_o.data)
    np.testing.assert_allclose(y[1], np.broadcast_to(bias_o, (4, 8)), rtol=1e-12)
    np.testing.assert_allclose(y[2, :2], np.broadcast_to(bias_o, (2, 8)), rtol=1e-12)
    np.testing.assert_allclose(y, _reference(layer, x, x, x, mask), rtol=1e-10)
    np.testing.assert_array_equal(dx[1], 0.0)  # a constant output passes no gradient back


def test_mask_dtypes_and_forms_agree(backend_name):
    layer = MultiHeadAttention(8, 2)
    x = backend.asarray(np.random.default_rng(10).standard_normal((2, 5, 8)))
    lengths = _padding(2, 5, [5, 3])
    ys = [layer.forward(x, backend.asarray(lengths)),
          layer.forward(x, backend.asarray(lengths.astype(np.int64))),
          layer.forward(x, backend.asarray(lengths.astype(np.float32))),
          layer.forward(x, mask=backend.asarray(lengths)),
          layer.forward([x, backend.asarray(lengths)]),
          layer.forward([x, x, x, backend.asarray(lengths)]),
          layer.forward([x, x, x], backend.asarray(lengths))]
    for y in ys[1:]:
        np.testing.assert_allclose(to_numpy(y), to_numpy(ys[0]), rtol=1e-5, atol=1e-6)
    assert not np.allclose(to_numpy(layer.forward(x)), to_numpy(ys[0]))
    layer.forward([x, backend.asarray(lengths)])
    dx, dmask = layer.backward(backend.xp.ones_like(x))
    assert dmask is None and tuple(dx.shape) == (2, 5, 8)


def test_no_input_gradient_when_not_needed(backend_name):
    layer = MultiHeadAttention(8, 2)
    x = backend.asarray(np.random.default_rng(11).standard_normal((2, 3, 8)))
    ctx = Context()
    ctx.needs_input_grad = False
    y = layer.forward_with(ctx, x)
    with dnn.parameter.backward_pass():
        assert layer.backward_with(ctx, backend.xp.ones_like(y)) is None
    assert all(getattr(layer, n).grad is not None for n in WEIGHTS + BIASES)


# ------------------------------------------------------------------------------ memory
def _held_bytes(ctx: Context) -> tuple[int, bool]:
    """Bytes of the distinct arrays a context holds; whether all of them are float32."""
    arrays = {id(a): a for a in ctx.saved if a is not None}.values()
    xp = backend.xp
    itemsize = [to_numpy(xp.zeros((1,), dtype=a.dtype)).itemsize for a in arrays]
    return (sum(math.prod(a.shape) * size for a, size in zip(arrays, itemsize)),
            all(a.dtype == xp.float32 for a in arrays))


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train-dropout"])
def test_cache_memory_matches_theory(backend_name, training):
    """Self-attention keeps N·h·T² probabilities + 5·N·T·E (x, Q̂, K, V, O); cross-attention
    N·h·T·S + 3·N·T·E + 4·N·S·E; dropout adds the N·h·T·S mask. Freed after backward."""
    n, t, s, e, heads = 2, 32, 24, 16, 4
    itemsize = 4  # float32
    rng = np.random.default_rng(12)
    layer = MultiHeadAttention(e, heads, dropout=0.1)
    x = backend.asarray(rng.standard_normal((n, t, e)))
    kv = [backend.asarray(rng.standard_normal((n, s, e))) for _ in range(2)]
    extra = 1 if training else 0
    for inputs, keys, theory in (
            (x, t, (1 + extra) * n * heads * t * t + 5 * n * t * e),
            ([x, *kv], s, (1 + extra) * n * heads * t * s + 3 * n * t * e + 4 * n * s * e)):
        ctx = Context()
        y = layer.forward_with(ctx, inputs, training=training)
        held, all_float32 = _held_bytes(ctx)
        assert all_float32
        assert held == theory * itemsize, (held, theory * itemsize)
        probs_bytes = n * heads * t * keys * itemsize
        assert probs_bytes >= 0.5 * held / (1 + extra)  # P is half or more at T = 32
        layer.backward_with(ctx, backend.xp.ones_like(y))
        assert ctx.saved is None


# ------------------------------------------------------------------------------ functional API
def test_functional_model_with_mask_input_saves_and_loads(backend_name, tmp_path):
    rng = np.random.default_rng(13)
    tokens = dnn.Input((6, 8), name="x")
    mask_in = dnn.Input((6,), dtype="int64", name="mask")
    h = dnn.layers.SinusoidalPositionalEncoding(8)(dnn.layers.PositionalEmbedding(6, 8)(tokens))
    h = MultiHeadAttention(8, 2, causal=True, dropout=0.1)(h, mask_in)
    out = dnn.layers.Dense(8, 3)(h)
    model = dnn.Model([tokens, mask_in], out)
    model.compile(loss="mse", optimizer=dnn.optim.Adam(lr=0.01))
    x = rng.standard_normal((16, 6, 8)).astype(np.float32)
    mask = _padding(16, 6, list(rng.integers(1, 7, size=16))).astype(np.int64)
    y = rng.standard_normal((16, 6, 3)).astype(np.float32)
    before = to_numpy(model.predict([x, mask]))
    model.fit([x, mask], y, epochs=2, batch_size=4, verbose=0, seed=0)
    after = to_numpy(model.predict([x, mask]))
    assert not np.allclose(before, after)  # it trained (the attention weights too)
    path = tmp_path / "attention.dnn"
    model.save(path)
    loaded = dnn.load_model(path)
    np.testing.assert_array_equal(to_numpy(loaded.predict([x, mask])), after)
    # the mask matters: hiding every key but the first changes the output
    first_only = np.zeros_like(mask)
    first_only[:, 0] = 1
    assert not np.allclose(to_numpy(loaded.predict([x, first_only])), after)
    # continued training agrees, so the loaded graph feeds the mask the same way
    model.fit([x, mask], y, epochs=1, batch_size=4, verbose=0, seed=1)
    loaded.fit([x, mask], y, epochs=1, batch_size=4, verbose=0, seed=1)
    np.testing.assert_allclose(to_numpy(loaded.predict([x, mask])),
                               to_numpy(model.predict([x, mask])), rtol=1e-5, atol=1e-6)


def test_functional_cross_attention_list_input(backend_name):
    q_in, kv_in = dnn.Input((4, 8)), dnn.Input((3, 8))
    mask_in = dnn.Input((3,), dtype="int32")
    mha = MultiHeadAttention(8, 4)
    model = dnn.Model([q_in, kv_in, mask_in], mha([q_in, kv_in, kv_in, mask_in]))
    rng = np.random.default_rng(14)
    q, kv = rng.standard_normal((2, 4, 8)), rng.standard_normal((2, 3, 8))
    mask = np.array([[1, 1, 0], [1, 1, 1]], np.int32)
    got = to_numpy(model.predict([q, kv, mask]))
    want = to_numpy(mha.forward([backend.asarray(q, dtype=backend.default_dtype()),
                                 backend.asarray(kv, dtype=backend.default_dtype()),
                                 backend.asarray(kv, dtype=backend.default_dtype())],
                                backend.asarray(mask)))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ShapeError, match="key-padding mask"):
        mha([q_in, kv_in, kv_in, dnn.Input((4,), dtype="int32")])


# ------------------------------------------------------------------------------ errors
def test_constructor_errors():
    with pytest.raises(ValueError, match=r"MultiHeadAttention: embed_dim must be divisible by "
                                         r"num_heads.*embed_dim=10 and num_heads=4"):
        MultiHeadAttention(10, 4)
    with pytest.raises(ValueError, match="MultiHeadAttention: num_heads must be a positive int"):
        MultiHeadAttention(8, 0)
    with pytest.raises(ValueError, match="MultiHeadAttention: dropout must be a float in"):
        MultiHeadAttention(8, 2, dropout=1.0)
    with pytest.raises(ValueError, match="MultiHeadAttention: causal must be True or False"):
        MultiHeadAttention(8, 2, causal="yes")
    with pytest.raises(ValueError, match="MultiHeadAttention: l2 must be a finite number"):
        MultiHeadAttention(8, 2, l2=-1.0)


def test_shape_errors(backend_name):
    layer = MultiHeadAttention(8, 2)
    xp = backend.xp

    def arr(*shape):
        return xp.zeros(shape, dtype=backend.default_dtype())

    cases = [
        (lambda: layer.forward(arr(2, 8)), "query of shape \\(batch, length, 8\\), got \\(2, 8\\)"),
        (lambda: layer.forward(arr(2, 3, 6)), "got \\(2, 3, 6\\)"),
        (lambda: layer.forward([arr(2, 3, 8), arr(2, 4, 8), arr(2, 5, 8)]), "one shape"),
        (lambda: layer.forward([arr(2, 3, 8), arr(3, 4, 8), arr(3, 4, 8)]), "batch size"),
        (lambda: layer.forward(arr(2, 3, 8), arr(2, 4)), "mask must have the shape \\(N, S\\)"),
        (lambda: layer.forward([arr(2, 3, 8), arr(2, 4, 8), arr(2, 4, 8)], arr(2, 3)),
         "\\(N, S\\) = \\(2, 4\\), got \\(2, 3\\)"),
        (lambda: MultiHeadAttention(8, 2, dropout=0.5).forward(
            arr(2, 3, 8), training=True, dropout_mask=arr(2, 2, 3, 4)), "dropout_mask"),
    ]
    for call, message in cases:
        with pytest.raises(ShapeError, match=f"MultiHeadAttention.*{message}"):
            call()
    with pytest.raises(ValueError, match="a list input must be"):
        layer.forward([arr(2, 3, 8)] * 5)
    with pytest.raises(ValueError, match="the mask is given twice"):
        layer.forward([arr(2, 3, 8), arr(2, 3)], arr(2, 3))


# ------------------------------------------------------------------------------ positional
def test_positional_embedding_adds_rows_and_gradcheck(float64):
    layer = PositionalEmbedding(7, 4, l2=0.05)
    x = np.random.default_rng(15).standard_normal((3, 5, 4))
    y = to_numpy(layer.forward(backend.asarray(x)))
    np.testing.assert_allclose(y, x + to_numpy(layer.weight.data)[None, :5], rtol=1e-12)
    layer.l2 = layer.weight.l2 = 0.0  # the gradient below is the data term only
    dx = layer.backward(backend.asarray(np.ones((3, 5, 4))))
    np.testing.assert_array_equal(to_numpy(dx), np.ones((3, 5, 4)))
    grad = to_numpy(layer.weight.grad)
    np.testing.assert_array_equal(grad[:5], np.full((5, 4), 3.0))
    np.testing.assert_array_equal(grad[5:], 0.0)  # rows beyond T get no gradient
    layer.weight.l2 = 0.05
    assert gradcheck(layer, x) < 1e-6


def test_positional_embedding_init():
    weight = to_numpy(PositionalEmbedding(512, 64).weight.data)
    assert abs(weight.std() - 0.02) < 0.001 and abs(weight.mean()) < 0.001


@pytest.mark.parametrize("dim", [6, 7], ids=["even-dim", "odd-dim"])
def test_sinusoidal_values_against_formula(float64, dim):
    layer = SinusoidalPositionalEncoding(dim, max_len=50)
    t = 9
    x = np.random.default_rng(16).standard_normal((2, t, dim))
    y = to_numpy(layer.forward(backend.asarray(x)))
    want = np.zeros((t, dim))
    for pos in range(t):
        for j in range(dim):
            i2 = j - j % 2  # 2i for both columns of a pair
            angle = pos / 10000 ** (i2 / dim)
            want[pos, j] = math.sin(angle) if j % 2 == 0 else math.cos(angle)
    np.testing.assert_allclose(y - x, np.broadcast_to(want, y.shape), rtol=1e-12, atol=1e-12)
    assert gradcheck(layer, x) < 1e-6
    assert layer.parameters() == []


def test_sinusoidal_follows_dtype_and_length(backend_name):
    layer = SinusoidalPositionalEncoding(4)
    short = layer.forward(backend.xp.zeros((1, 3, 4), dtype=backend.xp.float32))
    long = layer.forward(backend.xp.zeros((1, 5, 4), dtype=backend.xp.float32))
    assert short.dtype == backend.xp.float32
    np.testing.assert_allclose(to_numpy(long)[:, :3], to_numpy(short), rtol=1e-6)
    np.testing.assert_allclose(to_numpy(long)[0, 1, :2], [math.sin(1.0), math.cos(1.0)], rtol=1e-6)


def test_positional_errors(backend_name):
    zeros = backend.xp.zeros((2, 6, 4), dtype=backend.default_dtype())
    for layer in (PositionalEmbedding(5, 4), SinusoidalPositionalEncoding(4, max_len=5)):
        name = type(layer).__name__
        with pytest.raises(ShapeError, match=f"{name}: the sequence has 6 positions, more than "
                                             "max_len=5"):
            layer.forward(zeros)
        with pytest.raises(ShapeError, match=f"{name}: expected input of shape "
                                             r"\(batch, length, 4\), got \(2, 5\)"):
            layer.forward(zeros[:, :5, 0])
        with pytest.raises(ShapeError, match=f"{name}: expected input"):
            layer.forward(backend.xp.zeros((2, 3, 5), dtype=backend.default_dtype()))
    with pytest.raises(ValueError, match="PositionalEmbedding: max_len must be a positive int"):
        PositionalEmbedding(0, 4)
    with pytest.raises(ValueError, match="SinusoidalPositionalEncoding: dim must be a positive"):
        SinusoidalPositionalEncoding(2.5)
    with pytest.raises(ValueError, match="PositionalEmbedding: l1 must be a finite number"):
        PositionalEmbedding(4, 4, l1=float("nan"))
