"""Silent wrong results in training, each class refused or fixed at its root:
labels compared in a narrow dtype, empty validation splits, bad learning rates
and optimizer arguments, out-of-range confusion-matrix counts, logits given to
losses on probabilities, metric thresholds and names, gradient-check criteria."""

from __future__ import annotations

import math

import numpy as np
import pytest

import dnn
from dnn import backend
from dnn import layers as L
from dnn.backend import ops
from dnn.losses import (
    BinaryCrossentropy,
    CategoricalCrossentropy,
    SigmoidBinaryCrossentropy,
    SoftmaxCrossEntropy,
)
from dnn.metrics import Accuracy, BinaryAccuracy, ConfusionMatrix, TopKAccuracy
from dnn.optim import SGD, Adagrad, Adam, NAdam, RMSprop, schedules


def _np(x):
    return backend.to_numpy(x)


def _data(n=64, features=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, features)).astype(np.float32), rng.integers(0, classes, n)


# ------------------------------------------------------------------ 1. labels' dtype
@pytest.mark.parametrize(("dtype", "classes"), [("uint8", 300), ("int8", 200), ("int16", 40000)])
def test_one_hot_does_not_wrap_in_a_narrow_label_dtype(backend_name, dtype, classes):
    xp = backend.xp
    labels = backend.asarray(np.array([3, 1, 100], dtype=dtype))
    rows = _np(ops.one_hot(labels, classes))
    assert rows.shape == (3, classes)
    assert rows.sum(axis=1).tolist() == [1, 1, 1]  # class 3 marks 3 only, not 259 (3 + 256)
    assert rows[0, 3] == 1 and rows[1, 1] == 1 and rows[2, 100] == 1
    bools = backend.asarray(np.array([True, False]))
    assert _np(ops.one_hot(bools, 300)).sum(axis=1).tolist() == [1, 1]
    with pytest.raises(TypeError, match="class labels must be integers, got dtype"):
        ops.one_hot(xp.astype(labels, backend.default_dtype()), classes)


def test_uint8_labels_with_300_classes_train_like_int64_labels(backend_name):
    """uint8 holds the labels (< 256) but not the class numbers up to 299: class 3 must
    not also mark class 259 in the loss's targets or the metrics."""
    x, y = _data(n=32, classes=256)
    y[:3] = [3, 255, 4]
    results = []
    for labels in (y.astype(np.int64), y.astype(np.uint8)):
        dnn.manual_seed(0)
        model = dnn.Sequential([L.Dense(4, 300)])
        model.compile(SoftmaxCrossEntropy(), SGD(lr=0.1), metrics=["accuracy", "top_k_accuracy"])
        model.fit(x, labels, epochs=2, batch_size=8, verbose=0, shuffle=False)
        results.append(model.evaluate(x, labels))
    assert results[0] == pytest.approx(results[1], rel=1e-6)


def test_loss_targets_from_uint8_labels_match_int64(backend_name):
    z = backend.asarray(np.random.default_rng(1).normal(size=(4, 300)).astype(np.float32))
    y = np.array([3, 255, 0, 7])
    loss = SoftmaxCrossEntropy()
    wide = float(loss(z, backend.asarray(y)))
    narrow = float(loss(z, backend.asarray(y.astype(np.uint8))))
    assert narrow == pytest.approx(wide, rel=1e-6)


def test_accuracy_reads_integer_binary_labels_and_column_labels(backend_name):
    # integer 0/1 labels were compared with 0.5 (a TypeError on array_api_strict)
    probs = np.array([0.2, 0.8, 0.6, 0.1], np.float32)
    for dtype in ("int64", "uint8", "bool"):
        assert Accuracy()(probs, np.array([0, 1, 0, 0], dtype=dtype)) == pytest.approx(0.75)
    # (N, 1) class indices for (N, C) scores: argmax of a single column gave class 0 for all
    scores = np.eye(3, dtype=np.float32)
    column = np.array([[0], [1], [2]])
    assert Accuracy()(scores, column) == 1.0
    assert TopKAccuracy(k=1)(scores, column) == 1.0
    cm = ConfusionMatrix()
    cm(scores, column)
    np.testing.assert_array_equal(cm.result(), np.eye(3, dtype=np.int64))


# ------------------------------------------------------------------ 2. validation_split
def _model(classes=3, features=4, loss=None, metrics=()):
    model = dnn.Sequential([L.Dense(features, 8), L.ReLU(), L.Dense(8, classes)])
    model.compile(loss or SoftmaxCrossEntropy(), SGD(lr=0.1), metrics=list(metrics))
    return model


def test_validation_split_that_leaves_no_training_sample_is_refused(backend_name):
    x, y = _data(64)
    with pytest.raises(ValueError, match=r"validation_split=0\.999 of 64 samples leaves 0 training "
                                         r"and 64 validation samples"):
        _model().fit(x, y, validation_split=0.999, verbose=0)
    with pytest.raises(ValueError, match="leaves 0 training and 1 validation"):
        _model().fit(x[:1], y[:1], validation_split=0.5, verbose=0)
    history = _model().fit(x, y, validation_split=0.25, epochs=1, verbose=0)
    assert history.history["loss"][0] > 0 and "val_loss" in history.history


def test_validation_split_and_validation_data_together_are_refused(backend_name):
    x, y = _data(64)
    with pytest.raises(ValueError, match="pass validation_split or validation_data, not both"):
        _model().fit(x, y, validation_split=0.2, validation_data=(x, y), verbose=0)


# ------------------------------------------------------------------ 3. learning rates
@pytest.mark.parametrize(("factory", "pattern"), [
    (lambda: schedules.CosineDecay(-0.1, 10), r"CosineDecay: lr must be a finite number > 0, got -0\.1"),
    (lambda: schedules.CosineDecay(0.1, 0), "CosineDecay: total_steps must be a whole number >= 1"),
    (lambda: schedules.CosineDecay(0.1, 10, min_lr=-0.01), "min_lr must be in"),
    (lambda: schedules.CosineDecay(0.1, 10, min_lr=0.5), r"min_lr must be in \[0, 0\.1\]"),
    (lambda: schedules.StepDecay(0.1, 0), "StepDecay: step_size must be a whole number >= 1, got 0"),
    (lambda: schedules.StepDecay(0.1, 2.5), "step_size must be a whole number"),
    (lambda: schedules.StepDecay(0.1, 3, gamma=0.0), "StepDecay: gamma must be a finite number > 0"),
    (lambda: schedules.StepDecay(0.1, 3, gamma=-0.5), "gamma"),
    (lambda: schedules.ExponentialDecay(0.1, 0.9, decay_steps=0), "decay_steps must be a whole"),
    (lambda: schedules.ExponentialDecay(0.1, -0.9), "ExponentialDecay: gamma"),
    (lambda: schedules.ExponentialDecay(0.0, 0.9), "ExponentialDecay: lr must be a finite number > 0"),
    (lambda: schedules.InverseTimeDecay(0.1, -1.0), "InverseTimeDecay: decay must be a finite number >= 0"),
    (lambda: schedules.InverseTimeDecay(math.nan, 0.1), "InverseTimeDecay: lr .* got nan"),
    (lambda: schedules.InverseTimeDecay(math.inf, 0.1), "got inf"),
    (lambda: schedules.LinearWarmup(0.1, -1), "LinearWarmup: warmup_steps must be a whole number >= 0"),
    (lambda: schedules.LinearWarmup(-0.1, 5), "LinearWarmup: after must be a finite number > 0"),
    (lambda: schedules.LinearWarmup(0.1, 5, start_factor=1.5), r"start_factor must be in \[0, 1\]"),
])
def test_schedule_arguments_are_checked_in_the_constructor(factory, pattern):
    with pytest.raises(ValueError, match=pattern):
        factory()


def test_schedules_with_good_arguments_still_work():
    assert schedules.StepDecay(0.1, 2.0)(2) == pytest.approx(0.01)  # an integral float is a count
    assert schedules.CosineDecay(0.1, np.int64(10), min_lr=0.1)(5) == pytest.approx(0.1)
    assert schedules.LinearWarmup(0.1, 0)(0) == pytest.approx(0.1)


def _param():
    p = dnn.Parameter(backend.asarray(np.ones(3, np.float32)), "w")
    p.grad = backend.asarray(np.ones(3, np.float32))
    return p


@pytest.mark.parametrize("bad", [-0.01, math.nan, math.inf])
def test_optimizer_refuses_a_bad_rate_from_a_schedule_before_updating(backend_name, bad):
    opt = SGD(lr=lambda step: 0.1 if step < 2 else bad)
    p = _param()
    opt.step([p])
    opt.step([p])
    before = _np(p.data).copy()
    with pytest.raises(ValueError, match=r"SGD: the schedule .* returned lr=.* for step 3; a "
                                         r"learning rate must be a finite number >= 0"):
        opt.step([p])
    np.testing.assert_array_equal(_np(p.data), before)  # no gradient ascent, no NaN weights
    with pytest.raises(ValueError, match="returned lr=-1"):
        SGD(lr=lambda step: -1.0)  # the first rate is checked at construction


def test_optimizer_refuses_a_bad_rate_set_by_hand(backend_name):
    opt = Adam(lr=0.01)
    opt.lr = math.nan
    with pytest.raises(ValueError, match=r"Adam: the optimizer's lr \(set by hand or by a "
                                         r"callback\) is lr=nan for step 1"):
        opt.step([_param()])


def test_a_zero_rate_from_a_warmup_or_a_finished_cosine_is_allowed(backend_name):
    """Warm-up from 0 (LinearWarmup's default) and cosine decay to 0 are standard: a step
    with lr 0 changes nothing, it does not climb the loss."""
    for sched in (schedules.LinearWarmup(0.1, 3), schedules.CosineDecay(0.1, 2)):
        opt = SGD(lr=sched)
        p = _param()
        for _ in range(4):
            opt.step([p])
        assert np.all(np.isfinite(_np(p.data)))


@pytest.mark.parametrize(("factory", "pattern"), [
    (lambda: SGD(lr=math.nan), "SGD: lr must be a finite number > 0, got nan"),
    (lambda: SGD(lr=math.inf), "SGD: lr must be a finite number > 0, got inf"),
    (lambda: SGD(lr="0.1"), "SGD: lr must be a finite number > 0, got '0.1'"),
    (lambda: SGD(lr=0.1, momentum=-0.9), r"SGD: momentum must be in \[0, 1\], got -0\.9"),
    (lambda: SGD(lr=0.1, momentum=math.nan), "momentum"),
    (lambda: SGD(lr=0.1, momentum=0.9, dampening=2.0), "dampening must be in"),
    (lambda: SGD(lr=0.1, weight_decay=math.nan), "SGD: weight_decay must be a finite number >= 0"),
    (lambda: SGD(lr=0.1, clipnorm=math.nan), "SGD: clipnorm must be a finite number > 0"),
    (lambda: SGD(lr=0.1, clipvalue=math.inf), "clipvalue"),
    (lambda: Adam(eps=-1e-8), r"Adam: eps must be a finite number > 0 .*got -1e-08"),
    (lambda: Adam(eps=math.nan), "Adam: eps"),
    (lambda: Adam(betas=0.9), r"Adam: betas must be a pair \(beta1, beta2\)"),
    (lambda: Adam(betas=(0.9, math.nan)), r"betas\[1\] must be in \[0, 1\), got nan"),
    (lambda: NAdam(momentum_decay=-1.0), "NAdam: momentum_decay must be a finite number >= 0"),
    (lambda: Adagrad(lr_decay=-0.1), "Adagrad: lr_decay must be a finite number >= 0"),
    (lambda: Adagrad(eps=-1.0), "Adagrad: eps"),
    (lambda: RMSprop(alpha=1.5), r"RMSprop: alpha must be in \[0, 1\], got 1\.5"),
    (lambda: RMSprop(eps=math.nan), "RMSprop: eps"),
    (lambda: RMSprop(momentum=-0.5), "RMSprop: momentum"),
    (lambda: dnn.optim.RandomSearch(scale=math.inf), "RandomSearch: scale"),
    (lambda: dnn.optim.RandomSearch(init_scale=-1.0), "RandomSearch: init_scale"),
])
def test_optimizer_hyperparameters_are_checked(factory, pattern):
    with pytest.raises(ValueError, match=pattern):
        factory()


# ------------------------------------------------------------------ 4. confusion matrix range
def test_confusion_matrix_refuses_predictions_for_more_classes(backend_name):
    x, y = _data(30, classes=3)
    model = _model(classes=3, metrics=[ConfusionMatrix(num_classes=2)])
    with pytest.raises(ValueError, match=r"ConfusionMatrix\(num_classes=2\): got predictions for 3 "
                                         r"classes .* pass num_classes=3"):
        model.evaluate(x, y)


def test_confusion_matrix_counts_out_of_range_labels_and_raises_at_result(backend_name):
    scores = np.eye(2, dtype=np.float32)[[0, 1, 1, 0]]
    cm = ConfusionMatrix(num_classes=2)
    cm.update(backend.asarray(scores), backend.asarray(np.array([0, 1, 2, 5])))  # no raise here
    cm.update(backend.asarray(scores), backend.asarray(np.array([0, 1, 1, 0])))
    with pytest.raises(ValueError, match=r"ConfusionMatrix: 2 of 8 samples have a label or a "
                                         r"prediction outside \[0, 2\) \(classes seen: 0 to 5\).*"
                                         r"pass num_classes=6"):
        cm.result()
    f1 = dnn.metrics.F1(num_classes=2)
    f1.update(backend.asarray(scores), backend.asarray(np.array([0, 1, 2, 0])))
    with pytest.raises(ValueError, match="F1: 1 of 4 samples"):
        f1.result()
    cm.reset()
    cm.update(backend.asarray(scores), backend.asarray(np.array([0, 1, 1, 0])))
    np.testing.assert_array_equal(cm.result(), [[2, 0], [0, 2]])


def test_confusion_matrix_update_reads_nothing_back(backend_name, monkeypatch):
    """The range check accumulates on the device: update never converts to the host."""
    scores = backend.asarray(np.eye(3, dtype=np.float32))
    labels = backend.asarray(np.array([0, 1, 2]))
    reads = []
    real = backend.to_numpy
    monkeypatch.setattr(backend, "to_numpy", lambda a: reads.append(1) or real(a))
    cm = ConfusionMatrix(num_classes=3)
    for _ in range(5):
        cm.update(scores, labels)
    assert reads == []
    cm.result()
    assert len(reads) == 2  # one read for the range check, one for the matrix


# ------------------------------------------------------------------ 5. from_logits
def test_from_logits_equals_the_logits_losses_exactly(backend_name):
    rng = np.random.default_rng(0)
    z = backend.asarray((3 * rng.normal(size=(6, 4))).astype(np.float32))
    for y in (backend.asarray(rng.integers(0, 4, 6)),
              backend.asarray(np.eye(4, dtype=np.float32)[rng.integers(0, 4, 6)])):
        a, b = CategoricalCrossentropy(from_logits=True), SoftmaxCrossEntropy()
        assert _np(a(z, y)) == _np(b(z, y))
        np.testing.assert_array_equal(_np(a.backward()), _np(b.backward()))
    t = backend.asarray(rng.integers(0, 2, (6, 4)).astype(np.float32))
    a, b = BinaryCrossentropy(from_logits=True), SigmoidBinaryCrossentropy()
    assert _np(a(z, t)) == _np(b(z, t))
    np.testing.assert_array_equal(_np(a.backward()), _np(b.backward()))


def test_from_logits_is_configurable_and_saved(backend_name, tmp_path):
    assert CategoricalCrossentropy().get_config()["from_logits"] is False
    assert BinaryCrossentropy(from_logits=True).get_config()["from_logits"] is True
    assert dnn.losses.get("sparse_categorical_crossentropy").from_logits is False
    with pytest.raises(TypeError, match="from_logits must be True or False, got 'yes'"):
        CategoricalCrossentropy(from_logits="yes")
    model = _model(loss=CategoricalCrossentropy(from_logits=True))
    model.save(tmp_path / "m.dnn")
    loaded = dnn.load_model(tmp_path / "m.dnn")
    assert isinstance(loaded.loss, CategoricalCrossentropy) and loaded.loss.from_logits is True


@pytest.mark.parametrize("name", ["sparse_categorical_crossentropy", "categorical_crossentropy"])
def test_keras_loss_string_on_a_logits_model_is_refused(backend_name, name):
    """The README's model ends in a plain Dense: with the probability loss it would clip
    the logits and 'train' to loss 0.0000 and chance accuracy."""
    x, y = _data(64, classes=3)
    target = y if name.startswith("sparse") else np.eye(3, dtype=np.float32)[y]
    model = _model(loss=name, metrics=["accuracy"])
    before = [_np(p.data).copy() for p in model.parameters()]
    fix = r"Use CategoricalCrossentropy\(from_logits=True\) or SoftmaxCrossEntropy"
    with pytest.raises(ValueError, match=r"^fit: CategoricalCrossentropy\(from_logits=False\) reads "
                                         r"y_pred as probabilities, .*(outside \[0, 1\]|sum to 1).*"
                                         + fix + ".*Softmax layer"):
        model.fit(x, target, epochs=2, verbose=0)
    for p, b in zip(model.parameters(), before):  # refused before the first update
        np.testing.assert_array_equal(_np(p.data), b)
    with pytest.raises(ValueError, match="^evaluate: CategoricalCrossentropy.*" + fix):
        model.evaluate(x, target)
    # the fixes both train
    for loss, tail in ((CategoricalCrossentropy(from_logits=True), []), (name, [L.Softmax()])):
        dnn.manual_seed(0)
        good = dnn.Sequential([L.Dense(4, 8), L.ReLU(), L.Dense(8, 3), *tail])
        good.compile(loss, SGD(lr=0.1), metrics=["accuracy"])
        logs = good.fit(x, target, epochs=3, verbose=0).history
        assert logs["loss"][-1] > 0.1 and logs["loss"][-1] < logs["loss"][0]


def test_binary_loss_string_on_a_logits_model_is_refused(backend_name):
    x, y = _data(64, classes=2)
    model = _model(classes=1, loss="binary_crossentropy")
    with pytest.raises(ValueError, match=r"BinaryCrossentropy\(from_logits=True\) or "
                                         r"SigmoidBinaryCrossentropy.*Sigmoid layer"):
        model.fit(x, y[:, None].astype(np.float32), verbose=0)
    good = dnn.Sequential([L.Dense(4, 8), L.ReLU(), L.Dense(8, 1), L.Sigmoid()])
    good.compile("binary_crossentropy", SGD(lr=0.1))
    good.fit(x, y[:, None].astype(np.float32), epochs=1, verbose=0)


def test_prediction_check_runs_once_per_fit_and_evaluate_call(backend_name, monkeypatch):
    calls = []
    real = CategoricalCrossentropy.check_predictions
    monkeypatch.setattr(CategoricalCrossentropy, "check_predictions",
                        lambda self, y_pred: (calls.append(1), real(self, y_pred)))
    x, y = _data(64)
    model = dnn.Sequential([L.Dense(4, 3), L.Softmax()])
    model.compile("sparse_categorical_crossentropy", SGD(lr=0.1))
    model.fit(x, y, epochs=3, batch_size=4, verbose=0, validation_data=(x, y))  # 48 steps
    assert len(calls) == 1
    model.evaluate(x, y, batch_size=4)
    assert len(calls) == 2
    model.fit(x, y, epochs=4, initial_epoch=3, batch_size=4, verbose=0)
    assert len(calls) == 3


def test_prediction_check_names_the_output_of_a_multi_output_model(backend_name):
    inp = dnn.Input(shape=(4,))
    h = L.ReLU()(L.Dense(4, 8)(inp))
    a = L.Dense(8, 3, name="classes")(h)
    b = L.Softmax()(L.Dense(8, 2, name="pre")(h))
    model = dnn.Model(inp, [a, b])
    model.compile(["categorical_crossentropy", "categorical_crossentropy"], SGD(lr=0.1))
    x, y = _data(16)
    with pytest.raises(ValueError, match=r"^fit: output '\w+': CategoricalCrossentropy"):
        model.fit(x, [y, y % 2], verbose=0)


# ------------------------------------------------------------------ 6. metric threshold and names
def _binary_model(loss, metrics):
    dnn.manual_seed(0)
    model = dnn.Sequential([L.Dense(4, 1)])
    model.compile(loss, SGD(lr=0.1), metrics=metrics)
    return model


@pytest.mark.parametrize("loss", [SigmoidBinaryCrossentropy, "sigmoid_binary_crossentropy",
                                  lambda: BinaryCrossentropy(from_logits=True)])
def test_binary_accuracy_on_logits_thresholds_at_zero(backend_name, loss):
    loss = loss() if callable(loss) else loss
    x, y = _data(64, classes=2)
    y = y[:, None].astype(np.float32)
    model = _binary_model(loss, ["binary_accuracy", "accuracy", BinaryAccuracy(),
                                 BinaryAccuracy(threshold=0.5)])
    assert [m.threshold for m in model.metrics] == [0.0, 0.0, 0.0, 0.5]
    logits = model.predict(x)
    want = float(np.mean((logits > 0) == (y > 0.5)))
    results = model.evaluate(x, y)
    assert results["binary_accuracy"] == pytest.approx(want)
    assert results["accuracy"] == pytest.approx(want)
    assert results["binary_accuracy_2"] == pytest.approx(float(np.mean((logits > 0.5) == (y > 0.5))))


def test_binary_accuracy_on_probabilities_keeps_one_half(backend_name):
    model = dnn.Sequential([L.Dense(4, 1), L.Sigmoid()])
    model.compile("binary_crossentropy", SGD(lr=0.1), metrics=["binary_accuracy", "f1"])
    assert [m.threshold for m in model.metrics] == [0.5, 0.5]
    assert BinaryAccuracy().threshold == 0.5  # standalone: probabilities


def test_metrics_named_alike_get_distinct_log_keys(backend_name):
    x, y = _data(64)
    model = _model(metrics=["accuracy", "acc", dnn.metrics.F1(), dnn.metrics.F1()])
    history = model.fit(x, y, epochs=2, verbose=0, validation_data=(x, y))
    for key in ("accuracy", "accuracy_1", "f1", "f1_1", "val_accuracy", "val_accuracy_1"):
        assert len(history.history[key]) == 2, key
    results = model.evaluate(x, y)
    assert results["accuracy"] == results["accuracy_1"] and results["f1"] == results["f1_1"]


def test_metric_named_like_a_loss_key_does_not_overwrite_the_loss(backend_name):
    class Loss(dnn.metrics.Metric):
        name = "loss"

        def update(self, y_pred, y_true):
            self.total, self.count = 123.0, 1

    x, y = _data(16)
    results = _model(metrics=[Loss()]).evaluate(x, y)
    assert results["loss_1"] == 123.0 and results["loss"] != 123.0


# ------------------------------------------------------------------ 7. gradcheck criterion
class _WrongInputGrad(L.Tanh):
    def backward_with(self, ctx, grad):
        return grad * (1.0 - ctx.y)  # should be 1 − y²


class _WrongBiasGrad(L.Dense):
    def backward_with(self, ctx, grad):
        out = super().backward_with(ctx, grad)
        self.bias.grad *= 1.01  # 1 % off, in the smallest array
        return out


class _NonzeroGradForAZeroGradient(L.Dense):
    def backward_with(self, ctx, grad):
        out = super().backward_with(ctx, grad)
        self.bias.grad += 1e-3  # the true gradient (a bias before batch norm) is 0
        return out


class _HalfMSE(dnn.losses.MSE):
    def gradient(self):
        return 0.5 * super().gradient()  # the factor 2 of d(d²) dropped


def _x(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape)


@pytest.mark.parametrize("case", ["tanh", "bias", "zero-gradient", "loss"])
def test_gradcheck_fails_a_wrong_backward(float64, case):
    if case == "tanh":
        error = dnn.gradcheck(_WrongInputGrad(), _x(3, 4))
    elif case == "bias":
        error = dnn.gradcheck(dnn.Sequential([_WrongBiasGrad(4, 3), L.Tanh()]), _x(5, 4))
    elif case == "zero-gradient":
        error = dnn.gradcheck(dnn.Sequential([_NonzeroGradForAZeroGradient(4, 3), L.BatchNorm(3)]),
                              _x(5, 4), training=True)
    else:
        error = dnn.gradcheck(_HalfMSE(), _x(4, 3), _x(4, 3, seed=1))
    assert error > 1e-4, error  # far above the 1e-6 pass threshold


def test_gradcheck_has_no_false_alarm_on_near_zero_gradients(float64):
    """A Dense bias before a batch norm has a zero gradient (round-off in the numeric one);
    element-wise relative errors reported 2e-2 here."""
    for seed in range(3):
        dnn.manual_seed(seed)
        model = dnn.Sequential([L.Dense(4, 3), L.BatchNorm(3)])
        assert dnn.gradcheck(model, _x(5, 4, seed=seed), training=True) < 1e-6
    dnn.manual_seed(0)
    cnn = dnn.Sequential([L.Conv2D(2, 3, 3, padding=1), L.ReLU(), L.MaxPool2D(2), L.Flatten(),
                          L.Dense(12, 4)])
    assert dnn.gradcheck(cnn, _x(2, 2, 4, 4)) < 1e-6


def test_gradcheck_error_is_relative_to_the_array_scale():
    from dnn.gradcheck import _max_error, _rel_error

    numeric = np.array([1.0, 1e-9, -2.0])
    assert _rel_error(numeric + np.array([0, 1e-10, 0]), numeric) < 1e-10  # a tiny entry's noise
    assert _rel_error(numeric * 1.01, numeric) == pytest.approx(0.02 / 4.02)
    zero = np.zeros(3)
    noise = np.full(3, 1e-10)
    assert _max_error([(numeric, numeric), (zero, noise)]) < 1e-6  # measured against the check
    assert _max_error([(numeric, numeric), (zero + 1e-2, zero)]) > 1e-3
    assert _max_error([]) == 0.0


# ------------------------------------------------------------------ 8. second round
def test_train_step_checks_logits_given_to_a_loss_on_probabilities_once(backend_name):
    x, y = _data(16)
    model = dnn.Sequential([L.Dense(4, 3)])
    model.compile("sparse_categorical_crossentropy", SGD(lr=0.1))
    xb, yb = backend.asarray(x), backend.asarray(y)
    with pytest.raises(ValueError, match=r"train_step: CategoricalCrossentropy.*logits"):
        model.train_step(xb, yb)
    model.compile(SoftmaxCrossEntropy(), SGD(lr=0.1))
    model.train_step(xb, yb)
    assert model._check_next_step is False  # checked once, not every step
    model.compile(CategoricalCrossentropy(), SGD(lr=0.1))
    assert model._check_next_step is True  # compile resets it
    with pytest.raises(ValueError, match="train_step"):
        model.train_step(xb, yb)


@pytest.mark.parametrize(("activation", "loss", "fix"), [
    (L.Softmax, SoftmaxCrossEntropy(), r"CategoricalCrossentropy\(from_logits=False\)"),
    (L.Softmax, CategoricalCrossentropy(from_logits=True), "CategoricalCrossentropy"),
    (L.Sigmoid, SigmoidBinaryCrossentropy(), r"BinaryCrossentropy\(from_logits=False\)"),
    (L.Sigmoid, BinaryCrossentropy(from_logits=True), "drop the final Sigmoid"),
])
def test_logits_loss_after_an_output_activation_is_refused_at_compile(activation, loss, fix):
    model = dnn.Sequential([L.Dense(4, 3), activation()])
    with pytest.raises(ValueError, match=fix):
        model.compile(loss, "sgd")
    model.compile(CategoricalCrossentropy() if activation is L.Softmax else BinaryCrossentropy(),
                  "sgd")  # the loss on probabilities is fine


def test_logits_loss_after_softmax_is_refused_per_output():
    inp = dnn.Input((4,))
    a = L.Softmax(name="a")(L.Dense(4, 3)(inp))
    b = L.Dense(4, 1, name="b")(inp)
    model = dnn.Model(inp, [a, b])
    with pytest.raises(ValueError, match=r"output 'a'.*Softmax"):
        model.compile([SoftmaxCrossEntropy(), "mse"], "sgd")
    model.compile([CategoricalCrossentropy(), SigmoidBinaryCrossentropy()], "sgd")


@pytest.mark.parametrize("loss", [SigmoidBinaryCrossentropy(), BinaryCrossentropy(from_logits=True)])
def test_binary_losses_refuse_targets_outside_0_1(backend_name, loss):
    x, _ = _data(16)
    y = (np.arange(16) % 3).astype(np.float32)[:, None]  # labels 0, 1, 2
    model = dnn.Sequential([L.Dense(4, 1)])
    model.compile(loss, SGD(lr=0.1))
    with pytest.raises(ValueError, match=r"fit: .*in \[0, 1\], got values from 0 to 2.*index 2"):
        model.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match=r"evaluate: .*\[0, 1\]"):
        model.evaluate(x, y)
    model.fit(x, np.clip(y, 0, 1), verbose=0)
    model.fit(x, np.full_like(y, 0.3), verbose=0)  # probabilities as targets are fine


@pytest.mark.parametrize("metric", [lambda: ConfusionMatrix(2), lambda: ConfusionMatrix(3),
                                    dnn.metrics.Precision, Accuracy, BinaryAccuracy])
def test_binary_metrics_count_labels_outside_0_1(backend_name, metric):
    pred = backend.asarray(np.array([0.1, 0.9, 0.8, 0.2], dtype=np.float32))
    m = metric()
    m.update(pred, backend.asarray(np.array([0, 1, 2, 0])))  # 1-D labels with a 2
    with pytest.raises(ValueError, match=r"1 of 4 targets of a binary .*outside \[0, 1\]"):
        m.result()
    m.reset()
    m.update(pred[:, None], backend.asarray(np.array([[0], [1], [1], [0]])))
    m.result()  # in range: no error


def test_mse_model_with_one_column_and_three_labels_is_caught_by_the_confusion_matrix(backend_name):
    x, _ = _data(16)
    y = (np.arange(16) % 3).astype(np.float32)[:, None]
    model = dnn.Sequential([L.Dense(4, 1)])
    model.compile("mse", SGD(lr=0.01), metrics=[ConfusionMatrix(num_classes=3)])
    with pytest.raises(ValueError, match="outside \\[0, 1\\]"):
        model.evaluate(x, y)


@pytest.mark.parametrize("weights", [[-1.0], [math.nan], [math.inf], [0.0], ["1"], [True]])
def test_loss_weights_must_be_finite_non_negative_and_not_all_zero(weights):
    model = dnn.Sequential([L.Dense(4, 3)])
    with pytest.raises(ValueError, match="loss_weights"):
        model.compile(SoftmaxCrossEntropy(), "sgd", loss_weights=weights)
    model.compile(SoftmaxCrossEntropy(), "sgd", loss_weights=[0.5])


def test_loss_weights_may_zero_one_output_of_several():
    inp = dnn.Input((4,))
    model = dnn.Model(inp, [L.Dense(4, 3, name="a")(inp), L.Dense(4, 1, name="b")(inp)])
    model.compile([SoftmaxCrossEntropy(), "mse"], "sgd", loss_weights={"a": 1.0, "b": 0.0})
    with pytest.raises(ValueError, match=r"loss_weights\['b'\]"):
        model.compile([SoftmaxCrossEntropy(), "mse"], "sgd", loss_weights={"a": 1.0, "b": -2})


@pytest.mark.parametrize("make", [
    lambda init: L.Dense(4, 8, init=init),
    lambda init: L.Conv2D(1, 2, 3, init=init),
])
def test_model_with_a_custom_initializer_saves_and_loads(backend_name, tmp_path, make):
    layer = make(lambda shape: backend.asarray(np.full(shape, 0.25, dtype=np.float32)))
    model = dnn.Sequential([layer])
    model.compile("mse", "sgd")
    assert layer.get_config()["init"] in ("glorot_uniform", "he_uniform")
    path = tmp_path / "m.dnn"
    model.save(str(path))
    loaded = dnn.load_model(str(path))
    for a, b in zip(model.parameters(), loaded.parameters()):
        np.testing.assert_array_equal(_np(a.data), _np(b.data))


def test_builtin_initializer_function_keeps_its_name():
    assert L.Dense(4, 8, init=dnn.init.he_normal).get_config()["init"] == "he_normal"


@pytest.mark.parametrize("make", [lambda eps: Adam(eps=eps), lambda eps: RMSprop(eps=eps),
                                  lambda eps: Adagrad(eps=eps), lambda eps: NAdam(eps=eps)])
@pytest.mark.parametrize("eps", [0, 0.0, -1e-8, math.nan])
def test_adaptive_optimizers_refuse_eps_zero(make, eps):
    with pytest.raises(ValueError, match=r"eps must be a finite number > 0.*sqrt\(v\) \+ eps"):
        make(eps)


def test_single_callback_and_single_metric_are_wrapped(backend_name):
    x, y = _data(16)
    seen = []
    model = dnn.Sequential([L.Dense(4, 3)])
    model.compile(SoftmaxCrossEntropy(), SGD(lr=0.1), metrics="accuracy")
    assert [m.name for m in model.metrics] == ["accuracy"]
    model.compile(SoftmaxCrossEntropy(), SGD(lr=0.1), metrics=dnn.metrics.F1())
    assert [m.name for m in model.metrics] == ["f1"]
    model.fit(x, y, verbose=0,
              callbacks=dnn.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(e)))
    assert seen == [0]
    with pytest.raises(TypeError, match=r"callbacks\[0\] must be a dnn.callbacks.Callback.*"
                                        "LambdaCallback"):
        model.fit(x, y, verbose=0, callbacks=print)
    model.metrics = "accuracy"
    assert [m.name for m in model.metrics] == ["accuracy"]


def test_output_or_metric_names_that_clash_with_validation_keys_are_refused():
    inp = dnn.Input((4,))
    model = dnn.Model(inp, [L.Dense(4, 3, name="val")(inp), L.Dense(4, 3, name="b")(inp)])
    with pytest.raises(ValueError, match=r"output named 'val'.*'val_loss'"):
        model.compile(SoftmaxCrossEntropy(), "sgd")

    class ValAccuracy(Accuracy):
        name = "val_accuracy"

    single = dnn.Sequential([L.Dense(4, 3)])
    with pytest.raises(ValueError, match="metric named 'val_accuracy'"):
        single.compile(SoftmaxCrossEntropy(), "sgd", metrics=[ValAccuracy()])
    single.compile(SoftmaxCrossEntropy(), "sgd", metrics=["accuracy"])
    with pytest.raises(ValueError, match="metric named 'val_accuracy'"):
        single.metrics = [ValAccuracy()]
    assert [m.name for m in single.metrics] == ["accuracy"]


class _NoWeightGrad(L.Dense):
    def backward_with(self, ctx, grad):
        out = super().backward_with(ctx, grad)
        self.weight.grad = None
        return out


def test_gradcheck_reports_a_parameter_left_without_a_gradient(float64):
    from dnn.gradcheck import GradcheckError

    with pytest.raises(GradcheckError, match=r"parameter 'weight' .*no gradient \(grad is None\)"):
        dnn.gradcheck(_NoWeightGrad(4, 3), _x(5, 4))
