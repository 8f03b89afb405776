"""Residual: gradients, state_dict/config nesting, summary, and a short training run
of a Sequential with BatchNorm and Residual on spiral data."""

from __future__ import annotations

import json

import numpy as np
import pytest

import dnn
from dnn import backend
from dnn.errors import ShapeError
from dnn.gradcheck import gradcheck
from dnn.io.specs import decode_layer, encode_layer
from dnn.layers import BatchNorm, Dense, LayerNorm, ReLU, Residual, Tanh


def _np(x):
    return backend.to_numpy(x)


def _block(width=4, hidden=5):
    return dnn.Sequential([Dense(width, hidden), ReLU(), Dense(hidden, width)])


def spiral_data(samples: int, classes: int, seed: int = 0,
                twist: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``classes`` noisy spiral arms of ``samples`` points each (the NNFS book's spiral
    has twist=2.5; the gentler 1.0 lets a short test run reach high accuracy)."""
    rng = np.random.default_rng(seed)
    x = np.zeros((samples * classes, 2), np.float32)
    y = np.zeros(samples * classes, np.int64)
    for c in range(classes):
        r = np.linspace(0.0, 1.0, samples)
        t = np.linspace(c * 4.0, (c + 1) * 4.0, samples) + rng.standard_normal(samples) * 0.2
        x[c * samples:(c + 1) * samples] = np.c_[r * np.sin(t * twist), r * np.cos(t * twist)]
        y[c * samples:(c + 1) * samples] = c
    return x, y


def test_residual_gradcheck_dense_relu_dense(float64):
    x = np.random.default_rng(4).standard_normal((6, 4))
    assert gradcheck(Residual(_block()), x, training=True) < 1e-6


def test_residual_gradcheck_nested_with_layernorm(float64):
    inner = Residual(dnn.Sequential([LayerNorm(4), Dense(4, 4), Tanh()]))
    layer = Residual(dnn.Sequential([inner, Dense(4, 4)]))
    x = np.random.default_rng(8).standard_normal((5, 4))
    assert gradcheck(layer, x) < 1e-6


def test_residual_forward_backward_formula(float64):
    block = _block()
    res = Residual(block)
    x = backend.asarray(np.random.default_rng(6).standard_normal((5, 4)))
    g = backend.asarray(np.random.default_rng(7).standard_normal((5, 4)))
    y = res.forward(x, training=True)
    np.testing.assert_allclose(_np(y), _np(x) + _np(block.forward(x)), rtol=1e-12)
    block.forward(x, training=True)
    expected = _np(g) + _np(block.backward(g))
    block_grads = [_np(p.grad).copy() for p in block.parameters()]
    res.forward(x, training=True)
    np.testing.assert_allclose(_np(res.backward(g)), expected, rtol=1e-12)
    assert res.parameters() == block.parameters()
    for p, want in zip(res.parameters(), block_grads):
        np.testing.assert_allclose(_np(p.grad), want, rtol=1e-12)


def test_residual_state_dict_keys_and_roundtrip(backend_name):
    model = dnn.Sequential([Dense(2, 4), Residual(_block()), BatchNorm(4), Dense(4, 3)])
    state = model.state_dict()
    assert [k for k in state if k.startswith("1.")] == [
        "1.block.0.weight", "1.block.0.bias", "1.block.2.weight", "1.block.2.bias"]
    assert "2.running_var" in state
    other = dnn.Sequential([Dense(2, 4), Residual(_block()), BatchNorm(4), Dense(4, 3)])
    other.load_state_dict({k: _np(v) for k, v in state.items()})
    x = backend.asarray(np.random.default_rng(1).standard_normal((3, 2)).astype(np.float32))
    np.testing.assert_allclose(_np(other.predict(x)), _np(model.predict(x)), rtol=1e-6)
    with pytest.raises(KeyError, match="unexpected"):
        Residual(_block()).load_state_dict({"0.weight": np.zeros((4, 5), np.float32)})


def test_residual_config_rebuilds_the_block(backend_name):
    res = Residual(dnn.Sequential([Dense(3, 8), ReLU(), Residual(Dense(8, 8)), Dense(8, 3)]))
    spec = encode_layer(res)
    config = spec["config"]
    assert config["block"]["type"] == "Sequential"
    assert config["block"]["config"]["layers"][2] == {
        "type": "Residual", "config": {"block": {"type": "Dense", "config": Dense(8, 8).get_config()}}}
    rebuilt = decode_layer(json.loads(json.dumps(spec)))  # JSON-able
    assert isinstance(rebuilt, Residual)
    assert encode_layer(rebuilt) == spec
    assert [p.shape for p in rebuilt.parameters()] == [p.shape for p in res.parameters()]
    with pytest.raises(dnn.SerializationError, match=r"unknown layer type 'os\.system'"):
        decode_layer({"type": "os.system", "config": {}})


def test_residual_output_shape_and_summary(backend_name):
    model = dnn.Sequential([Residual(_block(4, 16)), BatchNorm(4), ReLU(), Dense(4, 2)])
    assert model.output_shape((10, 4)) == (10, 2)
    text = model.summary()
    line = next(row for row in text.splitlines() if "Residual" in row)
    assert "(None, 4)" in line and "148" in line  # 4*16 + 16 + 16*4 + 4 parameters
    assert "total parameters: 166" in text  # + BatchNorm 8 + Dense 10


def test_residual_shape_errors_name_the_layer(backend_name):
    bad = dnn.Sequential([Dense(3, 3), Residual(Dense(3, 5))])
    with pytest.raises(ShapeError, match=r"layer 1 \(Residual\).*\(2, 3\).*\(2, 5\)"):
        bad.forward(backend.asarray(np.zeros((2, 3), np.float32)))
    with pytest.raises(ShapeError, match=r"layer 1 \(Residual\)"):
        bad.output_shape((2, 3))
    inner = dnn.Sequential([Dense(2, 2), Residual(_block(4))])
    with pytest.raises(ShapeError, match=r"layer 1 \(Residual\) > block layer 0 \(Dense\)"):
        inner.forward(backend.asarray(np.zeros((2, 2), np.float32)))
    with pytest.raises(TypeError, match="Layer"):
        Residual("Dense")


def test_sequential_with_batchnorm_and_residual_trains_on_spirals(backend_name):
    x, y = spiral_data(100, 3)
    model = dnn.Sequential([
        Dense(2, 32), BatchNorm(32), ReLU(),
        Residual(dnn.Sequential([Dense(32, 32), BatchNorm(32), ReLU(), Dense(32, 32)])),
        ReLU(), Dense(32, 3),
    ])
    model.compile(loss="SoftmaxCrossEntropy", optimizer=dnn.optim.Adam(lr=0.01), metrics=["accuracy"])
    history = model.fit(x, y, epochs=20, batch_size=64, verbose=0, seed=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.4 * losses[0], losses
    # eval mode (running statistics) must agree with what training learned
    result = model.evaluate(x, y)
    assert result["accuracy"] > 0.9, result
    assert np.abs(_np(model.layers[1].running_mean)).max() > 0.0


def test_model_file_roundtrip_with_residual_and_norms(backend_name, tmp_path):
    if not hasattr(dnn, "load_model"):
        pytest.skip("dnn.load_model is not available")
    model = dnn.Sequential([Dense(2, 4), BatchNorm(4),
                            Residual(dnn.Sequential([Dense(4, 4), ReLU(), LayerNorm(4)])), Dense(4, 3)])
    model.compile(loss="SoftmaxCrossEntropy", optimizer="adam")
    x, y = spiral_data(20, 3)
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=0)
    path = tmp_path / "model.dnn"
    model.save(str(path))
    loaded = dnn.load_model(str(path))
    assert isinstance(loaded.layers[2], Residual)
    assert encode_layer(loaded) == encode_layer(model)
    np.testing.assert_array_equal(_np(loaded.layers[1].running_var), _np(model.layers[1].running_var))
    np.testing.assert_allclose(loaded.predict(x), model.predict(x), rtol=1e-6, atol=1e-6)
