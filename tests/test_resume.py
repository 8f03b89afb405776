"""Exact resume: a run interrupted after epoch 5 and resumed from its checkpoint ends
bitwise equal to the run that was never interrupted (same seed, same backend)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import dnn
from dnn import backend
from dnn import layers as L
from dnn.callbacks import Callback

EPOCHS, STOP_AFTER = 10, 5


class StopAfter(Callback):
    """Sets model.stop_training at the end of epoch ``n`` (counted from 1)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 >= self.n:
            self.model.stop_training = True


def _data():
    rng = np.random.default_rng(42)
    x = rng.normal(size=(120, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5).astype(np.int64)
    return x, y


def _model(seed: int = 7):
    """Dropout (RNG each step), BatchNorm (buffers), Adam with a schedule (state + counters)."""
    dnn.manual_seed(seed)
    model = dnn.Sequential([L.Dense(6, 16), L.BatchNorm(16), L.ReLU(), L.Dropout(0.3),
                            L.Dense(16, 3)])
    model.compile("SoftmaxCrossEntropy",
                  dnn.optim.Adam(lr=dnn.optim.schedules.ExponentialDecay(0.02, 0.9, decay_steps=10)),
                  metrics=["accuracy"])
    return model


def _fit(model, **kwargs):
    x, y = _data()
    return model.fit(x, y, batch_size=16, verbose=0, seed=0, **kwargs)


def _state(model):
    state = {k: np.array(backend.to_numpy(v)) for k, v in model.state_dict().items()}
    opt = model.optimizer.state_dict(model.optimizer_parameters)
    state.update({f"opt.{k}": np.array(backend.to_numpy(v)) for k, v in opt["arrays"].items()})
    return state


def _assert_bitwise(a, b):
    assert a.keys() == b.keys()
    diff = [k for k in a if not np.array_equal(a[k], b[k])]
    assert not diff, f"arrays differ: {diff}"


@pytest.fixture
def uninterrupted():
    model = _model()
    history = _fit(model, epochs=EPOCHS)
    return _state(model), history.history["loss"], model.optimizer.iterations


def test_same_seed_same_result(backend_name, uninterrupted):
    model = _model()
    history = _fit(model, epochs=EPOCHS)
    _assert_bitwise(uninterrupted[0], _state(model))
    assert history.history["loss"] == uninterrupted[1]


@pytest.mark.parametrize("how", ["callback-stop", "shorter-fit"])
def test_resume_from_file_is_bitwise_identical(backend_name, uninterrupted, how, tmp_path):
    expected, losses, iterations = uninterrupted
    model = _model()
    if how == "callback-stop":
        _fit(model, epochs=EPOCHS, callbacks=[StopAfter(STOP_AFTER)])
    else:
        _fit(model, epochs=STOP_AFTER)
    assert model.epoch == STOP_AFTER
    model.save(tmp_path / "ckpt.dnn")
    del model
    dnn.manual_seed(12345)  # anything the process does with the RNG in between...
    dnn.Sequential([L.Dense(50, 50)])  # ...such as building another model
    resumed = dnn.load_model(tmp_path / "ckpt.dnn")
    assert resumed.epoch == STOP_AFTER
    history = _fit(resumed, epochs=EPOCHS, initial_epoch=resumed.epoch)
    assert resumed.optimizer.iterations == iterations
    _assert_bitwise(expected, _state(resumed))
    assert history.history["loss"] == losses[STOP_AFTER:]


def test_resume_in_the_same_process_without_a_file(backend_name, uninterrupted):
    model = _model()
    _fit(model, epochs=STOP_AFTER)
    _fit(model, epochs=EPOCHS, initial_epoch=STOP_AFTER)  # the seed is not re-applied
    _assert_bitwise(uninterrupted[0], _state(model))


def test_resume_without_the_rng_state_differs(uninterrupted, tmp_path):
    """Control: the comparison above can fail — re-seeding on resume changes the run."""
    model = _model()
    _fit(model, epochs=STOP_AFTER)
    model.save(tmp_path / "ckpt.dnn")
    resumed = dnn.load_model(tmp_path / "ckpt.dnn")
    resumed.rng_state = None  # forget the saved generator: fit re-seeds with seed=0
    _fit(resumed, epochs=EPOCHS, initial_epoch=STOP_AFTER)
    state = _state(resumed)
    assert any(not np.array_equal(uninterrupted[0][k], state[k]) for k in state)


_RESUMER = textwrap.dedent("""
    import sys
    import numpy as np
    import dnn
    sys.path.insert(0, sys.argv[3])
    from test_resume import EPOCHS, _fit, _state
    model = dnn.load_model(sys.argv[1])
    _fit(model, epochs=EPOCHS, initial_epoch=model.epoch)
    np.savez(sys.argv[2], **_state(model))
""")


def test_resume_in_a_fresh_process(uninterrupted, tmp_path):
    """The checkpoint alone (no in-memory state) carries everything the run needs."""
    model = _model()
    _fit(model, epochs=EPOCHS, callbacks=[StopAfter(STOP_AFTER)])
    model.save(tmp_path / "ckpt.dnn")
    script = tmp_path / "resume.py"
    script.write_text(_RESUMER)
    env = {**os.environ, "DNN_BACKEND": backend.name}
    subprocess.run([sys.executable, str(script), str(tmp_path / "ckpt.dnn"), str(tmp_path / "out.npz"),
                    str(Path(__file__).parent)], check=True, env=env, timeout=120)
    with np.load(tmp_path / "out.npz", allow_pickle=False) as out:
        _assert_bitwise(uninterrupted[0], dict(out))
