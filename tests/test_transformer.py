"""The Transformer pieces: the pre-norm block (gradients, PyTorch's TransformerEncoderLayer as
oracle), Patches and SequenceAvgPool, per-position cross-entropy (N, T, V) with (N, T) targets,
the ViT and character-LM builders, sampling, and the standard-library text corpus."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

import dnn
from dnn import backend
from dnn.datasets import stdlib_text
from dnn.datasets.stdlib_text import UNKNOWN, VOCAB, TextCorpus, load_stdlib_text
from dnn.errors import ShapeError
from dnn.gradcheck import check_model_loss, gradcheck
from dnn.layers import (
    Conv2D,
    Dense,
    LayerNorm,
    MultiHeadAttention,
    Patches,
    SequenceAvgPool,
)
from dnn.losses import CategoricalCrossentropy, SoftmaxCrossEntropy
from dnn.transformer import (
    char_transformer,
    generate,
    transformer_block,
    vision_transformer,
)

TOL = 1e-6


def _np(x):
    return backend.to_numpy(x)


def _block_model(dim: int = 8, heads: int = 2, mlp: int = 12, length: int = 5,
                 causal: bool = False, approximate: str = "tanh") -> dnn.Model:
    inp = dnn.Input((length, dim))
    return dnn.Model(inp, transformer_block(inp, heads, mlp, causal=causal, approximate=approximate))


def _randomise(model: dnn.Model, seed: int = 0) -> None:
    """Every parameter drawn at random (LayerNorm scales near 1, biases nonzero), so that no
    gradient term hides behind an initial zero or one."""
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        value = rng.standard_normal(p.shape) * (0.3 if p.data.ndim > 1 else 0.2)
        if p.name == "weight" and p.data.ndim == 1:
            value = 1.0 + value
        p.data[...] = backend.asarray(value, dtype=p.data.dtype)


# ---------------------------------------------------------------- the block
def test_block_structure():
    """x + MHA(LN(x)), then + Dense(GELU(Dense(LN(·)))): the nodes a user sees in summary()."""
    model = _block_model()
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["LayerNorm", "MultiHeadAttention", "Add", "LayerNorm", "Dense", "GELU",
                     "Dense", "Add"]
    with_dropout = dnn.Model(inp := dnn.Input((5, 8)), transformer_block(inp, 2, 12, dropout=0.1))
    assert [type(la).__name__ for la in with_dropout.layers].count("Dropout") == 3
    assert with_dropout.get_layer("multi_head_attention").dropout == 0.1


@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
def test_block_gradcheck(float64, causal):
    model = _block_model(causal=causal)
    _randomise(model, seed=1)
    x = np.random.default_rng(2).standard_normal((2, 5, 8))
    assert gradcheck(model, x) < TOL


def _torch_block(torch, model: dnn.Model, dim: int, heads: int, mlp: int, approximate: str):
    """torch.nn.TransformerEncoderLayer(norm_first=True, batch_first=True) holding our weights."""
    functional = torch.nn.functional
    activation = "gelu" if approximate == "none" else (lambda t: functional.gelu(t, approximate="tanh"))
    ref = torch.nn.TransformerEncoderLayer(dim, heads, mlp, dropout=0.0, activation=activation,
                                           batch_first=True, norm_first=True, dtype=torch.float64)
    norm1, norm2 = (la for la in model.layers if isinstance(la, LayerNorm))
    mha = next(la for la in model.layers if isinstance(la, MultiHeadAttention))
    dense1, dense2 = (la for la in model.layers if isinstance(la, Dense))
    t = lambda p: torch.from_numpy(_np(p.data).copy())  # noqa: E731
    with torch.no_grad():
        for ours, theirs in ((norm1, ref.norm1), (norm2, ref.norm2)):
            theirs.weight.copy_(t(ours.weight))
            theirs.bias.copy_(t(ours.bias))
        attn = ref.self_attn
        attn.in_proj_weight.copy_(torch.cat([t(mha.weight_q).T, t(mha.weight_k).T, t(mha.weight_v).T]))
        attn.in_proj_bias.copy_(torch.cat([t(mha.bias_q), t(mha.bias_k), t(mha.bias_v)]))
        attn.out_proj.weight.copy_(t(mha.weight_o).T)
        attn.out_proj.bias.copy_(t(mha.bias_o))
        for ours, theirs in ((dense1, ref.linear1), (dense2, ref.linear2)):
            theirs.weight.copy_(t(ours.weight).T)
            theirs.bias.copy_(t(ours.bias))
    pairs = [(norm1.weight, ref.norm1.weight), (norm1.bias, ref.norm1.bias),
             (norm2.weight, ref.norm2.weight), (norm2.bias, ref.norm2.bias),
             (mha.weight_o, ref.self_attn.out_proj.weight), (mha.bias_o, ref.self_attn.out_proj.bias),
             (dense1.weight, ref.linear1.weight), (dense1.bias, ref.linear1.bias),
             (dense2.weight, ref.linear2.weight), (dense2.bias, ref.linear2.bias)]
    return ref, pairs, mha


@pytest.mark.parametrize("approximate, causal", [("none", False), ("tanh", False), ("none", True)],
                         ids=["exact-gelu", "tanh-gelu", "causal"])
def test_block_matches_torch_encoder_layer(float64, approximate, causal):
    """Output, input gradient and every parameter gradient against
    ``TransformerEncoderLayer(norm_first=True, batch_first=True)`` in float64 (rtol 1e-8)."""
    torch = pytest.importorskip("torch")
    dim, heads, mlp, length = 8, 2, 12, 5
    model = _block_model(dim, heads, mlp, length, causal=causal, approximate=approximate)
    _randomise(model, seed=3)
    ref, pairs, mha = _torch_block(torch, model, dim, heads, mlp, approximate)
    rng = np.random.default_rng(4)
    x, g = rng.standard_normal((3, length, dim)), rng.standard_normal((3, length, dim))

    y = model.forward(backend.asarray(x))
    dx = model.backward(backend.asarray(g))
    xt = torch.from_numpy(x).requires_grad_(True)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(length, dtype=torch.float64) \
        if causal else None
    yt = ref(xt, src_mask=mask, is_causal=causal)
    yt.backward(torch.from_numpy(g))
    close = {"rtol": 1e-8, "atol": 1e-10}
    np.testing.assert_allclose(_np(y), yt.detach().numpy(), **close)
    np.testing.assert_allclose(_np(dx), xt.grad.numpy(), **close)
    for ours, theirs in pairs:
        want = theirs.grad.numpy()
        np.testing.assert_allclose(_np(ours.grad), want.T if want.ndim == 2 else want, **close)
    e = dim
    in_grad = ref.self_attn.in_proj_weight.grad.numpy()
    in_bias = ref.self_attn.in_proj_bias.grad.numpy()
    for k, part in enumerate("qkv"):
        np.testing.assert_allclose(_np(getattr(mha, f"weight_{part}").grad), in_grad[k * e:(k + 1) * e].T,
                                   **close)
        np.testing.assert_allclose(_np(getattr(mha, f"bias_{part}").grad), in_bias[k * e:(k + 1) * e],
                                   **close)


def test_block_dropout_only_in_training(backend_name):
    """With dropout the block is random in training and the plain block in eval mode."""
    inp = dnn.Input((5, 8))
    model = dnn.Model(inp, transformer_block(inp, 2, 12, dropout=0.3))
    x = backend.asarray(np.random.default_rng(0).standard_normal((2, 5, 8)), dtype=backend.default_dtype())
    first, second = _np(model.forward(x, training=True)), _np(model.forward(x, training=True))
    assert not np.allclose(first, second)
    np.testing.assert_array_equal(_np(model.forward(x)), _np(model.forward(x)))


def test_block_argument_errors():
    with pytest.raises(TypeError, match="symbolic tokens"):
        transformer_block(dnn.Input((8,)), 2, 12)
    with pytest.raises(TypeError, match="symbolic tokens"):
        transformer_block(np.zeros((2, 5, 8)), 2, 12)
    with pytest.raises(ValueError, match="dropout"):
        transformer_block(dnn.Input((5, 8)), 2, 12, dropout=1.0)
    with pytest.raises(ValueError, match="divisible"):
        transformer_block(dnn.Input((5, 8)), 3, 12)
    with pytest.raises(ValueError, match="mlp_dim"):
        transformer_block(dnn.Input((5, 8)), 2, 0)


# ---------------------------------------------------------------- Patches, SequenceAvgPool
def test_patches_match_torch_unfold(float64):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 4))
    g = np.random.default_rng(1).standard_normal((2, 4, 18))
    layer = Patches((3, 2))
    y = layer.forward(backend.asarray(x))
    dx = layer.backward(backend.asarray(g))
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = torch.nn.functional.unfold(xt, (3, 2), stride=(3, 2)).transpose(1, 2)
    yt.backward(torch.from_numpy(g))
    np.testing.assert_array_equal(_np(y), yt.detach().numpy())
    np.testing.assert_array_equal(_np(dx), xt.grad.numpy())
    assert layer.output_shape((2, 3, 6, 4)) == (2, 4, 18)


def test_patches_then_dense_is_a_strided_convolution(float64):
    """Patches(p) → Dense(C·p·p, E) equals Conv2D(C, E, p, stride=p) with the weight reshaped."""
    rng = np.random.default_rng(0)
    conv = Conv2D(2, 5, 3, stride=3)
    conv.weight.data[...] = backend.asarray(rng.standard_normal((5, 2, 3, 3)))
    conv.bias.data[...] = backend.asarray(rng.standard_normal(5))
    dense = Dense(18, 5)
    dense.weight.data[...] = backend.xp.reshape(conv.weight.data, (5, 18)).T
    dense.bias.data[...] = conv.bias.data
    x = backend.asarray(rng.standard_normal((2, 2, 6, 9)))
    tokens = _np(dense.forward(Patches(3).forward(x)))            # (N, P, E)
    maps = _np(conv.forward(x))                                   # (N, E, 2, 3)
    np.testing.assert_allclose(tokens, maps.reshape(2, 5, 6).transpose(0, 2, 1), rtol=1e-12)


def test_patches_and_pool_gradcheck(float64):
    rng = np.random.default_rng(5)
    assert gradcheck(Patches(2), rng.standard_normal((2, 3, 4, 6))) < TOL
    assert gradcheck(SequenceAvgPool(), rng.standard_normal((3, 5, 4))) < TOL


def test_sequence_avg_pool_values(backend_name):
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    layer = SequenceAvgPool()
    np.testing.assert_allclose(_np(layer.forward(backend.asarray(x))), x.mean(axis=1))
    dx = _np(layer.backward(backend.asarray(np.ones((2, 4), np.float32))))
    np.testing.assert_allclose(dx, np.full((2, 3, 4), 1 / 3, np.float32), rtol=1e-6)


def test_patches_and_pool_shape_errors():
    with pytest.raises(ShapeError, match=r"multiple of 4"):
        Patches(4).forward(backend.asarray(np.zeros((1, 1, 6, 8), np.float32)))
    with pytest.raises(ShapeError, match="Patches"):
        Patches(2).forward(backend.asarray(np.zeros((1, 4, 4), np.float32)))
    with pytest.raises(ValueError, match="patch_height"):
        Patches(0)
    with pytest.raises(ValueError, match="pair"):
        Patches((2, 2, 2))
    with pytest.raises(ShapeError, match=r"\(batch, tokens, channels\)"):
        SequenceAvgPool().forward(backend.asarray(np.zeros((2, 3), np.float32)))


# ---------------------------------------------------------------- per-position cross-entropy
def _lm_batch(rng, n=3, t=5, v=7):
    return 2.0 * rng.standard_normal((n, t, v)), rng.integers(0, v, size=(n, t))


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_per_position_cross_entropy_gradcheck(float64, reduction):
    logits, targets = _lm_batch(np.random.default_rng(0))
    assert gradcheck(SoftmaxCrossEntropy(reduction=reduction), logits, targets) < TOL
    assert gradcheck(SoftmaxCrossEntropy(label_smoothing=0.1), logits, targets) < TOL


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_per_position_cross_entropy_matches_torch(float64, smoothing):
    """Our (N, T, V) logits with (N, T) targets = torch's cross_entropy on the (N, V, T)
    permutation: the mean over all N·T positions, and its gradient."""
    torch = pytest.importorskip("torch")
    logits, targets = _lm_batch(np.random.default_rng(1))
    loss = SoftmaxCrossEntropy(label_smoothing=smoothing)
    value = loss(backend.asarray(logits), backend.asarray(targets))
    grad = loss.backward()
    zt = torch.from_numpy(logits).requires_grad_(True)
    ref = torch.nn.functional.cross_entropy(zt.permute(0, 2, 1), torch.from_numpy(targets),
                                            label_smoothing=smoothing)
    ref.backward()
    np.testing.assert_allclose(float(value), ref.item(), rtol=1e-12)
    np.testing.assert_allclose(_np(grad), zt.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_per_position_cross_entropy_sample_weights_match_torch(float64):
    """A sample's loss is the mean over its positions; weights multiply it (the mean over N)."""
    torch = pytest.importorskip("torch")
    logits, targets = _lm_batch(np.random.default_rng(2))
    weights = np.array([0.5, 2.0, 0.0])
    loss = SoftmaxCrossEntropy()
    value = loss(backend.asarray(logits), backend.asarray(targets), sample_weight=weights)
    grad = loss.backward()
    zt = torch.from_numpy(logits).requires_grad_(True)
    per_position = torch.nn.functional.cross_entropy(zt.permute(0, 2, 1), torch.from_numpy(targets),
                                                     reduction="none")       # (N, T)
    ref = (per_position.mean(dim=1) * torch.from_numpy(weights)).mean()
    ref.backward()
    np.testing.assert_allclose(float(value), ref.item(), rtol=1e-12)
    np.testing.assert_allclose(_np(grad), zt.grad.numpy(), rtol=1e-10, atol=1e-14)
    none = SoftmaxCrossEntropy(reduction="none")(backend.asarray(logits), backend.asarray(targets))
    np.testing.assert_allclose(_np(none), per_position.detach().numpy().mean(axis=1), rtol=1e-12)


def test_per_position_targets_in_every_layout(backend_name):
    """(N, T) indices, (N, T, 1) indices (Keras' sparse layout) and (N, T, V) one-hot rows
    give one loss; CategoricalCrossentropy on the softmax agrees."""
    logits, targets = _lm_batch(np.random.default_rng(3))
    z = backend.asarray(logits, dtype=backend.default_dtype())
    one_hot = np.eye(7)[targets]
    values = [float(SoftmaxCrossEntropy()(z, backend.asarray(y)))
              for y in (targets, targets[..., None], one_hot)]
    probs = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    values.append(float(CategoricalCrossentropy()(backend.asarray(probs, dtype=z.dtype),
                                                  backend.asarray(targets))))
    np.testing.assert_allclose(values, values[0], rtol=1e-5)
    expected = -np.mean(np.log(np.take_along_axis(probs, targets[..., None], axis=-1)))
    np.testing.assert_allclose(values[0], expected, rtol=1e-5)


def test_per_position_target_errors():
    z = backend.asarray(np.zeros((3, 5, 7), np.float32))
    with pytest.raises(ShapeError, match=r"\(3, 5\) \(class indices\) or \(3, 5, 7\)"):
        SoftmaxCrossEntropy()(z, backend.asarray(np.zeros((3, 4), np.int64)))
    with pytest.raises(ShapeError, match="integers"):
        SoftmaxCrossEntropy()(z, backend.asarray(np.zeros((3, 5), np.float32)))


# ---------------------------------------------------------------- the two models
def test_char_transformer_is_causal(backend_name):
    """The logits at position t do not change when a later token changes."""
    model = char_transformer(vocab_size=11, context=6, dim=8, depth=2, heads=2, mlp_dim=16)
    ids = np.random.default_rng(0).integers(0, 11, size=(2, 6))
    changed = ids.copy()
    changed[:, 4] = (changed[:, 4] + 1) % 11
    a, b = np.asarray(model.predict(ids)), np.asarray(model.predict(changed))
    assert a.shape == (2, 6, 11)
    np.testing.assert_allclose(a[:, :4], b[:, :4], rtol=1e-5, atol=1e-6)
    assert np.abs(a[:, 4:] - b[:, 4:]).max() > 1e-4


def test_char_transformer_training_loss_gradcheck(float64):
    """The LM's whole training loss (embedding → causal blocks → per-position cross-entropy)
    against central differences, for every parameter."""
    model = char_transformer(vocab_size=7, context=4, dim=4, depth=1, heads=2, mlp_dim=8)
    model.compile(loss="SoftmaxCrossEntropy", optimizer="sgd")
    ids = np.random.default_rng(0).integers(0, 7, size=(2, 5))
    assert check_model_loss(model, ids[:, :-1], ids[:, 1:, None]) < TOL


def test_vision_transformer_learns_and_round_trips(backend_name, tmp_path):
    """A tiny ViT fits a few random images (training works end to end) and loads back with
    identical predictions."""
    dnn.manual_seed(0)
    model = vision_transformer((1, 8, 8), patch_size=4, num_classes=3, dim=8, depth=1, heads=2,
                               mlp_dim=16)
    assert [type(la).__name__ for la in model.layers][:3] == ["Patches", "Dense", "PositionalEmbedding"]
    rng = np.random.default_rng(0)
    x, y = rng.random((12, 1, 8, 8), dtype=np.float32), rng.integers(0, 3, size=12)
    model.compile(loss="SoftmaxCrossEntropy", optimizer=dnn.optim.Adam(lr=0.01), metrics=["accuracy"])
    history = model.fit(x, y, epochs=30, batch_size=12, verbose=0, seed=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    path = tmp_path / "vit.dnn"
    model.save(path)
    loaded = dnn.load_model(path)
    np.testing.assert_array_equal(model.predict(x), loaded.predict(x))


def test_char_transformer_fits_and_round_trips(backend_name, tmp_path):
    model = char_transformer(vocab_size=9, context=6, dim=8, depth=1, heads=2, mlp_dim=16)
    ids = np.random.default_rng(1).integers(0, 9, size=(8, 7))
    model.compile(loss="SoftmaxCrossEntropy", optimizer=dnn.optim.Adam(lr=0.01))
    model.fit(ids[:, :-1], ids[:, 1:, None], epochs=2, batch_size=4, verbose=0, seed=0)
    model.save(tmp_path / "lm.dnn")
    loaded = dnn.load_model(tmp_path / "lm.dnn")
    np.testing.assert_array_equal(model.predict(ids[:, :-1]), loaded.predict(ids[:, :-1]))
    assert loaded.inputs[0].dtype == "int64"


def test_builder_argument_errors():
    with pytest.raises(ValueError, match="patch_size 5 must divide"):
        vision_transformer((1, 28, 28), 5, 10, 16, 1, 2, 32)
    with pytest.raises(ValueError, match=r"\(channels, height, width\)"):
        vision_transformer((28, 28), 7, 10, 16, 1, 2, 32)
    with pytest.raises(ValueError, match="depth"):
        vision_transformer((1, 28, 28), 7, 10, 16, 0, 2, 32)
    with pytest.raises(ValueError, match="vocab_size"):
        char_transformer(0, 8, 16, 1, 2, 32)


# ---------------------------------------------------------------- sampling
@pytest.fixture(scope="module")
def tiny_lm():
    dnn.manual_seed(3)
    return char_transformer(vocab_size=13, context=5, dim=8, depth=1, heads=2, mlp_dim=16)


def test_generate_is_deterministic_per_seed(tiny_lm):
    prompt = np.array([[1, 2, 3], [4, 5, 6]])
    a = generate(tiny_lm, prompt, 12, context=5, temperature=1.0, seed=7)
    b = generate(tiny_lm, prompt, 12, context=5, temperature=1.0, seed=7)
    c = generate(tiny_lm, prompt, 12, context=5, temperature=1.0, seed=8)
    assert a.shape == (2, 15) and a.dtype == np.int64
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[:, :3], prompt)
    assert not np.array_equal(a, c)
    assert a.min() >= 0 and a.max() < 13
    one = generate(tiny_lm, prompt[0], 4, context=5, seed=np.random.default_rng(7))
    assert one.shape == (7,)


def test_generate_greedy_and_cropping(tiny_lm):
    """Temperature 0 takes the argmax; the window is cropped to the last ``context`` ids,
    so a longer prompt continues exactly as its last ``context`` ids do."""
    prompt = np.array([3, 1, 4, 1, 5, 9, 2, 6])
    out = generate(tiny_lm, prompt, 6, context=5, temperature=0)
    logits = np.asarray(tiny_lm.predict(prompt[None, -5:]))[0, -1]
    assert out[8] == np.argmax(logits)
    cropped = generate(tiny_lm, prompt[-5:], 6, context=5, temperature=0)
    np.testing.assert_array_equal(out[8:], cropped[5:])
    sampled = generate(tiny_lm, prompt, 6, context=5, temperature=0.7, seed=1)
    np.testing.assert_array_equal(sampled[8:], generate(tiny_lm, prompt[-5:], 6, context=5,
                                                        temperature=0.7, seed=1)[5:])


def test_draw_follows_the_tempered_softmax():
    from dnn.transformer import _draw

    logits = np.log(np.array([[0.1, 0.2, 0.7]]))
    rng = np.random.default_rng(0)
    draws = np.concatenate([_draw(logits, 1.0, rng) for _ in range(4000)])
    np.testing.assert_allclose(np.bincount(draws, minlength=3) / 4000, [0.1, 0.2, 0.7], atol=0.03)
    sharp = np.concatenate([_draw(logits, 0.25, rng) for _ in range(2000)])
    expected = np.array([0.1, 0.2, 0.7]) ** 4 / (np.array([0.1, 0.2, 0.7]) ** 4).sum()
    np.testing.assert_allclose(np.bincount(sharp, minlength=3) / 2000, expected, atol=0.03)


def test_generate_argument_errors(tiny_lm):
    with pytest.raises(ValueError, match="prompt"):
        generate(tiny_lm, np.array([0.5, 1.5]), 3, context=5)
    with pytest.raises(ValueError, match="temperature"):
        generate(tiny_lm, np.array([1, 2]), 3, context=5, temperature=-1.0)
    with pytest.raises(ValueError, match="length"):
        generate(tiny_lm, np.array([1, 2]), -1, context=5)


# ---------------------------------------------------------------- the corpus
def test_vocabulary_encode_decode():
    assert len(VOCAB) == 97 and VOCAB[0] == "\n" and VOCAB[-1] == "\ufffd"
    text = 'def f(x):\n    return x ** 2  # "~"\n'
    ids = stdlib_text.encode(text)
    assert ids.dtype == np.int64 and ids.shape == (len(text),)
    assert stdlib_text.decode(ids) == text
    odd = stdlib_text.encode("é\tπ")
    np.testing.assert_array_equal(odd, [UNKNOWN, UNKNOWN, UNKNOWN])


@pytest.fixture(scope="module")
def corpus() -> TextCorpus:
    return load_stdlib_text(max_chars=300_000)


def test_corpus_is_deterministic_and_split_by_file(corpus):
    again = load_stdlib_text(max_chars=300_000)
    np.testing.assert_array_equal(corpus.train, again.train)
    np.testing.assert_array_equal(corpus.valid, again.valid)
    assert corpus.train_files == again.train_files and corpus.valid_files == again.valid_files
    assert not set(corpus.train_files) & set(corpus.valid_files)
    assert corpus.train.shape[0] + corpus.valid.shape[0] == 300_000
    assert 0.05 < corpus.valid.shape[0] / 300_000 < 0.2
    assert all(f.endswith(".py") and "/test/" not in f"/{f}" for f in corpus.train_files)
    assert corpus.vocab_size == 97 and corpus.train.max() < 97
    text = corpus.decode(corpus.train[:2000])
    assert "def " in text or "import " in text


def test_corpus_windows(corpus):
    x, y = corpus.windows("train", 16)
    assert x.shape == y.shape == ((corpus.train.shape[0] - 17) // 16 + 1, 16)
    assert x.dtype == y.dtype == np.int64
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])          # targets: the next character
    np.testing.assert_array_equal(x[1], corpus.train[16:32])
    np.testing.assert_array_equal(y[-1], corpus.train[x.shape[0] * 16 - 15:x.shape[0] * 16 + 1])
    xs, _ = corpus.windows("valid", 8, stride=3, limit=5)
    np.testing.assert_array_equal(xs[2], corpus.valid[6:14])
    assert xs.shape == (5, 8)
    xr, yr = corpus.random_windows("valid", 8, 4, np.random.default_rng(0))
    xr2, _ = corpus.random_windows("valid", 8, 4, np.random.default_rng(0))
    np.testing.assert_array_equal(xr, xr2)
    np.testing.assert_array_equal(xr[:, 1:], yr[:, :-1])
    with pytest.raises(ValueError, match="split"):
        corpus.windows("test", 8)


def test_unigram_baseline(corpus):
    """H(valid, add-one-smoothed train unigram) in nats, computed here from the decoded text."""
    train, valid = Counter(corpus.decode(corpus.train)), Counter(corpus.decode(corpus.valid))
    n_train, n_valid = sum(train.values()), sum(valid.values())
    expected = -sum(count * math.log((train[c] + 1) / (n_train + len(VOCAB)))
                    for c, count in valid.items()) / n_valid
    assert corpus.unigram_cross_entropy() == pytest.approx(expected, rel=1e-12)
    assert 2.8 < expected < 3.6                                   # about 3.2 nats on Python source


def test_unigram_baseline_by_hand(tmp_path):
    """Two files: "ab\\n" for training and "b\\n" (the fraction rule sends the second file to
    validation), so q = (b: 1/2, newline: 1/2) and p(c) = (count + 1) / (4 + 97)."""
    (tmp_path / "a.py").write_text("ab\n")
    (tmp_path / "b.py").write_text("b\n")
    corpus = load_stdlib_text(root=tmp_path, valid_fraction=0.5)
    train_text = corpus.decode(corpus.train)
    valid_text = corpus.decode(corpus.valid)
    assert sorted([train_text, valid_text]) == sorted(["ab\n\n", "b\n\n"])
    counts = Counter(train_text)
    n = len(train_text)
    expected = -np.mean([math.log((counts[c] + 1) / (n + 97)) for c in valid_text])
    assert corpus.unigram_cross_entropy() == pytest.approx(expected, rel=1e-12)


def test_corpus_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="max_chars"):
        load_stdlib_text(max_chars=0)
    with pytest.raises(ValueError, match="valid_fraction"):
        load_stdlib_text(valid_fraction=1.0)
    (tmp_path / "only.py").write_text("x = 1\n")
    with pytest.raises(ValueError, match="too little text"):
        load_stdlib_text(root=tmp_path)
    with pytest.raises(FileNotFoundError):
        load_stdlib_text(root=tmp_path / "missing")


def test_fit_takes_per_position_class_labels_and_checks_their_range():
    """(N, T) integer targets for an (N, T, V) output are class ids, one per position."""
    rng = np.random.default_rng(0)
    model = char_transformer(vocab_size=11, context=6, dim=8, depth=1, heads=2, mlp_dim=16)
    model.compile("SoftmaxCrossEntropy", "adam")
    x = rng.integers(0, 11, size=(8, 6))
    history = model.fit(x, np.roll(x, -1, axis=1), epochs=2, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    bad = np.roll(x, -1, axis=1)
    bad[3, 2] = 11
    with pytest.raises(ValueError, match=r"class labels must be in \[0, 11\)"):
        model.fit(x, bad, epochs=1, verbose=0)
    with pytest.raises(ShapeError, match=r"one-hot targets must have 11 columns, got 6 .*2 axes"):
        model.fit(x, np.zeros((8, 6, 6), np.float32), epochs=1, verbose=0)
    with pytest.raises(ShapeError, match=r"class-index targets must be integers, got dtype \S*float"):
        model.fit(x, bad.astype(np.float32), epochs=1, verbose=0)
