"""Losses with ``reduction=``, ``sample_weight=`` and ``label_smoothing=``: numerical gradients,
PyTorch as an oracle, Keras' weighted mean by hand, ``from_logits=True`` vs the logits losses,
bad input, the unchanged default path, and the settings surviving model files."""

from __future__ import annotations

import numpy as np
import pytest

import dnn
from dnn import backend, losses
from dnn.errors import ShapeError
from dnn.io.specs import decode_loss, encode_loss
from dnn.losses import (
    MAE,
    MSE,
    BinaryCrossentropy,
    CategoricalCrossentropy,
    Huber,
    SigmoidBinaryCrossentropy,
    SoftmaxCrossEntropy,
)
from dnn.losses.base import Loss

N, C, K = 6, 4, 3
REDUCTIONS = ["mean", "sum", "none"]
ALL_CLASSES = [CategoricalCrossentropy, SoftmaxCrossEntropy, BinaryCrossentropy,
               SigmoidBinaryCrossentropy, MSE, MAE, Huber]
SMOOTHED = [CategoricalCrossentropy, SoftmaxCrossEntropy, BinaryCrossentropy,
            SigmoidBinaryCrossentropy]


def _rng(seed):
    return np.random.default_rng(seed)


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def logits(seed=0, shape=(N, C)):
    return 1.5 * _rng(seed).standard_normal(shape)


def labels(seed=1):
    return _rng(seed).integers(0, C, size=N).astype(np.int64)


def one_hot(y):
    return np.eye(C)[y]


def binary_targets(seed=3, shape=(N, K)):
    return (_rng(seed).uniform(size=shape) > 0.5).astype(np.float64)


def binary_probabilities(seed=4, shape=(N, K)):
    return _rng(seed).uniform(0.1, 0.9, size=shape)


def regression_pair(seed=6, shape=(N, K)):
    """(y_pred, y_true) with |d| in [0.2, 0.8] or [1.3, 3]: away from the kinks of MAE and Huber."""
    rng = _rng(seed)
    size = np.where(rng.uniform(size=shape) > 0.5, rng.uniform(0.2, 0.8, shape), rng.uniform(1.3, 3, shape))
    y_true = rng.standard_normal(shape)
    return y_true + size * rng.choice([-1.0, 1.0], size=shape), y_true


def weights(seed=10, n=N):
    """Non-negative per-sample weights, one of them 0."""
    w = _rng(seed).uniform(0.2, 2.5, size=n)
    w[1] = 0.0
    return w


# name -> (class, extra constructor arguments, data (y_pred, y_true), smoothing applies)
CASES = {
    "cce_sparse": (CategoricalCrossentropy, {}, lambda: (_softmax(logits()), labels()), True),
    "cce_onehot": (CategoricalCrossentropy, {}, lambda: (_softmax(logits()), one_hot(labels())), True),
    "cce_logits": (CategoricalCrossentropy, {"from_logits": True}, lambda: (logits(), labels()), True),
    "softmax_ce_sparse": (SoftmaxCrossEntropy, {}, lambda: (logits(), labels()), True),
    "softmax_ce_soft": (SoftmaxCrossEntropy, {}, lambda: (logits(), _softmax(logits(2))), True),
    "bce": (BinaryCrossentropy, {}, lambda: (binary_probabilities(), binary_targets()), True),
    "bce_1d": (BinaryCrossentropy, {}, lambda: (binary_probabilities(shape=(N,)),
                                               binary_targets(shape=(N,))), True),
    "bce_logits": (BinaryCrossentropy, {"from_logits": True},
                   lambda: (logits(7, (N, K)), binary_targets()), True),
    "sigmoid_bce": (SigmoidBinaryCrossentropy, {}, lambda: (logits(7, (N, K)), binary_targets()), True),
    "mse": (MSE, {}, regression_pair, False),
    "mse_1d": (MSE, {}, lambda: regression_pair(shape=(N,)), False),
    "mse_3d": (MSE, {}, lambda: regression_pair(shape=(N, 2, 3)), False),
    "mae": (MAE, {}, regression_pair, False),
    "huber": (Huber, {}, regression_pair, False),
    "huber_delta": (Huber, {"delta": 0.5}, lambda: regression_pair(8), False),
}


def _gradcheck_params():
    params = []
    for case, (_, _, _, smooths) in CASES.items():
        for reduction in REDUCTIONS:
            for weighted in (False, True):
                for smoothing in (0.0, 0.15) if smooths else (0.0,):
                    params.append(pytest.param(case, reduction, weighted, smoothing,
                                               id=f"{case}-{reduction}-w{int(weighted)}-ls{smoothing}"))
    return params


def _make(case, reduction="mean", label_smoothing=0.0):
    cls, kwargs, _, smooths = CASES[case]
    extra = {"label_smoothing": label_smoothing} if smooths else {}
    return cls(**kwargs, **extra, reduction=reduction)


def _host(value):
    return backend.to_numpy(value).astype(np.float64)


# ------------------------------------------------------------------ numerical gradients


def _numeric_gradient(f, x, h=1e-6):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[i] += h
        minus[i] -= h
        grad[i] = (f(plus) - f(minus)) / (2 * h)
    return grad


@pytest.mark.parametrize(("case", "reduction", "weighted", "smoothing"), _gradcheck_params())
def test_weighted_loss_gradcheck(float64, case, reduction, weighted, smoothing):
    """backward() (with an upstream gradient r for reduction='none') against central
    differences of the reduced loss (of Σᵢ rᵢ·Lᵢ for 'none'), in float64."""
    y_pred, y_true = CASES[case][2]()
    loss = _make(case, reduction, smoothing)
    target = dnn.to_device(y_true)
    sample_weight = dnn.to_device(weights()) if weighted else None
    probe = _rng(11).standard_normal(N) if reduction == "none" else np.ones(())

    def objective(pred):
        return float(np.sum(_host(loss(dnn.to_device(pred), target, sample_weight)) * probe))

    value = loss(dnn.to_device(y_pred), target, sample_weight)
    assert tuple(value.shape) == ((N,) if reduction == "none" else ())
    analytic = _host(loss.backward(dnn.to_device(probe)) if reduction == "none" else loss.backward())
    numeric = _numeric_gradient(objective, y_pred)
    error = np.max(np.abs(analytic - numeric)) / (np.max(np.abs(analytic)) + np.max(np.abs(numeric)))
    assert error < 1e-6
    if weighted:  # a sample of weight 0 has no gradient
        assert not analytic[1].any()


def test_none_backward_defaults_to_the_gradient_of_the_sum(float64):
    y_pred, y_true = regression_pair()
    loss_none, loss_sum = Huber(reduction="none"), Huber(reduction="sum")
    w = weights()
    loss_none(dnn.to_device(y_pred), dnn.to_device(y_true), w)
    loss_sum(dnn.to_device(y_pred), dnn.to_device(y_true), w)
    np.testing.assert_allclose(_host(loss_none.backward()), _host(loss_sum.backward()), rtol=1e-14)
    # an upstream gradient may be NumPy, (N,) or (N, 1)
    probe = _rng(2).standard_normal(N)
    grads = []
    for given in (dnn.to_device(probe), probe[:, None]):
        loss_none(dnn.to_device(y_pred), dnn.to_device(y_true), w)
        grads.append(_host(loss_none.backward(given)))
    np.testing.assert_array_equal(grads[0], grads[1])


# ------------------------------------------------------------------ PyTorch as the oracle

CLASS_WEIGHT = np.array([0.5, 2.0, 1.0, 3.0])


def _torch_pair(torch, y_pred, y_true):
    return torch.tensor(y_pred, requires_grad=True), torch.tensor(y_true)


def _check_against_torch(torch, loss, y_pred, y_true, sample_weight, want, pred_t, reduction):
    """Our value and backward against a torch loss tensor ``want`` built on ``pred_t``."""
    value = _host(loss(dnn.to_device(y_pred), dnn.to_device(y_true), sample_weight))
    np.testing.assert_allclose(value, want.detach().numpy(), rtol=1e-12, atol=1e-15)
    if reduction == "none":
        probe = _rng(5).standard_normal(N)
        grad = _host(loss.backward(dnn.to_device(probe)))
        (want * torch.tensor(probe)).sum().backward()
    else:
        grad = _host(loss.backward())
        want.backward()
    np.testing.assert_allclose(grad, pred_t.grad.numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("reduction", ["sum", "none"])
@pytest.mark.parametrize("variant", ["softmax_ce", "cce_logits", "cce_probabilities", "onehot"])
def test_class_weights_match_torch(float64, variant, reduction):
    """torch's cross_entropy / nll_loss with weight=class_weight equals ours with
    sample_weight = class_weight[y]."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    z, y = logits(), labels()
    cw = torch.tensor(CLASS_WEIGHT)
    if variant == "cce_probabilities":
        loss, y_pred = CategoricalCrossentropy(reduction=reduction), _softmax(z)
        pred_t, y_t = _torch_pair(torch, y_pred, y)
        want = F.nll_loss(pred_t.log(), y_t, weight=cw, reduction=reduction)
    else:
        loss = (CategoricalCrossentropy(from_logits=True, reduction=reduction)
                if variant == "cce_logits" else SoftmaxCrossEntropy(reduction=reduction))
        y_pred = z
        pred_t, y_t = _torch_pair(torch, z, y)
        want = F.cross_entropy(pred_t, y_t, weight=cw, reduction=reduction)
    targets = one_hot(y) if variant == "onehot" else y
    _check_against_torch(torch, loss, y_pred, targets, CLASS_WEIGHT[y], want, pred_t, reduction)


def test_weighted_mean_is_torch_sum_over_batch_size(float64):
    """Keras' 'mean' divides Σ w·l by N, where torch's weighted 'mean' divides by Σ w."""
    torch = pytest.importorskip("torch")
    z, y = logits(), labels()
    pred_t, y_t = _torch_pair(torch, z, y)
    want = torch.nn.functional.cross_entropy(pred_t, y_t, weight=torch.tensor(CLASS_WEIGHT),
                                             reduction="sum") / N
    _check_against_torch(torch, SoftmaxCrossEntropy(), z, y, CLASS_WEIGHT[y], want, pred_t, "mean")


ELEMENTWISE_TORCH = {
    "bce": (BinaryCrossentropy, lambda shape: binary_probabilities(shape=shape),
            lambda shape: binary_targets(shape=shape),
            lambda F, p, t, r: F.binary_cross_entropy(p, t, reduction=r)),
    "bce_logits": (lambda reduction: BinaryCrossentropy(from_logits=True, reduction=reduction),
                   lambda shape: logits(7, shape), lambda shape: binary_targets(shape=shape),
                   lambda F, z, t, r: F.binary_cross_entropy_with_logits(z, t, reduction=r)),
    "sigmoid_bce": (SigmoidBinaryCrossentropy, lambda shape: logits(7, shape),
                    lambda shape: binary_probabilities(shape=shape),
                    lambda F, z, t, r: F.binary_cross_entropy_with_logits(z, t, reduction=r)),
    "mse": (MSE, lambda shape: regression_pair(shape=shape)[0],
            lambda shape: regression_pair(shape=shape)[1], lambda F, a, b, r: F.mse_loss(a, b, reduction=r)),
    "mae": (MAE, lambda shape: regression_pair(shape=shape)[0],
            lambda shape: regression_pair(shape=shape)[1], lambda F, a, b, r: F.l1_loss(a, b, reduction=r)),
    "huber": (lambda reduction: Huber(0.7, reduction=reduction),
              lambda shape: regression_pair(shape=shape)[0], lambda shape: regression_pair(shape=shape)[1],
              lambda F, a, b, r: F.huber_loss(a, b, delta=0.7, reduction=r)),
}


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", [(N,), (N, K)], ids=["1d", "2d"])
@pytest.mark.parametrize("reduction", ["sum", "none"])
@pytest.mark.parametrize("case", list(ELEMENTWISE_TORCH))
def test_elementwise_reductions_match_torch(float64, case, reduction, shape, weighted):
    """bce/mse/l1/huber with reduction 'sum'/'none': per sample the mean over its elements,
    i.e. torch's elementwise 'none' averaged over the non-batch axis, times the weight."""
    torch = pytest.importorskip("torch")
    factory, make_pred, make_true, reference = ELEMENTWISE_TORCH[case]
    y_pred, y_true = make_pred(shape), make_true(shape)
    w = weights() if weighted else np.ones(N)
    pred_t, true_t = _torch_pair(torch, y_pred, y_true)
    elements = reference(torch.nn.functional, pred_t, true_t, "none")
    per_sample = elements if len(shape) == 1 else elements.mean(dim=1)
    want = per_sample * torch.tensor(w)
    if reduction == "sum":
        want = want.sum()
        if len(shape) == 1 and not weighted:  # then exactly torch's own 'sum'
            torch.testing.assert_close(want, reference(torch.nn.functional, pred_t, true_t, "sum"))
    _check_against_torch(torch, factory(reduction=reduction), y_pred, y_true,
                         w if weighted else None, want, pred_t, reduction)


@pytest.mark.parametrize("smoothing", [0.1, 0.35])
@pytest.mark.parametrize("variant", ["softmax_ce", "cce_logits", "cce_probabilities"])
@pytest.mark.parametrize("sparse", [True, False], ids=["indices", "onehot"])
def test_label_smoothing_matches_torch(float64, variant, sparse, smoothing):
    """torch's cross_entropy(label_smoothing=ε), mean and unweighted; on probabilities the
    same targets t·(1 − ε) + ε/C against log p."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    z, y = logits(), labels()
    targets = y if sparse else one_hot(y)
    if variant == "cce_probabilities":
        loss, y_pred = CategoricalCrossentropy(label_smoothing=smoothing), _softmax(z)
        pred_t = torch.tensor(y_pred, requires_grad=True)
        smooth = torch.tensor(one_hot(y) * (1 - smoothing) + smoothing / C)
        want = -(smooth * pred_t.log()).sum(dim=1).mean()
    else:
        loss = (CategoricalCrossentropy(from_logits=True, label_smoothing=smoothing)
                if variant == "cce_logits" else SoftmaxCrossEntropy(label_smoothing=smoothing))
        y_pred = z
        pred_t = torch.tensor(z, requires_grad=True)
        want = F.cross_entropy(pred_t, torch.tensor(targets), label_smoothing=smoothing)
    _check_against_torch(torch, loss, y_pred, targets, None, want, pred_t, "mean")


@pytest.mark.parametrize("smoothing", [0.1, 0.4])
@pytest.mark.parametrize("variant", ["bce", "bce_logits", "sigmoid_bce"])
def test_binary_label_smoothing_by_hand(float64, variant, smoothing):
    """Keras: t ← t·(1 − ε) + ε/2, then the binary cross-entropy (value and gradient)."""
    t = binary_targets()
    smooth = t * (1 - smoothing) + smoothing / 2
    if variant == "bce":
        loss, y_pred = BinaryCrossentropy(label_smoothing=smoothing), binary_probabilities()
        p = y_pred
        want_grad = (p - smooth) / (p * (1 - p) * p.size)
    else:
        loss = (BinaryCrossentropy(from_logits=True, label_smoothing=smoothing) if variant == "bce_logits"
                else SigmoidBinaryCrossentropy(label_smoothing=smoothing))
        y_pred = logits(7, (N, K))
        p = 1 / (1 + np.exp(-y_pred))
        want_grad = (p - smooth) / p.size
    want = -np.mean(smooth * np.log(p) + (1 - smooth) * np.log(1 - p))
    assert float(loss(dnn.to_device(y_pred), dnn.to_device(t))) == pytest.approx(want, rel=1e-12)
    np.testing.assert_allclose(_host(loss.backward()), want_grad, rtol=1e-10)


# ------------------------------------------------------------------ Keras' weighted mean by hand


def _per_sample_by_hand(case, y_pred, y_true):
    """lᵢ from the formulas, in NumPy (row sums over classes, means over elements)."""
    cls, kwargs = CASES[case][0], CASES[case][1]
    logits_in = kwargs.get("from_logits", False) or cls in (SoftmaxCrossEntropy, SigmoidBinaryCrossentropy)
    if cls in (CategoricalCrossentropy, SoftmaxCrossEntropy):
        t = one_hot(y_true) if y_true.ndim == 1 else y_true
        p = _softmax(y_pred) if logits_in else y_pred
        return -(t * np.log(p)).sum(axis=1)
    flat = (y_pred.reshape(N, -1), y_true.reshape(N, -1))
    if cls in (BinaryCrossentropy, SigmoidBinaryCrossentropy):
        p = 1 / (1 + np.exp(-flat[0])) if logits_in else flat[0]
        t = flat[1]
        return -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean(axis=1)
    d = flat[0] - flat[1]
    if cls is MSE:
        return (d * d).mean(axis=1)
    if cls is MAE:
        return np.abs(d).mean(axis=1)
    delta = kwargs.get("delta", 1.0)
    return np.where(np.abs(d) <= delta, 0.5 * d * d, delta * (np.abs(d) - 0.5 * delta)).mean(axis=1)


@pytest.mark.parametrize("case", list(CASES))
def test_weighted_reductions_by_hand(float64, case):
    """'mean' = Σ w·l / N (Keras' sum_over_batch_size), 'sum' = Σ w·l, 'none' = w·l; weights as
    NumPy (N,), NumPy (N, 1), a list or a backend array, integers too."""
    y_pred, y_true = CASES[case][2]()
    w = weights()
    per_sample = _per_sample_by_hand(case, y_pred, y_true)
    want = {"mean": (w * per_sample).sum() / N, "sum": (w * per_sample).sum(), "none": w * per_sample}
    pred, target = dnn.to_device(y_pred), dnn.to_device(y_true)
    for reduction in REDUCTIONS:
        loss = _make(case, reduction)
        for given in (w, w[:, None], list(w), dnn.to_device(w)):
            np.testing.assert_allclose(_host(loss(pred, target, given)), want[reduction], rtol=1e-12)
    integer_w = np.arange(N)
    np.testing.assert_allclose(_host(_make(case, "sum")(pred, target, integer_w)),
                               (integer_w * per_sample).sum(), rtol=1e-12)
    np.testing.assert_allclose(_host(_make(case, "none")(pred, target)), per_sample, rtol=1e-12)


# ------------------------------------------------------------------ from_logits=True


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("pair", ["categorical", "binary"])
def test_from_logits_is_the_logits_loss(float64, pair, reduction, weighted):
    """CategoricalCrossentropy(from_logits=True) == SoftmaxCrossEntropy and
    BinaryCrossentropy(from_logits=True) == SigmoidBinaryCrossentropy, with weights and
    smoothing: the same values and gradients."""
    if pair == "categorical":
        ours = CategoricalCrossentropy(from_logits=True, label_smoothing=0.2, reduction=reduction)
        theirs = SoftmaxCrossEntropy(label_smoothing=0.2, reduction=reduction)
        y_pred, y_true = logits(), labels()
    else:
        ours = BinaryCrossentropy(from_logits=True, label_smoothing=0.2, reduction=reduction)
        theirs = SigmoidBinaryCrossentropy(label_smoothing=0.2, reduction=reduction)
        y_pred, y_true = logits(7, (N, K)), binary_targets()
    w = dnn.to_device(weights()) if weighted else None
    pred, target = dnn.to_device(y_pred), dnn.to_device(y_true)
    assert np.array_equal(_host(ours(pred, target, w)), _host(theirs(pred, target, w)))
    assert np.array_equal(_host(ours.backward()), _host(theirs.backward()))


# ------------------------------------------------------------------ the default path


def _np_default(case, y_pred, y_true):
    """The value and gradient of each loss before reductions existed (mean over the batch,
    over all elements for elementwise losses)."""
    cls = CASES[case][0]
    if cls in (CategoricalCrossentropy, SoftmaxCrossEntropy):
        per_sample = _per_sample_by_hand(case, y_pred, y_true)
        t = one_hot(y_true) if y_true.ndim == 1 else y_true
        if CASES[case][1].get("from_logits") or cls is SoftmaxCrossEntropy:
            return per_sample.mean(), (_softmax(y_pred) - t) / N
        return per_sample.mean(), -t / (y_pred * N)
    return _per_sample_by_hand(case, y_pred, y_true).mean(), None


@pytest.mark.parametrize("case", list(CASES))
def test_default_path_is_unchanged(float64, case, monkeypatch):
    """Unweighted 'mean' gives the previous formula, takes no per-sample pass, and equals
    the weighted path with unit weights."""
    y_pred, y_true = CASES[case][2]()
    pred, target = dnn.to_device(y_pred), dnn.to_device(y_true)
    want, want_grad = _np_default(case, y_pred, y_true)
    reference = _make(case)
    unit_value = float(reference(pred, target, np.ones(N)))
    unit_grad = _host(reference.backward())

    def no_per_sample_pass(self, per_sample):
        raise AssertionError("the default path reduced per sample")

    monkeypatch.setattr(Loss, "_weigh", no_per_sample_pass)
    loss = _make(case)
    value = loss(pred, target)
    grad = _host(loss.backward())
    assert tuple(value.shape) == ()
    assert float(value) == pytest.approx(want, rel=1e-12)
    if want_grad is not None:
        np.testing.assert_allclose(grad, want_grad, rtol=1e-12)
    assert unit_value == pytest.approx(float(value), rel=1e-12)
    np.testing.assert_allclose(unit_grad, grad, rtol=1e-12, atol=1e-17)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", ["softmax_ce_sparse", "bce", "mse_3d"])
def test_weighted_losses_keep_float32(backend_name, case, reduction):
    y_pred, y_true = CASES[case][2]()
    loss = _make(case, reduction, 0.1 if CASES[case][3] else 0.0)
    value = loss(dnn.to_device(y_pred), dnn.to_device(y_true), weights())
    assert value.dtype == backend.xp.float32
    grad = loss.backward()
    assert grad.dtype == backend.xp.float32 and tuple(grad.shape) == y_pred.shape


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_bad_sample_weight_is_refused(backend_name, cls):
    case = {CategoricalCrossentropy: "cce_sparse", SoftmaxCrossEntropy: "softmax_ce_sparse",
            BinaryCrossentropy: "bce", SigmoidBinaryCrossentropy: "sigmoid_bce", MSE: "mse",
            MAE: "mae", Huber: "huber"}[cls]
    y_pred, y_true = CASES[case][2]()
    pred, target, loss = dnn.to_device(y_pred), dnn.to_device(y_true), cls()
    for shape in [(N + 1,), (N, 2), (), (N, 1, 1)]:
        for given in (np.ones(shape), dnn.to_device(np.ones(shape))):
            with pytest.raises(ShapeError) as info:
                loss(pred, target, given)
            message = str(info.value)
            assert cls.__name__ in message and "sample_weight" in message
            assert f"({N},)" in message and str(shape) in message
    for bad, why in [(-0.5, ">= 0"), (np.nan, "finite"), (np.inf, "finite")]:
        w = weights()
        w[3] = bad
        for given in (w, dnn.to_device(w)):
            with pytest.raises(ValueError, match=why) as info:
                loss(pred, target, given)
            assert cls.__name__ in str(info.value) and "sample_weight" in str(info.value)
    with pytest.raises(TypeError, match="sample_weight must be numbers"):
        loss(pred, target, ["a"] * N)


def test_device_weights_are_checked_unless_told_otherwise(backend_name):
    """check=False skips the device read for weights already checked on the host."""
    w = weights()
    w[0] = np.nan
    pred, target = dnn.to_device(logits()), dnn.to_device(labels())
    with pytest.raises(ValueError, match="finite"):
        SoftmaxCrossEntropy()(pred, target, dnn.to_device(w))
    assert np.isnan(float(SoftmaxCrossEntropy()(pred, target, dnn.to_device(w), check=False)))


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_bad_reduction_is_refused(cls):
    for bad in ("avg", "Mean", None, 1):
        with pytest.raises(ValueError) as info:
            cls(reduction=bad)
        message = str(info.value)
        assert cls.__name__ in message and "reduction" in message and repr(bad) in message
        assert "'mean', 'sum', 'none'" in message
    assert cls(reduction="sum_over_batch_size").reduction == "mean"  # Keras' name


@pytest.mark.parametrize("cls", SMOOTHED)
def test_bad_label_smoothing_is_refused(cls):
    for bad in (1.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\)") as info:
            cls(label_smoothing=bad)
        assert cls.__name__ in str(info.value)
    for bad in ("0.1", True, None):
        with pytest.raises(TypeError, match="label_smoothing must be a number") as info:
            cls(label_smoothing=bad)
        assert cls.__name__ in str(info.value)
    assert cls(label_smoothing=0).label_smoothing == 0.0


def test_upstream_gradient_misuse_is_refused(backend_name):
    pred, target = dnn.to_device(np.ones((N, 2))), dnn.to_device(np.zeros((N, 2)))
    for reduction in ("mean", "sum"):
        loss = MSE(reduction=reduction)
        loss(pred, target)
        with pytest.raises(ValueError, match="reduction='none'") as info:
            loss.backward(np.ones(N))
        assert f"MSE(reduction='{reduction}')" in str(info.value)
    loss = MSE(reduction="none")
    loss(pred, target)
    with pytest.raises(ShapeError, match=r"MSE: the upstream gradient must have shape \(6,\)"):
        loss.backward(np.ones(N + 1))
    with pytest.raises(RuntimeError, match="before a forward"):
        MAE(reduction="none").backward(np.ones(N))
    loss = MSE(reduction="none")
    loss(pred, target)
    loss.backward(np.ones(N))
    with pytest.raises(RuntimeError, match="MSE"):
        loss.backward(np.ones(N))


def test_per_sample_paths_need_a_batch_axis(backend_name):
    zero_d = dnn.to_device(np.asarray(1.0))
    assert float(MSE()(zero_d, zero_d)) == 0.0  # the plain mean still takes 0-d arrays
    with pytest.raises(ShapeError, match=r"MSE: .*batch axis"):
        MSE(reduction="sum")(zero_d, zero_d)
    with pytest.raises(ShapeError, match=r"MSE: .*batch axis"):
        MSE()(zero_d, zero_d, sample_weight=np.ones(1))


# ------------------------------------------------------------------ settings and model files

NON_DEFAULT = [
    CategoricalCrossentropy(from_logits=True, label_smoothing=0.1, reduction="sum"),
    SoftmaxCrossEntropy(label_smoothing=0.2, reduction="none"),
    BinaryCrossentropy(label_smoothing=0.05, reduction="sum"),
    SigmoidBinaryCrossentropy(label_smoothing=0.3),
    MSE(reduction="sum"), MAE(reduction="none"), Huber(0.5, reduction="sum"),
]


@pytest.mark.parametrize("loss", NON_DEFAULT, ids=lambda v: type(v).__name__)
def test_settings_round_trip_through_specs(loss):
    config = loss.get_config()
    assert config["reduction"] == loss.reduction
    rebuilt = decode_loss(encode_loss(loss))
    assert type(rebuilt) is type(loss) and rebuilt.get_config() == config
    assert repr(rebuilt) == repr(loss)
    assert f"reduction={loss.reduction!r}" in repr(loss)


def test_repr_and_older_configs():
    assert repr(SoftmaxCrossEntropy(label_smoothing=0.1, reduction="sum")) == (
        "SoftmaxCrossEntropy(label_smoothing=0.1, reduction='sum')")
    assert repr(Huber(2.0)) == "Huber(delta=2.0, reduction='mean')"
    assert CategoricalCrossentropy(True).from_logits  # the positional argument stays first
    # configs saved before reduction/label_smoothing existed still load, with the defaults
    old = decode_loss({"type": "CategoricalCrossentropy", "config": {"from_logits": True}})
    assert old.get_config() == {"from_logits": True, "label_smoothing": 0.0, "reduction": "mean"}
    assert decode_loss({"type": "Huber", "config": {"delta": 2.0}}).get_config() == {
        "delta": 2.0, "reduction": "mean"}
    assert losses.get("mse").reduction == "mean"


def test_compiled_loss_settings_survive_model_files(tmp_path):
    model = dnn.Sequential([dnn.layers.Dense(3, 4)])
    loss = SoftmaxCrossEntropy(label_smoothing=0.1, reduction="sum")
    model.compile(loss=loss, optimizer="sgd")
    model.save(tmp_path / "m.dnn")
    loaded = dnn.load_model(tmp_path / "m.dnn")
    assert loaded.losses[0].get_config() == {"label_smoothing": 0.1, "reduction": "sum"}
