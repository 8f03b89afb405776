"""BatchNorm and LayerNorm: gradient checks, PyTorch parity, buffers and errors."""

from __future__ import annotations

import numpy as np
import pytest

import dnn
from dnn import backend
from dnn.errors import ShapeError
from dnn.gradcheck import gradcheck
from dnn.layers import BatchNorm, Dense, LayerNorm

TOL = 1e-6


def _x(shape, seed=42, scale=2.0, shift=1.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale + shift


def _set(layer, **arrays):
    """Give a layer non-trivial parameters/buffers (in place, like load_state_dict)."""
    state = {k: backend.to_numpy(v).copy() for k, v in layer.state_dict().items()}
    state.update(arrays)
    layer.load_state_dict(state)


def _np(x):
    return backend.to_numpy(x)


# ------------------------------------------------------------------ BatchNorm
@pytest.mark.parametrize("shape", [(6, 4), (5, 3, 2, 3)], ids=["2d", "4d"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_batchnorm_gradcheck(float64, shape, training):
    bn = BatchNorm(shape[1])
    rng = np.random.default_rng(7)
    _set(bn, weight=rng.uniform(0.5, 1.5, shape[1]), bias=rng.standard_normal(shape[1]),
         running_mean=rng.standard_normal(shape[1]), running_var=rng.uniform(0.5, 2.0, shape[1]))
    assert gradcheck(bn, _x(shape), training=training) < TOL


@pytest.mark.parametrize("shape", [(1, 4), (1, 3, 2, 2)], ids=["2d", "4d"])
def test_batchnorm_eval_batch_of_one(float64, shape):
    bn = BatchNorm(shape[1])
    rng = np.random.default_rng(3)
    mean, var = rng.standard_normal(shape[1]), rng.uniform(0.5, 2.0, shape[1])
    gamma, beta = rng.uniform(0.5, 1.5, shape[1]), rng.standard_normal(shape[1])
    _set(bn, weight=gamma, bias=beta, running_mean=mean, running_var=var)
    x = _x(shape)
    assert gradcheck(bn, x) < TOL
    b = (1, shape[1]) + (1,) * (len(shape) - 2)
    expected = (x - mean.reshape(b)) / np.sqrt(var.reshape(b) + 1e-5) * gamma.reshape(b) + beta.reshape(b)
    np.testing.assert_allclose(_np(bn.forward(backend.asarray(x))), expected, rtol=1e-12, atol=1e-12)


def test_batchnorm_training_normalises_and_updates_running_stats(float64):
    bn = BatchNorm(3, momentum=0.25)
    x = _x((8, 3, 2, 2))
    y = _np(bn.forward(backend.asarray(x), training=True))
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0.0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1.0, rtol=1e-3)  # eps makes it slightly < 1
    np.testing.assert_allclose(_np(bn.running_mean), 0.25 * x.mean(axis=(0, 2, 3)), rtol=1e-12)
    unbiased = x.transpose(1, 0, 2, 3).reshape(3, -1).var(axis=1, ddof=1)
    np.testing.assert_allclose(_np(bn.running_var), 0.75 + 0.25 * unbiased, rtol=1e-12)


def test_batchnorm_buffers_in_state_dict_and_updated_in_place(backend_name):
    bn = BatchNorm(4)
    state = bn.state_dict()
    assert set(state) == {"weight", "bias", "running_mean", "running_var"}
    held = state["running_mean"]
    bn.forward(backend.asarray(_x((10, 4)).astype(np.float32)), training=True)
    # the array handed out earlier sees the update: buffers are written in place
    assert np.abs(_np(held)).max() > 0.01
    np.testing.assert_array_equal(_np(held), _np(bn.running_mean))
    fresh = BatchNorm(4)
    fresh.load_state_dict({k: _np(v) for k, v in bn.state_dict().items()})
    np.testing.assert_array_equal(_np(fresh.running_var), _np(bn.running_var))


def test_batchnorm_errors(backend_name):
    bn = BatchNorm(3)
    with pytest.raises(ShapeError, match=r"BatchNorm.*\(batch, 3\).*\(4, 5\)"):
        bn.forward(backend.asarray(np.zeros((4, 5), np.float32)))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn.forward(backend.asarray(np.zeros((1, 3), np.float32)), training=True)
    with pytest.raises(ShapeError):
        bn.output_shape((2, 4, 5, 5))
    assert bn.output_shape((2, 3, 5, 5)) == (2, 3, 5, 5)
    with pytest.raises(ValueError, match="num_features"):
        BatchNorm(0)
    with pytest.raises(ValueError, match="momentum"):
        BatchNorm(3, momentum=1.5)
    with pytest.raises(ValueError, match="momentum"):
        BatchNorm(3, momentum=None)
    assert BatchNorm(3, momentum=0.2, eps=1e-3).get_config() == {
        "num_features": 3, "momentum": 0.2, "eps": 1e-3, "l1": 0.0, "l2": 0.0}


def test_batchnorm_names_layer_in_sequential(backend_name):
    model = dnn.Sequential([Dense(2, 3), BatchNorm(4)])
    with pytest.raises(ShapeError, match=r"layer 1 \(BatchNorm\)"):
        model.forward(backend.asarray(np.zeros((5, 2), np.float32)), training=True)


@pytest.mark.parametrize("shape", [(7, 4), (4, 3, 3, 2)], ids=["BatchNorm1d", "BatchNorm2d"])
def test_batchnorm_matches_torch(float64, shape):
    torch = pytest.importorskip("torch")
    c = shape[1]
    rng = np.random.default_rng(11)
    gamma, beta = rng.uniform(0.5, 1.5, c), rng.standard_normal(c)
    ref = (torch.nn.BatchNorm1d if len(shape) == 2 else torch.nn.BatchNorm2d)(
        c, momentum=0.1, eps=1e-5, dtype=torch.float64)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(gamma))
        ref.bias.copy_(torch.from_numpy(beta))
    bn = BatchNorm(c, momentum=0.1, eps=1e-5)
    _set(bn, weight=gamma, bias=beta)

    def step(x_np, g_np, train):
        ref.train(train)
        xt = torch.from_numpy(x_np).requires_grad_(True)
        yt = ref(xt)
        for p in ref.parameters():
            p.grad = None
        yt.backward(torch.from_numpy(g_np))
        y = bn.forward(backend.asarray(x_np), training=train)
        gx = bn.backward(backend.asarray(g_np))
        np.testing.assert_allclose(_np(y), yt.detach().numpy(), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(_np(gx), xt.grad.numpy(), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(_np(bn.weight.grad), ref.weight.grad.numpy(), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(_np(bn.bias.grad), ref.bias.grad.numpy(), rtol=1e-6, atol=1e-6)

    for i in range(4):
        step(_x(shape, seed=100 + i, scale=1.0 + i, shift=i - 1.5), rng.standard_normal(shape), True)
    np.testing.assert_allclose(_np(bn.running_mean), ref.running_mean.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(_np(bn.running_var), ref.running_var.numpy(), rtol=1e-6, atol=1e-6)
    assert np.abs(ref.running_mean.numpy()).max() > 0.05  # the stats really moved
    step(_x(shape, seed=200), rng.standard_normal(shape), False)


# ------------------------------------------------------------------ LayerNorm
@pytest.mark.parametrize("normalized_shape, shape", [(5, (4, 5)), ((3, 4), (2, 3, 3, 4))],
                         ids=["1dim", "2dims"])
def test_layernorm_gradcheck(float64, normalized_shape, shape):
    ln = LayerNorm(normalized_shape)
    rng = np.random.default_rng(5)
    ns = ln.normalized_shape
    _set(ln, weight=rng.uniform(0.5, 1.5, ns), bias=rng.standard_normal(ns))
    assert gradcheck(ln, _x(shape, seed=9)) < TOL
    assert gradcheck(ln, _x(shape, seed=9), training=True) < TOL


def test_layernorm_normalises_each_sample(float64):
    ln = LayerNorm((3, 4))
    x = _x((5, 3, 4))
    y = _np(ln.forward(backend.asarray(x)))
    np.testing.assert_allclose(y.mean(axis=(1, 2)), 0.0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(1, 2)), 1.0, rtol=1e-3)


@pytest.mark.parametrize("normalized_shape, shape", [(6, (3, 4, 6)), ((2, 5), (4, 2, 5))],
                         ids=["1dim", "2dims"])
def test_layernorm_matches_torch(float64, normalized_shape, shape):
    torch = pytest.importorskip("torch")
    ln = LayerNorm(normalized_shape)
    ns = ln.normalized_shape
    rng = np.random.default_rng(13)
    gamma, beta = rng.uniform(0.5, 1.5, ns), rng.standard_normal(ns)
    _set(ln, weight=gamma, bias=beta)
    ref = torch.nn.LayerNorm(ns, eps=1e-5, dtype=torch.float64)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(gamma))
        ref.bias.copy_(torch.from_numpy(beta))
    x, g = _x(shape, seed=17), rng.standard_normal(shape)
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = ref(xt)
    yt.backward(torch.from_numpy(g))
    y = ln.forward(backend.asarray(x), training=True)
    gx = ln.backward(backend.asarray(g))
    np.testing.assert_allclose(_np(y), yt.detach().numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(_np(gx), xt.grad.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(_np(ln.weight.grad), ref.weight.grad.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(_np(ln.bias.grad), ref.bias.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_layernorm_errors_and_config(backend_name):
    ln = LayerNorm((3, 4))
    assert ln.weight.shape == (3, 4) and ln.bias.shape == (3, 4)
    with pytest.raises(ShapeError, match=r"LayerNorm.*3, 4.*\(2, 4, 3\)"):
        ln.forward(backend.asarray(np.zeros((2, 4, 3), np.float32)))
    with pytest.raises(ShapeError):
        ln.output_shape((3, 4))  # no batch dimension
    assert ln.output_shape((7, 3, 4)) == (7, 3, 4)
    with pytest.raises(ValueError, match="normalized_shape"):
        LayerNorm(())
    assert ln.get_config() == {"normalized_shape": [3, 4], "eps": 1e-5, "l1": 0.0, "l2": 0.0}
    assert LayerNorm(**ln.get_config()).normalized_shape == (3, 4)
    assert LayerNorm(8).normalized_shape == (8,)
