"""The learning-rate range test: the geometric sweep, the smoothed loss, stopping on
divergence, the suggestion rule, the plot, and a model restored bit for bit afterwards."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

import dnn
from dnn import backend
from dnn.callbacks.lr_finder import LRFinder, find_lr
from dnn.layers import BatchNorm, Dense, ReLU
from dnn.layers.base import Layer
from dnn.optim import SGD, Adam, schedules


def data(n=512, seed=0):
    """Learnable: the class is the sign of x₀ − x₁."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    return x, (x[:, 0] - x[:, 1] > 0).astype(np.int64)


def small_model(optimizer, *layers):
    dnn.manual_seed(0)
    model = dnn.Sequential([Dense(4, 16), *layers, ReLU(), Dense(16, 2)])
    model.compile(optimizer=optimizer, metrics=["accuracy"])
    return model


def snapshot(model):
    """Everything the range test must leave as it found it, as host copies."""
    opt = model.optimizer
    state = opt.state_dict(model.optimizer_parameters)
    return {
        "weights": {k: backend.to_numpy(v).copy() for k, v in model.state_dict().items()},
        "arrays": {k: backend.to_numpy(v).copy() for k, v in state["arrays"].items()},
        "lr": opt.lr, "iterations": opt.iterations, "schedule": opt.schedule,
        "epoch": model.epoch, "history": getattr(model, "history", None),
        "rng_state": model.rng_state,
    }


def assert_identical(before, after):
    """Bit for bit; optimizer state that did not exist before (a fresh optimizer) must be
    zeros after, which is what a fresh optimizer starts from."""
    assert before.keys() == after.keys()
    assert before["weights"].keys() == after["weights"].keys()
    assert before["arrays"].keys() <= after["arrays"].keys()
    for key in ("weights", "arrays"):
        for name, value in after[key].items():
            want = before[key].get(name, np.zeros_like(value))
            assert value.dtype == want.dtype
            np.testing.assert_array_equal(value, want, err_msg=f"{key} {name}")
    for key in ("lr", "iterations", "epoch"):
        assert after[key] == before[key], key
    for key in ("schedule", "history", "rng_state"):
        assert after[key] is before[key], key


# ------------------------------------------------------------------ the sweep
def test_lrs_grow_geometrically_from_start_to_end(backend_name):
    x, y = data()
    model = small_model(SGD(lr=0.05))
    finder = find_lr(model, x, y, start_lr=1e-4, end_lr=0.5, num_steps=30, batch_size=32,
                     diverge_factor=1e6, seed=0)  # 16 batches an epoch: the sweep spans 2
    lrs = np.asarray(finder.lrs)
    assert len(lrs) == 30 and not finder.diverged
    assert lrs[0] == 1e-4
    np.testing.assert_allclose(lrs[-1], 0.5, rtol=1e-12)
    np.testing.assert_allclose(lrs[1:] / lrs[:-1], (0.5 / 1e-4) ** (1 / 29), rtol=1e-12)
    assert [finder.lr_at(k) for k in range(30)] == finder.lrs


def test_losses_are_the_bias_corrected_moving_average(backend_name):
    x, y = data()
    model = small_model(SGD(lr=0.05))
    finder = find_lr(model, x, y, start_lr=1e-3, end_lr=1.0, num_steps=20, smoothing=0.9,
                     diverge_factor=1e6)
    raw = finder.raw_losses
    assert len(raw) == len(finder.losses) == 20 and all(math.isfinite(v) for v in raw)
    average, want = 0.0, []
    for k, loss in enumerate(raw):
        average = 0.9 * average + 0.1 * loss
        want.append(average / (1 - 0.9 ** (k + 1)))
    np.testing.assert_allclose(finder.losses, want, rtol=1e-12)
    assert finder.losses[0] == raw[0]
    assert finder.losses[-1] < finder.losses[0]  # the loss falls as the rate grows


# ------------------------------------------------------------------ the model is left alone
@pytest.mark.parametrize("kind", ["trained Adam", "fresh Adam", "SGD with a schedule"])
def test_find_lr_leaves_the_model_bitwise_as_it_was(backend_name, kind):
    x, y = data()
    if kind == "SGD with a schedule":
        optimizer = SGD(lr=schedules.ExponentialDecay(0.1, 0.99), momentum=0.9)
    else:
        optimizer = Adam(lr=0.01)
    model = small_model(optimizer, BatchNorm(16))  # BatchNorm: buffers are restored too
    if kind != "fresh Adam":
        model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    before = snapshot(model)
    finder = find_lr(model, x, y, start_lr=1e-5, end_lr=10.0, num_steps=40, batch_size=32)
    assert len(finder.lrs) >= 4
    assert_identical(before, snapshot(model))


def test_training_after_find_lr_is_as_without_it(backend_name):
    """The random generator is restored too: the next fit shuffles as it would have."""
    x, y = data()

    def trained(with_test):
        model = small_model(Adam(lr=0.01))
        model.fit(x, y, epochs=1, batch_size=64, verbose=0, seed=3)
        if with_test:
            find_lr(model, x, y, num_steps=30)
        model.fit(x, y, epochs=1, batch_size=64, verbose=0)
        return snapshot(model)["weights"]

    plain, tested = trained(False), trained(True)
    for key, value in plain.items():
        np.testing.assert_array_equal(tested[key], value, err_msg=key)


def test_as_a_plain_callback_it_stops_fit_and_restores_on_train_end():
    x, y = data()
    model = small_model(SGD(lr=0.05))
    before = snapshot(model)["weights"]
    finder = LRFinder(start_lr=1e-3, end_lr=0.1, num_steps=20)
    history = model.fit(x, y, epochs=5, batch_size=32, verbose=0, callbacks=[finder])
    assert len(finder.lrs) == 20 and len(history.epoch) == 2  # 16 batches an epoch
    assert model.optimizer.lr == 0.05 and model.optimizer.iterations == 0 and model.epoch == 0
    for key, value in before.items():
        np.testing.assert_array_equal(backend.to_numpy(model.state_dict()[key]), value)


class Faulty(Layer):
    """The identity until its ``after``-th training forward; from then on it raises, or
    with ``nan=True`` outputs NaN."""

    def __init__(self, after, nan=False):
        self.after, self.nan, self.calls = after, nan, 0

    def forward_with(self, ctx, x, *, training=False):
        self.calls += training
        if self.calls < self.after:
            return x
        if not self.nan:
            raise RuntimeError("boom")
        return x * math.nan

    def backward_with(self, ctx, grad):
        return grad


def test_a_failing_fit_still_restores_the_model():
    x, y = data()
    model = small_model(Adam(lr=0.01), Faulty(after=7))
    before = snapshot(model)
    with pytest.raises(RuntimeError, match="boom"):
        find_lr(model, x, y, num_steps=20)
    assert_identical(before, snapshot(model))


# ------------------------------------------------------------------ divergence
def test_training_stops_early_when_the_loss_diverges(backend_name):
    x, y = data()
    model = small_model(SGD(lr=0.05))
    before = snapshot(model)
    finder = find_lr(model, x, y, start_lr=1e-3, end_lr=1e6, num_steps=100, batch_size=32,
                     smoothing=0.9)
    assert finder.diverged and 4 <= len(finder.lrs) < 100
    best = np.minimum.accumulate(finder.losses)
    assert finder.losses[-1] > 4.0 * best[-1]  # recorded, and the first point past 4×best
    assert all(v <= 4.0 * b for v, b in zip(finder.losses[:-1], best[:-1]))
    assert_identical(before, snapshot(model))


def test_a_non_finite_loss_stops_the_test_unrecorded():
    x, y = data()
    model = small_model(SGD(lr=0.05), Faulty(after=6, nan=True))
    before = snapshot(model)
    finder = find_lr(model, x, y, start_lr=1e-3, end_lr=0.1, num_steps=20)  # fit does not raise
    assert finder.diverged and len(finder.lrs) == len(finder.raw_losses) == 5
    assert all(math.isfinite(v) for v in finder.raw_losses + finder.losses)
    assert_identical(before, snapshot(model))


def test_suggestion_lies_inside_the_range_below_the_divergence_point(backend_name):
    x, y = data()
    model = small_model(SGD(lr=0.05, momentum=0.9))
    finder = find_lr(model, x, y, start_lr=1e-4, end_lr=100.0, num_steps=80, smoothing=0.9,
                     seed=0)
    assert finder.diverged
    best = finder.suggestion()
    assert best in finder.lrs
    assert 1e-4 < best < 100.0 and best < finder.lrs[-1]
    assert 3e-3 < best < 2.0  # where this problem learns fastest, not a tiny or huge rate
    i = finder.lrs.index(best)
    assert finder.losses[i + 1] < finder.losses[i - 1]  # the loss is falling there


def test_suggestion_rule_on_a_curve_by_hand():
    """The steepest fall of L against log lr, ignoring the first n//10 and last n//20
    points (at least one each)."""
    finder = LRFinder(start_lr=1e-3, end_lr=1.0, num_steps=40)
    finder.lrs = [finder.lr_at(k) for k in range(40)]
    losses = np.linspace(2.0, 1.0, 40)
    losses[:3] = [9.0, 5.0, 3.0]  # a steep start, ignored (the first 4 points)
    losses[25:] -= np.linspace(0.0, 0.3, 15)  # steepest within the window from index 25 on
    losses[-2:] = [0.0, -5.0]  # a steep end, ignored (the last 2 points)
    finder.losses = list(losses)
    slopes = np.gradient(losses, np.log(finder.lrs))
    assert int(np.argmin(slopes)) not in range(4, 38)
    assert finder.suggestion() == finder.lrs[4 + int(np.argmin(slopes[4:38]))]


def test_suggestion_needs_enough_points():
    x, y = data()
    model = small_model(SGD(lr=0.05))
    finder = find_lr(model, x, y, start_lr=1e-3, end_lr=0.1, num_steps=3)
    assert len(finder.lrs) == 3
    with pytest.raises(ValueError, match=r"LRFinder\.suggestion: only 3 point\(s\).*at least 4"):
        finder.suggestion()
    with pytest.raises(ValueError, match="only 0 point"):
        LRFinder().suggestion()


# ------------------------------------------------------------------ the plot
def test_plot_writes_a_png(tmp_path):
    if importlib.util.find_spec("matplotlib") is None:
        pytest.skip("matplotlib is not installed (pip install matplotlib)")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    x, y = data()
    finder = find_lr(small_model(SGD(lr=0.05)), x, y, start_lr=1e-4, end_lr=10.0, num_steps=40)
    path = tmp_path / "lr.png"
    figure = finder.plot(path)
    assert isinstance(figure, Figure)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lr.png"]  # no temporary left
    ax = Figure().subplots()
    assert finder.plot(ax=ax) is ax.figure
    assert ax.get_xscale() == "log" and any("suggestion" in t.get_text()
                                             for t in ax.get_legend().get_texts())
    with pytest.raises(ValueError, match=r"LRFinder\.plot: nothing was recorded"):
        LRFinder().plot()


# ------------------------------------------------------------------ bad arguments
@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"start_lr": 1.0, "end_lr": 1.0}, "end_lr must be larger than start_lr"),
    ({"start_lr": 1.0, "end_lr": 0.1}, "end_lr must be larger than start_lr"),
    ({"start_lr": 0.0}, "start_lr"), ({"start_lr": -1e-3}, "start_lr"),
    ({"end_lr": -1.0}, "end_lr"), ({"end_lr": math.inf}, "end_lr"),
    ({"num_steps": 1}, "num_steps"), ({"num_steps": 0}, "num_steps"),
    ({"num_steps": 2.5}, "num_steps"), ({"smoothing": 1.0}, "smoothing"),
    ({"smoothing": -0.1}, "smoothing"), ({"diverge_factor": 1.0}, "diverge_factor"),
    ({"diverge_factor": 0.0}, "diverge_factor"),
])
def test_bad_arguments(kwargs, needle):
    with pytest.raises(ValueError, match=f"LRFinder: {needle}"):
        LRFinder(**kwargs)
    x, y = data(64)
    with pytest.raises(ValueError, match=needle):
        find_lr(small_model(SGD(lr=0.05)), x, y, **kwargs)


def test_find_lr_needs_a_compiled_model_and_owns_epochs_and_callbacks():
    x, y = data(64)
    model = dnn.Sequential([Dense(4, 2)])
    with pytest.raises(RuntimeError, match="find_lr: the Sequential is not compiled"):
        find_lr(model, x, y)
    model.compile(optimizer=SGD(lr=0.1))
    with pytest.raises(TypeError, match="find_lr: callbacks=, epochs= cannot be given"):
        find_lr(model, x, y, epochs=3, callbacks=[])
    with pytest.raises(ValueError, match="find_lr: batch_size"):
        find_lr(model, x, y, batch_size=0)


def test_gradient_accumulation_is_refused_and_nothing_changes():
    x, y = data(64)
    model = small_model(SGD(lr=0.05, gradient_accumulation_steps=2))
    before = snapshot(model)
    with pytest.raises(ValueError, match="LRFinder: the optimizer accumulates gradients over 2"):
        find_lr(model, x, y)
    assert_identical(before, snapshot(model))
