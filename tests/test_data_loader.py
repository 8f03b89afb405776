"""The DataLoader and data-driven fit: same batches as arrays, streams, threads, weights.

Every test that trains runs on every installed backend. The loader's background
thread must never outlive a pass: after each test, no thread named
``dnn-DataLoader`` is alive.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import traceback

import numpy as np
import pytest

import dnn
from dnn import backend
from dnn.data import ArrayDataset, DataLoader
from dnn.layers import Dense, Dropout, ReLU


def _loader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "dnn-DataLoader" and t.is_alive()]


@pytest.fixture(autouse=True)
def _no_thread_left():
    yield
    assert _loader_threads() == [], "a DataLoader thread outlived the test"


def _data(n=203, features=12, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    return x, y


def _model(features=12, seed=1, dropout=False):
    dnn.manual_seed(seed)
    layers = [Dense(features, 16), ReLU()] + ([Dropout(0.3)] if dropout else []) + [Dense(16, 2)]
    model = dnn.Sequential(layers)
    model.compile(loss="SoftmaxCrossEntropy", optimizer=dnn.optim.Adam(lr=1e-2),
                  metrics=["accuracy"])
    return model


def _weights(model):
    return [backend.to_numpy(p.data).copy() for p in model.parameters()]


def _assert_same(a, b):
    for p, q in zip(_weights(a), _weights(b)):
        np.testing.assert_array_equal(p, q)


# ---------------------------------------------------------------- same batches as arrays
def test_loader_fit_is_bit_identical_to_array_fit(backend_name):
    x, y = _data()
    arrays = _model()
    arrays.fit(x, y, epochs=3, batch_size=32, shuffle=True, seed=5, verbose=0)
    loaded = _model()
    loaded.fit(DataLoader(ArrayDataset(x, y), batch_size=32, shuffle=True, seed=5),
               epochs=3, verbose=0)
    _assert_same(arrays, loaded)


def test_resume_continues_the_same_sequence(backend_name):
    x, y = _data()
    whole = _model()
    whole.fit(DataLoader(ArrayDataset(x, y), batch_size=32, shuffle=True, seed=7), epochs=3,
              verbose=0)
    first = _model()
    first.fit(DataLoader(ArrayDataset(x, y), batch_size=32, shuffle=True, seed=7), epochs=1,
              verbose=0)
    # a fresh loader, as after a restart: pass 1 and 2 follow from the seed alone
    first.fit(DataLoader(ArrayDataset(x, y), batch_size=32, shuffle=True, seed=7), epochs=3,
              initial_epoch=1, verbose=0)
    _assert_same(whole, first)


def test_prefetch_thread_and_no_thread_give_the_same_batches(backend_name):
    x, y = _data()
    a = [backend.to_numpy(xb) for xb, _ in DataLoader(ArrayDataset(x, y), 50, shuffle=True,
                                                       seed=3, prefetch=0)]
    b = [backend.to_numpy(xb) for xb, _ in DataLoader(ArrayDataset(x, y), 50, shuffle=True,
                                                       seed=3, prefetch=3)]
    assert len(a) == len(b) == 5
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p, q)


def test_loader_batches_orders_and_lengths(backend_name):
    x, y = _data(n=10, features=2)
    loader = DataLoader(ArrayDataset(x, y), batch_size=4)
    assert len(loader) == 3
    batches = list(loader)
    assert [tuple(b[0].shape) for b in batches] == [(4, 2), (4, 2), (2, 2)]
    np.testing.assert_array_equal(backend.to_numpy(batches[2][1]), y[8:])
    assert backend.is_array(batches[0][0]) and batches[0][0].dtype == backend.default_dtype()
    dropped = DataLoader(ArrayDataset(x, y), batch_size=4, drop_last=True)
    assert len(dropped) == 2 and len(list(dropped)) == 2
    shuffled = DataLoader(ArrayDataset(x, y), batch_size=10, shuffle=True, seed=0)
    first = backend.to_numpy(next(iter(shuffled))[1])
    assert not np.array_equal(backend.to_numpy(next(iter(shuffled))[1]), first)  # pass 2
    assert sorted(first.tolist()) == sorted(y.tolist())  # a permutation of every sample
    shuffled.set_epoch(0)
    again = backend.to_numpy(next(iter(shuffled))[1])
    np.testing.assert_array_equal(first, again)


def test_a_map_style_dataset_without_gather_is_collated(backend_name):
    x, y = _data(n=9, features=3)

    class Rows:
        def __len__(self):
            return 9

        def __getitem__(self, i):
            return x[i], y[i]

    batches = list(DataLoader(Rows(), batch_size=4))
    np.testing.assert_array_equal(backend.to_numpy(batches[1][0]), x[4:8])
    np.testing.assert_array_equal(backend.to_numpy(batches[2][1]), y[8:])


def test_transform_runs_on_inputs_on_the_loader_generator(backend_name):
    x, y = _data(n=64, features=4)

    def add_noise(xb):
        return xb + dnn.backend.random.uniform(tuple(xb.shape), dtype=xb.dtype)

    def run(seed):
        loader = DataLoader(ArrayDataset(x, y), 16, transform=add_noise, seed=seed)
        return [(backend.to_numpy(a), backend.to_numpy(b)) for a, b in loader]

    one, two, other = run(1), run(1), run(2)
    for (a, b), (c, d), (e, _) in zip(one, two, other):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)  # targets untouched
        assert not np.array_equal(a, e)
    np.testing.assert_array_equal(one[0][1], y[:16])


# ---------------------------------------------------------------- streams
def test_fit_on_an_endless_generator_with_steps_per_epoch(backend_name):
    x, y = _data(n=400)
    rng = np.random.default_rng(0)
    pulled = []

    def stream():
        while True:
            rows = rng.integers(0, len(x), 32)
            pulled.append(1)
            yield x[rows], y[rows]

    model = _model()
    history = model.fit(stream(), epochs=3, steps_per_epoch=7, verbose=0,
                        validation_data=(x, y))
    assert len(history.history["loss"]) == 3
    # read on across epochs, not restarted: at most the 2 queued batches and the one
    # waiting to be queued were read ahead
    assert 21 <= len(pulled) <= 21 + 3
    assert history.history["val_accuracy"][-1] > 0.8


def test_a_used_up_generator_without_steps_is_a_clear_error(backend_name):
    x, y = _data()
    model = _model()
    batches = ((x[i:i + 50], y[i:i + 50]) for i in range(0, len(x), 50))
    with pytest.raises(ValueError, match=r"epoch 2 got no batches.*steps_per_epoch"):
        model.fit(batches, epochs=2, verbose=0)


def test_a_generator_that_runs_out_before_steps_per_epoch_stops_with_a_warning(backend_name):
    x, y = _data()
    model = _model()
    batches = ((x[i:i + 50], y[i:i + 50]) for i in range(0, len(x), 50))
    with pytest.warns(RuntimeWarning, match="ran out before steps_per_epoch=4"):
        history = model.fit(batches, epochs=3, steps_per_epoch=4, verbose=0)
    assert len(history.history["loss"]) == 2  # 4 + 1 of the 5 batches


def test_evaluate_and_predict_take_loaders_and_generators(backend_name):
    x, y = _data()
    model = _model()
    model.fit(x, y, epochs=2, verbose=0)
    expected = model.evaluate(x, y, batch_size=50)
    from_loader = model.evaluate(DataLoader(ArrayDataset(x, y), batch_size=50))
    from_generator = model.evaluate((x[i:i + 50], y[i:i + 50]) for i in range(0, len(x), 50))
    for got in (from_loader, from_generator):
        assert got.keys() == expected.keys()
        np.testing.assert_allclose(list(got.values()), list(expected.values()), rtol=1e-6)
    as_list = model.evaluate(x, y, return_dict=False)
    assert as_list == pytest.approx(list(model.evaluate(x, y).values()))
    pred = model.predict(x)
    np.testing.assert_allclose(model.predict(DataLoader(ArrayDataset(x), batch_size=64)), pred,
                               rtol=1e-6)
    np.testing.assert_allclose(model.predict(x[i:i + 64] for i in range(0, len(x), 64)), pred,
                               rtol=1e-6)


def test_stream_batches_are_checked_like_arrays(backend_name):
    x, y = _data()
    model = _model()
    bad = y.copy()
    bad[3] = 7
    with pytest.raises(ValueError, match=r"fit \(first batch\): class labels must be in \[0, 2\)"):
        model.fit(iter([(x[:50], bad[:50])]), verbose=0)
    with pytest.raises(ValueError, match="y must be None when x is a DataLoader"):
        model.fit(DataLoader(ArrayDataset(x, y)), y, verbose=0)
    with pytest.raises(ValueError, match="batch_size must be None when x is a DataLoader"):
        model.fit(DataLoader(ArrayDataset(x, y)), batch_size=32, verbose=0)
    with pytest.raises(ValueError, match="each batch must be"):
        model.fit(iter([x[:10]]), verbose=0)
    with pytest.raises(ValueError, match="validation_split works on x, y arrays"):
        model.fit(DataLoader(ArrayDataset(x, y)), validation_split=0.2, verbose=0)


# ---------------------------------------------------------------- threads and errors
class _Broken:
    def __len__(self):
        return 100

    def __getitem__(self, i):
        if i == 70:
            raise KeyError("sample 70 is missing from the shard")
        return np.zeros(3, np.float32), np.int64(0)


def test_an_exception_in_getitem_reaches_the_caller_with_its_traceback(backend_name):
    loader = DataLoader(_Broken(), batch_size=10, prefetch=2)
    with pytest.raises(KeyError, match="sample 70 is missing") as info:
        for _ in loader:
            pass
    frames = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert "__getitem__" in frames  # raised where it happened, on the loader thread


def test_an_exception_in_the_loader_ends_fit_without_a_live_thread(backend_name):
    dnn.manual_seed(0)
    model = dnn.Sequential([Dense(3, 2)])
    model.compile(optimizer="sgd")
    with pytest.raises(KeyError, match="sample 70"):
        model.fit(DataLoader(_Broken(), batch_size=10), epochs=2, verbose=0)


def test_keyboard_interrupt_during_fit_leaves_no_thread(backend_name):
    x, y = _data()
    model = _model()

    class Interrupt(dnn.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            if batch == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.fit(DataLoader(ArrayDataset(x, y), batch_size=10, prefetch=4), epochs=1,
                  callbacks=[Interrupt()], verbose=0)


def test_breaking_out_of_a_pass_stops_its_thread():
    x, y = _data()
    passes = iter(DataLoader(ArrayDataset(x, y), batch_size=10, prefetch=2))
    next(passes)
    passes.close()  # what a `break` out of a for loop does
    assert _loader_threads() == []


def test_bad_loader_arguments_are_named():
    x, y = _data()
    for kwargs, pattern in (({"batch_size": 0}, "batch_size must be an int >= 1 or None"),
                            ({"prefetch": -1}, "prefetch must be an int >= 0"),
                            ({"shuffle": "yes"}, "shuffle must be True or False"),
                            ({"seed": 1.5}, "seed must be an int >= 0 or None"),
                            ({"seed": -1}, "seed must be an int >= 0 or None"),
                            ({"transform": 3}, "transform must be callable")):
        with pytest.raises((TypeError, ValueError), match=pattern):
            DataLoader(ArrayDataset(x, y), **kwargs)
    with pytest.raises(ValueError, match="shuffle=True needs a map-style dataset"):
        DataLoader(iter([]), shuffle=True)
    with pytest.raises(ValueError, match=r"same number of samples .*\[10, 203\]"):
        ArrayDataset(x, y[:10])
    with pytest.raises(TypeError, match="argument 1 must be an array"):
        ArrayDataset(x, "labels")


# ---------------------------------------------------------------- weights
def test_class_weight_equals_the_matching_sample_weight(backend_name):
    x, y = _data()
    weights = {0: 0.5, 1: 3.0}
    by_class = _model()
    by_class.fit(x, y, epochs=2, batch_size=32, seed=2, class_weight=weights, verbose=0)
    by_sample = _model()
    by_sample.fit(x, y, epochs=2, batch_size=32, seed=2,
                  sample_weight=np.where(y == 1, 3.0, 0.5), verbose=0)
    for p, q in zip(_weights(by_class), _weights(by_sample)):
        np.testing.assert_allclose(p, q, rtol=1e-6, atol=1e-7)
    one_hot = np.eye(2, dtype=np.float32)[y]
    by_rows = _model()
    by_rows.fit(x, one_hot, epochs=2, batch_size=32, seed=2, class_weight=weights, verbose=0)
    for p, q in zip(_weights(by_rows), _weights(by_sample)):
        np.testing.assert_allclose(p, q, rtol=1e-5, atol=1e-6)


def test_sample_weights_reach_the_loss_in_fit_and_evaluate(backend_name):
    x, y = _data()
    model = _model()
    model.fit(x, y, epochs=1, verbose=0)
    unweighted = model.evaluate(x, y)["loss"]
    weights = np.where(np.arange(len(x)) % 2 == 0, 2.0, 0.0)
    weighted = model.evaluate(x, y, sample_weight=weights, batch_size=len(x))["loss"]
    out = model.predict(x)
    shifted = out - out.max(axis=1, keepdims=True)
    per_sample = np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(len(y)), y]
    np.testing.assert_allclose(weighted, (weights * per_sample).sum() / len(x), rtol=1e-5)
    assert weighted != pytest.approx(unweighted)
    # Keras' weighted mean divides by N, not by Σw: one full-batch SGD step with weight 1 on
    # the class-0 samples and 0 elsewhere moves the weights by n0/N of the step taken on the
    # class-0 samples alone
    keep = y == 0
    steps = []
    for xs, ys, ws in ((x, y, keep * 1.0), (x[keep], y[keep], None)):
        sgd = _model()
        sgd.compile(loss="SoftmaxCrossEntropy", optimizer=dnn.optim.SGD(lr=0.1))
        before = _weights(sgd)
        sgd.fit(xs, ys, epochs=1, batch_size=len(x), sample_weight=ws, shuffle=False, verbose=0)
        steps.append([a - b for a, b in zip(_weights(sgd), before)])
    for weighted_step, alone_step in zip(*steps):
        np.testing.assert_allclose(weighted_step, alone_step * keep.mean(), rtol=1e-4,
                                   atol=1e-7)
    with pytest.raises(ValueError, match="sample_weight must be finite and >= 0"):
        model.fit(x, y, sample_weight=-np.ones(len(x)), verbose=0)
    with pytest.raises(ValueError, match="class_weight keys must be class indices"):
        model.fit(x, y, class_weight={"cat": 1.0}, verbose=0)


def test_reduction_none_is_refused_by_compile():
    model = dnn.Sequential([Dense(3, 2)])
    with pytest.raises(ValueError, match=r"reduction='none'.*one number per batch"):
        model.compile(loss=dnn.losses.SoftmaxCrossEntropy(reduction="none"))


# ---------------------------------------------------------------- output
def test_verbose_2_prints_one_line_per_epoch_without_a_bar(capsys):
    x, y = _data()
    _model().fit(x, y, epochs=3, verbose=2)
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith(f"epoch {i + 1}/3") for i, line in
                                   enumerate(lines))
    assert "it/s" not in captured.err and "\r" not in captured.err


def test_dropout_masks_do_not_depend_on_the_loader_thread(backend_name):
    """With its own seed the loader draws nothing from the global generator: the run with
    dropout is reproducible, and equals itself with and without prefetching."""
    x, y = _data()
    runs = []
    for prefetch in (0, 2, 2):
        model = _model(dropout=True)
        model.fit(DataLoader(ArrayDataset(x, y), 32, shuffle=True, seed=4, prefetch=prefetch),
                  epochs=2, seed=9, verbose=0)
        runs.append(model)
    _assert_same(runs[0], runs[1])
    _assert_same(runs[1], runs[2])


# ---------------------------------------------------------------- larger than memory
def _write_npy(path, n, features):
    """An .npy file of n rows written in chunks, so no process holds the whole array."""
    header = {"descr": "<f4", "fortran_order": False, "shape": (n, features)}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        for start in range(0, n, 10_000):
            rows = min(10_000, n - start)
            f.write(np.full((rows, features), start % 7, dtype="<f4").tobytes())


_CHILD = """
import resource, sys
import numpy as np
import dnn
from dnn.data import ArrayDataset, DataLoader
from dnn.layers import Dense

path, mode, n, features = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
size = n * features * 4
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # after the imports
model = dnn.Sequential([Dense(features, 2)])
model.compile(optimizer="sgd")
if mode == "generator":
    # cap the address space below the array's size: a copy of it cannot exist here
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    limit = vm + size // 2
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        np.empty(n * features, dtype=np.float32).fill(1)
        sys.exit("the address-space cap does not stop a copy of the array")
    except MemoryError:
        pass
    offset = 128  # the .npy header written by the test

    def batches():
        rng = np.random.default_rng(0)
        while True:
            start = int(rng.integers(0, n - 256))
            x = np.fromfile(path, dtype="<f4", count=256 * features,
                            offset=offset + start * features * 4).reshape(256, features)
            yield x, np.zeros(256, dtype=np.int64)

    history = model.fit(batches(), epochs=2, steps_per_epoch=20, verbose=0)
else:
    x = np.load(path, mmap_mode="r")
    y = np.zeros(n, dtype=np.int64)
    history = model.fit(DataLoader(ArrayDataset(x, y), batch_size=256, shuffle=True, seed=0),
                        epochs=1, steps_per_epoch=40, verbose=0)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print("trained", len(history.history["loss"]), "grew", peak - baseline, "size", size)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS and ru_maxrss in KiB: Linux")
@pytest.mark.parametrize("mode", ["generator", "memmap"])
def test_data_larger_than_memory_trains_without_loading_it(tmp_path, mode):
    """A child process trains on a 256 MB array it never loads: a generator reading batches
    from the file under an address-space cap below the array's size, and a memory-mapped
    array whose peak resident memory stays far below its size (mapping a file takes
    address space, so the cap cannot apply to it; resident memory is what it saves)."""
    n, features = 250_000, 256
    path = tmp_path / "x.npy"
    _write_npy(path, n, features)
    assert path.stat().st_size == 128 + n * features * 4
    result = subprocess.run([sys.executable, "-c", _CHILD, str(path), mode, str(n),
                             str(features)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    words = result.stdout.split()
    trained, grew, size = int(words[1]), int(words[3]), int(words[5])
    assert trained == (2 if mode == "generator" else 1)
    assert grew < size / 4, f"resident memory grew by {grew} bytes; the array has {size}"


# ---------------------------------------------------------------- found by an outside trial
def test_a_generator_refilling_one_buffer_gives_each_batch_as_it_was():
    def refilled():
        buffer = np.zeros((2, 5), np.float32)
        for i in range(6):
            buffer[:] = i
            yield buffer, np.zeros(2, np.int64)

    values = [float(backend.to_numpy(x)[0, 0]) for x, _ in DataLoader(refilled(), None)]
    assert values == [0, 1, 2, 3, 4, 5]


def _numbered(count=None):
    i = 0
    while count is None or i < count:
        yield np.full((2, 3), i, np.float32), np.zeros(2, np.int64)
        i += 1


def test_batches_read_ahead_are_served_to_the_next_pass_not_lost():
    gen = _numbered()
    first = iter(DataLoader(gen, batch_size=None, prefetch=3))
    assert [int(backend.to_numpy(next(first)[0])[0, 0]) for _ in range(2)] == [0, 1]
    first.close()
    again = DataLoader(gen, batch_size=None, prefetch=3)  # another loader, the same source
    got = [int(backend.to_numpy(b[0])[0, 0]) for _, b in zip(range(4), again)]
    assert got == [2, 3, 4, 5]


def test_a_generator_lives_on_after_fit_for_evaluate_and_the_next_fit(backend_name):
    model = dnn.Sequential([Dense(3, 2)])
    model.compile(optimizer="sgd")
    seen = []

    class Record(dnn.callbacks.Callback):
        def on_batch_begin(self, batch, logs=None):
            seen.append(batch)

    gen = _numbered()
    model.fit(gen, epochs=1, steps_per_epoch=3, verbose=0, callbacks=[Record()])
    model.evaluate(gen, steps=2)
    model.fit(gen, epochs=1, steps_per_epoch=3, verbose=0)
    # 3 + 2 + 3 batches were used, and the generator was neither closed nor skipped ahead
    # by more than what the last call's loader read ahead (kept for the next call)
    assert int(next(_drain(gen))) >= 8
    assert seen == [0, 1, 2]


def _drain(gen):
    for x, _ in gen:
        yield x[0, 0]


def test_class_weight_on_a_sequential_without_input_uses_the_output_width(backend_name):
    x, y = _data()
    y3 = np.arange(len(y)) % 3
    model = dnn.Sequential([Dense(12, 3)])
    model.compile(optimizer="sgd")
    model.fit(x, y3, class_weight={0: 2.0}, epochs=1, verbose=0)  # classes 1, 2 weigh 1
    model.fit(x, np.eye(3, dtype=np.float32)[y3], class_weight={0: 2.0}, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="class_weight names class 10, but the model's output "
                                         "has 3 classes"):
        model.fit(x, y3, class_weight={10: 1.0}, verbose=0)
    with pytest.raises(ValueError, match=r"class_weight names class 1000000000, but"):
        model.fit(x, y3, class_weight={10**9: 1.0}, verbose=0)
    regression = dnn.Sequential([Dense(12, 2)])
    regression.compile(loss="mse", optimizer="sgd")
    with pytest.raises(ValueError, match="the loss MSE does not read classes"):
        regression.fit(x, x[:, :2], class_weight={0: 2.0}, verbose=0)


def test_bad_labels_or_weights_in_a_later_stream_batch_are_refused(backend_name):
    x, y = _data()
    model = _model()
    bad = y[:8].copy()
    bad[2] = 7
    with pytest.raises(ValueError, match=r"a batch among steps 1-2 of epoch 1 had class labels "
                                         r"outside \[0, 2\)"):
        model.fit(iter([(x[:8], y[:8]), (x[8:16], bad)]), verbose=0)
    weights = np.ones(8)
    weights[1] = -100.0
    with pytest.raises(ValueError, match="sample weights that are negative, NaN or Inf"):
        model.fit(iter([(x[:8], y[:8], np.ones(8)), (x[8:16], y[8:16], weights)]), verbose=0)
    with pytest.raises(ValueError, match="had class labels outside"):
        model.evaluate(iter([(x[:8], y[:8]), (x[8:16], bad)]))


def test_validation_steps_restart_each_epoch_and_evaluate_does_not_stop_training(backend_name):
    x, y = _data()
    model = _model()
    val = DataLoader(ArrayDataset(x, y), batch_size=50)
    history = model.fit(x, y, epochs=3, validation_data=val, validation_steps=1, verbose=0)
    expected = [model.evaluate(x[:50], y[:50])["loss"]]
    assert history.history["val_loss"][-1] == pytest.approx(expected[0], rel=1e-5)
    model.stop_training = False
    model.evaluate(_numbered_for(x, y, 2), steps=5)  # runs out: evaluates what there is
    assert model.stop_training is False


def _numbered_for(x, y, count):
    for i in range(count):
        yield x[i * 10:(i + 1) * 10], y[i * 10:(i + 1) * 10]


def test_resume_with_steps_per_epoch_on_a_loader_continues_exactly(backend_name):
    x, y = _data()

    def loader():
        from dnn.data import Compose, RandomHorizontalFlip

        flip = Compose([lambda b: backend.xp.reshape(b, (-1, 1, 3, 4)),
                        RandomHorizontalFlip(), lambda b: backend.xp.reshape(b, (-1, 12))])
        return DataLoader(ArrayDataset(x, y), 32, shuffle=True, seed=3, transform=flip)

    whole = _model()
    whole.fit(loader(), epochs=4, steps_per_epoch=3, verbose=0)
    parts = _model()
    parts.fit(loader(), epochs=2, steps_per_epoch=3, verbose=0)
    parts.fit(loader(), epochs=4, initial_epoch=2, steps_per_epoch=3, verbose=0)
    _assert_same(whole, parts)
    longer = _model()  # more steps than one pass: passes follow one another, none repeats
    longer.fit(loader(), epochs=2, steps_per_epoch=11, verbose=0)


def test_closing_a_pass_waits_only_so_long_for_a_thread_stuck_in_the_dataset(monkeypatch):
    import time as clock

    from dnn.data import loader as loader_module

    monkeypatch.setattr(loader_module, "STOP_WAIT", 0.3)
    release = threading.Event()

    class Stuck:
        def __len__(self):
            return 10

        def __getitem__(self, i):
            if i >= 1:
                release.wait(30)
            return np.zeros(2, np.float32), np.int64(0)

    passes = iter(DataLoader(Stuck(), batch_size=1, prefetch=1))
    next(passes)
    start = clock.monotonic()
    with pytest.warns(RuntimeWarning, match="still inside a call to the dataset"):
        passes.close()
    assert clock.monotonic() - start < 5
    release.set()  # the thread returns from the call and ends, reading nothing more
    for thread in _loader_threads():
        thread.join(5)


def test_iterating_a_loader_inside_its_own_transform_is_refused():
    x, y = _data()
    holder = {}

    def transform(xb):
        for _ in holder["loader"]:
            pass
        return xb

    holder["loader"] = DataLoader(ArrayDataset(x, y), 50, transform=transform, prefetch=0)
    with pytest.raises(RuntimeError, match="iterated from inside its own dataset or transform"):
        list(holder["loader"])
    holder["loader"] = DataLoader(ArrayDataset(x, y), 50, transform=transform)
    with pytest.raises(RuntimeError, match="iterated from inside its own"):
        list(holder["loader"])


def test_transform_reads_the_inputs_of_list_batches_and_checks_what_it_returns():
    x, y = _data(n=8, features=4)
    batches = [[x[:4], y[:4]], [x[4:], y[4:]]]
    out = list(DataLoader(batches, batch_size=None, transform=lambda b: b * 2))
    assert isinstance(out[0], list)
    np.testing.assert_allclose(backend.to_numpy(out[1][0]), x[4:] * 2)
    np.testing.assert_array_equal(backend.to_numpy(out[1][1]), y[4:])
    with pytest.raises(TypeError, match="returned NoneType; it must return the transformed"):
        list(DataLoader(batches, batch_size=None, transform=lambda b: None))


def test_empty_and_none_batches_in_a_stream_are_named(backend_name):
    x, y = _data()
    model = _model()
    with pytest.raises(ValueError, match="batch 2 is empty"):
        model.fit(iter([(x[:4], y[:4]), (x[:0], y[:0])]), verbose=0)
    with pytest.raises(TypeError, match="the dataset gave None as a batch"):
        model.fit(iter([(x[:4], y[:4]), None]), verbose=0)
    with pytest.raises(TypeError, match=r"dataset must be map-style .* got str"):
        DataLoader("abc")
    with pytest.raises(TypeError, match=r"dataset must be map-style .* got dict"):
        DataLoader({"x": x})
