"""Oracle tests: functional-API graphs (branches, merges, shared layers, tied parameters,
several inputs, a nested siamese tower, frozen layers) against the same model built in
PyTorch, on every installed backend in float64.

The dnn model's initial weights are copied into an equivalent torch ``nn.Module`` (dnn's
``Dense.weight`` is (in, out); ``torch.nn.Linear.weight`` is (out, in), so it is transposed).
Sharing and tying are expressed in torch by reusing the same ``nn.Parameter``. We compare:

* the forward output and the loss (``SoftmaxCrossEntropy`` vs ``nn.CrossEntropyLoss``);
* dL/dx for every input (``model.backward`` vs ``x.grad``);
* every parameter gradient (a shared/tied parameter's gradient is the sum of all its uses:
  we also check it differs from any single use's contribution, so the check can fail);
* three Adam steps (lr 0.01) through ``model.train_step`` vs the torch loop: the loss of each
  step and every weight after each step;
* freezing: a frozen ``Dense`` stays bit-identical, gets no gradient, and the trainable
  weights follow torch with ``requires_grad=False`` on the frozen ones.

Tolerances: rtol 1e-8, atol 1e-12.
"""

from __future__ import annotations

import numpy as np
import pytest

import dnn
from dnn import backend
from dnn.layers import Add, Concatenate, Dense, ReLU, Subtract, Tanh
from tests.conftest import to_numpy

torch = pytest.importorskip("torch")
nn = torch.nn

TOL = {"rtol": 1e-8, "atol": 1e-12}
BATCH = 4
N_CLASSES = 3


# ------------------------------------------------------------------------------ helpers
def _close(actual, expected, what: str) -> None:
    np.testing.assert_allclose(_np(actual), _np(expected), err_msg=what, **TOL)


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, np.ndarray | float | np.floating):
        return np.asarray(x)
    return to_numpy(x)


def _t(x: np.ndarray, grad: bool = False):
    return torch.tensor(np.asarray(x), dtype=torch.float64, requires_grad=grad)


def _linear_from(layer: Dense) -> nn.Linear:
    """A torch ``nn.Linear`` with the same weights as a dnn ``Dense``."""
    w = to_numpy(layer.weight.data)  # (in, out)
    lin = nn.Linear(w.shape[0], w.shape[1], bias=layer.bias is not None, dtype=torch.float64)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(w.T))
        if layer.bias is not None:
            lin.bias.copy_(torch.tensor(to_numpy(layer.bias.data)))
    return lin


def _pairs(dnn_layers, torch_linears) -> list[tuple]:
    """(dnn Parameter, torch Parameter, transpose?) once per distinct dnn Parameter."""
    out, seen = [], set()
    for d, t in zip(dnn_layers, torch_linears, strict=True):
        for dp, tp, tr in ((d.weight, t.weight, True), (d.bias, t.bias, False)):
            if dp is None or id(dp) in seen:
                continue
            seen.add(id(dp))
            out.append((dp, tp, tr))
    return out


def _tp(tp, transpose: bool, grad: bool = False) -> np.ndarray:
    a = _np(tp.grad if grad else tp)
    return a.T if transpose else a


def _check_grads(pairs, what: str) -> None:
    for i, (dp, tp, tr) in enumerate(pairs):
        assert dp.grad is not None, f"{what}: parameter {i} has no gradient"
        _close(dp.grad, _tp(tp, tr, grad=True), f"{what}: gradient of parameter {i}")


def _check_weights(pairs, what: str) -> None:
    for i, (dp, tp, tr) in enumerate(pairs):
        _close(dp.data, _tp(tp, tr), f"{what}: parameter {i}")


def _xy(rng: np.random.Generator, *features: int):
    xs = [rng.standard_normal((BATCH, f)) for f in features]
    y = rng.integers(0, N_CLASSES, size=BATCH).astype(np.int64)
    return xs, y


# -------------------------------------------------- 1. shared layer + tied parameter
def _build_shared_tied():
    inp = dnn.Input((5,))
    a, s = Dense(5, 6), Dense(6, 6)
    t = Dense(6, 6, bias=False)
    t.weight = s.weight  # tied: S.weight used three times, S.bias twice
    head = Dense(12, N_CLASSES)
    h = Tanh()(a(inp))
    b1 = s(h)                    # use 1 of S
    b2 = t(Tanh()(s(h)))         # use 2 of S, then T (tied to S.weight)
    merged = Add()([b1, b2])
    out = head(Concatenate(axis=-1)([merged, b2]))
    return dnn.Model(inp, out), (a, s, t, head)


class _TorchSharedTied(nn.Module):
    def __init__(self, a, s, t, head):
        super().__init__()
        self.a, self.s, self.head = _linear_from(a), _linear_from(s), _linear_from(head)
        self.t = nn.Linear(6, 6, bias=False, dtype=torch.float64)
        self.t.weight = self.s.weight  # the same nn.Parameter

    def forward(self, x, uses=None):
        """``uses``: optional separate tensors (w1, w2, w3, c1, c2) for the three uses of
        S.weight and the two of S.bias (to measure each use's contribution)."""
        w1, w2, w3, c1, c2 = uses or (self.s.weight,) * 3 + (self.s.bias,) * 2
        h = torch.tanh(self.a(x))
        b1 = h @ w1.T + c1
        b2 = torch.tanh(h @ w2.T + c2) @ w3.T
        return self.head(torch.cat([b1 + b2, b2], dim=-1))


def test_shared_and_tied_forward_backward_and_adam(float64):
    rng = np.random.default_rng(0)
    (x,), y = _xy(rng, 5)
    model, (a, s, t, head) = _build_shared_tied()
    assert t.weight is s.weight
    assert len(model.parameters()) == 6  # A.w, A.b, S.w, S.b, head.w, head.b
    tm = _TorchSharedTied(a, s, t, head)
    assert tm.t.weight is tm.s.weight
    pairs = _pairs([a, s, t, head], [tm.a, tm.s, tm.t, tm.head])
    assert len(pairs) == 6

    # forward, loss, dL/dx, every parameter gradient
    out = model.forward(backend.asarray(x))
    loss_fn = dnn.losses.SoftmaxCrossEntropy()
    loss = loss_fn(out, backend.asarray(y))
    dx = model.backward(loss_fn.backward())

    xt = _t(x, grad=True)
    out_t = tm(xt)
    loss_t = nn.CrossEntropyLoss()(out_t, torch.tensor(y))
    loss_t.backward()

    _close(out, out_t, "forward output")
    _close(loss, loss_t, "loss")
    _close(dx, xt.grad, "dL/dx")
    _check_grads(pairs, "shared/tied")

    # the tied gradient is the sum of three uses, and no single use gives it
    uses = [p.detach().clone().requires_grad_(True) for p in (tm.s.weight,) * 3]
    uses += [p.detach().clone().requires_grad_(True) for p in (tm.s.bias,) * 2]
    nn.CrossEntropyLoss()(tm(_t(x), uses=uses), torch.tensor(y)).backward()
    w_uses = [_np(u.grad).T for u in uses[:3]]
    b_uses = [_np(u.grad) for u in uses[3:]]
    np.testing.assert_allclose(sum(w_uses), _np(tm.s.weight.grad).T, **TOL)
    np.testing.assert_allclose(sum(b_uses), _np(tm.s.bias.grad), **TOL)
    s_w, s_b = to_numpy(s.weight.grad), to_numpy(s.bias.grad)
    for i, part in enumerate([*w_uses, w_uses[0] + w_uses[1], w_uses[1] + w_uses[2]]):
        assert not np.allclose(s_w, part, rtol=1e-3), f"S.weight: partial sum {i} matches"
    for i, part in enumerate(b_uses):
        assert not np.allclose(s_b, part, rtol=1e-3), f"S.bias: use {i} alone matches"

    # three Adam steps
    model.compile(loss=dnn.losses.SoftmaxCrossEntropy(), optimizer=dnn.optim.Adam(lr=0.01))
    opt = torch.optim.Adam(tm.parameters(), lr=0.01)
    assert len(opt.param_groups[0]["params"]) == 6
    start = [to_numpy(dp.data).copy() for dp, _, _ in pairs]
    for step in range(3):
        xs, ys = _xy(rng, 5)
        loss = model.train_step(backend.asarray(xs[0]), backend.asarray(ys))
        opt.zero_grad()
        loss_t = nn.CrossEntropyLoss()(tm(_t(xs[0])), torch.tensor(ys))
        loss_t.backward()
        opt.step()
        _close(loss, loss_t, f"Adam step {step}: loss")
        _check_weights(pairs, f"Adam step {step}: weights")
    assert t.weight is s.weight  # still tied after training
    for before, (dp, _, _) in zip(start, pairs, strict=True):
        assert not np.allclose(before, to_numpy(dp.data)), "a parameter did not move"


# ------------------------------------------------------------------ 2. two inputs
def test_two_input_concatenate(float64):
    rng = np.random.default_rng(1)
    (x1, x2), _ = _xy(rng, 4, 3)
    g = rng.standard_normal((BATCH, 2))

    i1, i2 = dnn.Input((4,)), dnn.Input((3,))
    d1, d2, d3 = Dense(4, 5), Dense(8, 6), Dense(6, 2)
    h = Concatenate(axis=-1)([Tanh()(d1(i1)), i2])
    out = d3(ReLU()(d2(h)))
    model = dnn.Model([i1, i2], out)

    l1, l2, l3 = (_linear_from(d) for d in (d1, d2, d3))
    pairs = _pairs([d1, d2, d3], [l1, l2, l3])

    y = model.forward([backend.asarray(x1), backend.asarray(x2)])
    dxs = model.backward(backend.asarray(g))

    x1t, x2t = _t(x1, grad=True), _t(x2, grad=True)
    y_t = l3(torch.relu(l2(torch.cat([torch.tanh(l1(x1t)), x2t], dim=-1))))
    y_t.backward(_t(g))

    _close(y, y_t, "two-input forward")
    assert isinstance(dxs, list | tuple) and len(dxs) == 2
    _close(dxs[0], x1t.grad, "dL/dx1")
    _close(dxs[1], x2t.grad, "dL/dx2")
    _check_grads(pairs, "two-input")


# ----------------------------------------------------------- 2b. siamese tower
def test_siamese_nested_tower(float64):
    rng = np.random.default_rng(2)
    (x1, x2), _ = _xy(rng, 5, 5)
    g = rng.standard_normal((BATCH, 2))

    tin = dnn.Input((5,))
    ta, tb = Dense(5, 6), Dense(6, 4)
    tower = dnn.Model(tin, tb(Tanh()(ta(tin))))
    head = Dense(4, 2)
    i1, i2 = dnn.Input((5,)), dnn.Input((5,))
    diff = Subtract()([tower(i1), tower(i2)])
    model = dnn.Model([i1, i2], head(Tanh()(diff)))
    assert len(model.parameters()) == 6

    la, lb, lh = (_linear_from(d) for d in (ta, tb, head))
    pairs = _pairs([ta, tb, head], [la, lb, lh])

    def tower_t(x):
        return lb(torch.tanh(la(x)))

    y = model.forward([backend.asarray(x1), backend.asarray(x2)])
    dxs = model.backward(backend.asarray(g))

    x1t, x2t = _t(x1, grad=True), _t(x2, grad=True)
    y_t = lh(torch.tanh(tower_t(x1t) - tower_t(x2t)))
    y_t.backward(_t(g))

    _close(y, y_t, "siamese forward")
    assert isinstance(dxs, list | tuple) and len(dxs) == 2
    _close(dxs[0], x1t.grad, "siamese dL/dx1")
    _close(dxs[1], x2t.grad, "siamese dL/dx2")
    _check_grads(pairs, "siamese")

    # the tower's gradient is the sum over both branches, not one branch's
    la1, lb1 = _linear_from(ta), _linear_from(tb)
    y1 = lh(torch.tanh(lb1(torch.tanh(la1(_t(x1)))) - tower_t(_t(x2)).detach()))
    y1.backward(_t(g))
    assert not np.allclose(to_numpy(ta.weight.grad), _np(la1.weight.grad).T, rtol=1e-3)
    assert not np.allclose(to_numpy(tb.bias.grad), _np(lb1.bias.grad), rtol=1e-3)


# ------------------------------------------------------------------- 3. freezing
def test_frozen_dense_with_adam(float64):
    rng = np.random.default_rng(3)
    inp = dnn.Input((5,))
    a, b, c = Dense(5, 6), Dense(6, 6), Dense(6, N_CLASSES)
    model = dnn.Model(inp, c(ReLU()(Add()([b(Tanh()(a(inp))), a(inp)]))))
    # B is in the middle: it must still pass dL/dinput back to A
    la, lb, lc = (_linear_from(d) for d in (a, b, c))

    def torch_model(x):
        ha = la(x)
        return lc(torch.relu(lb(torch.tanh(ha)) + ha))

    b.trainable = False
    assert not b.weight.trainable and not b.bias.trainable
    assert a.weight.trainable and c.weight.trainable
    for p in lb.parameters():
        p.requires_grad_(False)
    frozen = [b.weight, b.bias]
    frozen_start = [to_numpy(p.data).copy() for p in frozen]
    grads_before = [p.grad for p in frozen]

    pairs = _pairs([a, c], [la, lc])
    start = [to_numpy(dp.data).copy() for dp, _, _ in pairs]
    model.compile(loss=dnn.losses.SoftmaxCrossEntropy(), optimizer=dnn.optim.Adam(lr=0.01))
    opt = torch.optim.Adam([p for p in (*la.parameters(), *lc.parameters())], lr=0.01)

    for step in range(3):
        (x,), y = _xy(rng, 5)
        loss = model.train_step(backend.asarray(x), backend.asarray(y))
        opt.zero_grad()
        loss_t = nn.CrossEntropyLoss()(torch_model(_t(x)), torch.tensor(y))
        loss_t.backward()
        opt.step()
        _close(loss, loss_t, f"frozen, step {step}: loss")
        _check_grads(pairs, f"frozen, step {step}: trainable gradients")
        _check_weights(pairs, f"frozen, step {step}: trainable weights")
        for p, before, g0 in zip(frozen, frozen_start, grads_before, strict=True):
            np.testing.assert_array_equal(to_numpy(p.data), before)
            assert p.grad is None or p.grad is g0, "frozen parameter got a gradient"
    np.testing.assert_array_equal(_np(lb.weight).T, frozen_start[0])  # torch agrees
    for before, (dp, _, _) in zip(start, pairs, strict=True):
        assert not np.allclose(before, to_numpy(dp.data)), "a trainable parameter did not move"
