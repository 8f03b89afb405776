"""Bad input gets a clear error: wrong shapes name the layer, the expected and the
given shape; bad data and arguments to fit/evaluate/predict name the argument."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dnn
from dnn import backend
from dnn import layers as L
from dnn.layers import REGISTRY

# ------------------------------------------------------------------ shape property
# name -> (constructor, is the shape valid?, texts of which one must be in the message)
SHAPE_TABLE = {
    "Dense": (lambda: L.Dense(4, 3), lambda s: len(s) >= 2 and s[-1] == 4, ["(batch, 4)"]),
    "BatchNorm": (lambda: REGISTRY["BatchNorm"](3), lambda s: len(s) >= 2 and s[1] == 3,
                  ["(batch, 3)"]),
    "LayerNorm": (lambda: REGISTRY["LayerNorm"](3), lambda s: len(s) >= 2 and s[-1] == 3,
                  ["(batch, ..., 3)"]),
    "Conv2D": (lambda: REGISTRY["Conv2D"](2, 3, 3),
               lambda s: len(s) == 4 and s[1] == 2 and s[2] >= 3 and s[3] >= 3,
               ["(batch, 2, height, width)", "expected 2 input channels", "smaller than the kernel 3x3"]),
    "RNN": (lambda: REGISTRY["RNN"](3, 4), lambda s: len(s) == 3 and s[2] == 3 and s[1] > 0,
            ["(batch, time, 3)", "no time steps"]),
    "LSTM": (lambda: REGISTRY["LSTM"](3, 4), lambda s: len(s) == 3 and s[2] == 3 and s[1] > 0,
             ["(batch, time, 3)", "no time steps"]),
    "GRU": (lambda: REGISTRY["GRU"](3, 4), lambda s: len(s) == 3 and s[2] == 3 and s[1] > 0,
            ["(batch, time, 3)", "no time steps"]),
}

_shapes = st.lists(st.integers(0, 6), min_size=0, max_size=5).map(tuple)


def _shape_params():
    return [pytest.param(n, id=n, marks=[] if n in REGISTRY else
                         [pytest.mark.skip(reason=f"{n} is not in dnn.layers.REGISTRY yet")])
            for n in SHAPE_TABLE]


@pytest.mark.parametrize("name", _shape_params())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_wrong_shapes_name_layer_expected_and_given(name, backend_name, data):
    make, valid, expected = SHAPE_TABLE[name]
    shape = data.draw(_shapes.filter(lambda s: not valid(s)), label="shape")
    x = backend.asarray(np.zeros(shape, dtype=np.float32))
    for layer, label in ((make(), name), (dnn.Sequential([L.ReLU(), make()]).layers[1],
                                          f"layer 1 ({name})")):
        with pytest.raises(dnn.ShapeError) as info:
            layer.forward(x, training=True)
        message = str(info.value)
        assert label in message
        assert str(tuple(shape)) in message
        assert any(text in message for text in expected), message


@settings(max_examples=60, deadline=None)
@given(features=st.integers(1, 9), wrong=st.integers(1, 9), batch=st.integers(1, 5))
def test_predict_through_a_sequential_names_the_layer(features, wrong, batch):
    """A mis-assembled model: layer 1 expects ``wrong`` features but layer 0 gives ``features``."""
    if wrong == features:
        return
    model = dnn.Sequential([L.Dense(3, features), L.Tanh(), L.Dense(wrong, 2)])
    with pytest.raises(dnn.ShapeError,
                       match=rf"layer 2 \(Dense\): expected input of shape \(batch, {wrong}\), "
                             rf"got \({batch}, {features}\)"):
        model.predict(np.zeros((batch, 3), np.float32))


# ------------------------------------------------------------------ fit / evaluate / predict
def _model():
    model = dnn.Sequential([L.Dense(4, 8), L.ReLU(), L.Dense(8, 3)])
    model.compile("SoftmaxCrossEntropy", "adam")
    return model


X = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
Y = np.arange(20) % 3


def _with(arr, index, value):
    arr = np.array(arr, dtype=np.float32 if isinstance(value, float) else arr.dtype)
    arr[index] = value
    return arr


def _one_hot(y, classes=3):
    return np.eye(classes, dtype=np.float32)[y]


CASES = {
    "fit-x-nan": (lambda m: m.fit(_with(X, (3, 1), np.nan), Y, verbose=0), ValueError,
                  r"fit: x contains NaN or Inf values \(1 of 20 samples, the first at index 3\)"),
    "fit-x-inf": (lambda m: m.fit(_with(X, (5, 0), np.inf), Y, verbose=0), ValueError,
                  "fit: x contains NaN or Inf.*index 5"),
    "fit-y-inf": (lambda m: m.fit(X, _with(_one_hot(Y), (7, 0), np.inf), verbose=0), ValueError,
                  "fit: y contains NaN or Inf.*index 7"),
    "evaluate-x-nan": (lambda m: m.evaluate(_with(X, (0, 0), np.nan), Y), ValueError,
                       "evaluate: x contains NaN"),
    "predict-x-nan": (lambda m: m.predict(_with(X, (19, 3), np.nan)), ValueError,
                      r"predict: x contains NaN or Inf values \(1 of 20 samples, the first at index 19\)"),
    "validation-nan": (lambda m: m.fit(X, Y, validation_data=(_with(X, (2, 2), np.nan), Y), verbose=0),
                       ValueError, "fit: validation_data: x contains NaN"),
    "validation-not-pair": (lambda m: m.fit(X, Y, validation_data=(X,), verbose=0), ValueError,
                            "validation_data must be a pair"),
    "fit-empty": (lambda m: m.fit(X[:0], Y[:0], verbose=0), ValueError,
                  r"fit: x is empty \(shape \(0, 4\)\)"),
    "evaluate-empty": (lambda m: m.evaluate(X[:0], Y[:0]), ValueError, "evaluate: x is empty"),
    "predict-empty": (lambda m: m.predict(X[:0]), ValueError, "predict: x is empty"),
    "fit-batch-0": (lambda m: m.fit(X, Y, batch_size=0, verbose=0), ValueError,
                    "fit: batch_size must be an int >= 1, got 0"),
    "fit-batch-negative": (lambda m: m.fit(X, Y, batch_size=-8, verbose=0), ValueError,
                           "batch_size must be an int >= 1, got -8"),
    "fit-batch-float": (lambda m: m.fit(X, Y, batch_size=2.5, verbose=0), ValueError,
                        "batch_size must be an int >= 1, got 2.5"),
    "fit-batch-bool": (lambda m: m.fit(X, Y, batch_size=True, verbose=0), ValueError,
                       "batch_size must be an int >= 1, got True"),
    "evaluate-batch-0": (lambda m: m.evaluate(X, Y, batch_size=0), ValueError, "evaluate: batch_size"),
    "predict-batch-0": (lambda m: m.predict(X, batch_size=0), ValueError, "predict: batch_size"),
    "fit-epochs-negative": (lambda m: m.fit(X, Y, epochs=-1, verbose=0), ValueError,
                            "epochs must be an int >= 0"),
    "fit-initial-epoch": (lambda m: m.fit(X, Y, initial_epoch=-1, verbose=0), ValueError,
                          "initial_epoch must be an int >= 0"),
    "fit-log-every-0": (lambda m: m.fit(X, Y, log_every=0, verbose=0), ValueError,
                        "log_every must be an int >= 1"),
    "fit-validation-split": (lambda m: m.fit(X, Y, validation_split=1.0, verbose=0), ValueError,
                             r"validation_split must be a number in \[0, 1\)"),
    "fit-mismatched": (lambda m: m.fit(X, Y[:19], verbose=0), dnn.ShapeError,
                       r"x and y must have the same number of samples, got 20 and shape \(19,\)"),
    "evaluate-mismatched": (lambda m: m.evaluate(X[:5], Y), dnn.ShapeError, "evaluate: x and y"),
    "label-too-big": (lambda m: m.fit(X, _with(Y, 6, 3), verbose=0), ValueError,
                      r"class labels must be in \[0, 3\) .* from 0 to 3 "
                      r"\(the first bad one, 3, at index 6\)"),
    "label-negative": (lambda m: m.fit(X, _with(Y, 4, -1), verbose=0), ValueError,
                       r"from -1 to 2 \(the first bad one, -1, at index 4\)"),
    "evaluate-label-too-big": (lambda m: m.evaluate(X, Y + 5), ValueError, "evaluate: class labels"),
    "one-hot-sum": (lambda m: m.fit(X, _with(_one_hot(Y), (2, 0), 1.0), verbose=0), ValueError,
                    "rows must each sum to 1; row 2 sums to 2"),
    "one-hot-zero-row": (lambda m: m.fit(X, _with(_one_hot(Y), (0, 0), 0.0), verbose=0), ValueError,
                         "row 0 sums to 0"),
    "one-hot-columns": (lambda m: m.fit(X, _one_hot(Y, 4), verbose=0), dnn.ShapeError,
                        "one-hot targets must have 3 columns, got 4"),
    "float-class-indices": (lambda m: m.fit(X, Y.astype(np.float32) + 0.25, verbose=0),
                            ValueError, r"not a whole number.*astype\(int\)"),
    "x-strings": (lambda m: m.fit(np.array([["a"] * 4] * 20), Y, verbose=0), TypeError,
                  "fit: x must hold numbers, got dtype <U1"),
    "x-objects": (lambda m: m.predict(np.array([None] * 20, dtype=object)), TypeError,
                  "predict: x must hold numbers, got dtype object"),
    "x-none": (lambda m: m.fit(None, Y, verbose=0), ValueError, "x and y are both required"),
    "predict-none": (lambda m: m.predict(None), ValueError, "predict: x is required"),
    "fit-wrong-features": (lambda m: m.fit(np.zeros((20, 5), np.float32), Y, verbose=0), dnn.ShapeError,
                           r"layer 0 \(Dense\): expected input of shape \(batch, 4\), got \(20, 5\)"),
    "predict-wrong-features": (lambda m: m.predict(np.zeros((7, 3), np.float32)), dnn.ShapeError,
                               r"layer 0 \(Dense\): expected input of shape \(batch, 4\), got \(7, 3\)"),
    "predict-1d": (lambda m: m.predict(np.zeros(4, np.float32)), dnn.ShapeError,
                   r"layer 0 \(Dense\): expected input of shape \(batch, 4\), got \(4,\)"),
    "no-layers": (lambda m: _compiled_empty().fit(X, Y, verbose=0), ValueError, "the model has no layers"),
    "not-compiled": (lambda m: dnn.Sequential([L.Dense(4, 3)]).fit(X, Y), RuntimeError,
                     r"call model.compile"),
    "loss-becomes-nan": (lambda m: _diverging().fit(X * 1e3, _one_hot(Y) * 1e3, epochs=3, verbose=0,
                                                    log_every=1),
                         FloatingPointError, r"fit: the loss became (nan|inf) in epoch \d+"),
}


def _compiled_empty():
    model = dnn.Sequential([])
    model.compile("mse", "sgd")
    return model


def _diverging():
    model = dnn.Sequential([L.Dense(4, 3)])
    model.compile("mse", dnn.optim.SGD(lr=1e6))
    return model


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_gets_a_clear_error(case, backend_name):
    call, error, pattern = CASES[case]
    with pytest.raises(error, match=pattern):
        call(_model())


def test_good_inputs_in_other_forms_are_accepted(backend_name):
    model = _model()
    model.fit(X.tolist(), Y.tolist(), epochs=1, verbose=0)  # nested lists
    model.fit(X.astype(np.float64), _one_hot(Y), epochs=1, verbose=0)  # float64, one-hot
    assert model.predict(X.astype(np.int64)).shape == (20, 3)  # integer features become floats
    assert model.predict(backend.asarray(X)).shape == (20, 3)  # backend arrays stay on the backend
    model.evaluate(X, Y)


def test_checks_run_once_per_call_not_per_step(monkeypatch):
    """The data checks scan the arrays once per fit/evaluate/predict call; the step loop
    itself only reads the loss back every ``log_every`` steps."""
    import dnn.training as training

    calls = []
    real = training._check_finite
    monkeypatch.setattr(training, "_check_finite", lambda arr, name, where: (calls.append(where),
                                                                             real(arr, name, where)))
    model = _model()
    model.fit(X, Y, epochs=3, batch_size=2, verbose=0)  # 30 steps
    assert calls == ["fit", "fit"]  # x and y, once
    model.predict(X, batch_size=2)
    assert calls[2:] == ["predict"]
