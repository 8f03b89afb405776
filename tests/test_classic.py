"""Classic models and non-SGD training: the perceptron rule, logistic regression,
L-BFGS and other scipy.optimize methods, and NNFS random search."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import dnn
from dnn import backend
from dnn.layers import Dense, Tanh
from dnn.models import ConvergenceWarning, Perceptron, logistic_regression


def separable(n=80, seed=0, labels=(0, 1)):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)).astype(np.float32)
    score = x @ np.array([1.5, -1.0]) + 0.3
    keep = np.abs(score) > 0.3  # a margin
    x, score = x[keep], score[keep]
    return x, np.where(score > 0, labels[1], labels[0])


# ------------------------------------------------------------------ perceptron
@pytest.mark.parametrize("labels", [(0, 1), (-1, 1)])
def test_perceptron_converges_on_separable_data(backend_name, labels):
    x, y = separable(labels=labels)
    model = Perceptron(2, max_epochs=200, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        result = model.fit(x, y)
    assert result.converged and result and model.converged
    assert 1 <= result.epochs < 200 and result.errors[-1] == 0
    predicted = backend.to_numpy(model.predict(x))
    np.testing.assert_array_equal(predicted, y)
    assert model.score(x, y) == 1.0


def test_perceptron_reports_non_separable_data(backend_name):
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([0, 1, 1, 0])  # XOR
    model = Perceptron(2, max_epochs=25, seed=0)
    with pytest.warns(ConvergenceWarning, match="not be linearly separable"):
        result = model.fit(x, y)
    assert not result.converged and result.epochs == 25 and len(result.errors) == 25
    assert min(result.errors) >= 1
    # the pocket: the kept weights are as good as the best epoch
    assert model.score(x, y) == pytest.approx(1 - min(result.errors) / 4)


def test_perceptron_rejects_bad_input():
    with pytest.raises(ValueError, match="two classes"):
        Perceptron(2).fit(np.zeros((3, 2)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        Perceptron(2).fit(np.zeros((3, 3)), np.array([0, 1, 1]))


# ------------------------------------------------------------------ logistic regression
def test_logistic_regression_learns_and_matches_sklearn_direction(backend_name):
    x, y = separable(200, seed=1)
    model = logistic_regression(2, lr=0.5)
    assert [type(layer).__name__ for layer in model.layers] == ["Dense", "Sigmoid"]
    model.fit(x, y[:, None].astype(np.float32), epochs=30, batch_size=32, verbose=0, seed=0)
    result = model.evaluate(x, y[:, None].astype(np.float32))
    assert result["accuracy"] > 0.97
    w = backend.to_numpy(model.layers[0].weight.data).ravel()
    cosine = w @ np.array([1.5, -1.0]) / np.linalg.norm(w) / np.linalg.norm([1.5, -1.0])
    assert cosine > 0.95


# ------------------------------------------------------------------ L-BFGS and scipy methods
def regression_problem():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(128, 1))
    return x, np.sin(3 * x)


def tanh_net():
    dnn.manual_seed(0)
    model = dnn.Sequential([Dense(1, 12), Tanh(), Dense(12, 1)])
    model.compile(loss="mse", optimizer=dnn.optim.SGD(lr=0.1))
    return model


def test_lbfgs_beats_100_gradient_descent_steps(float64):
    x, y = regression_problem()
    gd = tanh_net()
    gd.fit(x, y, epochs=100, batch_size=len(x), shuffle=False, verbose=0)
    gd_loss = gd.evaluate(x, y)["loss"]
    model = tanh_net()
    result = dnn.optim.LBFGS(model, "mse", x, y, maxiter=100)
    assert result.loss < result.initial_loss
    assert result.loss < gd_loss / 10, (result.loss, gd_loss)
    assert model.evaluate(x, y)["loss"] == pytest.approx(result.loss, rel=1e-6)
    assert result.nit <= 100 and result.nfev >= result.nit and len(result.history) == result.nit


def test_scipy_chunked_evaluation_matches_full_batch(float64):
    x, y = regression_problem()
    full, chunked = tanh_net(), tanh_net()
    for layer in (full.layers[0], chunked.layers[0]):
        layer.l2 = 1e-3  # the penalty and its gradient must be counted once
    a = dnn.optim.ScipyOptimizer("BFGS", maxiter=15).minimize(full, None, x, y)
    b = dnn.optim.ScipyOptimizer("BFGS", maxiter=15, batch_size=50).minimize(chunked, None, x, y)
    assert a.loss == pytest.approx(b.loss, rel=1e-8)
    np.testing.assert_allclose(backend.to_numpy(full.layers[0].weight.data),
                               backend.to_numpy(chunked.layers[0].weight.data), rtol=1e-6)


def test_gradient_free_scipy_method():
    x, y = regression_problem()
    model = tanh_net()
    result = dnn.optim.ScipyOptimizer("Nelder-Mead", maxiter=300).minimize(model, "mse", x, y)
    assert result.loss < result.initial_loss and result.method == "Nelder-Mead"


# ------------------------------------------------------------------ random search
def test_random_search_only_keeps_improvements(backend_name):
    x, y = dnn.datasets.vertical_data(50, 3, seed=0)
    dnn.manual_seed(0)
    model = dnn.Sequential([Dense(2, 3), dnn.layers.ReLU(), Dense(3, 3)])
    search = dnn.optim.RandomSearch(scale=0.05, iterations=150, init_scale=0.01)
    result = search.minimize(model, "SoftmaxCrossEntropy", x, y)
    history = np.array(result.history)
    assert len(history) == 150 and np.all(np.diff(history) <= 0)
    assert 0 < result.accepted < 150
    assert result.loss < result.initial_loss - 0.05
    # the model holds the best weights found
    loss = dnn.losses.SoftmaxCrossEntropy()(dnn.backend.asarray(model.predict(x)), backend.asarray(y))
    assert float(loss) == pytest.approx(result.loss, rel=1e-5)
