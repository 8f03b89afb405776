"""Optimizers and schedules: trajectories against hand-written NumPy references and torch.optim,
defaults against torch's, gradient clipping, state round trips and bad arguments.

The problem: three parameters of different shapes (so the flat buffer packs several
views) with a non-linear, coupled gradient, stepped a fixed number of times.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

import dnn
from dnn import backend, optim
from dnn.optim import SGD, Adagrad, Adam, AdamW, NAdam, RMSprop, schedules

SHAPES = [(3, 4), (4,), (2, 1, 3)]


def initial_params(seed=0, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in shapes]


def grad_fn(params):
    """A fixed non-linear gradient field, coupled across parameters."""
    coupling = math.tanh(sum(float(p.sum()) for p in params))
    grads = []
    for i, p in enumerate(params):
        scale = 1.0 + 0.5 * i
        grads.append(scale * p + 0.3 * p**3 + 0.1 * np.cos(3 * p) + 0.2 * coupling - 0.05 * (i + 1))
    return grads


# ------------------------------------------------------------------ runners


def run_dnn(opt, steps, init=None, params=None):
    """Step ``opt`` on the problem; returns the list of parameter values after each step."""
    if params is None:
        params = [dnn.Parameter(dnn.to_device(p.copy()), f"p{i}")
                  for i, p in enumerate(init or initial_params())]
    trajectory = []
    for _ in range(steps):
        host = [dnn.to_numpy(p.data).copy() for p in params]
        for p, g in zip(params, grad_fn(host)):
            p.grad = dnn.to_device(g, dtype=p.data.dtype)
        opt.step(params)
        trajectory.append([dnn.to_numpy(p.data).copy() for p in params])
    return trajectory


def run_torch(name, kwargs, steps, init=None, scheduler=None):
    torch = pytest.importorskip("torch")
    params = [torch.tensor(p.copy(), requires_grad=True) for p in init or initial_params()]
    opt = getattr(torch.optim, name)(params, **kwargs)
    sched = scheduler(opt) if scheduler else None
    trajectory = []
    for _ in range(steps):
        host = [p.detach().numpy().copy() for p in params]
        for p, g in zip(params, grad_fn(host)):
            p.grad = torch.tensor(g)
        opt.step()
        if sched is not None:
            sched.step()
        trajectory.append([p.detach().numpy().copy() for p in params])
    return trajectory


def run_reference(update, steps, init=None):
    """``update(params, grads, state, t)`` written with plain NumPy, per parameter."""
    params = [p.copy() for p in init or initial_params()]
    states = [{} for _ in params]
    trajectory = []
    for t in range(1, steps + 1):
        grads = grad_fn(params)
        params = [update(p, g, s, t) for p, g, s in zip(params, grads, states)]
        trajectory.append([p.copy() for p in params])
    return trajectory


def assert_same_trajectory(got, want, rtol, init=None, atol=1e-12):
    """Compare positions and displacements from the start (small lrs move little)."""
    start = init or initial_params()
    assert len(got) == len(want)
    for step, (a, b) in enumerate(zip(got, want)):
        for i, (x, y, x0) in enumerate(zip(a, b, start)):
            np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, err_msg=f"step {step}, param {i}")
            np.testing.assert_allclose(x - x0, y - x0, rtol=rtol, atol=atol,
                                       err_msg=f"displacement, step {step}, param {i}")


# ------------------------------------------------------------------ NumPy references
# Each follows the algorithm box in the torch.optim documentation, independently of dnn.


def ref_sgd(lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    def update(p, g, s, t):
        if weight_decay:
            g = g + weight_decay * p
        if momentum:
            s["b"] = g.copy() if t == 1 else momentum * s["b"] + (1 - dampening) * g
            g = g + momentum * s["b"] if nesterov else s["b"]
        return p - lr * g
    return update


def ref_adagrad(lr=0.01, lr_decay=0.0, weight_decay=0.0, eps=1e-10):
    def update(p, g, s, t):
        clr = lr / (1 + (t - 1) * lr_decay)
        if weight_decay:
            g = g + weight_decay * p
        s["sum"] = s.get("sum", 0.0) + g * g
        return p - clr * g / (np.sqrt(s["sum"]) + eps)
    return update


def ref_rmsprop(lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0):
    def update(p, g, s, t):
        if weight_decay:
            g = g + weight_decay * p
        s["v"] = alpha * s.get("v", 0.0) + (1 - alpha) * g * g
        avg = np.sqrt(s["v"]) + eps
        if momentum:
            s["b"] = momentum * s.get("b", 0.0) + g / avg
            return p - lr * s["b"]
        return p - lr * g / avg
    return update


def ref_adam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
    b1, b2 = betas

    def update(p, g, s, t):
        if decoupled:
            p = p * (1 - lr * weight_decay)
        elif weight_decay:
            g = g + weight_decay * p
        s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
        s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g * g
        m_hat = s["m"] / (1 - b1**t)
        v_hat = s["v"] / (1 - b2**t)
        return p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return update


def ref_adamw(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
    return ref_adam(lr, betas, eps, weight_decay, decoupled=True)


def ref_nadam(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, momentum_decay=4e-3):
    b1, b2 = betas

    def update(p, g, s, t):
        if weight_decay:
            g = g + weight_decay * p
        mu = b1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
        mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
        s["prod"] = s.get("prod", 1.0) * mu
        s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
        s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g * g
        m_hat = mu_next * s["m"] / (1 - s["prod"] * mu_next) + (1 - mu) * g / (1 - s["prod"])
        v_hat = s["v"] / (1 - b2**t)
        return p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return update


REFERENCES = {"SGD": ref_sgd, "Adagrad": ref_adagrad, "RMSprop": ref_rmsprop, "Adam": ref_adam,
              "AdamW": ref_adamw, "NAdam": ref_nadam}

# (optimizer name, kwargs): defaults and non-default arguments of every optimizer
CONFIGS = [
    ("SGD", {}),
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ("SGD", {"lr": 0.1, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.05}),
    ("SGD", {"lr": 0.05, "momentum": 0.7, "nesterov": True, "weight_decay": 0.02}),
    ("Adagrad", {}),
    ("Adagrad", {"lr": 0.2, "lr_decay": 0.05}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.02, "weight_decay": 0.1, "eps": 1e-6}),
    ("RMSprop", {}),
    ("RMSprop", {"lr": 0.02, "momentum": 0.5}),
    ("RMSprop", {"lr": 0.01, "alpha": 0.9, "eps": 1e-6, "weight_decay": 0.1, "momentum": 0.9}),
    ("Adam", {}),
    ("Adam", {"lr": 0.05, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1}),
    ("AdamW", {}),
    ("AdamW", {"lr": 0.05, "betas": (0.85, 0.95), "eps": 1e-7, "weight_decay": 0.3}),
    ("NAdam", {}),
    ("NAdam", {"lr": 0.05, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1,
               "momentum_decay": 0.01}),
]
CONFIG_IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'defaults'}"
              for name, kw in CONFIGS]


def make(name, kwargs):
    return getattr(optim, name)(**kwargs)


# ------------------------------------------------------------------ (a) NumPy reference


@pytest.mark.parametrize(("name", "kwargs"), CONFIGS, ids=CONFIG_IDS)
def test_trajectory_matches_numpy_reference(float64, name, kwargs):
    got = run_dnn(make(name, kwargs), steps=6)
    want = run_reference(REFERENCES[name](**kwargs), steps=6)
    assert_same_trajectory(got, want, rtol=1e-9)


def test_references_themselves_on_one_step():
    """Hand-computed first steps, so the references cannot be wrong in the same way as dnn."""
    p, g = np.array([2.0, -1.0]), np.array([0.5, -4.0])
    np.testing.assert_allclose(ref_sgd(lr=0.1)(p, g, {}, 1), [1.95, -0.6])
    np.testing.assert_allclose(ref_sgd(lr=0.1, weight_decay=0.5)(p, g, {}, 1), [1.85, -0.55])
    # Adam's first step moves every element by lr in the direction of -sign(g)
    np.testing.assert_allclose(ref_adam(lr=0.01)(p, g, {}, 1), [1.99, -0.99], rtol=1e-7)
    np.testing.assert_allclose(ref_adamw(lr=0.01, weight_decay=0.5)(p, g, {}, 1),
                               [2 * 0.995 - 0.01, -0.995 + 0.01], rtol=1e-7)
    # Adagrad's first step: lr·g/|g|
    np.testing.assert_allclose(ref_adagrad(lr=0.1)(p, g, {}, 1), [1.9, -0.9], rtol=1e-9)
    # RMSprop's first step: lr·g / (|g|·sqrt(1 − α))
    np.testing.assert_allclose(ref_rmsprop(lr=0.01)(p, g, {}, 1), [2 - 0.1, -1 + 0.1], rtol=1e-6)


def test_sgd_one_step_by_hand(float64):
    p = dnn.Parameter(dnn.to_device(np.array([2.0, -1.0])), "p")
    p.grad = dnn.to_device(np.array([0.5, -4.0]))
    SGD(lr=0.1).step([p])
    np.testing.assert_allclose(dnn.to_numpy(p.data), [1.95, -0.6], rtol=1e-15)


# ------------------------------------------------------------------ (b) torch.optim


@pytest.mark.parametrize(("name", "kwargs"), CONFIGS, ids=CONFIG_IDS)
def test_trajectory_matches_torch(float64, name, kwargs):
    want = run_torch(name, kwargs, steps=10)
    got = run_dnn(make(name, kwargs), steps=10)
    assert_same_trajectory(got, want, rtol=1e-6)


@pytest.mark.parametrize("name", list(REFERENCES))
def test_defaults_equal_torch_defaults(name):
    torch = pytest.importorskip("torch")
    ours = inspect.signature(getattr(optim, name).__init__).parameters
    theirs = inspect.signature(getattr(torch.optim, name).__init__).parameters
    checked = 0
    for arg, param in ours.items():
        if arg == "self" or param.kind is inspect.Parameter.VAR_KEYWORD:
            continue
        assert arg in theirs, f"{name}({arg}=...) has no torch counterpart"
        assert param.default == theirs[arg].default, (name, arg, param.default, theirs[arg].default)
        checked += 1
    assert checked >= 2
    # torch options we do not implement must be off by default there
    off = {"amsgrad": False, "centered": False, "maximize": False, "initial_accumulator_value": 0,
           "decoupled_weight_decay": False}
    for arg, value in off.items():
        if arg in theirs and arg not in ours:
            if name == "AdamW" and arg == "decoupled_weight_decay":
                continue  # AdamW is decoupled by definition
            assert theirs[arg].default == value, (name, arg)


# ------------------------------------------------------------------ dtypes and groups


@pytest.mark.parametrize(("name", "kwargs"), [c for c in CONFIGS if c[1]], ids=[
    i for c, i in zip(CONFIGS, CONFIG_IDS) if c[1]])
def test_float32_parameters_stay_float32(backend_name, name, kwargs):
    init = [p.astype(np.float32).astype(np.float64) for p in initial_params()]
    params = [dnn.Parameter(dnn.to_device(p), f"p{i}") for i, p in enumerate(init)]
    assert params[0].data.dtype == backend.xp.float32
    got = run_dnn(make(name, {**kwargs, "clipnorm": 1e6, "clipvalue": 1e6}), 3, params=params)
    for p in params:
        assert p.data.dtype == backend.xp.float32 and p.grad.dtype == backend.xp.float32
    want = run_reference(REFERENCES[name](**kwargs), 3, init=init)
    assert_same_trajectory(got, want, rtol=1e-3, init=init, atol=1e-5)


def test_mixed_dtype_parameters_are_updated_in_their_own_groups(backend_name):
    xp = backend.xp
    init = initial_params()
    params = [dnn.Parameter(dnn.to_device(p, dtype=dt), f"p{i}")
              for i, (p, dt) in enumerate(zip(init, [xp.float64, xp.float32, xp.float64]))]
    opt = Adam(lr=0.05)
    got = run_dnn(opt, 4, params=params)
    groups = dnn.parameter.flat_groups(params)
    assert len(groups) == 2
    assert [p.data.dtype for p in params] == [xp.float64, xp.float32, xp.float64]
    want = run_reference(ref_adam(lr=0.05), 4)
    for a, b in zip(got[-1], want[-1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got[-1][0], want[-1][0], rtol=1e-6)  # float64 (coupled to a float32)


# ------------------------------------------------------------------ clipping


def _clip_grads(scale):
    rng = np.random.default_rng(3)
    return [scale * rng.standard_normal(s) for s in SHAPES]


@pytest.mark.parametrize("scale", [0.05, 3.0])
@pytest.mark.parametrize(("clipnorm", "clipvalue"), [(1.0, None), (None, 0.5), (2.0, 0.7)])
def test_clipping_matches_torch_utilities(float64, scale, clipnorm, clipvalue):
    torch = pytest.importorskip("torch")
    grads = _clip_grads(scale)
    params = [dnn.Parameter(dnn.to_device(np.zeros(s)), f"p{i}") for i, s in enumerate(SHAPES)]
    for p, g in zip(params, grads):
        p.grad = dnn.to_device(g)
    SGD(lr=1.0, clipnorm=clipnorm, clipvalue=clipvalue).step(params)
    tparams = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in SHAPES]
    for p, g in zip(tparams, grads):
        p.grad = torch.tensor(g)
    if clipvalue is not None:  # dnn clips by value first, then by the global norm
        torch.nn.utils.clip_grad_value_(tparams, clipvalue)
    if clipnorm is not None:
        torch.nn.utils.clip_grad_norm_(tparams, clipnorm)
    for p, t in zip(params, tparams):
        np.testing.assert_allclose(dnn.to_numpy(p.grad), t.grad.numpy(), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(dnn.to_numpy(p.data), -t.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_clipping_by_formula(float64):
    grads = _clip_grads(3.0)
    norm = math.sqrt(sum(float((g * g).sum()) for g in grads))
    params = [dnn.Parameter(dnn.to_device(np.zeros(s)), f"p{i}") for i, s in enumerate(SHAPES)]
    for p, g in zip(params, grads):
        p.grad = dnn.to_device(g)
    SGD(lr=1.0, clipnorm=1.5).step(params)
    clipped = [dnn.to_numpy(p.grad) for p in params]
    assert math.sqrt(sum(float((g * g).sum()) for g in clipped)) == pytest.approx(1.5, rel=1e-6)
    for c, g in zip(clipped, grads):
        np.testing.assert_allclose(c, g * 1.5 / (norm + 1e-6), rtol=1e-12)
    for p, g in zip(params, grads):
        p.grad = dnn.to_device(g)
    SGD(lr=1.0, clipvalue=0.25).step(params)
    for p, g in zip(params, grads):
        np.testing.assert_array_equal(dnn.to_numpy(p.grad), np.clip(g, -0.25, 0.25))


# ------------------------------------------------------------------ schedules


def test_schedule_formulas():
    inv = schedules.InverseTimeDecay(0.1, decay=0.5)
    assert [inv(t) for t in range(4)] == pytest.approx([0.1, 0.1 / 1.5, 0.05, 0.1 / 2.5])
    step = schedules.StepDecay(1.0, step_size=3, gamma=0.5)
    assert [step(t) for t in range(8)] == pytest.approx([1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25])
    exp = schedules.ExponentialDecay(2.0, gamma=0.9)
    assert [exp(t) for t in range(4)] == pytest.approx([2.0, 1.8, 1.62, 1.458])
    exp10 = schedules.ExponentialDecay(2.0, gamma=0.5, decay_steps=10)
    assert exp10(10) == pytest.approx(1.0) and exp10(5) == pytest.approx(2.0 * 0.5**0.5)
    cos = schedules.CosineDecay(1.0, total_steps=4, min_lr=0.2)
    assert [cos(t) for t in range(7)] == pytest.approx(
        [1.0, 0.2 + 0.4 * (1 + math.cos(math.pi / 4)), 0.6, 0.2 + 0.4 * (1 + math.cos(3 * math.pi / 4)),
         0.2, 0.2, 0.2])
    warm = schedules.LinearWarmup(0.4, warmup_steps=4)
    assert [warm(t) for t in range(6)] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.4])
    warm_from = schedules.LinearWarmup(1.0, warmup_steps=2, start_factor=0.5)
    assert [warm_from(t) for t in range(3)] == pytest.approx([0.5, 0.75, 1.0])
    chained = schedules.LinearWarmup(schedules.ExponentialDecay(1.0, 0.5), warmup_steps=2)
    assert [chained(t) for t in range(4)] == pytest.approx([0.0, 0.5 * 0.5, 0.25, 0.125])


@pytest.mark.parametrize("which", ["step", "exponential", "cosine", "warmup"])
def test_schedules_match_torch_schedulers(which):
    torch = pytest.importorskip("torch")
    lrs = torch.optim.lr_scheduler
    ours, theirs = {
        "step": (schedules.StepDecay(0.1, step_size=3, gamma=0.3),
                 lambda o: lrs.StepLR(o, step_size=3, gamma=0.3)),
        "exponential": (schedules.ExponentialDecay(0.1, gamma=0.8),
                        lambda o: lrs.ExponentialLR(o, gamma=0.8)),
        "cosine": (schedules.CosineDecay(0.1, total_steps=6, min_lr=0.01),
                   lambda o: lrs.CosineAnnealingLR(o, T_max=6, eta_min=0.01)),
        "warmup": (schedules.LinearWarmup(0.1, warmup_steps=4, start_factor=0.25),
                   lambda o: lrs.LinearLR(o, start_factor=0.25, end_factor=1.0, total_iters=4)),
    }[which]
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched = theirs(opt)
    for t in range(7):
        assert ours(t) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12, abs=1e-15), t
        opt.step()
        sched.step()


def test_optimizer_uses_its_schedule(float64):
    sched = schedules.InverseTimeDecay(0.2, decay=0.3)
    opt = SGD(lr=sched)
    params = [dnn.Parameter(dnn.to_device(p.copy()), f"p{i}") for i, p in enumerate(initial_params())]
    lrs = []
    trajectory = []
    for _ in range(5):
        host = [dnn.to_numpy(p.data).copy() for p in params]
        for p, g in zip(params, grad_fn(host)):
            p.grad = dnn.to_device(g)
        opt.step(params)
        lrs.append(opt.lr)
        trajectory.append([dnn.to_numpy(p.data).copy() for p in params])
    assert lrs == pytest.approx([sched(t) for t in range(5)])

    def update(p, g, s, t):
        return p - sched(t - 1) * g
    want = run_reference(update, 5)
    assert_same_trajectory(trajectory, want, rtol=1e-12)


def test_adam_with_schedule_matches_torch_scheduler(float64):
    torch = pytest.importorskip("torch")
    got = run_dnn(Adam(lr=schedules.ExponentialDecay(0.05, gamma=0.7)), 8)
    want = run_torch("Adam", {"lr": 0.05}, 8,
                     scheduler=lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.7))
    assert_same_trajectory(got, want, rtol=1e-6)


# ------------------------------------------------------------------ state round trip


@pytest.mark.parametrize(("name", "kwargs"), [c for c in CONFIGS if c[1]], ids=[
    i for c, i in zip(CONFIGS, CONFIG_IDS) if c[1]])
def test_state_dict_round_trip_continues_identically(float64, name, kwargs):
    first = make(name, kwargs)
    params = [dnn.Parameter(dnn.to_device(p.copy()), f"p{i}") for i, p in enumerate(initial_params())]
    run_dnn(first, 4, params=params)
    saved = first.state_dict(params)
    saved = {**saved, "arrays": {k: dnn.to_numpy(v).copy() for k, v in saved["arrays"].items()}}
    assert saved["iterations"] == 4
    clones = [dnn.Parameter(dnn.to_device(dnn.to_numpy(p.data).copy()), p.name) for p in params]
    second = make(name, kwargs)
    second.load_state_dict(clones, saved)
    assert second.iterations == 4
    resumed = run_dnn(second, 4, params=clones)
    uninterrupted = run_dnn(first, 4, params=params)
    for a, b in zip(resumed, uninterrupted):
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=1e-14, atol=0)
    want = run_reference(REFERENCES[name](**kwargs), 8)[4:]
    assert_same_trajectory(resumed, want, rtol=1e-9)


def test_state_dict_names_state_by_parameter_index(float64):
    params = [dnn.Parameter(dnn.to_device(p.copy()), f"p{i}") for i, p in enumerate(initial_params())]
    opt = Adam()
    run_dnn(opt, 2, params=params)
    state = opt.state_dict(params)
    assert set(state["arrays"]) == {f"{i}.{n}" for i in range(3) for n in ("exp_avg", "exp_avg_sq")}
    for i, shape in enumerate(SHAPES):
        assert tuple(state["arrays"][f"{i}.exp_avg"].shape) == shape


# ------------------------------------------------------------------ bad arguments


@pytest.mark.parametrize(
    ("factory", "needle"),
    [(lambda: SGD(lr=0), "lr"), (lambda: Adam(lr=-1.0), "lr"),
     (lambda: SGD(weight_decay=-0.1), "weight_decay"),
     (lambda: SGD(clipnorm=0), "clipnorm"), (lambda: Adam(clipvalue=-1.0), "clipvalue"),
     (lambda: Adam(betas=(1.0, 0.999)), "betas"), (lambda: NAdam(betas=(0.9, -0.1)), "betas"),
     (lambda: SGD(lr=0.1, nesterov=True), "nesterov"),
     (lambda: SGD(lr=0.1, momentum=0.9, nesterov=True, dampening=0.1), "nesterov")],
)
def test_bad_optimizer_arguments(factory, needle):
    with pytest.raises(ValueError, match=needle):
        factory()


def test_optimizer_by_name():
    assert isinstance(optim.get("adam"), Adam)
    assert isinstance(optim.get("AdamW"), AdamW)
    assert isinstance(optim.get("nadam"), NAdam)
    assert isinstance(optim.get("rmsprop"), RMSprop)
    assert isinstance(optim.get("adagrad"), Adagrad)
    sgd = optim.get("sgd", lr=0.1, momentum=0.9)
    assert isinstance(sgd, SGD) and sgd.lr == 0.1 and sgd.momentum == 0.9
    mine = Adam()
    assert optim.get(mine) is mine


def test_unknown_optimizer_lists_valid_names():
    with pytest.raises(ValueError) as info:
        optim.get("adadelta")
    message = str(info.value)
    assert "adadelta" in message
    for valid in REFERENCES:
        assert valid in message


def test_state_dict_round_trip_with_a_shared_parameter(float64):
    """A parameter listed twice (a layer used twice) is packed and saved once."""
    init = initial_params()[:2]

    def fresh():
        a, b = (dnn.Parameter(dnn.to_device(p.copy()), f"p{i}") for i, p in enumerate(init))
        return [a, b, a]

    def step(opt, params):
        grads = grad_fn([dnn.to_numpy(p.data).copy() for p in params[:2]])
        for p, g in zip(params, grads):
            p.grad = dnn.to_device(g)
        opt.step(params)

    params, opt = fresh(), Adam(lr=0.05)
    for _ in range(3):
        step(opt, params)
    saved = opt.state_dict(params)
    assert set(saved["arrays"]) == {"0.exp_avg", "0.exp_avg_sq", "1.exp_avg", "1.exp_avg_sq"}
    saved = {**saved, "arrays": {k: dnn.to_numpy(v).copy() for k, v in saved["arrays"].items()}}
    clones = fresh()
    for c, p in zip(clones, params):
        c.data[...] = p.data
    resumed = Adam(lr=0.05)
    resumed.load_state_dict(clones, saved)
    for _ in range(3):
        step(opt, params)
        step(resumed, clones)
    for c, p in zip(clones, params):
        np.testing.assert_array_equal(dnn.to_numpy(c.data), dnn.to_numpy(p.data))
    want = run_reference(ref_adam(lr=0.05), 6, init=init)
    for p, w in zip(params, want[-1]):
        np.testing.assert_allclose(dnn.to_numpy(p.data), w, rtol=1e-6)


def _uncoupled_steps(opt, params, steps):
    for _ in range(steps):
        for i, p in enumerate(params):
            x = dnn.to_numpy(p.data)
            p.grad = dnn.to_device(x + 0.3 * x**3 - 0.1 * (i + 1))
        opt.step(params)


@pytest.mark.parametrize(("name", "kwargs"), [("Adam", {"lr": 0.05}), ("SGD", {"lr": 0.05, "momentum": 0.9}),
                                              ("RMSprop", {"lr": 0.01, "momentum": 0.5})])
def test_a_changed_parameter_list_keeps_the_state_of_known_parameters(float64, name, kwargs):
    """Adding a parameter (a repack into a new flat group) must not reset the others' state."""
    a, b, c = (dnn.Parameter(dnn.to_device(p.copy()), f"p{i}") for i, p in enumerate(initial_params()))
    opt = make(name, kwargs)
    _uncoupled_steps(opt, [a, b], 3)
    _uncoupled_steps(opt, [a, b, c], 3)  # c joins: a and b are repacked with it
    assert a.group is c.group
    ref_a, ref_b = (dnn.Parameter(dnn.to_device(p.copy()), f"p{i}")
                    for i, p in enumerate(initial_params()[:2]))
    _uncoupled_steps(make(name, kwargs), [ref_a, ref_b], 6)
    for p, r in ((a, ref_a), (b, ref_b)):
        np.testing.assert_allclose(dnn.to_numpy(p.data), dnn.to_numpy(r.data), rtol=1e-12)
    assert len(opt._states) == 1  # the abandoned group's state was dropped
    state = opt.state_dict([a, b, c])
    assert {k.split(".")[0] for k in state["arrays"]} == {"0", "1", "2"}


def test_clipnorm_is_global_over_groups_of_different_dtypes(backend_name):
    xp = backend.xp
    a = dnn.Parameter(dnn.to_device(np.zeros(3), dtype=xp.float32), "a")
    b = dnn.Parameter(dnn.to_device(np.zeros(2), dtype=xp.float64), "b")
    a.grad = dnn.to_device(np.full(3, 3.0), dtype=xp.float32)
    b.grad = dnn.to_device(np.full(2, 4.0), dtype=xp.float64)
    SGD(lr=1.0, clipnorm=1.0).step([a, b])
    scale = 1.0 / (math.sqrt(27 + 32) + 1e-6)
    np.testing.assert_allclose(dnn.to_numpy(a.data), -3.0 * scale, rtol=1e-6)
    np.testing.assert_allclose(dnn.to_numpy(b.data), -4.0 * scale, rtol=1e-12)
    assert a.data.dtype == xp.float32 and b.data.dtype == xp.float64


# ------------------------------------------------------------------ chunked in-place updates


@pytest.mark.parametrize(("name", "kwargs"), CONFIGS, ids=CONFIG_IDS)
def test_trajectory_with_tiny_update_chunks(float64, monkeypatch, name, kwargs):
    """Optimizers may update the flat buffer chunk by chunk; chunks that cut through
    parameters (and a short last chunk) must give the same trajectory."""
    from dnn.backend import ops

    monkeypatch.setattr(ops, "scratch_elements", lambda: 5, raising=False)
    got = run_dnn(make(name, kwargs), steps=4)
    want = run_reference(REFERENCES[name](**kwargs), steps=4)
    assert_same_trajectory(got, want, rtol=1e-9)


@pytest.mark.parametrize("name", list(REFERENCES))
def test_trajectory_on_a_large_flat_buffer(float64, name):
    """More elements than one CPU update chunk (2**18)."""
    kwargs = {"SGD": {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
              "Adagrad": {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.01},
              "RMSprop": {"lr": 0.01, "momentum": 0.5, "weight_decay": 0.01},
              "Adam": {"lr": 0.01, "weight_decay": 0.01}, "AdamW": {"lr": 0.01},
              "NAdam": {"lr": 0.01, "weight_decay": 0.01}}[name]
    init = initial_params(shapes=[(600, 500), (1000,), (7, 11)])
    got = run_dnn(make(name, kwargs), steps=2, init=init)
    want = run_reference(REFERENCES[name](**kwargs), steps=2, init=init)
    assert_same_trajectory(got, want, rtol=1e-9, init=init)


# ------------------------------------------------------------------ Keras argument names


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_learning_rate_is_an_alias_of_lr(name):
    cls = optim.OPTIMIZERS[name]
    keras, ours = cls(learning_rate=0.0125), cls(lr=0.0125)
    assert keras.lr == keras.learning_rate == 0.0125
    assert keras.get_config() == ours.get_config()
    assert "learning_rate" not in keras.get_config()  # model files keep the canonical name
    with pytest.raises(TypeError, match=rf"{name}: got both lr= and learning_rate="):
        cls(lr=0.1, learning_rate=0.1)
    with pytest.raises(TypeError, match="got both lr= and learning_rate="):
        cls(0.1, learning_rate=0.1)  # lr given by position


def test_learning_rate_accepts_a_schedule():
    schedule = schedules.ExponentialDecay(0.1, 0.5)
    opt = SGD(learning_rate=schedule)
    assert opt.schedule is schedule and opt.lr == pytest.approx(0.1)


@pytest.mark.parametrize("cls", [Adam, AdamW, NAdam])
def test_adam_family_takes_keras_names(cls):
    opt = cls(learning_rate=1e-3, beta_1=0.8)
    assert opt.betas == (0.8, 0.999) and opt.lr == 1e-3
    opt = cls(beta_2=0.95, epsilon=1e-7)
    assert opt.betas == (0.9, 0.95) and opt.eps == 1e-7
    assert cls(beta_1=0.7, beta_2=0.9).get_config() == cls(betas=(0.7, 0.9)).get_config()
    with pytest.raises(TypeError, match=r"got both betas= and beta_1= \(the Keras name of betas\[0\]\)"):
        cls(betas=(0.9, 0.99), beta_1=0.8)
    with pytest.raises(TypeError, match="got both eps= and epsilon="):
        cls(eps=1e-8, epsilon=1e-7)
    with pytest.raises(ValueError, match=r"betas\[0\]"):  # checked as the canonical argument
        cls(beta_1=1.5)


def test_other_keras_names():
    assert RMSprop(rho=0.9, epsilon=1e-7).get_config() == RMSprop(alpha=0.9, eps=1e-7).get_config()
    assert Adagrad(epsilon=1e-7).eps == 1e-7
    assert SGD(global_clipnorm=1.0).clipnorm == 1.0  # both are the global norm over all grads
    assert isinstance(optim.get("adam", learning_rate=0.01, beta_1=0.5), Adam)


def test_keras_names_leave_the_signature_alone():
    """The aliases are translated by a wrapper; introspection still sees the torch names."""
    assert list(inspect.signature(Adam).parameters) == ["lr", "betas", "eps", "weight_decay", "kwargs"]
    for cls in optim.OPTIMIZERS.items():
        assert not set(inspect.signature(cls[1]).parameters) & set(cls[1].keras_aliases)


def test_a_user_subclass_inherits_the_keras_names():
    class Halved(Adam):
        keras_aliases = {"decay": "weight_decay"}  # noqa: RUF012

        def __init__(self, lr=0.5, **kwargs):
            super().__init__(lr=lr / 2, **kwargs)

    opt = Halved(learning_rate=0.4, beta_1=0.6, decay=0.1)
    assert (opt.lr, opt.betas, opt.weight_decay) == (0.2, (0.6, 0.999), 0.1)


def test_learning_rate_property_is_what_the_next_step_uses(float64):
    p = dnn.Parameter(dnn.to_device(np.array([2.0, -1.0])), "p")
    opt = SGD(lr=0.1)
    opt.learning_rate = 0.5
    assert opt.lr == 0.5
    p.grad = dnn.to_device(np.array([0.5, -4.0]))
    opt.step([p])
    np.testing.assert_allclose(dnn.to_numpy(p.data), [2.0 - 0.25, -1.0 + 2.0], rtol=1e-15)
    assert opt.state_dict([p])["lr"] == 0.5


def test_an_unknown_or_misspelt_argument_names_the_optimizer_and_the_fix():
    with pytest.raises(TypeError, match=r"Adam: unknown argument learnig_rate=0.001; did you mean "
                                        r"learning_rate=\?"):
        dnn.optim.Adam(learnig_rate=1e-3)
    with pytest.raises(TypeError, match=r"SGD: unknown argument amsgrad=True \(it takes .*lr"):
        dnn.optim.SGD(amsgrad=True)
    with pytest.raises(ValueError, match=r"lr must be .*got 'x' \(given as learning_rate=\)"):
        dnn.optim.Adam(learning_rate="x")
    with pytest.raises(ValueError, match=r"betas\[0\] must be .*\(given as beta_1=\)"):
        dnn.optim.Adam(beta_1=2.0)
