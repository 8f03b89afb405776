"""Backend parity: one model, the same weights and the same dropout mask give the same loss,
gradients and Adam trajectory on NumPy and on every other installed backend (float64) —
and the same as PyTorch autograd on the same network."""

from __future__ import annotations

import numpy as np
import pytest

import dnn
from dnn.layers import GELU, Dense, Dropout, LeakyReLU, Softplus, Tanh
from dnn.losses import SoftmaxCrossEntropy
from dnn.optim import Adam

N, IN, HIDDEN, CLASSES, P_DROP = 10, 6, 8, 4, 0.3
RTOL = 1e-10


def build():
    return dnn.Sequential([
        Dense(IN, HIDDEN), Tanh(),
        Dense(HIDDEN, HIDDEN, l2=0.01), GELU(),
        Dropout(P_DROP),
        Dense(HIDDEN, HIDDEN, l1=0.001), LeakyReLU(0.1),
        Dense(HIDDEN, CLASSES),
    ])


def data():
    rng = np.random.default_rng(42)
    x = rng.standard_normal((N, IN))
    y = rng.integers(0, CLASSES, size=N).astype(np.int64)
    mask = (rng.uniform(size=(N, HIDDEN)) > P_DROP).astype(np.float64)
    return x, y, mask


def initial_weights():
    """Weights drawn once on NumPy, as host arrays (state_dict + to_numpy)."""
    dnn.set_backend("numpy")
    dnn.set_default_dtype("float64")
    dnn.manual_seed(0)
    model = build()
    # non-zero biases, so their gradients and updates are exercised
    for i, p in enumerate(model.parameters()):
        if p.name == "bias":
            p.data[...] = dnn.to_device(0.1 * np.random.default_rng(i).standard_normal(p.shape))
    return {k: dnn.to_numpy(v).copy() for k, v in model.state_dict().items()}


def forward(model, x, mask):
    for layer in model.layers:
        if isinstance(layer, Dropout):
            x = layer.forward(x, training=True, mask=mask)
        else:
            x = layer.forward(x, training=True)
    return x


def backward(model, grad):
    """Each layer's standalone backward pairs with its own forward above."""
    for layer in reversed(model.layers):
        grad = layer.backward(grad)
    return grad


def run(backend_name, weights, steps=3):
    """Loss, output and gradients of the first step and the parameters after ``steps`` Adam steps."""
    dnn.set_backend(backend_name)
    dnn.set_default_dtype("float64")
    x, y, mask = data()
    x, y, mask = dnn.to_device(x), dnn.to_device(y), dnn.to_device(mask)
    model = build()
    model.load_state_dict(weights)
    params = model.parameters()
    loss_fn, opt = SoftmaxCrossEntropy(), Adam(lr=0.01)
    result: dict = {"losses": []}
    for step in range(steps):
        out = forward(model, x, mask)
        loss = loss_fn(out, y) + model.regularization_loss()
        grad_x = backward(model, loss_fn.backward())
        result["losses"].append(float(loss))
        if step == 0:
            result["output"] = dnn.to_numpy(out).copy()
            result["grad_x"] = dnn.to_numpy(grad_x).copy()
            result["grads"] = [dnn.to_numpy(p.grad).copy() for p in params]
        opt.step(params)
    result["params"] = [dnn.to_numpy(p.data).copy() for p in params]
    result["state"] = {k: dnn.to_numpy(v).copy() for k, v in model.state_dict().items()}
    return result


def assert_same(got, want, rtol=RTOL):
    np.testing.assert_allclose(got["losses"], want["losses"], rtol=rtol)
    np.testing.assert_allclose(got["output"], want["output"], rtol=rtol, atol=1e-14)
    np.testing.assert_allclose(got["grad_x"], want["grad_x"], rtol=rtol, atol=1e-14)
    assert len(got["grads"]) == len(want["grads"]) == 8
    for i, (a, b) in enumerate(zip(got["grads"], want["grads"])):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-14, err_msg=f"gradient {i}")
    for i, (a, b) in enumerate(zip(got["params"], want["params"])):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-14, err_msg=f"parameter {i} after Adam")


def test_same_loss_gradients_and_adam_steps_on_every_backend(float64):
    weights = initial_weights()
    reference = run("numpy", weights)
    got = run(float64, weights)
    assert_same(got, reference)
    assert set(got["state"]) == {f"{i}.{k}" for i in (0, 2, 5, 7) for k in ("weight", "bias")}
    # the steps really moved the parameters and changed the loss
    assert not np.allclose(reference["params"][0], weights["0.weight"])
    assert reference["losses"][0] != reference["losses"][-1]


def test_dnn_matches_torch_autograd_on_the_same_network(float64):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    weights = initial_weights()
    got = run(float64, weights, steps=1)
    x, y, mask = (torch.tensor(a) for a in data())
    w = {k: torch.tensor(v, requires_grad=True) for k, v in weights.items()}
    h = torch.tanh(x @ w["0.weight"] + w["0.bias"])
    h = F.gelu(h @ w["2.weight"] + w["2.bias"], approximate="tanh")
    h = h * mask / (1 - P_DROP)
    h = F.leaky_relu(h @ w["5.weight"] + w["5.bias"], 0.1)
    out = h @ w["7.weight"] + w["7.bias"]
    loss = (F.cross_entropy(out, y) + 0.01 * (w["2.weight"] ** 2).sum()
            + 0.001 * w["5.weight"].abs().sum())
    loss.backward()
    assert got["losses"][0] == pytest.approx(loss.item(), rel=RTOL)
    np.testing.assert_allclose(got["output"], out.detach().numpy(), rtol=RTOL, atol=1e-14)
    order = ["0.weight", "0.bias", "2.weight", "2.bias", "5.weight", "5.bias", "7.weight", "7.bias"]
    for name, grad in zip(order, got["grads"]):
        np.testing.assert_allclose(grad, w[name].grad.numpy(), rtol=RTOL, atol=1e-14, err_msg=name)


def _compiled_run(backend_name, weights, steps=3):
    """The same through compile/train_step (flat buffers, fused loss), without dropout."""
    dnn.set_backend(backend_name)
    dnn.set_default_dtype("float64")
    x, y, _ = data()
    model = dnn.Sequential([Dense(IN, HIDDEN), Softplus(), Dense(HIDDEN, HIDDEN, l2=0.01), GELU(),
                            Dense(HIDDEN, CLASSES)])
    model.load_state_dict({k: weights[k] for k in ("0.weight", "0.bias", "2.weight", "2.bias")}
                          | {"4.weight": weights["7.weight"][:HIDDEN], "4.bias": weights["7.bias"]})
    model.compile(loss="SoftmaxCrossEntropy", optimizer=Adam(lr=0.02))
    xd, yd = dnn.to_device(x), dnn.to_device(y)
    losses = [float(model.train_step(xd, yd)) for _ in range(steps)]
    params = [dnn.to_numpy(p.data).copy() for p in model.parameters()]
    preds = dnn.to_numpy(model.predict(xd)).copy()
    return losses, params, preds


def test_compiled_training_steps_agree_across_backends(float64):
    weights = initial_weights()
    ref_losses, ref_params, ref_preds = _compiled_run("numpy", weights)
    losses, params, preds = _compiled_run(float64, weights)
    np.testing.assert_allclose(losses, ref_losses, rtol=RTOL)
    assert ref_losses[0] > ref_losses[-1]
    for a, b in zip(params, ref_params):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=1e-14)
    np.testing.assert_allclose(preds, ref_preds, rtol=RTOL, atol=1e-14)


def test_float32_backends_agree_loosely(backend_name):
    """In float32 the backends differ only by rounding."""
    weights = initial_weights()
    reference = run("numpy", weights)
    dnn.set_default_dtype("float32")
    dnn.set_backend(backend_name)
    x, _, mask = data()
    model = build()
    model.load_state_dict(weights)
    assert model.parameters()[0].data.dtype == dnn.backend.xp.float32
    out = forward(model, dnn.to_device(x), dnn.to_device(mask))
    assert out.dtype == dnn.backend.xp.float32
    np.testing.assert_allclose(dnn.to_numpy(out), reference["output"], rtol=1e-4, atol=1e-5)
