"""Model files: round trips for every registered layer and optimizer, cross-backend
loading, hostile files, byte-flip/truncation properties and kill-during-save."""

from __future__ import annotations

import io
import json
import os
import random as pyrandom
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from conftest import backend_params
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dnn
from dnn import backend
from dnn import layers as L
from dnn.io.specs import encode_layer
from dnn.layers import REGISTRY

# ------------------------------------------------------------------ helpers


def _host_state(model) -> dict[str, np.ndarray]:
    return {k: np.array(backend.to_numpy(v)) for k, v in model.state_dict().items()}


def _opt_state(model) -> dict[str, np.ndarray]:
    state = model.optimizer.state_dict(model.optimizer_parameters)
    return {k: np.array(backend.to_numpy(v)) for k, v in state["arrays"].items()}


def _assert_same_arrays(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        assert a[k].shape == b[k].shape, k
        assert np.array_equal(a[k], b[k]), f"{k} differs"


def _data(shape, kind="float", high=10, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "int":
        return rng.integers(0, high, size=shape)
    return rng.normal(size=shape).astype(np.float32)


# ------------------------------------------------------------------ layer table
# name -> (model factory, input shape, input kind). Layers in REGISTRY without an
# entry are reported as skipped; entries whose layer does not exist are skipped by name.
def _dense_then(layer_name, *args, **kwargs):
    return lambda: dnn.Sequential([L.Dense(4, 3), REGISTRY[layer_name](*args, **kwargs)])


LAYER_TABLE = {
    "Dense": (lambda: dnn.Sequential([L.Dense(4, 3, l2=0.01)]), (6, 4), "float"),
    "ReLU": (_dense_then("ReLU"), (6, 4), "float"),
    "LeakyReLU": (_dense_then("LeakyReLU", 0.2), (6, 4), "float"),
    "ELU": (_dense_then("ELU", 0.5), (6, 4), "float"),
    "GELU": (_dense_then("GELU"), (6, 4), "float"),
    "Sigmoid": (_dense_then("Sigmoid"), (6, 4), "float"),
    "Tanh": (_dense_then("Tanh"), (6, 4), "float"),
    "Softmax": (_dense_then("Softmax"), (6, 4), "float"),
    "LogSoftmax": (_dense_then("LogSoftmax"), (6, 4), "float"),
    "Softplus": (_dense_then("Softplus"), (6, 4), "float"),
    "Identity": (_dense_then("Identity"), (6, 4), "float"),
    "Dropout": (_dense_then("Dropout", 0.3), (6, 4), "float"),
    "BatchNorm": (_dense_then("BatchNorm", 3, momentum=0.2), (6, 4), "float"),
    "LayerNorm": (_dense_then("LayerNorm", 3), (6, 4), "float"),
    "Embedding": (lambda: dnn.Sequential([REGISTRY["Embedding"](10, 3)]), (6, 5), "int"),
    "Conv2D": (lambda: dnn.Sequential([REGISTRY["Conv2D"](2, 3, 3, padding=1)]), (2, 2, 6, 6), "float"),
    "MaxPool2D": (lambda: dnn.Sequential([REGISTRY["Conv2D"](2, 3, 3), REGISTRY["MaxPool2D"](2)]),
                  (2, 2, 6, 6), "float"),
    "AvgPool2D": (lambda: dnn.Sequential([REGISTRY["Conv2D"](2, 3, 3), REGISTRY["AvgPool2D"](2)]),
                  (2, 2, 6, 6), "float"),
    "GlobalAvgPool2D": (lambda: dnn.Sequential([REGISTRY["Conv2D"](2, 3, 3),
                                                REGISTRY["GlobalAvgPool2D"]()]), (2, 2, 6, 6), "float"),
    "Conv2D-dilation-groups-same": (lambda: dnn.Sequential([
        REGISTRY["Conv2D"](2, 4, (4, 3), padding="same", dilation=2, groups=2, l2=0.01),
        REGISTRY["Conv2D"](4, 4, 3, groups=4, stride=2, padding="valid", l1=0.01)]), (2, 2, 7, 6), "float"),
    "Conv1D": (lambda: dnn.Sequential([REGISTRY["Conv1D"](3, 4, 3, stride=2, padding="valid", dilation=2,
                                                          l2=0.01),
                                       REGISTRY["Conv1D"](4, 4, 3, padding="same", groups=4)]),
               (2, 3, 11), "float"),
    "Conv2DTranspose": (lambda: dnn.Sequential([REGISTRY["Conv2DTranspose"](
        2, 3, 3, stride=2, padding=1, output_padding=1, l1=0.01)]), (2, 2, 4, 3), "float"),
    "UpSampling2D": (lambda: dnn.Sequential([REGISTRY["Conv2D"](2, 3, 3),
                                             REGISTRY["UpSampling2D"]((2, 3))]), (2, 2, 5, 5), "float"),
    "GlobalMaxPool2D": (lambda: dnn.Sequential([REGISTRY["Conv2D"](2, 3, 3),
                                                REGISTRY["GlobalMaxPool2D"]()]), (2, 2, 6, 6), "float"),
    "Flatten": (lambda: dnn.Sequential([REGISTRY["Flatten"](), L.Dense(8, 3)]), (4, 2, 4), "float"),
    "Reshape": (lambda: dnn.Sequential([REGISTRY["Reshape"]((2, 4)), REGISTRY["Flatten"](),
                                        L.Dense(8, 3)]), (4, 8), "float"),
    "Residual": (lambda: dnn.Sequential([L.Dense(4, 3), REGISTRY["Residual"](
        dnn.Sequential([L.Dense(3, 3), L.ReLU(), L.Dense(3, 3)]))]), (6, 4), "float"),
    "Sequential": (lambda: dnn.Sequential([dnn.Sequential([L.Dense(4, 5), L.Tanh()]), L.Dense(5, 2)]),
                   (6, 4), "float"),
    "RNN": (lambda: dnn.Sequential([REGISTRY["RNN"](3, 4, return_sequences=True)]), (2, 5, 3), "float"),
    "LSTM": (lambda: dnn.Sequential([REGISTRY["LSTM"](3, 4)]), (2, 5, 3), "float"),
    "GRU": (lambda: dnn.Sequential([REGISTRY["GRU"](3, 4, return_sequences=True)]), (2, 5, 3), "float"),
    "Patches": (lambda: dnn.Sequential([REGISTRY["Patches"](2), L.Dense(8, 3)]), (2, 2, 4, 4), "float"),
    "SequenceAvgPool": (lambda: dnn.Sequential([L.Dense(4, 3), REGISTRY["SequenceAvgPool"]()]),
                        (6, 5, 4), "float"),
    "GroupNorm": (lambda: dnn.Sequential([L.Dense(4, 4), REGISTRY["GroupNorm"](2, 4, l2=0.01)]),
                  (6, 4), "float"),
    "SiLU": (_dense_then("SiLU"), (6, 4), "float"),
    "Mish": (_dense_then("Mish"), (6, 4), "float"),
    "PReLU": (_dense_then("PReLU", 3, init=0.1, l2=0.01), (6, 4), "float"),
    "Bidirectional": (lambda: dnn.Sequential([REGISTRY["Bidirectional"](
        REGISTRY["LSTM"](3, 4, return_sequences=True, l2=0.01)), L.Dense(8, 2)]), (2, 5, 3), "float"),
    "MultiHeadAttention": (lambda: dnn.Sequential([REGISTRY["MultiHeadAttention"](
        8, 2, dropout=0.1, causal=True, l2=0.01)]), (6, 5, 8), "float"),
    "PositionalEmbedding": (lambda: dnn.Sequential([REGISTRY["PositionalEmbedding"](9, 4, l1=0.01)]),
                            (6, 5, 4), "float"),
    "SinusoidalPositionalEncoding": (lambda: dnn.Sequential([
        REGISTRY["SinusoidalPositionalEncoding"](4), L.Dense(4, 3)]), (6, 5, 4), "float"),
}

NEEDS = {"Embedding": ["Embedding"], "MaxPool2D": ["Conv2D", "MaxPool2D"],
         "AvgPool2D": ["Conv2D", "AvgPool2D"], "GlobalAvgPool2D": ["Conv2D", "GlobalAvgPool2D"],
         "Conv2D-dilation-groups-same": ["Conv2D"], "UpSampling2D": ["Conv2D", "UpSampling2D"],
         "GlobalMaxPool2D": ["Conv2D", "GlobalMaxPool2D"],
         "Flatten": ["Flatten"], "Reshape": ["Reshape", "Flatten"], "Residual": ["Residual"]}


def _layer_params():
    params = []
    for name in sorted(set(REGISTRY) | set(LAYER_TABLE)):
        needed = NEEDS.get(name, [name])
        if name not in LAYER_TABLE:
            mark = pytest.mark.skip(reason=f"{name} is registered but has no entry in LAYER_TABLE")
        elif missing := [n for n in needed if n not in REGISTRY]:
            mark = pytest.mark.skip(reason=f"layer(s) {missing} not in dnn.layers.REGISTRY yet")
        else:
            mark = None
        params.append(pytest.param(name, id=name, marks=[mark] if mark else []))
    return params


def _build(name):
    factory, shape, kind = LAYER_TABLE[name]
    model = factory()
    x = _data(shape, kind)
    out_shape = tuple(backend.to_numpy(model.predict(x)).shape)
    y = _data(out_shape, seed=1)
    model.compile(loss="mse", optimizer=dnn.optim.Adam(lr=0.01))
    return model, x, y


@pytest.mark.parametrize("name", _layer_params())
def test_layer_round_trip(name, backend_name, tmp_path):
    """Save + load gives identical arrays, predictions and continued training."""
    model, x, y = _build(name)
    model.fit(x, y, epochs=2, batch_size=4, verbose=0, seed=3)  # non-trivial weights/buffers/state
    path = tmp_path / "model.dnn"
    model.save(path)
    loaded = dnn.load_model(path)
    assert type(loaded.layers[-1]) is type(model.layers[-1])
    assert encode_layer(loaded) == encode_layer(model)
    _assert_same_arrays(_host_state(model), _host_state(loaded))
    assert np.array_equal(model.predict(x), loaded.predict(x))
    model.fit(x, y, epochs=2, batch_size=4, verbose=0, seed=4)
    loaded.fit(x, y, epochs=2, batch_size=4, verbose=0, seed=4)
    _assert_same_arrays(_host_state(model), _host_state(loaded))
    _assert_same_arrays(_opt_state(model), _opt_state(loaded))


OPTIMIZER_ARGS = {
    "SGD": {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3},
    "Adagrad": {"lr": 0.05, "lr_decay": 0.01, "weight_decay": 1e-3},
    "RMSprop": {"lr": 0.01, "alpha": 0.9, "momentum": 0.5},
    "Adam": {"lr": dnn.optim.schedules.InverseTimeDecay(0.01, 0.05), "weight_decay": 1e-3},
    "AdamW": {"lr": dnn.optim.schedules.LinearWarmup(
        dnn.optim.schedules.CosineDecay(0.01, total_steps=50), warmup_steps=5), "clipnorm": 1.0},
    "NAdam": {"lr": 0.01, "clipvalue": 0.5},
}


@pytest.mark.parametrize("opt_name", sorted(dnn.optim.OPTIMIZERS))
def test_optimizer_round_trip(opt_name, backend_name, tmp_path):
    """Optimizer class, config, schedule, counters and state all survive; training
    continued from the file equals training continued in memory, bitwise."""
    cls = dnn.optim.OPTIMIZERS[opt_name]
    dnn.manual_seed(0)
    model = dnn.Sequential([L.Dense(5, 8), L.ReLU(), L.Dropout(0.2), L.Dense(8, 3)])
    model.compile(loss="SoftmaxCrossEntropy", optimizer=cls(**OPTIMIZER_ARGS.get(opt_name, {})),
                  metrics=["accuracy"])
    x, y = _data((40, 5)), _data((40,), "int", high=3)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=0)
    path = tmp_path / "opt.dnn"
    model.save(path)
    loaded = dnn.load_model(path)
    assert type(loaded.optimizer) is cls
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.iterations == model.optimizer.iterations == 10
    assert repr(loaded.optimizer.schedule) == repr(model.optimizer.schedule)
    assert [m.name for m in loaded.metrics] == ["accuracy"]
    _assert_same_arrays(_opt_state(model), _opt_state(loaded))
    model.fit(x, y, epochs=4, initial_epoch=2, batch_size=8, verbose=0)
    loaded.fit(x, y, epochs=4, initial_epoch=2, batch_size=8, verbose=0)
    _assert_same_arrays(_host_state(model), _host_state(loaded))
    _assert_same_arrays(_opt_state(model), _opt_state(loaded))


def test_load_without_compile_and_uncompiled_model(tmp_path):
    model = dnn.Sequential([L.Dense(3, 2)])
    model.save(tmp_path / "plain.dnn")  # never compiled
    loaded = dnn.load_model(tmp_path / "plain.dnn")
    assert loaded.loss is None and loaded.optimizer is None
    _assert_same_arrays(_host_state(model), _host_state(loaded))
    model.compile("mse", "adam")
    model.save(tmp_path / "c.dnn")
    assert dnn.load_model(tmp_path / "c.dnn", compile=False).optimizer is None


def test_float64_model_keeps_its_dtype(tmp_path):
    dnn.set_default_dtype("float64")
    model = dnn.Sequential([L.Dense(3, 2)])
    model.compile("mse", "sgd")
    model.save(tmp_path / "f64.dnn")
    dnn.set_default_dtype("float32")
    loaded = dnn.load_model(tmp_path / "f64.dnn")
    assert _host_state(loaded)["0.weight"].dtype == np.float64
    assert backend._default_dtype_name == "float32"  # restored after loading
    _assert_same_arrays(_host_state(model), _host_state(loaded))


def test_save_and_load_weights(tmp_path):
    model = dnn.Sequential([L.Dense(4, 6), L.ReLU(), L.Dense(6, 2)])
    model.save_weights(tmp_path / "w.dnn")
    dnn.manual_seed(1)
    other = dnn.Sequential([L.Dense(4, 6), L.ReLU(), L.Dense(6, 2)])
    assert not np.array_equal(_host_state(other)["0.weight"], _host_state(model)["0.weight"])
    other.load_weights(tmp_path / "w.dnn")
    _assert_same_arrays(_host_state(model), _host_state(other))
    model.save(tmp_path / "full.dnn")  # a full model file also provides weights
    other.load_weights(tmp_path / "full.dnn")
    # float32 weights load into a float64 model of the same architecture
    dnn.set_default_dtype("float64")
    wide = dnn.Sequential([L.Dense(4, 6), L.ReLU(), L.Dense(6, 2)])
    wide.load_weights(tmp_path / "w.dnn")
    assert np.array_equal(_host_state(wide)["0.weight"], _host_state(model)["0.weight"].astype(np.float64))
    with pytest.raises(dnn.SerializationError, match="weights-only"):
        dnn.load_model(tmp_path / "w.dnn")
    wrong = dnn.Sequential([L.Dense(4, 5), L.ReLU(), L.Dense(5, 2)])
    with pytest.raises(dnn.SerializationError, match=r"layer 0 \(Dense\).*shape \(4, 6\), expected \(4, 5\)"):
        wrong.load_weights(tmp_path / "w.dnn")
    fewer = dnn.Sequential([L.Dense(4, 2)])
    with pytest.raises(dnn.SerializationError, match="no place for"):
        fewer.load_weights(tmp_path / "w.dnn")


def test_unregistered_layer_cannot_be_saved(tmp_path):
    class Custom(L.ReLU):  # not decorated with @register
        pass

    model = dnn.Sequential([L.Dense(2, 2), Custom()])
    with pytest.raises(dnn.SerializationError, match=r"layer 1 \(Custom\).*not registered"):
        model.save(tmp_path / "x.dnn")
    assert not (tmp_path / "x.dnn").exists()
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


# ------------------------------------------------------------------ cross-backend
def _installed(names):
    return [p.values[0] for p in backend_params(names) if not p.marks]


_PAIRS = [(a, b) for a in _installed(["numpy", "array_api_strict", "torch"])
          for b in _installed(["numpy", "array_api_strict", "torch"]) if a != b]


@pytest.mark.parametrize(("src", "dst"), _PAIRS, ids=[f"{a}-to-{b}" for a, b in _PAIRS])
def test_cross_backend_load(src, dst, tmp_path):
    dnn.set_backend(src)
    dnn.manual_seed(0)
    model = dnn.Sequential([L.Dense(4, 8), L.Tanh(), L.Dense(8, 3)])
    model.compile("SoftmaxCrossEntropy", dnn.optim.Adam(lr=0.01))
    x, y = _data((16, 4)), _data((16,), "int", high=3)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0, seed=0)
    expected_state, expected_opt = _host_state(model), _opt_state(model)
    expected_pred = model.predict(x)
    model.save(tmp_path / "m.dnn")
    dnn.set_backend(dst)
    loaded = dnn.load_model(tmp_path / "m.dnn")
    assert backend.is_array(loaded.layers[0].weight.data)
    _assert_same_arrays(expected_state, _host_state(loaded))
    _assert_same_arrays(expected_opt, _opt_state(loaded))
    np.testing.assert_allclose(loaded.predict(x), expected_pred, rtol=1e-5, atol=1e-6)
    loaded.fit(x, y, epochs=1, batch_size=4, verbose=0, seed=0)  # and it trains there


# ------------------------------------------------------------------ hostile files
def _members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def _npy(arr, allow_pickle=False) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=allow_pickle)
    return buf.getvalue()


def _write_zip(path, members) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return Path(path)


def _get_meta(members):
    return json.loads(np.load(io.BytesIO(members["__dnn__.npy"])).tobytes())


def _put_meta(members, meta):
    members["__dnn__.npy"] = _npy(np.frombuffer(json.dumps(meta).encode(), np.uint8))


@pytest.fixture
def valid_file(tmp_path) -> Path:
    dnn.manual_seed(0)
    model = dnn.Sequential([L.Dense(4, 8), L.ReLU(), L.Dense(8, 3)])
    model.compile("SoftmaxCrossEntropy", "adam")
    model.fit(_data((16, 4)), _data((16,), "int", high=3), epochs=1, batch_size=8, verbose=0)
    path = tmp_path / "valid.dnn"
    model.save(path)
    return path


def _edit(fn):
    """A case that rewrites the valid file's members with ``fn(members)``."""
    def make(valid, out):
        members = _members(valid)
        fn(members)
        return _write_zip(out, members)
    return make


def _edit_meta(fn):
    def edit(members):
        meta = _get_meta(members)
        fn(meta)
        _put_meta(members, meta)
    return _edit(edit)


def _raw(data: bytes):
    def make(valid, out):
        out.write_bytes(data)
        return out
    return make


def _truncate(fraction):
    def make(valid, out):
        data = valid.read_bytes()
        out.write_bytes(data[: int(len(data) * fraction)])
        return out
    return make


def _set(key, value):
    def fn(meta):
        meta[key] = value
    return fn


def _layer0(**changes):
    def fn(meta):
        meta["architecture"]["config"]["layers"][0].update(changes)
    return fn


def _nested(depth):
    def make(valid, out):
        members = _members(valid)
        members["__dnn__.npy"] = _npy(np.frombuffer(b"[" * depth + b"]" * depth, np.uint8))
        return _write_zip(out, members)
    return make


def _foreign_npz(valid, out):
    with open(out, "wb") as f:
        np.savez(f, weights=np.zeros(3))
    return out


HOSTILE = {
    "nonexistent": (lambda valid, out: out.parent / "does-not-exist.dnn", "no such file"),
    "directory": (lambda valid, out: out.parent, "is a directory"),
    "empty": (_raw(b""), "empty"),
    "random-bytes": (_raw(np.random.default_rng(0).bytes(4096)), "not a dnn model file"),
    "text-file": (_raw(b'{"format": "dnn"}'), "not a dnn model file"),
    "npy-not-zip": (_raw(_npy(np.zeros(3))), "not a dnn model file"),
    "pickle-file": (_raw(b"\x80\x04\x95" + bytes(64)), "not a dnn model file"),
    "zip-magic-only": (_raw(b"PK\x03\x04" + bytes(100)), "truncated or corrupted"),
    "truncated-10pct": (_truncate(0.1), "truncated or corrupted"),
    "truncated-half": (_truncate(0.5), "truncated or corrupted"),
    "truncated-last-byte": (_truncate(0.999), "truncated or corrupted"),
    "plain-npz": (_foreign_npz, "no '__dnn__' metadata"),
    "missing-array": (_edit(lambda m: m.pop("state/2.weight.npy")),
                      r"missing.*state/2.weight \(layer 2 \(Dense\) weight\)"),
    "missing-optimizer-array": (_edit(lambda m: m.pop("optimizer/1.exp_avg.npy")),
                                "optimizer arrays missing: optimizer/1.exp_avg"),
    "wrong-shape": (_edit(lambda m: m.update({"state/0.weight.npy": _npy(np.zeros((4, 7), np.float32))})),
                    r"'state/0.weight' \(layer 0 \(Dense\) weight\) has shape \(4, 7\), expected \(4, 8\)"),
    "wrong-dtype-int": (_edit(lambda m: m.update({"state/0.bias.npy": _npy(np.zeros(8, np.int32))})),
                        "has dtype int32, expected float32"),
    "wrong-dtype-float64": (_edit(lambda m: m.update({"state/0.bias.npy": _npy(np.zeros(8))})),
                            "has dtype float64, expected float32"),
    "complex-array": (_edit(lambda m: m.update({"state/0.bias.npy": _npy(np.zeros(8, np.complex64))})),
                      "numeric arrays only"),
    "pickled-object-array": (_edit(lambda m: m.update(
        {"state/0.bias.npy": _npy(np.array([object()] * 8, dtype=object), allow_pickle=True)})),
        "pickled Python object"),
    "pickled-metadata": (_edit(lambda m: m.update(
        {"__dnn__.npy": _npy(np.array([{"format": "dnn"}], dtype=object), allow_pickle=True)})),
        "pickled Python object"),
    "extra-array": (_edit(lambda m: m.update({"state/9.weight.npy": _npy(np.zeros(2, np.float32))})),
                    "no place for.*state/9.weight"),
    "corrupt-npy-header": (_edit(lambda m: m.update({"state/0.bias.npy": b"\x93NUMPY\x01\x00garbage"})),
                           "header cannot be read"),
    "npy-shorter-than-header": (_edit(lambda m: m.update(
        {"state/0.bias.npy": _npy(np.zeros(8, np.float32))[:-5]})), "truncated or corrupted"),
    "meta-not-object-list": (_edit(lambda m: m.update(
        {"__dnn__.npy": _npy(np.frombuffer(b"[1, 2, 3]", np.uint8))})),
        "must be a JSON object, got a JSON array"),
    "meta-not-object-string": (_edit(lambda m: m.update(
        {"__dnn__.npy": _npy(np.frombuffer(b'"hello"', np.uint8))})), "got a JSON string"),
    "meta-invalid-json": (_edit(lambda m: m.update(
        {"__dnn__.npy": _npy(np.frombuffer(b"{not json", np.uint8))})), "not valid JSON"),
    "meta-nan-constant": (_edit(lambda m: m.update(
        {"__dnn__.npy": _npy(np.frombuffer(b'{"a": NaN}', np.uint8))})), "not valid JSON"),
    "meta-not-utf8": (_edit(lambda m: m.update(
        {"__dnn__.npy": _npy(np.frombuffer(b'{"a": "\xff\xfe"}', np.uint8))})), "not UTF-8"),
    "meta-float-array": (_edit(lambda m: m.update({"__dnn__.npy": _npy(np.zeros(4))})),
                         "must be a 1-D uint8 array"),
    "meta-deeply-nested": (_nested(100_000), "not valid JSON"),
    "future-format-version": (_edit_meta(_set("format_version", 99)),
                              "format version 99.*reads format versions up to 2: upgrade dnn"),
    "format-version-string": (_edit_meta(_set("format_version", "1")), "format_version' must be an int"),
    "wrong-format-name": (_edit_meta(_set("format", "keras")), "metadata 'format' is 'keras'"),
    "wrong-kind": (_edit_meta(_set("kind", "tokenizer")), "file kind is 'tokenizer'"),
    "architecture-missing": (_edit_meta(lambda meta: meta.pop("architecture")), "'architecture' must be"),
    "unknown-layer-type": (_edit_meta(_layer0(type="os.system")), "unknown layer type 'os.system'"),
    "unknown-top-type": (_edit_meta(lambda meta: meta["architecture"].update(type="__import__")),
                         "unknown layer type '__import__'"),
    "top-level-not-sequential": (_edit_meta(lambda meta: meta.update(
        architecture={"type": "ReLU", "config": {}})), "top level must be a model"),
    "layer-spec-not-object": (_edit_meta(lambda meta: meta["architecture"]["config"].update(layers=[1])),
                              "cannot build Sequential.*layer 0 must be a dnn.layers.Layer, got int"),
    "layer-spec-extra-keys": (_edit_meta(lambda meta: meta["architecture"].update(evil=1)),
                              "must be a JSON object with keys 'type' and 'config'"),
    "layer-bad-kwarg": (_edit_meta(lambda meta: meta["architecture"]["config"]["layers"][0]["config"]
                                   .update(evil="__import__('os')")), "cannot build Dense"),
    "layer-bad-value": (_edit_meta(lambda meta: meta["architecture"]["config"]["layers"][0]["config"]
                                   .update(in_features=-4)), "cannot build Dense"),
    "layer-huge-size": (_edit_meta(lambda meta: meta["architecture"]["config"]["layers"][0]["config"]
                                   .update(in_features=10**12)), "larger than anything"),
    "unknown-loss": (_edit_meta(lambda meta: meta["compile"]["loss"][0].update(type="Evil")),
                     "unknown loss 'Evil'"),
    "unknown-optimizer": (_edit_meta(lambda meta: meta["compile"]["optimizer"].update(type="eval")),
                          "unknown optimizer 'eval'"),
    "bad-optimizer-config": (_edit_meta(lambda meta: meta["compile"]["optimizer"]["config"]
                                        .update(lr=-1.0)), "cannot build Adam"),
    "bad-optimizer-lr": (_edit_meta(lambda meta: meta["optimizer_state"].update(lr=-1)),
                         "optimizer_state.lr must be"),
    "bad-iterations": (_edit_meta(lambda meta: meta["optimizer_state"].update(iterations="3")),
                       "iterations must be an int"),
    "bad-epoch": (_edit_meta(_set("training", {"epoch": -2})), "training.epoch must be"),
    "bad-rng": (_edit_meta(_set("rng", {"kind": "numpy", "state": {"bit_generator": "PCG64"}})),
                "generator state is invalid"),
    "unknown-rng-kind": (_edit_meta(_set("rng", {"kind": "mersenne"})), "'rng' must be null"),
    "bad-dtype-field": (_edit_meta(_set("dtype", "object")), "'dtype' must be 'float32' or 'float64'"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_file_raises_serialization_error(case, valid_file, tmp_path):
    make, pattern = HOSTILE[case]
    path = make(valid_file, tmp_path / "hostile.dnn")
    with pytest.raises(dnn.SerializationError, match=pattern) as info:
        dnn.load_model(path)
    assert str(path) in str(info.value)
    if case not in ("nonexistent", "directory"):
        model = dnn.Sequential([L.Dense(4, 8), L.ReLU(), L.Dense(8, 3)])
        try:
            model.load_weights(path)  # weights-only loading is just as careful
        except dnn.SerializationError as exc:
            assert str(path) in str(exc)


def test_loading_never_imports_or_calls_code_from_the_file(valid_file, tmp_path):
    """A type name that is an importable dotted path is refused, not resolved."""
    members = _members(valid_file)
    meta = _get_meta(members)
    meta["architecture"]["config"]["layers"][0] = {"type": "subprocess.Popen",
                                                   "config": {"args": ["touch", str(tmp_path / "pwned")]}}
    _put_meta(members, meta)
    path = _write_zip(tmp_path / "evil.dnn", members)
    with pytest.raises(dnn.SerializationError, match="unknown layer type"):
        dnn.load_model(path)
    assert not (tmp_path / "pwned").exists()


@contextmanager
def _time_limit(seconds: float):
    """Turn a hang into a failure (the main thread's SIGALRM)."""
    def handler(signum, frame):
        raise TimeoutError(f"load took more than {seconds} s")
    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module")
def reference_file(tmp_path_factory):
    dnn.set_backend("numpy")
    dnn.manual_seed(0)
    model = dnn.Sequential([L.Dense(3, 4), L.ReLU(), L.BatchNorm(4), L.Dense(4, 2)])
    model.compile("mse", dnn.optim.SGD(lr=0.1, momentum=0.9))
    model.fit(_data((8, 3)), _data((8, 2)), epochs=1, batch_size=4, verbose=0)
    path = tmp_path_factory.mktemp("ref") / "ref.dnn"
    model.save(path)
    return path.read_bytes(), _host_state(model), _opt_state(model)


_mutation = st.one_of(
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 1, exclude_max=True),
                                                  st.integers(1, 255)), min_size=1, max_size=4)),
    st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True)),
)


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation=_mutation)
def test_flipped_or_truncated_bytes_never_crash(mutation, reference_file, tmp_path):
    data, state, opt_state = reference_file
    buf = bytearray(data)
    kind, how = mutation
    if kind == "flip":
        for where, xor in how:
            buf[int(where * len(buf))] ^= xor
    else:
        buf = buf[: int(how * len(buf))]
    path = tmp_path / "mutated.dnn"
    path.write_bytes(bytes(buf))
    dnn.set_backend("numpy")
    with _time_limit(10):
        try:
            model = dnn.load_model(path)
        except dnn.SerializationError as exc:
            assert str(path) in str(exc)
            return
    # it loaded: then it must hold exactly what was saved
    _assert_same_arrays(state, _host_state(model))
    _assert_same_arrays(opt_state, _opt_state(model))


# ------------------------------------------------------------------ atomic writes
_SAVER = textwrap.dedent("""
    import sys
    import dnn
    from dnn import layers as L
    path = sys.argv[1]
    model = dnn.Sequential([L.Dense(2000, 2000), L.Dense(2000, 1000)])  # 6M parameters, 24 MB
    i = 0
    while True:
        for p in model.parameters():
            p.data[...] = i
        model.save(path)
        print(i, flush=True)
        i += 1
""")


def test_kill_during_save_leaves_previous_file_intact(tmp_path):
    """SIGKILL a process that saves in a loop at random moments: the file on disk is
    always one complete save (all parameters equal to one save counter)."""
    script = tmp_path / "saver.py"
    script.write_text(_SAVER)
    path = tmp_path / "model.dnn"
    env = {**os.environ, "DNN_BACKEND": "numpy", "PYTHONPATH": str(Path(__file__).parents[1])}
    rng = pyrandom.Random(0)
    kills = mid_save_kills = 0
    while kills < 15 and mid_save_kills < 3:
        proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE,
                                text=True, env=env)
        first = proc.stdout.readline()  # one full save done
        assert first.strip().isdigit(), first
        time.sleep(rng.uniform(0.0, 0.5))
        proc.send_signal(signal.SIGKILL)
        kills += 1
        rest = proc.communicate()[0].split()
        last = int(rest[-1]) if rest else int(first)
        temps = [p for p in tmp_path.iterdir() if p.name.startswith(".model.dnn.")]
        mid_save_kills += bool(temps)  # killed while writing the temporary file
        for t in temps:
            t.unlink()
        loaded = dnn.load_model(path)
        values = {float(np.unique(backend.to_numpy(v))[0]) for v in loaded.state_dict().values()}
        assert len(values) == 1  # every array from the same save
        assert values.pop() in (last, last + 1)  # the last reported save, or one renamed just before the kill
    print(f"{mid_save_kills} of {kills} kills landed in the middle of writing a save")
    assert mid_save_kills >= 1  # the test really interrupted writes


def test_loading_does_not_shift_the_random_stream(valid_file, backend_name):
    from dnn.backend import random

    dnn.manual_seed(5)
    expected = backend.to_numpy(random.uniform((4,)))
    dnn.manual_seed(5)
    dnn.load_model(valid_file)  # builds layers, whose initializers draw numbers
    assert np.array_equal(backend.to_numpy(random.uniform((4,))), expected)



@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_failed_save_keeps_the_old_file_and_removes_the_temporary(error, valid_file, monkeypatch):
    import dnn.io.container as container

    before = valid_file.read_bytes()

    def failing_savez(f, **arrays):
        f.write(b"PK\x03\x04 partial archive")
        raise error

    monkeypatch.setattr(container.np, "savez", failing_savez)
    model = dnn.Sequential([L.Dense(4, 8), L.ReLU(), L.Dense(8, 3)])
    with pytest.raises(type(error)):
        model.save(valid_file)
    assert valid_file.read_bytes() == before
    assert sorted(p.name for p in valid_file.parent.iterdir()) == ["valid.dnn"]


def test_save_into_a_missing_directory_names_the_target(tmp_path):
    target = tmp_path / "no" / "such" / "dir" / "m.dnn"
    with pytest.raises(FileNotFoundError, match=f"cannot write {target}"):
        dnn.Sequential([L.Dense(2, 2)]).save(target)
