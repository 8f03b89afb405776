"""Errors a new user meets name the argument, what was expected and what was given."""

from __future__ import annotations

import numpy as np
import pytest

import dnn
from dnn.errors import ShapeError
from dnn.layers import LSTM, Conv2D, Dense, Embedding


def _model() -> dnn.Sequential:
    model = dnn.Sequential([Dense(4, 3)])
    model.compile(loss="SoftmaxCrossEntropy", optimizer="adam")
    return model


X = np.random.default_rng(0).standard_normal((20, 4)).astype(np.float32)


def test_integral_float_labels_are_accepted_fractional_ones_refused(backend_name):
    model = _model()
    model.fit(X, (np.arange(20) % 3).astype(np.float64), verbose=0)  # as pandas gives them
    with pytest.raises(ValueError, match=r"y\[0\] = 0.5 is not a whole number.*astype\(int\)"):
        model.fit(X, (np.arange(20) % 3) + 0.5, verbose=0)


@pytest.mark.parametrize("split", ["0.2", True, None])
def test_validation_split_must_be_a_number(split):
    with pytest.raises(ValueError, match="validation_split must be a number in"):
        _model().fit(X, np.arange(20) % 3, validation_split=split, verbose=0)


def test_callbacks_must_be_callbacks():
    model = _model()
    state = model.rng_state
    with pytest.raises(TypeError, match=r"callbacks\[1\].*builtin_function.*LambdaCallback"):
        model.fit(X, np.arange(20) % 3, callbacks=[dnn.callbacks.TerminateOnNaN(), print])
    assert model.rng_state is state  # nothing started


def test_numpy_integers_are_sizes():
    n = np.int64(4)
    for layer in (Dense(n, np.int32(3)), Conv2D(n, n, np.int64(3), stride=np.int8(1)),
                  Embedding(n, n), LSTM(n, n)):
        config = layer.get_config()
        assert all(type(v) is not np.int64 for v in config.values())
    with pytest.raises(ValueError, match=r"Dense: in_features must be a positive int, got 4\.0"):
        Dense(4.0, 3)


def test_summary_input_shape_needs_the_batch_axis():
    with pytest.raises(ShapeError, match=r"summary\(input_shape=\(1, 28, 28\)\).*batch axis"):
        dnn.Sequential([Dense(4, 3)]).summary((1, 28, 28))
