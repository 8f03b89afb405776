"""Models that compose (DESIGN.md "Composition"): per-call contexts, gradient semantics,
the functional API, merge layers and graph errors, on every backend.

Gradient checks run in float64 through: a layer applied twice, two layers tied to one
Parameter, a fan-out/fan-in graph, a model nested in a model (twice: a siamese pair),
and a two-input, two-output model with loss weights.
"""

from __future__ import annotations

import numpy as np
import pytest

import dnn
from dnn import backend
from dnn.errors import ShapeError
from dnn.layers import (
    Add,
    Average,
    Concatenate,
    Dense,
    Multiply,
    ReLU,
    Subtract,
    Tanh,
)
from tests.conftest import to_numpy

TOL = 1e-6


def _x(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def _fan_model() -> dnn.Model:
    inp = dnn.Input((5,))
    h = Tanh()(Dense(5, 6)(inp))
    a, b = Dense(6, 4)(h), Dense(6, 4)(h)  # fan-out of h
    merged = Concatenate()([Tanh()(a), Add()([a, b]), Multiply()([a, b]), Subtract()([a, b]),
                            Average()([a, b, Tanh()(b)])])
    return dnn.Model(inp, Dense(20, 3)(merged))


# --------------------------------------------------------------------- gradcheck
def test_layer_applied_twice_gradcheck(float64):
    d = Dense(4, 4)
    model = dnn.Sequential([d, Tanh(), d])
    assert dnn.gradcheck(model, _x(6, 4)) < TOL
    assert len(model.parameters()) == 2  # one weight, one bias


def test_tied_parameters_gradcheck_and_sum(float64):
    a, b = Dense(4, 4), Dense(4, 4, bias=False)
    b.weight = a.weight  # tie
    model = dnn.Sequential([a, Tanh(), b])
    x = _x(6, 4)
    assert dnn.gradcheck(model, x) < TOL
    # the tied gradient is the sum of the two uses' gradients (same weights, untied)
    a2, b2 = Dense(4, 4), Dense(4, 4, bias=False)
    a2.load_state_dict(a.state_dict())
    b2.load_state_dict(b.state_dict())
    untied = dnn.Sequential([a2, Tanh(), b2])
    g = backend.asarray(_x(6, 4, seed=1))
    model.forward(backend.asarray(x))
    model.backward(g)
    untied.forward(backend.asarray(x))
    untied.backward(g)
    np.testing.assert_allclose(to_numpy(a.weight.grad),
                               to_numpy(a2.weight.grad) + to_numpy(b2.weight.grad), rtol=1e-12)


def test_fan_out_fan_in_gradcheck(float64):
    assert dnn.gradcheck(_fan_model(), _x(7, 5)) < TOL


def test_nested_model_siamese_gradcheck(float64):
    tower_in = dnn.Input((4,))
    tower = dnn.Model(tower_in, Tanh()(Dense(4, 3)(tower_in)))
    left, right = dnn.Input((4,), name="left"), dnn.Input((4,), name="right")
    distance = Subtract()([tower(left), tower(right)])  # one tower, two uses
    model = dnn.Model([left, right], Dense(3, 1)(Multiply()([distance, distance])))
    assert dnn.gradcheck(model, [_x(5, 4), _x(5, 4, seed=1)]) < TOL
    assert len(model.parameters()) == 4


def test_multi_input_multi_output_loss_weights_gradcheck(float64):
    a, b = dnn.Input((3,), name="a"), dnn.Input((2,), name="b")
    h = Tanh()(Dense(5, 6)(Concatenate()([a, b])))
    cls = Dense(6, 3, name="cls")(h)
    reg = Dense(6, 1, name="reg")(h)
    model = dnn.Model([a, b], [cls, reg])
    model.compile(loss={"cls": "SoftmaxCrossEntropy", "reg": "mse"}, optimizer="sgd",
                  loss_weights={"cls": 0.3, "reg": 2.0})
    x = [_x(6, 3), _x(6, 2, seed=1)]
    y = [np.array([0, 1, 2, 0, 1, 2]), _x(6, 1, seed=2)]
    assert dnn.gradcheck(model, x, y) < TOL
    assert dnn.gradcheck(model, x) < TOL  # forward/backward with the input gradients


# --------------------------------------------------------------------- semantics
def test_grad_is_the_latest_pass_not_a_sum(backend_name):
    d = Dense(3, 2)
    x = backend.asarray(_x(4, 3), dtype=backend.default_dtype())
    g = backend.asarray(_x(4, 2, seed=1), dtype=backend.default_dtype())
    d.forward(x)
    d.backward(g)
    first = to_numpy(d.weight.grad).copy()
    d.forward(x)
    d.backward(g)
    np.testing.assert_allclose(to_numpy(d.weight.grad), first, rtol=1e-6)


def test_backward_before_forward_is_an_error(backend_name):
    for layer in (Dense(2, 2), ReLU(), dnn.Sequential([Dense(2, 2)])):
        with pytest.raises(RuntimeError, match="backward called before forward"):
            layer.backward(backend.asarray(np.zeros((1, 2), np.float32)))


def test_parameter_not_reached_by_the_pass_gets_zero_grad(backend_name):
    inp = dnn.Input((3,))
    used, unused = Dense(3, 2, name="used"), Dense(3, 2, name="unused")
    model = dnn.Model(inp, [used(inp), unused(inp)])
    model.compile(loss=["mse", "mse"], optimizer="sgd")
    x = _x(4, 3).astype(np.float32)
    ones = backend.asarray(np.ones((4, 2), np.float32))
    model.train_step(backend.asarray(x), [ones, ones])
    assert float(backend.xp.sum(backend.xp.abs(unused.weight.grad))) > 0
    model.forward(backend.asarray(x))
    model.backward([ones, None])
    assert float(backend.xp.sum(backend.xp.abs(unused.weight.grad))) == 0.0


def test_inference_keeps_no_caches(backend_name):
    model = _fan_model()
    model.compile(loss="SoftmaxCrossEntropy", optimizer="adam")
    x, y = _x(10, 5).astype(np.float32), np.arange(10) % 3
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    model.predict(x)
    model.evaluate(x, y)
    assert all(layer._latest is None for layer in [model, *model.sublayers()])


def test_sequential_is_the_chain_case(backend_name):
    layers = [Dense(5, 8), ReLU(), Dense(8, 3)]
    seq = dnn.Sequential(layers)
    inp = dnn.Input((5,))
    graph = dnn.Model(inp, layers[2](layers[1](layers[0](inp))))
    x = _x(6, 5).astype(np.float32)
    np.testing.assert_array_equal(seq.predict(x), graph.predict(x))
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert list(graph.state_dict()) == ["dense.weight", "dense.bias", "dense_1.weight",
                                        "dense_1.bias"]


def test_multi_output_fit_evaluate_predict(backend_name):
    inp = dnn.Input((4,), name="x")
    h = ReLU()(Dense(4, 16)(inp))
    model = dnn.Model(inp, [Dense(16, 3, name="cls")(h), Dense(16, 1, name="reg")(h)])
    model.compile(loss=["SoftmaxCrossEntropy", "mse"], optimizer=dnn.optim.Adam(lr=0.01),
                  loss_weights=[1.0, 0.5], metrics={"cls": ["accuracy"], "reg": ["mae"]})
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y_cls, y_reg = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0), x[:, 2:3] * 2
    history = model.fit({"x": x}, {"cls": y_cls, "reg": y_reg}, epochs=30, batch_size=16,
                        verbose=0, seed=0)
    logs = history.history
    assert {"loss", "cls_loss", "reg_loss", "cls_accuracy", "reg_mae"} <= set(logs)
    assert logs["loss"][-1] < 0.5 * logs["loss"][0]
    np.testing.assert_allclose(logs["loss"][0], logs["cls_loss"][0] + 0.5 * logs["reg_loss"][0],
                               rtol=1e-5)
    result = model.evaluate(x, [y_cls, y_reg])
    assert result["cls_accuracy"] > 0.8
    cls_out, reg_out = model.predict(x)
    assert cls_out.shape == (64, 3) and reg_out.shape == (64, 1)


def test_summary_shows_graph_and_trainable_counts(backend_name):
    model = _fan_model()
    model.get_layer("dense").trainable = False
    text = model.summary()
    row = next(r for r in text.splitlines() if r.startswith("concatenate"))
    assert "tanh_1" in row and "add" in row and "(None, 20)" in row
    assert "non-trainable: 36" in text  # Dense(5, 6): 30 + 6


# --------------------------------------------------------------------- errors
def test_merge_shape_mismatch_names_the_layer(backend_name):
    a, b = dnn.Input((3,)), dnn.Input((4,))
    with pytest.raises(ShapeError, match=r"Add.*\(1, 3\).*\(1, 4\)"):
        Add()([a, b])
    with pytest.raises(ShapeError, match=r"Concatenate.*axis"):
        Concatenate(axis=-1)([dnn.Input((2, 3)), dnn.Input((3, 3))])


def test_wrong_connection_fails_when_made(backend_name):
    with pytest.raises(ShapeError, match=r"Dense.*\(batch, 5\).*\(1, 4\)"):
        Dense(5, 2)(dnn.Input((4,)))


def test_input_not_connected(backend_name):
    a, b = dnn.Input((3,), name="a"), dnn.Input((3,), name="b")
    with pytest.raises(ValueError, match=r"inputs\[1\].*'b'.*not connected"):
        dnn.Model([a, b], Dense(3, 1)(a))


def test_output_needs_an_unlisted_input(backend_name):
    a, b = dnn.Input((3,), name="a"), dnn.Input((3,), name="b")
    with pytest.raises(ValueError, match=r"depend.*'b'.*not among the model's inputs"):
        dnn.Model(a, Add()([a, b]))


def test_model_given_arrays_where_it_needs_symbolic_tensors(backend_name):
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(TypeError, match=r"inputs\[0\] must be a symbolic tensor.*ndarray"):
        dnn.Model(x, x)
    with pytest.raises(TypeError, match=r"input 1 is a ndarray"):
        Add()([dnn.Input((3,)), x])


def test_cycle_is_refused(backend_name):
    inp = dnn.Input((3,))
    a = Dense(3, 3)(inp)
    b = Dense(3, 3)(a)
    a.node.inputs = [b]  # rewire by hand: no API builds a cycle
    with pytest.raises(ValueError, match=r"cycle through .*Dense"):
        dnn.Model(inp, b)


def test_layer_names_must_be_unique(backend_name):
    inp = dnn.Input((3,))
    with pytest.raises(ValueError, match="named 'x'"):
        dnn.Model(inp, Dense(3, 3, name="x")(Dense(3, 3, name="x")(inp)))
    with pytest.raises(ValueError, match="name must be"):
        Dense(3, 3, name="a.b")
