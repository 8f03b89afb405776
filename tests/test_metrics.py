"""Metric values against hand-computed cases and scikit-learn, on every installed backend."""

from __future__ import annotations

import numpy as np
import pytest

import dnn
from dnn import backend, metrics
from dnn.layers import Dense

sk = pytest.importorskip("sklearn.metrics")


def dev(a):
    return backend.asarray(np.asarray(a))


def run(metric, y_pred, y_true, batch=None):
    """Feed the metric in batches (to exercise accumulation) and read it once."""
    metric.reset()
    y_pred, y_true = np.asarray(y_pred), np.asarray(y_true)
    n = y_pred.shape[0]
    step = batch or n
    for start in range(0, n, step):
        metric.update(dev(y_pred[start:start + step]), dev(y_true[start:start + step]))
    return metric.result()


# ------------------------------------------------------------------ hand-computed cases
def test_accuracy_sparse_onehot_binary(backend_name):
    scores = [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]]
    assert run(metrics.Accuracy(), np.float32(scores), np.int64([0, 1, 1, 1])) == pytest.approx(0.75)
    onehot = np.float32([[1, 0], [0, 1], [0, 1], [0, 1]])
    assert run(metrics.Accuracy(), np.float32(scores), onehot) == pytest.approx(0.75)
    probs = np.float32([[0.2], [0.7], [0.51], [0.49]])
    assert run(metrics.Accuracy(), probs, np.float32([[0], [1], [0], [0]])) == pytest.approx(0.75)
    logits = np.float32([-1.0, 2.0, 0.1, -0.1])
    assert run(metrics.Accuracy(threshold=0.0), logits, np.float32([0, 1, 1, 1])) == pytest.approx(0.75)


def test_precision_recall_f1_by_hand(backend_name):
    # true:      0 0 1 1 1 2
    # predicted: 0 1 1 1 2 2
    y_true = np.int64([0, 0, 1, 1, 1, 2])
    y_pred = np.eye(3, dtype=np.float32)[[0, 1, 1, 1, 2, 2]]
    # per class precision: 1/1, 2/3, 1/2; recall: 1/2, 2/3, 1/1
    p = [1.0, 2 / 3, 1 / 2]
    r = [1 / 2, 2 / 3, 1.0]
    f = [2 * a * b / (a + b) for a, b in zip(p, r)]
    assert run(metrics.Precision(), y_pred, y_true, batch=4) == pytest.approx(np.mean(p))
    assert run(metrics.Recall(), y_pred, y_true, batch=4) == pytest.approx(np.mean(r))
    assert run(metrics.F1(), y_pred, y_true, batch=4) == pytest.approx(np.mean(f))
    support = np.array([2, 3, 1]) / 6
    assert run(metrics.F1(average="weighted"), y_pred, y_true) == pytest.approx(np.dot(f, support))
    assert run(metrics.Precision(average="micro"), y_pred, y_true) == pytest.approx(4 / 6)
    cm = run(metrics.ConfusionMatrix(), y_pred, y_true, batch=2)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 2, 1], [0, 0, 1]])


def test_binary_precision_is_positive_class(backend_name):
    probs = np.float32([0.9, 0.8, 0.7, 0.2, 0.1, 0.6])
    y_true = np.float32([1, 1, 0, 1, 0, 0])
    # predicted 1 1 1 0 0 1: tp=2, fp=2, fn=1
    assert run(metrics.Precision(), probs, y_true) == pytest.approx(0.5)
    assert run(metrics.Recall(), probs, y_true) == pytest.approx(2 / 3)
    assert run(metrics.F1(), probs, y_true) == pytest.approx(2 * 2 / (2 * 2 + 2 + 1))


def test_top_k_accuracy_by_hand(backend_name):
    scores = np.float32([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.3, 0.4, 0.3]])
    y = np.int64([1, 0, 2])
    # ranks of the true class: 2nd, 3rd, 2nd (tie with class 0 counts in its favour)
    assert run(metrics.TopKAccuracy(1), scores, y) == pytest.approx(0.0)
    assert run(metrics.TopKAccuracy(2), scores, y) == pytest.approx(2 / 3)
    assert run(metrics.TopKAccuracy(3), scores, y) == pytest.approx(1.0)


def test_regression_metrics_by_hand(backend_name):
    y_true = np.float32([[1.0], [2.0], [3.0], [4.0]])
    y_pred = np.float32([[1.5], [2.0], [2.0], [4.0]])
    assert run(metrics.MAE(), y_pred, y_true, batch=3) == pytest.approx(1.5 / 4)
    assert run(metrics.RMSE(), y_pred, y_true, batch=3) == pytest.approx(np.sqrt(1.25 / 4))
    # SS_tot = 5, SS_res = 1.25
    assert run(metrics.R2(), y_pred, y_true, batch=3) == pytest.approx(1 - 1.25 / 5)


def test_regression_accuracy_nnfs(backend_name):
    y_true = np.float32([[0.0], [1.0], [2.0], [3.0]])
    precision = np.std(y_true) / 250
    y_pred = y_true + np.float32([[0.0], [precision / 2], [precision * 2], [-precision / 3]])
    assert run(metrics.RegressionAccuracy(), y_pred, y_true) == pytest.approx(0.75)
    fixed = metrics.RegressionAccuracy(precision=10.0)
    assert run(fixed, y_pred + 5.0, y_true) == pytest.approx(1.0)


# ------------------------------------------------------------------ against scikit-learn
@pytest.mark.parametrize("average", ["macro", "micro", "weighted"])
def test_against_sklearn_multiclass(backend_name, average):
    rng = np.random.default_rng(1)
    n, c = 203, 5
    scores = rng.normal(size=(n, c)).astype(np.float32)
    y_true = rng.integers(0, c, n)
    y_true[:40] = scores[:40].argmax(axis=1)  # some signal
    y_hat = scores.argmax(axis=1)
    for cls, fn in ((metrics.Precision, sk.precision_score), (metrics.Recall, sk.recall_score),
                    (metrics.F1, sk.f1_score)):
        expected = fn(y_true, y_hat, average=average, zero_division=0)
        assert run(cls(average=average), scores, y_true, batch=64) == pytest.approx(expected, abs=1e-12)
    np.testing.assert_array_equal(run(metrics.ConfusionMatrix(), scores, y_true, batch=50),
                                  sk.confusion_matrix(y_true, y_hat, labels=range(c)))
    assert run(metrics.TopKAccuracy(2), scores, y_true, batch=64) == pytest.approx(
        sk.top_k_accuracy_score(y_true, scores, k=2, labels=range(c)))


def test_macro_ignores_classes_absent_everywhere_like_sklearn(backend_name):
    y_true = np.int64([0, 0, 1, 1])
    scores = np.eye(4, dtype=np.float32)[[0, 1, 1, 1]]  # classes 2 and 3 never appear
    expected = sk.f1_score(y_true, [0, 1, 1, 1], average="macro")
    assert run(metrics.F1(average="macro"), scores, y_true) == pytest.approx(expected)


def test_regression_against_sklearn(backend_name):
    rng = np.random.default_rng(2)
    y_true = rng.normal(size=(301, 2)).astype(np.float32) * 3 + 1
    y_pred = (y_true + rng.normal(size=y_true.shape) * 0.5).astype(np.float32)
    assert run(metrics.MAE(), y_pred, y_true, batch=64) == pytest.approx(
        sk.mean_absolute_error(y_true, y_pred), rel=1e-5)
    assert run(metrics.RMSE(), y_pred, y_true, batch=64) == pytest.approx(
        np.sqrt(sk.mean_squared_error(y_true, y_pred)), rel=1e-5)
    assert run(metrics.R2(), y_pred, y_true, batch=64) == pytest.approx(
        sk.r2_score(y_true, y_pred), rel=1e-5)


# ------------------------------------------------------------------ registry and the model API
def test_registry_names():
    for name in ("precision", "recall", "f1", "top_k_accuracy", "mae", "rmse", "r2",
                 "confusion_matrix", "regression_accuracy", "accuracy"):
        assert isinstance(metrics.get(name), metrics.Metric)
    assert metrics.get("top_k_accuracy").name == "top_5_accuracy"
    assert metrics.get(metrics.F1, average="weighted").name == "f1_weighted"
    with pytest.raises(ValueError, match="unknown metric 'nope'"):
        metrics.get("nope")
    with pytest.raises(ValueError, match="average"):
        metrics.Precision(average="samples")


def test_evaluate_returns_metrics_by_name(backend_name):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3)).astype(np.float32)
    y = rng.integers(0, 3, 120)
    model = dnn.Sequential([Dense(3, 3)])
    model.compile(metrics=["accuracy", "precision", "recall", "f1", metrics.TopKAccuracy(2),
                           "confusion_matrix"])
    history = model.fit(x, y, epochs=2, batch_size=32, validation_data=(x, y), verbose=0)
    assert {"precision", "recall", "f1", "top_2_accuracy", "val_f1"} <= set(history.history)
    assert "confusion_matrix" not in history.history  # not a scalar: left out of the logs
    result = model.evaluate(x, y, batch_size=50)
    y_hat = model.predict(x).argmax(axis=1)
    assert result["accuracy"] == pytest.approx(np.mean(y_hat == y))
    assert result["f1"] == pytest.approx(sk.f1_score(y, y_hat, average="macro", zero_division=0))
    np.testing.assert_array_equal(result["confusion_matrix"],
                                  sk.confusion_matrix(y, y_hat, labels=range(3)))
