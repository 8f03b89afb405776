"""Weight penalties live on the parameters: ``Parameter(data, name, l1=, l2=)``.

One mechanism for every weight-carrying layer (Dense with its bias_l1/bias_l2,
Embedding, BatchNorm, LayerNorm, and the layers that pass ``l1=``/``l2=`` on):
the value l1·Σ|w| + l2·Σw² against NumPy, its gradient through gradcheck, each
parameter counted once however often it is used or tied, frozen weights
penalised but not updated, and the arguments checked and saved.
"""

from __future__ import annotations

import numpy as np
import pytest

import dnn
from dnn import backend
from dnn.gradcheck import check_model_loss, gradcheck
from dnn.layers import BatchNorm, Dense, Embedding, LayerNorm
from dnn.parameter import Parameter, add_penalty_grads, penalty

TOL = 1e-6


def _normal(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _expected(arrays_l1_l2):
    return sum(l1 * np.abs(w).sum() + l2 * (w * w).sum() for w, l1, l2 in arrays_l1_l2)


def test_penalty_value_and_gradient_of_a_parameter(float64):
    w = _normal(3, 4)
    p = Parameter(backend.asarray(w), "w", l1=0.3, l2=0.2)
    assert float(penalty([p])) == pytest.approx(0.3 * np.abs(w).sum() + 0.2 * (w * w).sum(),
                                                rel=1e-12)
    with dnn.parameter.backward_pass():
        add_penalty_grads([p, p])  # listed twice: still counted once
    np.testing.assert_allclose(backend.to_numpy(p.grad), 0.3 * np.sign(w) + 0.4 * w, rtol=1e-12)
    assert penalty([Parameter(backend.asarray(w), "free")]) == 0.0


def test_dense_bias_penalties(float64):
    layer = Dense(3, 2, l1=0.1, l2=0.2, bias_l1=0.3, bias_l2=0.4)
    w, b = _normal(3, 2, seed=1), _normal(2, seed=2)
    layer.load_state_dict({"weight": w, "bias": b})
    assert float(layer.regularization_loss()) == pytest.approx(
        _expected([(w, 0.1, 0.2), (b, 0.3, 0.4)]), rel=1e-12)
    x, g = _normal(4, 3, seed=3), _normal(4, 2, seed=4)
    layer.forward(backend.asarray(x))
    layer.backward(backend.asarray(g))
    np.testing.assert_allclose(backend.to_numpy(layer.bias.grad),
                               g.sum(0) + 0.3 * np.sign(b) + 0.8 * b, rtol=1e-12)
    assert gradcheck(layer, _normal(4, 3, seed=5)) < TOL


@pytest.mark.parametrize("build, x", [
    (lambda: Dense(4, 3, l1=0.05, l2=0.1, bias_l1=0.02, bias_l2=0.3), lambda: _normal(5, 4)),
    (lambda: BatchNorm(3, l1=0.05, l2=0.1), lambda: _normal(6, 3)),
    (lambda: LayerNorm(4, l1=0.05, l2=0.1), lambda: _normal(5, 4)),
], ids=["dense", "batchnorm", "layernorm"])
def test_gradcheck_counts_the_penalties(float64, build, x):
    layer = build()
    # move γ away from 1 and the weights away from the kinks of |w|
    for p in layer.parameters():
        p.data[...] = backend.asarray(_normal(*p.shape, seed=7) + 0.5)
    assert float(layer.regularization_loss()) > 0
    assert gradcheck(layer, x(), training=True) < TOL


def test_embedding_penalty(float64):
    emb = Embedding(6, 3, l1=0.1, l2=0.2)
    w = backend.to_numpy(emb.weight.data)
    assert float(emb.regularization_loss()) == pytest.approx(_expected([(w, 0.1, 0.2)]), rel=1e-12)
    ids = backend.asarray(np.array([[0, 2, 2], [5, 0, 1]]), dtype=backend.xp.int64)
    g = _normal(2, 3, 3, seed=3)
    emb.forward(ids)
    emb.backward(backend.asarray(g))
    scattered = np.zeros((6, 3))
    np.add.at(scattered, np.array([[0, 2, 2], [5, 0, 1]]).ravel(), g.reshape(-1, 3))
    np.testing.assert_allclose(backend.to_numpy(emb.weight.grad),
                               scattered + 0.1 * np.sign(w) + 0.4 * w, rtol=1e-12)


def test_a_shared_or_tied_weight_is_penalised_once_per_pass(float64):
    shared = Dense(3, 3, l2=0.5, bias=False)
    tied = Dense(3, 3, bias=False)
    tied.set_parameter("weight", shared.weight)
    x = dnn.Input((3,))
    model = dnn.Model(x, tied(shared(shared(x))))
    w = backend.to_numpy(shared.weight.data)
    assert float(model.regularization_loss()) == pytest.approx(0.5 * (w * w).sum(), rel=1e-12)
    model.compile(optimizer="sgd", loss="mse")
    xs, ys = _normal(4, 3), _normal(4, 3, seed=1)
    assert check_model_loss(model, xs, ys) < TOL


def test_a_frozen_weight_keeps_its_penalty_value_but_gets_no_gradient(float64):
    layer = Dense(3, 2, l2=0.5)
    layer.weight.trainable = False
    assert float(layer.regularization_loss()) > 0
    layer.forward(backend.asarray(_normal(4, 3)))
    layer.backward(backend.asarray(_normal(4, 2)))
    assert layer.weight.grad is None


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), True, "0.1", None])
@pytest.mark.parametrize("layer, arg", [
    (Dense, "l1"), (Dense, "bias_l2"), (Embedding, "l2"), (BatchNorm, "l1"), (LayerNorm, "l2"),
])
def test_bad_penalties_are_refused_by_name(layer, arg, bad):
    args = {Dense: (3, 2), Embedding: (5, 2), BatchNorm: (3,), LayerNorm: (3,)}[layer]
    with pytest.raises(ValueError, match=rf"{layer.__name__}: {arg} must be a finite number >= 0"):
        layer(*args, **{arg: bad})


def test_bias_penalty_without_a_bias_is_refused():
    with pytest.raises(ValueError, match="Dense: bias_l1/bias_l2 need a bias"):
        Dense(3, 2, bias=False, bias_l2=0.1)


def test_penalties_survive_save_and_load(tmp_path):
    model = dnn.Sequential([Embedding(7, 4, l1=0.01), LayerNorm(4, l2=0.02),
                            Dense(4, 3, l2=0.03, bias_l1=0.04)])
    path = tmp_path / "m.dnn"
    model.save(path)
    loaded = dnn.load_model(path)
    got = [(p.l1, p.l2) for p in loaded.parameters()]
    assert got == [(p.l1, p.l2) for p in model.parameters()]
    assert float(loaded.regularization_loss()) == pytest.approx(float(model.regularization_loss()))


def test_fit_minimises_the_penalty_too(backend_name):
    """With only an l2 penalty on a weight the data cannot move, training shrinks it."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3)).astype("float32")
    x[:, 2] = 0.0  # the third input is always 0: its weights get only the penalty's gradient
    y = x[:, :1] * 2.0
    model = dnn.Sequential([Dense(3, 1, l2=0.1)])
    model.compile(optimizer=dnn.optim.SGD(lr=0.5), loss="mse")
    before = abs(float(backend.to_numpy(model.layers[0].weight.data)[2, 0]))
    model.fit(x, y, epochs=60, batch_size=64, verbose=0)  # w ← 0.9·w each step
    after = abs(float(backend.to_numpy(model.layers[0].weight.data)[2, 0]))
    assert after < 0.01 * before
