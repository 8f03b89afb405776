"""Dense, the activations and Dropout: gradient checks, values against PyTorch, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

import dnn
from dnn import backend, layers
from dnn.errors import ShapeError
from dnn.layers import (
    ELU,
    GELU,
    Dense,
    Dropout,
    Identity,
    LeakyReLU,
    LogSoftmax,
    ReLU,
    Sigmoid,
    Softmax,
    Softplus,
    Tanh,
)

TOL = 1e-6


def away_from_zero(shape, seed=0, low=0.2, high=2.0):
    """Random values with |x| in [low, high]: no kinks of ReLU-like functions nearby."""
    rng = np.random.default_rng(seed)
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(low, high, size=shape)


def normal(shape, seed=0, scale=1.0):
    return scale * np.random.default_rng(seed).standard_normal(shape)


# ------------------------------------------------------------------ Dense


@pytest.mark.parametrize("bias", [True, False])
def test_dense_gradcheck(float64, bias):
    layer = Dense(3, 4, bias=bias)
    if bias:
        layer.bias.data[...] = dnn.to_device(normal((4,), seed=3))
    assert dnn.gradcheck(layer, normal((5, 3))) < TOL
    assert len(layer.parameters()) == (2 if bias else 1)


@pytest.mark.parametrize(("l1", "l2"), [(0.1, 0.0), (0.0, 0.3), (0.05, 0.2)])
def test_dense_gradcheck_with_penalties(float64, l1, l2):
    layer = Dense(3, 2, l1=l1, l2=l2)
    assert dnn.gradcheck(layer, normal((4, 3))) < TOL


@pytest.mark.parametrize("packed", [False, True])
def test_dense_gradcheck_3d_input(float64, packed):
    layer = Dense(4, 3, l1=0.01, l2=0.02) if packed else Dense(4, 3)
    if packed:  # weight and bias are views of one flat buffer (as after compile)
        dnn.parameter.flat_groups(layer.parameters())
    layer.bias.data[...] = dnn.to_device(normal((3,), seed=2))
    x = normal((2, 3, 4))
    y = layer.forward(dnn.to_device(x))
    assert tuple(y.shape) == (2, 3, 3)
    assert layer.output_shape((2, 3, 4)) == (2, 3, 3)
    assert dnn.gradcheck(layer, x) < TOL


def test_dense_forward_value_and_gradients(float64):
    layer = Dense(3, 2)
    w, b = normal((3, 2), seed=1), normal((2,), seed=2)
    layer.load_state_dict({"weight": w, "bias": b})
    x, g = normal((5, 3), seed=3), normal((5, 2), seed=4)
    y = layer.forward(dnn.to_device(x))
    np.testing.assert_allclose(dnn.to_numpy(y), x @ w + b, rtol=1e-12)
    dx = layer.backward(dnn.to_device(g))
    np.testing.assert_allclose(dnn.to_numpy(dx), g @ w.T, rtol=1e-12)
    np.testing.assert_allclose(dnn.to_numpy(layer.weight.grad), x.T @ g, rtol=1e-12)
    np.testing.assert_allclose(dnn.to_numpy(layer.bias.grad), g.sum(0), rtol=1e-12)


def test_dense_penalty_value_and_gradient(float64):
    layer = Dense(3, 2, l1=0.1, l2=0.2)
    w = normal((3, 2), seed=1)
    layer.load_state_dict({"weight": w, "bias": np.zeros(2)})
    assert float(layer.regularization_loss()) == pytest.approx(
        0.1 * np.abs(w).sum() + 0.2 * (w * w).sum(), rel=1e-12)
    x, g = normal((4, 3)), normal((4, 2), seed=5)
    layer.forward(dnn.to_device(x))
    layer.backward(dnn.to_device(g))
    np.testing.assert_allclose(dnn.to_numpy(layer.weight.grad),
                               x.T @ g + 0.1 * np.sign(w) + 0.4 * w, rtol=1e-12)
    assert float(Dense(3, 2).regularization_loss()) == 0.0


def test_dense_backward_overwrites_gradients(float64):
    """backward sets p.grad; it never accumulates over calls (also in a flat buffer)."""
    layer = Dense(3, 2, l2=0.1)
    x, g = dnn.to_device(normal((4, 3))), dnn.to_device(normal((4, 2), seed=1))
    for packed in (False, True):
        if packed:
            dnn.parameter.flat_groups(layer.parameters())
        grads = []
        for _ in range(2):
            layer.forward(x)
            layer.backward(g)
            grads.append([dnn.to_numpy(p.grad).copy() for p in layer.parameters()])
        for a, b in zip(*grads):
            np.testing.assert_array_equal(a, b)
    assert layer.weight.group is not None


def test_dense_gradients_same_in_flat_buffer(float64):
    x, g = normal((6, 4)), normal((6, 3), seed=1)
    results = []
    for packed in (False, True):
        dnn.manual_seed(3)
        layer = Dense(4, 3)
        if packed:
            dnn.parameter.flat_groups(layer.parameters())
        layer.forward(dnn.to_device(x))
        dx = layer.backward(dnn.to_device(g))
        results.append([dnn.to_numpy(dx).copy()] + [dnn.to_numpy(p.grad).copy()
                                                    for p in layer.parameters()])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_dense_config_and_shapes(backend_name):
    layer = Dense(7, 3, bias=False, init="he_normal", l1=0.5, l2=0.25)
    assert layer.get_config() == {"in_features": 7, "out_features": 3, "bias": False,
                                  "init": "he_normal", "l1": 0.5, "l2": 0.25,
                                  "bias_l1": 0.0, "bias_l2": 0.0}
    clone = Dense(**layer.get_config())
    assert clone.weight.shape == (7, 3) and clone.bias is None
    assert layer.output_shape((10, 7)) == (10, 3)
    assert set(layer.state_dict()) == {"weight"}
    assert set(Dense(2, 2).state_dict()) == {"weight", "bias"}
    assert layers.REGISTRY["Dense"] is Dense


def test_dense_weight_init_statistics(backend_name):
    layer = Dense(400, 300)  # glorot_uniform by default
    w = dnn.to_numpy(layer.weight.data)
    a = math.sqrt(6.0 / 700)
    assert np.abs(w).max() <= a
    assert np.std(w) == pytest.approx(a / math.sqrt(3), rel=0.02)
    assert not dnn.to_numpy(layer.bias.data).any()


# ------------------------------------------------------------------ activations

# (layer factory, input, torch reference or None)
ACTIVATION_CASES = {
    "ReLU": (ReLU, "away", lambda F, x: F.relu(x)),
    "LeakyReLU": (lambda: LeakyReLU(0.2), "away", lambda F, x: F.leaky_relu(x, 0.2)),
    "ELU": (lambda: ELU(0.7), "away", lambda F, x: F.elu(x, 0.7)),
    "GELU": (GELU, "normal", lambda F, x: F.gelu(x, approximate="tanh")),
    "Sigmoid": (Sigmoid, "normal", lambda F, x: F.sigmoid(x)),
    "Tanh": (Tanh, "normal", lambda F, x: F.tanh(x)),
    "Softmax": (Softmax, "normal", lambda F, x: F.softmax(x, dim=-1)),
    "Softmax0": (lambda: Softmax(axis=0), "normal", lambda F, x: F.softmax(x, dim=0)),
    "LogSoftmax": (LogSoftmax, "normal", lambda F, x: F.log_softmax(x, dim=-1)),
    "Softplus": (Softplus, "normal", lambda F, x: F.softplus(x)),
    "Identity": (Identity, "normal", lambda F, x: x),
}


def _activation_input(kind, shape=(4, 5), seed=0):
    return away_from_zero(shape, seed) if kind == "away" else normal(shape, seed, scale=1.5)


@pytest.mark.parametrize("name", list(ACTIVATION_CASES))
def test_activation_gradcheck(float64, name):
    factory, kind, _ = ACTIVATION_CASES[name]
    assert dnn.gradcheck(factory(), _activation_input(kind)) < TOL


@pytest.mark.parametrize("name", ["ReLU", "GELU", "Softmax", "LogSoftmax", "Softplus"])
def test_activation_gradcheck_3d(float64, name):
    factory, kind, _ = ACTIVATION_CASES[name]
    assert dnn.gradcheck(factory(), _activation_input(kind, (2, 3, 4), seed=1)) < TOL


@pytest.mark.parametrize("name", list(ACTIVATION_CASES))
def test_activation_matches_torch(float64, name):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    factory, kind, reference = ACTIVATION_CASES[name]
    x = _activation_input(kind, (6, 7), seed=2)
    x[0, :3] = [-30.0, 25.0, 0.5]  # large magnitudes: the stable formulas must hold
    g = normal((6, 7), seed=3)
    layer = factory()
    y = layer.forward(dnn.to_device(x))
    dx = layer.backward(dnn.to_device(g))
    xt = torch.tensor(x, requires_grad=True)
    yt = reference(F, xt)
    (yt * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(dnn.to_numpy(y), yt.detach().numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dnn.to_numpy(dx), xt.grad.numpy(), rtol=1e-10, atol=1e-15)


def test_activation_values_by_formula(float64):
    x = np.array([[-2.0, -0.5, 0.5, 2.0]])
    dev = dnn.to_device(x)
    c = math.sqrt(2 / math.pi)
    expected = {
        ReLU(): np.maximum(x, 0),
        LeakyReLU(): np.where(x > 0, x, 0.01 * x),
        ELU(): np.where(x > 0, x, np.expm1(x)),
        GELU(): 0.5 * x * (1 + np.tanh(c * (x + 0.044715 * x**3))),
        Sigmoid(): 1 / (1 + np.exp(-x)),
        Tanh(): np.tanh(x),
        Softmax(): np.exp(x) / np.exp(x).sum(),
        LogSoftmax(): x - np.log(np.exp(x).sum()),
        Softplus(): np.log1p(np.exp(x)),
        Identity(): x,
    }
    for layer, want in expected.items():
        np.testing.assert_allclose(dnn.to_numpy(layer.forward(dev)), want, rtol=1e-12,
                                   err_msg=type(layer).__name__)


def test_activations_keep_float32(backend_name):
    x = dnn.to_device(normal((3, 4)))
    assert x.dtype == backend.xp.float32
    for name in layers.ACTIVATIONS:
        layer = layers.activation(name)
        y = layer.forward(x, training=True)
        assert y.dtype == backend.xp.float32, name
        assert layer.backward(y).dtype == backend.xp.float32, name


def test_activation_by_name(backend_name):
    assert isinstance(layers.activation("relu"), ReLU)
    assert isinstance(layers.activation("ReLU"), ReLU)
    leaky = layers.activation("leaky_relu", alpha=0.3)
    assert isinstance(leaky, LeakyReLU) and leaky.alpha == 0.3
    assert set(layers.ACTIVATIONS) >= {"relu", "leaky_relu", "elu", "gelu", "sigmoid", "tanh",
                                       "softmax", "log_softmax", "softplus", "linear"}


@pytest.mark.parametrize("bad", ["foo", "", 3, None])
def test_unknown_activation_lists_valid_names(bad):
    with pytest.raises(ValueError) as info:
        layers.activation(bad)
    message = str(info.value)
    assert repr(bad) in message
    for valid in layers.ACTIVATIONS:
        assert valid in message


def test_activation_backward_before_forward_is_a_clear_error(backend_name):
    with pytest.raises(RuntimeError, match="before forward"):
        ReLU().backward(backend.xp.ones((2, 2)))


def test_activation_cache_is_dropped_after_backward(backend_name):
    layer = Tanh()
    x = dnn.to_device(normal((2, 2)))
    layer.backward(layer.forward(x))
    assert layer._latest is None  # the call's context is consumed
    with pytest.raises(RuntimeError):
        layer.backward(x)


def test_activation_config_round_trip():
    for layer in (LeakyReLU(0.3), ELU(0.5), Softmax(axis=0), LogSoftmax(axis=1)):
        clone = type(layer)(**layer.get_config())
        assert clone.get_config() == layer.get_config()
        assert layers.REGISTRY[type(layer).__name__] is type(layer)


# ------------------------------------------------------------------ Dropout


def test_dropout_gradcheck_with_explicit_mask(float64):
    rng = np.random.default_rng(0)
    mask = (rng.uniform(size=(5, 4)) > 0.4).astype(np.float64)
    layer = Dropout(0.4)
    assert dnn.gradcheck(layer, normal((5, 4)), training=True,
                         forward_kwargs={"mask": dnn.to_device(mask)}) < TOL


@pytest.mark.parametrize("mask_dtype", [np.float64, np.bool_])
def test_dropout_explicit_mask_values(float64, mask_dtype):
    x, g = normal((4, 6)), normal((4, 6), seed=1)
    mask = (np.random.default_rng(2).uniform(size=(4, 6)) > 0.25).astype(mask_dtype)
    layer = Dropout(0.25)
    y = layer.forward(dnn.to_device(x), training=True, mask=dnn.to_device(mask))
    assert y.dtype == backend.xp.float64
    np.testing.assert_allclose(dnn.to_numpy(y), x * mask / 0.75, rtol=1e-12)
    dx = layer.backward(dnn.to_device(g))
    np.testing.assert_allclose(dnn.to_numpy(dx), g * mask / 0.75, rtol=1e-12)


def test_dropout_random_mask(backend_name):
    layer = Dropout(0.3)
    x = backend.xp.ones((200, 100), dtype=backend.xp.float32)
    y = layer.forward(x, training=True)
    assert y.dtype == backend.xp.float32
    y = dnn.to_numpy(y)
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    g = dnn.to_numpy(layer.backward(backend.xp.ones((200, 100), dtype=backend.xp.float32)))
    np.testing.assert_array_equal(g != 0, kept)  # the same mask in backward


def test_dropout_is_identity_when_not_training(backend_name):
    x = dnn.to_device(normal((3, 4)))
    for layer in (Dropout(0.5), Dropout(0.0)):
        for training in (False, True) if layer.p == 0 else (False,):
            y = layer.forward(x, training=training)
            np.testing.assert_array_equal(dnn.to_numpy(y), dnn.to_numpy(x))
            np.testing.assert_array_equal(dnn.to_numpy(layer.backward(x)), dnn.to_numpy(x))


def test_dropout_bad_arguments(backend_name):
    for p in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match="Dropout"):
            Dropout(p)
    layer = Dropout(0.5)
    x = backend.xp.ones((3, 4))
    with pytest.raises(ShapeError) as info:
        layer.forward(x, training=True, mask=backend.xp.ones((4, 3)))
    assert "(4, 3)" in str(info.value) and "(3, 4)" in str(info.value)
    assert "Dropout" in str(info.value)
    assert Dropout(**Dropout(0.2).get_config()).p == 0.2


# ------------------------------------------------------------------ bad input


def test_dense_wrong_feature_count_names_layer_expected_and_given(backend_name):
    layer = Dense(4, 2)
    with pytest.raises(ShapeError) as info:
        layer.forward(backend.xp.ones((3, 5)))
    message = str(info.value)
    assert "Dense" in message and "4" in message and "(3, 5)" in message


def test_dense_wrong_feature_count_in_a_model_names_the_layer_index(backend_name):
    model = dnn.Sequential([Dense(4, 3), ReLU(), Dense(2, 1)])
    with pytest.raises(ShapeError) as info:
        model.forward(backend.xp.ones((6, 4)))
    message = str(info.value)
    assert "layer 2 (Dense)" in message and "(6, 3)" in message and "2" in message


def test_dense_rejects_1d_input(backend_name):
    with pytest.raises(ShapeError, match=r"\(4,\)"):
        Dense(4, 2).forward(backend.xp.ones((4,)))


@pytest.mark.parametrize(
    ("args", "kwargs", "needle"),
    [((0, 3), {}, "in_features"), ((3, 0), {}, "out_features"), ((-1, 3), {}, "in_features"),
     ((2.5, 3), {}, "in_features"), ((True, 3), {}, "in_features"), (("3", 3), {}, "in_features"),
     ((3, 3), {"l1": -0.1}, "l1"), ((3, 3), {"l2": -1.0}, "l2")],
)
def test_dense_bad_constructor_arguments(args, kwargs, needle):
    with pytest.raises(ValueError) as info:
        Dense(*args, **kwargs)
    assert needle in str(info.value) and "Dense" in str(info.value)


def test_dense_unknown_init_lists_names():
    with pytest.raises(ValueError) as info:
        Dense(3, 3, init="magic")
    assert "magic" in str(info.value) and "he_normal" in str(info.value)


def test_load_state_dict_checks_shapes_and_keys(backend_name):
    layer = Dense(3, 2)
    with pytest.raises(ShapeError) as info:
        layer.load_state_dict({"weight": np.zeros((2, 3)), "bias": np.zeros(2)})
    assert "weight" in str(info.value) and "(3, 2)" in str(info.value) and "(2, 3)" in str(info.value)
    with pytest.raises(KeyError, match="bias"):
        layer.load_state_dict({"weight": np.zeros((3, 2))})
    with pytest.raises(KeyError, match="extra"):
        layer.load_state_dict({"weight": np.zeros((3, 2)), "bias": np.zeros(2), "extra": np.zeros(1)})


# ------------------------------------------------------------------ gradcheck itself


class _WrongBackward(Dense):
    """Dense with a deliberately wrong weight gradient (factor 1.01)."""

    def backward(self, grad):
        dx = super().backward(grad)
        self.weight.grad = self.weight.grad * 1.01
        return dx


class _WrongInputGrad(Tanh):
    def backward(self, grad):
        return super().backward(grad) * (1.0 + 1e-3)


def test_gradcheck_detects_wrong_gradients(float64):
    assert dnn.gradcheck(_WrongBackward(3, 2), normal((4, 3))) > 1e-3
    assert dnn.gradcheck(_WrongInputGrad(), normal((4, 3))) > 1e-4


def test_gradcheck_detects_a_missing_penalty_gradient(float64):
    class NoPenaltyGrad(Dense):
        def regularization_grads(self):  # forgets the penalty's gradient
            pass

    assert dnn.gradcheck(NoPenaltyGrad(3, 2, l2=0.5), normal((4, 3))) > 1e-3


def test_gradcheck_of_a_whole_sequential(float64):
    model = dnn.Sequential([Dense(4, 5, l2=0.01), Tanh(), Dense(5, 3, l1=0.01), Softplus(),
                            Dense(3, 2)])
    assert dnn.gradcheck(model, away_from_zero((3, 4))) < TOL


def test_backward_after_eval_forward(float64):
    """Backward after an eval-mode forward gives the gradients of the eval-mode function."""
    model = dnn.Sequential([Dense(4, 5), GELU(), Dropout(0.5), Dense(5, 2)])
    assert dnn.gradcheck(model, normal((3, 4)), training=False) < TOL
