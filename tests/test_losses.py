"""Losses: gradient checks, values and gradients against NumPy formulas and PyTorch, bad input."""

from __future__ import annotations

import numpy as np
import pytest

import dnn
from dnn import backend, losses
from dnn.errors import ShapeError
from dnn.losses import (
    MAE,
    MSE,
    BinaryCrossentropy,
    CategoricalCrossentropy,
    Huber,
    SigmoidBinaryCrossentropy,
    SoftmaxCrossEntropy,
)

TOL = 1e-6
N, C = 6, 4


def _rng(seed):
    return np.random.default_rng(seed)


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def logits(seed=0, shape=(N, C)):
    return 1.5 * _rng(seed).standard_normal(shape)


def probabilities(seed=0):
    return _softmax(logits(seed))


def labels(seed=1):
    return _rng(seed).integers(0, C, size=N).astype(np.int64)


def one_hot(y):
    return np.eye(C)[y]


def soft_targets(seed=2):
    return _softmax(logits(seed))


def binary_targets(seed=3, shape=(N, 3)):
    return (_rng(seed).uniform(size=shape) > 0.5).astype(np.float64)


def binary_probabilities(seed=4, shape=(N, 3)):
    return _rng(seed).uniform(0.1, 0.9, size=shape)


def huber_pair(delta=1.0, seed=5, shape=(N, 3)):
    """(y_pred, y_true) whose differences lie on both sides of delta, none near a kink."""
    rng = _rng(seed)
    small = rng.uniform(0.2, 0.8, size=shape) * delta
    large = rng.uniform(1.3, 3.0, size=shape) * delta
    diff = np.where(rng.uniform(size=shape) > 0.5, small, large) * rng.choice([-1.0, 1.0], size=shape)
    diff.flat[0], diff.flat[1] = 0.5 * delta, 2.0 * delta  # surely both regimes
    y_true = rng.standard_normal(shape)
    return y_true + diff, y_true


def regression_pair(seed=6, shape=(N, 3)):
    return huber_pair(1.0, seed, shape)


# --- numpy references written from the formulas (independent of dnn) ---------------


def np_cce(p, t):
    return -(t * np.log(np.clip(p, 1e-7, 1 - 1e-7))).sum() / p.shape[0]


def np_softmax_ce(z, t):
    logp = z - z.max(1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
    return -(t * logp).sum() / z.shape[0], (_softmax(z) - t) / z.shape[0]


def np_bce(p, t):
    return -np.mean(t * np.log(p) + (1 - t) * np.log(1 - p)), (p - t) / (p * (1 - p) * p.size)


def np_sigmoid_bce(z, t):
    s = 1 / (1 + np.exp(-z))
    return np_bce(s, t)[0], (s - t) / z.size


def np_huber(d, delta):
    a = np.abs(d)
    value = np.where(a <= delta, 0.5 * d * d, delta * (a - 0.5 * delta))
    return value.mean(), np.clip(d, -delta, delta) / d.size


# ------------------------------------------------------------------ gradient checks

GRADCHECK_CASES = {
    "cce_sparse": (CategoricalCrossentropy, lambda: (probabilities(), labels())),
    "cce_onehot": (CategoricalCrossentropy, lambda: (probabilities(), one_hot(labels()))),
    "cce_soft": (CategoricalCrossentropy, lambda: (probabilities(), soft_targets())),
    "softmax_ce_sparse": (SoftmaxCrossEntropy, lambda: (logits(), labels())),
    "softmax_ce_onehot": (SoftmaxCrossEntropy, lambda: (logits(), one_hot(labels()))),
    "softmax_ce_soft": (SoftmaxCrossEntropy, lambda: (logits(), soft_targets())),
    "bce": (BinaryCrossentropy, lambda: (binary_probabilities(), binary_targets())),
    "bce_soft": (BinaryCrossentropy, lambda: (binary_probabilities(), binary_probabilities(9))),
    "sigmoid_bce": (SigmoidBinaryCrossentropy, lambda: (logits(7, (N, 3)), binary_targets())),
    "mse": (MSE, regression_pair),
    "mae": (MAE, regression_pair),
    "huber": (Huber, huber_pair),
    "huber_delta": (lambda: Huber(0.5), lambda: huber_pair(0.5)),
    "mse_3d": (MSE, lambda: regression_pair(shape=(2, 3, 2))),
}


@pytest.mark.parametrize("case", list(GRADCHECK_CASES))
def test_loss_gradcheck(float64, case):
    factory, data = GRADCHECK_CASES[case]
    y_pred, y_true = data()
    assert dnn.gradcheck(factory(), y_pred, y_true) < TOL


# ------------------------------------------------------------------ values vs NumPy formulas


def _value_and_grad(loss, y_pred, y_true):
    value = loss(dnn.to_device(y_pred), dnn.to_device(y_true))
    assert tuple(value.shape) == ()
    return float(value), dnn.to_numpy(loss.backward())


@pytest.mark.parametrize("sparse", [True, False])
def test_categorical_crossentropy_formula(float64, sparse):
    p, y = probabilities(), labels()
    p[0, y[0]] = 0.0  # clipped to 1e-7: finite loss
    value, grad = _value_and_grad(CategoricalCrossentropy(), p, y if sparse else one_hot(y))
    assert np.isfinite(value)
    assert value == pytest.approx(np_cce(p, one_hot(y)), rel=1e-12)
    clipped = np.clip(p, 1e-7, 1 - 1e-7)
    np.testing.assert_allclose(grad, -one_hot(y) / (clipped * N), rtol=1e-12)


@pytest.mark.parametrize("sparse", [True, False])
def test_softmax_crossentropy_formula(float64, sparse):
    z, y = logits(), labels()
    z[0] += 1000.0  # a shift changes nothing and must not overflow
    value, grad = _value_and_grad(SoftmaxCrossEntropy(), z, y if sparse else one_hot(y))
    want_value, want_grad = np_softmax_ce(z, one_hot(y))
    assert value == pytest.approx(want_value, rel=1e-12)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-10, atol=1e-15)


def test_binary_crossentropy_formulas(float64):
    p, t = binary_probabilities(), binary_targets()
    value, grad = _value_and_grad(BinaryCrossentropy(), p, t)
    want_value, want_grad = np_bce(p, t)
    assert value == pytest.approx(want_value, rel=1e-12)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-12)
    z = logits(7, (N, 3))
    z[0, 0], z[0, 1] = 800.0, -800.0  # stable for huge logits
    value, grad = _value_and_grad(SigmoidBinaryCrossentropy(), z, t)
    assert np.isfinite(value) and np.isfinite(grad).all()
    z[0, 0], z[0, 1] = 3.0, -3.0
    value, grad = _value_and_grad(SigmoidBinaryCrossentropy(), z, t)
    want_value, want_grad = np_sigmoid_bce(z, t)
    assert value == pytest.approx(want_value, rel=1e-12)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-10)


def test_regression_formulas(float64):
    y_pred, y_true = huber_pair(1.0, shape=(2, 3, 4))
    d = y_pred - y_true
    value, grad = _value_and_grad(MSE(), y_pred, y_true)
    assert value == pytest.approx((d * d).mean(), rel=1e-12)
    np.testing.assert_allclose(grad, 2 * d / d.size, rtol=1e-12)
    value, grad = _value_and_grad(MAE(), y_pred, y_true)
    assert value == pytest.approx(np.abs(d).mean(), rel=1e-12)
    np.testing.assert_allclose(grad, np.sign(d) / d.size, rtol=1e-12)
    for delta in (1.0, 0.5, 2.5):
        value, grad = _value_and_grad(Huber(delta), y_pred, y_true)
        want_value, want_grad = np_huber(d, delta)
        assert value == pytest.approx(want_value, rel=1e-12)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-12)


# ------------------------------------------------------------------ against PyTorch

TORCH_CASES = {
    "cce_sparse": (CategoricalCrossentropy, lambda: (probabilities(), labels()),
                   lambda F, p, t: F.nll_loss(p.log(), t)),
    "cce_onehot": (CategoricalCrossentropy, lambda: (probabilities(), one_hot(labels())),
                   lambda F, p, t: -(t * p.log()).sum(1).mean()),
    "softmax_ce_sparse": (SoftmaxCrossEntropy, lambda: (logits(), labels()),
                          lambda F, z, t: F.cross_entropy(z, t)),
    "softmax_ce_onehot": (SoftmaxCrossEntropy, lambda: (logits(), one_hot(labels())),
                          lambda F, z, t: F.cross_entropy(z, t)),
    "softmax_ce_soft": (SoftmaxCrossEntropy, lambda: (logits(), soft_targets()),
                        lambda F, z, t: F.cross_entropy(z, t)),
    "bce": (BinaryCrossentropy, lambda: (binary_probabilities(), binary_targets()),
            lambda F, p, t: F.binary_cross_entropy(p, t)),
    "sigmoid_bce": (SigmoidBinaryCrossentropy, lambda: (logits(7, (N, 3)), binary_probabilities(8)),
                    lambda F, z, t: F.binary_cross_entropy_with_logits(z, t)),
    "mse": (MSE, lambda: regression_pair(shape=(2, 3, 4)), lambda F, a, b: F.mse_loss(a, b)),
    "mae": (MAE, lambda: regression_pair(shape=(2, 3, 4)), lambda F, a, b: F.l1_loss(a, b)),
    "huber": (Huber, huber_pair, lambda F, a, b: F.huber_loss(a, b, delta=1.0)),
    "huber_2": (lambda: Huber(2.0), lambda: huber_pair(2.0),
                lambda F, a, b: F.huber_loss(a, b, delta=2.0)),
}


@pytest.mark.parametrize("case", list(TORCH_CASES))
def test_loss_matches_torch(float64, case):
    torch = pytest.importorskip("torch")
    factory, data, reference = TORCH_CASES[case]
    y_pred, y_true = data()
    value, grad = _value_and_grad(factory(), y_pred, y_true)
    pred_t = torch.tensor(y_pred, requires_grad=True)
    want = reference(torch.nn.functional, pred_t, torch.tensor(y_true))
    want.backward()
    assert value == pytest.approx(want.item(), rel=1e-12)
    np.testing.assert_allclose(grad, pred_t.grad.numpy(), rtol=1e-10, atol=1e-15)


# ------------------------------------------------------------------ dtypes and inputs


@pytest.mark.parametrize("case", list(GRADCHECK_CASES))
def test_loss_keeps_float32(backend_name, case):
    factory, data = GRADCHECK_CASES[case]
    y_pred, y_true = data()
    pred = dnn.to_device(y_pred)
    assert pred.dtype == backend.xp.float32
    loss = factory()
    value = loss(pred, dnn.to_device(y_true))
    assert value.dtype == backend.xp.float32
    grad = loss.backward()
    assert grad.dtype == backend.xp.float32 and tuple(grad.shape) == y_pred.shape


def test_loss_accepts_numpy_targets(backend_name):
    """Targets given as NumPy arrays (or lists) are moved to the backend."""
    loss = SoftmaxCrossEntropy()
    pred = dnn.to_device(logits())
    from_device = float(loss(pred, dnn.to_device(labels())))
    assert float(loss(pred, labels())) == pytest.approx(from_device, rel=1e-6)
    assert float(MSE()(dnn.to_device(np.ones((2, 2))), np.zeros((2, 2)))) == pytest.approx(1.0)


def test_loss_backward_without_forward_is_a_clear_error(backend_name):
    for loss in (SoftmaxCrossEntropy(), CategoricalCrossentropy(), BinaryCrossentropy(),
                 SigmoidBinaryCrossentropy(), MSE(), MAE(), Huber()):
        with pytest.raises(RuntimeError, match="before"):
            loss.backward()


def test_loss_backward_twice_is_a_clear_error(backend_name):
    loss = MSE()
    loss(dnn.to_device(np.ones((2, 2))), dnn.to_device(np.zeros((2, 2))))
    loss.backward()
    with pytest.raises(RuntimeError, match="MSE"):
        loss.backward()


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("cls", [CategoricalCrossentropy, SoftmaxCrossEntropy])
def test_class_losses_reject_bad_targets(backend_name, cls):
    pred = dnn.to_device(logits())
    with pytest.raises(ShapeError) as info:
        cls()(pred, dnn.to_device(np.zeros((N, C + 1))))
    assert cls.__name__ in str(info.value) and f"({N}, {C + 1})" in str(info.value)
    with pytest.raises(ShapeError, match="integer"):
        cls()(pred, dnn.to_device(labels().astype(np.float64)))
    with pytest.raises(ShapeError, match=r"\(batch, classes\)"):
        cls()(dnn.to_device(np.zeros((N, C, 2))), dnn.to_device(labels()))
    with pytest.raises(ShapeError, match=f"got \\({N - 1},\\)"):
        cls()(pred, dnn.to_device(labels()[:-1]))


@pytest.mark.parametrize("cls", [BinaryCrossentropy, SigmoidBinaryCrossentropy, MSE, MAE, Huber])
def test_elementwise_losses_reject_shape_mismatch(backend_name, cls):
    with pytest.raises(ShapeError) as info:
        cls()(dnn.to_device(np.zeros((4, 3))), dnn.to_device(np.zeros((4, 1))))
    message = str(info.value)
    assert cls.__name__ in message and "(4, 3)" in message and "(4, 1)" in message


def test_loss_by_name():
    assert isinstance(losses.get("mse"), MSE)
    assert isinstance(losses.get("MSE"), MSE)
    assert isinstance(losses.get("SoftmaxCrossEntropy"), SoftmaxCrossEntropy)
    assert isinstance(losses.get("sparse_categorical_crossentropy"), CategoricalCrossentropy)
    assert isinstance(losses.get("huber"), Huber)
    mine = MAE()
    assert losses.get(mine) is mine


def test_unknown_loss_lists_valid_names():
    with pytest.raises(ValueError) as info:
        losses.get("hinge")
    message = str(info.value)
    assert "hinge" in message
    for valid in ("mse", "SoftmaxCrossEntropy", "huber", "BinaryCrossentropy"):
        assert valid in message


def test_huber_rejects_non_positive_delta():
    for delta in (0.0, -1.0):
        with pytest.raises(ValueError, match="delta"):
            Huber(delta)
    assert Huber(**Huber(0.3).get_config()).delta == 0.3
