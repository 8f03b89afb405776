"""Callbacks: each one's behaviour in a real ``fit``, with scripted monitored values
where the exact epoch matters."""

from __future__ import annotations

import csv
import importlib.util
import math

import numpy as np
import pytest

import dnn
from dnn import backend, callbacks
from dnn.layers import Dense, ReLU


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = (x[:, 0] - x[:, 1] > 0).astype(np.int64)
    return x, y


def small_model(lr=0.05, optimizer=None):
    model = dnn.Sequential([Dense(4, 8), ReLU(), Dense(8, 2)])
    model.compile(optimizer=optimizer or dnn.optim.SGD(lr=lr), metrics=["accuracy"])
    return model


class Script(callbacks.Callback):
    """Overwrites logs[key] with a scripted sequence (must run before the callback under test)
    and snapshots the weights at the end of every epoch."""

    def __init__(self, values, key="val_loss"):
        self.values, self.key, self.snapshots = values, key, []

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]
        self.snapshots.append({k: backend.to_numpy(v).copy() for k, v in self.model.state_dict().items()})


def weights(model):
    return {k: backend.to_numpy(v).copy() for k, v in model.state_dict().items()}


# ------------------------------------------------------------------ EarlyStopping
def test_early_stopping_stops_at_the_right_epoch_and_restores_best(backend_name):
    x, y = data()
    model = small_model()
    script = Script([1.0, 0.5, 0.6, 0.7, 0.4, 0.3, 0.2, 0.1])
    stop = callbacks.EarlyStopping(patience=2, restore_best_weights=True)
    history = model.fit(x, y, epochs=8, batch_size=16, callbacks=[script, stop], verbose=0)
    # best at epoch index 1; epochs 2 and 3 do not improve -> stop after epoch 3
    assert len(history.epoch) == 4
    assert stop.stopped_epoch == 3 and stop.best_epoch == 1 and stop.best == 0.5
    restored = weights(model)
    for key, value in script.snapshots[1].items():
        np.testing.assert_array_equal(restored[key], value)
    assert not np.array_equal(restored["0.weight"], script.snapshots[3]["0.weight"])


def test_early_stopping_min_delta_mode_and_no_restore():
    x, y = data()
    model = small_model()
    script = Script([0.50, 0.55, 0.551, 0.552, 0.9], key="val_accuracy")
    stop = callbacks.EarlyStopping(monitor="val_accuracy", patience=1, min_delta=0.01)
    assert stop.mode == "max"
    history = model.fit(x, y, epochs=5, batch_size=16, callbacks=[script, stop], verbose=0)
    # 0.55 improves by 0.05 > 0.01; 0.551 does not by more than min_delta -> stop at epoch 2
    assert len(history.epoch) == 3 and stop.best_epoch == 1
    final = weights(model)
    np.testing.assert_array_equal(final["0.weight"], script.snapshots[2]["0.weight"])


def test_early_stopping_warns_when_monitor_missing():
    x, y = data()
    model = small_model()
    with pytest.warns(RuntimeWarning, match="'val_loss' is not in the logs"):
        history = model.fit(x, y, epochs=3, batch_size=32, verbose=0,
                            callbacks=[callbacks.EarlyStopping(patience=0)])
    assert len(history.epoch) == 3


# ------------------------------------------------------------------ ModelCheckpoint
needs_io = pytest.mark.skipif(importlib.util.find_spec("dnn.io") is None,
                              reason="dnn.io (model files) is not available yet")


@needs_io
def test_checkpoint_writes_only_on_improvement(tmp_path, backend_name):
    x, y = data()
    model = small_model()
    script = Script([1.0, 0.8, 0.9, 0.7, 0.75])
    ckpt = callbacks.ModelCheckpoint(tmp_path / "m-{epoch:02d}.dnn", save_best_only=True)
    model.fit(x, y, epochs=5, batch_size=16, callbacks=[script, ckpt], verbose=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-01.dnn", "m-02.dnn", "m-04.dnn"]
    assert ckpt.saved == [str(tmp_path / f"m-0{e}.dnn") for e in (1, 2, 4)]
    loaded = dnn.load_model(str(tmp_path / "m-04.dnn"))
    for key, value in script.snapshots[3].items():
        np.testing.assert_allclose(backend.to_numpy(loaded.state_dict()[key]), value)


@needs_io
def test_checkpoint_every_epoch_overwrites(tmp_path):
    x, y = data()
    model = small_model()
    ckpt = callbacks.ModelCheckpoint(tmp_path / "last.dnn")
    model.fit(x, y, epochs=3, batch_size=32, callbacks=[ckpt], verbose=0)
    assert len(ckpt.saved) == 3 and [p.name for p in tmp_path.iterdir()] == ["last.dnn"]


# ------------------------------------------------------------------ learning rate
class LRRecorder(callbacks.Callback):
    def __init__(self):
        self.lrs = []

    def on_batch_end(self, batch, logs=None):
        if batch == 0:
            self.lrs.append(self.model.optimizer.lr)


def test_learning_rate_scheduler_one_and_two_arguments(backend_name):
    x, y = data()
    model = small_model(lr=0.1)
    rec = LRRecorder()
    model.fit(x, y, epochs=3, batch_size=32, verbose=0,
              callbacks=[callbacks.LearningRateScheduler(lambda epoch: 0.1 / (epoch + 1)), rec])
    assert rec.lrs == pytest.approx([0.1, 0.05, 0.1 / 3])
    rec2 = LRRecorder()
    model.fit(x, y, epochs=3, batch_size=32, verbose=0,
              callbacks=[callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5), rec2])
    assert rec2.lrs == pytest.approx([0.1 / 6, 0.1 / 12, 0.1 / 24])


def test_learning_rate_scheduler_refuses_a_scheduled_optimizer():
    x, y = data()
    model = small_model(optimizer=dnn.optim.SGD(lr=dnn.optim.schedules.InverseTimeDecay(0.1, 0.01)))
    with pytest.raises(ValueError, match="per-step schedule"):
        model.fit(x, y, epochs=1, verbose=0,
                  callbacks=[callbacks.LearningRateScheduler(lambda epoch: 0.01)])


def test_reduce_lr_on_plateau(backend_name):
    x, y = data()
    model = small_model(lr=0.1)
    script = Script([1.0] * 7)
    reduce = callbacks.ReduceLROnPlateau(factor=0.5, patience=2, min_lr=0.02)
    rec = LRRecorder()
    model.fit(x, y, epochs=7, batch_size=32, verbose=0, callbacks=[script, reduce, rec])
    # epoch 0 sets the best; epochs 1,2 wait -> reduce after 2; 3,4 -> after 4; 5,6 -> floor
    assert rec.lrs == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    assert reduce.reductions == [(2, 0.05), (4, 0.025), (6, 0.02)]
    assert model.optimizer.lr == pytest.approx(0.02)


def test_reduce_lr_on_plateau_scales_a_schedule():
    x, y = data()
    schedule = dnn.optim.schedules.InverseTimeDecay(0.1, 0.0)  # constant 0.1 through the schedule
    model = small_model(optimizer=dnn.optim.SGD(lr=schedule))
    script = Script([1.0] * 4)
    rec = LRRecorder()
    model.fit(x, y, epochs=4, batch_size=32, verbose=0,
              callbacks=[script, callbacks.ReduceLROnPlateau(factor=0.1, patience=1), rec])
    assert rec.lrs == pytest.approx([0.1, 0.1, 0.01, 0.001])
    assert model.optimizer.schedule(0) == pytest.approx(1e-4)  # reduced after epoch 3 too


# ------------------------------------------------------------------ TerminateOnNaN
class Poison(callbacks.Callback):
    """Sets the first weight to NaN after batch ``batch`` of epoch ``epoch``."""

    def __init__(self, epoch, batch):
        self.at = (epoch, batch)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            weight = self.model.layers[0].weight.data
            weight[...] = backend.xp.full(weight.shape, math.nan, dtype=weight.dtype)


def test_terminate_on_nan_every_batch(backend_name, capsys):
    x, y = data(160)
    model = small_model()
    stop = callbacks.TerminateOnNaN(check_every=1)
    history = model.fit(x, y, epochs=5, batch_size=16, verbose=0, shuffle=False,
                        callbacks=[Poison(1, 5), stop])
    assert stop.terminated_at == (1, 6)  # the first batch whose loss is NaN
    assert len(history.epoch) == 2 and math.isnan(history.history["loss"][-1])
    out = capsys.readouterr().out
    assert "epoch 2, batch 7" in out and "NaN" in out


def test_terminate_on_nan_checks_only_where_fit_syncs(backend_name):
    x, y = data(160)
    model = small_model()
    stop = callbacks.TerminateOnNaN()
    history = model.fit(x, y, epochs=5, batch_size=16, verbose=0, log_every=4,
                        callbacks=[Poison(0, 5), stop])
    assert stop.terminated_at == (0, 7)  # checked at batches 4, 8 (and 10): caught at the 8th
    assert "epoch 1, batches 5-8" in stop.message
    assert len(history.epoch) == 1


def test_without_terminate_on_nan_fit_raises():
    x, y = data(160)
    model = small_model()
    with pytest.raises(FloatingPointError, match="epoch 1"):
        model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[Poison(0, 2)])


# ------------------------------------------------------------------ CSVLogger, clipping
def test_csv_logger(tmp_path):
    x, y = data()
    model = small_model()
    path = tmp_path / "logs" / "train.csv"
    history = model.fit(x, y, epochs=3, batch_size=16, validation_data=(x, y), verbose=0,
                        callbacks=[callbacks.CSVLogger(path)])
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert set(rows[0]) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy"}
    assert [float(r["val_loss"]) for r in rows] == pytest.approx(history.history["val_loss"])
    model.fit(x, y, epochs=2, batch_size=16, validation_data=(x, y), verbose=0,
              callbacks=[callbacks.CSVLogger(path, append=True)])
    with open(path, newline="") as f:
        assert len(list(csv.DictReader(f))) == 5


def test_compile_accepts_clipnorm_and_clipvalue():
    model = dnn.Sequential([Dense(4, 2)])
    model.compile(optimizer="sgd", clipnorm=1.0, clipvalue=0.5)
    assert model.optimizer.clipnorm == 1.0 and model.optimizer.clipvalue == 0.5
    with pytest.raises(ValueError, match="clipnorm"):
        model.compile(clipnorm=-1.0)
    # a huge gradient moves the weights by at most lr * clipnorm
    dnn.set_default_dtype("float64")
    model = dnn.Sequential([Dense(1, 1, bias=False)])
    model.compile(loss="mse", optimizer=dnn.optim.SGD(lr=1.0), clipnorm=0.1)
    before = backend.to_numpy(model.layers[0].weight.data).copy()
    model.train_step(backend.asarray(np.array([[1000.0]])), backend.asarray(np.array([[-1000.0]])))
    moved = np.abs(backend.to_numpy(model.layers[0].weight.data) - before).max()
    assert moved == pytest.approx(0.1, rel=1e-4)


def test_checkpoint_path_is_checked_before_training(tmp_path):
    """``{val_loss}`` without validation data, or an unwritable place, fails before epoch 1."""
    model = dnn.Sequential([dnn.layers.Dense(3, 2)])
    model.compile(loss="mse", optimizer="sgd")
    x, y = np.zeros((8, 3), np.float32), np.zeros((8, 2), np.float32)
    start = dnn.to_numpy(model.layers[0].weight.data).copy()
    bad = dnn.callbacks.ModelCheckpoint(str(tmp_path / "{val_loss:.3f}.dnn"))
    with pytest.raises(ValueError, match=r"val_loss.*validation_data="):
        model.fit(x, y, callbacks=[bad], verbose=0)
    (tmp_path / "dir.dnn").mkdir()
    with pytest.raises(OSError, match=r"dir\.dnn"):
        model.fit(x, y, callbacks=[dnn.callbacks.ModelCheckpoint(str(tmp_path / "dir.dnn"))],
                  verbose=0)
    np.testing.assert_array_equal(dnn.to_numpy(model.layers[0].weight.data), start)
    good = dnn.callbacks.ModelCheckpoint(str(tmp_path / "sub" / "m-{epoch}-{loss:.2f}.dnn"))
    model.fit(x, y, epochs=2, callbacks=[good], verbose=0)
    assert len(good.saved) == 2
