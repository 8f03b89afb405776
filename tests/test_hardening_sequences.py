"""What the outside trials of the attention/Transformer work found, each fixed at its root.

Per-position targets (an (N, T, C) output with (N, T) labels) in every consumer of
targets (losses, metrics, class_weight); hostile input to the new layers, to the
corpus reader and to ``generate``; penalties set on a Parameter; the bounded pool of
spare workspaces; device-side checks left by an earlier call.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest

import dnn
from dnn import backend
from dnn import layers as L
from dnn.backend import deferred
from dnn.backend.random import CounterGenerator
from dnn.datasets import load_stdlib_text
from dnn.errors import ShapeError
from dnn.parameter import Parameter
from dnn.transformer import char_transformer, generate


def _per_position_model(classes: int = 4, metrics=()):
    inp = dnn.Input(shape=(5, 3))
    model = dnn.Model(inp, L.Dense(3, classes)(inp))
    model.compile("SoftmaxCrossEntropy", "sgd", metrics=list(metrics))
    return model


def _data(seed: int = 0, classes: int = 4):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((8, 5, 3)).astype(np.float32), rng.integers(0, classes, (8, 5))


# ------------------------------------------------------------ per-position targets
def test_accuracy_counts_every_position(backend_name):
    model = _per_position_model(metrics=["accuracy"])
    x, y = _data()
    predicted = np.argmax(model.predict(x), axis=-1)
    result = model.evaluate(x, y, verbose=0)["accuracy"]
    assert result == pytest.approx(float(np.mean(predicted == y)))
    one_hot = np.eye(4, dtype=np.float32)[y]
    assert model.evaluate(x, one_hot, verbose=0)["accuracy"] == pytest.approx(result)


def test_class_weight_is_refused_for_a_class_per_position():
    model = _per_position_model()
    x, y = _data()
    with pytest.raises(ValueError, match=r"class_weight weighs whole samples .* a class per "
                                         r"position"):
        model.fit(x, y, class_weight={0: 1.0}, verbose=0)


def test_the_loss_refuses_labels_outside_the_classes(backend_name):
    loss = dnn.losses.SoftmaxCrossEntropy()
    with pytest.raises(ValueError, match=r"class labels must be in \[0, 3\) .* from 0 to 100"):
        loss(backend.asarray(np.zeros((2, 3), np.float32)),
             backend.asarray(np.array([0, 100]), dtype=backend.xp.int64))
    model = _per_position_model()
    x, y = _data()
    y[0, 0] = -3
    with pytest.raises(ValueError, match=r"class labels must be in \[0, 4\)"):
        model.train_step(backend.asarray(x), backend.asarray(y, dtype=backend.xp.int64))


# ------------------------------------------------------------ penalties on parameters
@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "0.5", True, None])
def test_a_parameter_refuses_bad_penalties(bad):
    p = Parameter(np.zeros(3), "w")
    with pytest.raises(ValueError, match="Parameter 'w': l2 must be a finite number >= 0"):
        p.l2 = bad
    with pytest.raises(ValueError, match="l1 must be a finite number >= 0"):
        Parameter(np.zeros(3), "w", l1=bad)


def test_penalties_set_on_parameters_are_saved(tmp_path):
    model = dnn.Sequential([L.Dense(3, 2)])
    model.layers[0].weight.l2, model.layers[0].bias.l1 = 0.5, 0.1
    model.save(tmp_path / "m.dnn")
    loaded = dnn.load_model(tmp_path / "m.dnn")
    assert [(p.l1, p.l2) for p in loaded.parameters()] == [(0.0, 0.5), (0.1, 0.0)]


def test_bidirectional_copies_frozen_flags_and_penalties():
    rnn = L.LSTM(3, 4, l2=0.1)
    rnn.trainable = False
    rnn.weight_ih.l1 = 0.3
    both = L.Bidirectional(rnn)
    for fwd, bwd in zip(both.forward_layer.parameters(), both.backward_layer.parameters()):
        assert (bwd.trainable, bwd.l1, bwd.l2) == (fwd.trainable, fwd.l1, fwd.l2)
    assert not both.backward_layer.trainable


# ------------------------------------------------------------ workspaces and deferred checks
def test_spare_workspaces_are_bounded(backend_name):
    backend.library.release_workspaces()
    conv = L.Conv2D(2, 2, 3, padding=1)
    for size in range(4, 4 + 2 * backend.library.MAX_SPARES + 3):
        x = backend.asarray(np.ones((1, 2, size, size), np.float32))
        conv.backward(backend.xp.ones_like(conv.forward(x, training=True)))
    assert len(backend.library._workspaces) <= backend.library.MAX_SPARES
    backend.library.release_workspaces()


def test_a_flag_left_by_an_earlier_call_says_so(monkeypatch):
    dnn.set_backend("numpy")
    monkeypatch.setattr(backend.library, "in_host_memory", lambda x: False)
    L.Embedding(5, 3, name="lonely")(np.array([[-1]]))  # numpy's take accepts -1: a bad id
    model = dnn.Sequential([L.Dense(2, 2)])
    with pytest.raises(ValueError, match=r"lonely .* \(left by a call before this predict\)"):
        model.predict(np.zeros((3, 2), np.float32))
    deferred.raise_pending()  # read and cleared


# ------------------------------------------------------------ the new layers' inputs
def test_attention_input_checks(backend_name):
    mha = L.MultiHeadAttention(8, 2)
    x = backend.asarray(np.zeros((2, 3, 8), np.float32))
    with pytest.raises(ShapeError, match="has no positions"):
        mha(backend.asarray(np.zeros((2, 0, 8), np.float32)))
    with pytest.raises(TypeError, match="query must be a floating"):
        mha(backend.asarray(np.zeros((2, 3, 8), np.int64)))
    with pytest.raises(TypeError, match="key-padding mask must be a bool, integer"):
        mha(x, mask=np.array([["a", "b", "c"]] * 2))
    with pytest.raises(ValueError, match="mask has NaN or inf"):
        mha(x, mask=np.array([[1.0, np.nan, 1.0]] * 2, np.float32))
    listed = mha(x, mask=[[1, 1, 0], [1, 0, 0]])  # a list (or a NumPy array on torch) works
    as_array = mha(x, mask=backend.asarray(np.array([[1, 1, 0], [1, 0, 0]])))
    np.testing.assert_array_equal(backend.to_numpy(listed), backend.to_numpy(as_array))


def test_positions_and_pooling_refuse_what_they_cannot_mean(backend_name):
    with pytest.raises(TypeError, match="expected floating vectors"):
        L.SinusoidalPositionalEncoding(3)(backend.asarray(np.zeros((1, 2, 3), np.int64)))
    with pytest.raises(ShapeError, match="at least one token"):
        L.SequenceAvgPool()(backend.asarray(np.zeros((2, 0, 3), np.float32)))


def test_flags_and_input_shapes_are_checked():
    with pytest.raises(ValueError, match="Dense: bias must be True or False, got 'yes'"):
        L.Dense(3, 2, bias="yes")
    with pytest.raises(ValueError, match="Conv2D: bias must be True or False"):
        L.Conv2D(1, 2, 3, bias="yes")
    for shape in ("55", (5.5,), (True, 3)):
        with pytest.raises(ValueError, match="Input: shape must be a tuple of ints"):
            dnn.Input(shape=shape)


def test_sigmoid_family_keeps_its_precision_for_negative_inputs():
    x = np.array([-30.0, -20.0, -10.0], np.float32)
    s = backend.to_numpy(L.Sigmoid()(backend.asarray(x)))
    np.testing.assert_allclose(s, 1.0 / (1.0 + np.exp(-x.astype(np.float64))), rtol=1e-6)
    assert backend.to_numpy(L.SiLU()(backend.asarray(x)))[1] < 0  # -20·σ(-20) = -4.1e-8, not -0


# ------------------------------------------------------------ generate, the corpus, the RNG
def test_generate_checks_its_arguments_and_the_logits():
    model = char_transformer(vocab_size=7, context=4, dim=8, depth=1, heads=2, mlp_dim=8)
    prompt = np.array([1, 2])
    for bad in ("1", None, -1.0, float("inf")):
        with pytest.raises(ValueError, match="temperature must be a finite number >= 0"):
            generate(model, prompt, 2, context=4, temperature=bad)
    assert generate(model, prompt, np.int64(2), context=4).shape == (4,)
    with pytest.raises(ShapeError, match="more than max_len=4"):
        generate(model, prompt, 2, context=50)
    model.parameters()[0].data[...] = np.nan
    with pytest.raises(ValueError, match="non-finite logits"):
        generate(model, prompt, 2, context=4)
    flat = dnn.Sequential([L.Embedding(7, 3), L.Flatten(), L.Dense(6, 7)])
    with pytest.raises(ValueError, match="per-position logits"):
        generate(flat, prompt, 2, context=2)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_the_corpus_reads_only_what_it_needs_from_regular_files(tmp_path):
    root = tmp_path / "lib"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    os.mkfifo(root / "a" / "pipe.py")  # reading it would block forever
    (root / "b" / "big.py").write_text("x = 1\n" * 200_000)
    (root / "b" / "small.py").write_text("y = 2\n" * 50)
    result: list = []
    reader = threading.Thread(target=lambda: result.append(
        load_stdlib_text(max_chars=400, valid_fraction=0.2, root=root)), daemon=True)
    reader.start()
    reader.join(timeout=20)
    assert result, "load_stdlib_text blocked on a FIFO"
    corpus = result[0]
    assert corpus.train.shape[0] + corpus.valid.shape[0] <= 400
    assert not any(Path(name).name == "pipe.py" for name in
                   (*corpus.train_files, *corpus.valid_files))
    with pytest.raises(ValueError, match="context must be an int >= 1"):
        corpus.windows("train", 2.5)
    with pytest.raises(ValueError, match=r"decode: ids must be integers in \[0, 97\)"):
        corpus.decode([1000])


def test_the_counter_generator_wraps_and_refuses_empty_ranges():
    gen = CounterGenerator(1)
    gen.set_state({"kind": "counter", "seed": 1, "counter": (1 << 64) - 2})
    gen.bits(5)
    again = CounterGenerator(0)
    again.set_state(gen.get_state())  # still a valid state after passing 2⁶⁴
    with pytest.raises(ValueError, match="high must be greater than low"):
        gen.integers(0, 0, (3,))


def test_the_cli_picks_the_one_model_that_fits_and_sizes_a_transformer(capsys):
    from dnn.cli import main

    with pytest.raises(SystemExit):
        main(["train", "stdlib-text", "--batch-size", "14064"])
    err = capsys.readouterr().err
    assert "with --model char-transformer needs about" in err
