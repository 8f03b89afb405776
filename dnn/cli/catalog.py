"""What ``dnn train`` can train: the data sets (:data:`DATASETS`) and the model builders
(:data:`MODELS`), one dictionary entry each, plus how samples are laid out for a model."""

from __future__ import annotations

import argparse
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


# --------------------------------------------------------------------------- data sets
@dataclass(frozen=True)
class DatasetSpec:
    """How to get a data set and the training defaults that suit it.

    ``kind`` is what a sample is (``"points"``: a feature vector, ``"images"``:
    an (H, W) picture) and ``sample_shape`` its shape, known before loading so
    that the arguments can be checked without touching the data.
    """

    load: Callable[[argparse.Namespace], Arrays]  # -> x_train, y_train, x_test, y_test (host)
    classes: int
    epochs: int
    batch_size: int
    lr: float
    hidden: tuple[int, ...]
    description: str
    kind: str = "points"
    sample_shape: tuple[int, ...] = ()
    #: the number of training samples (a larger --batch-size is one batch of them all)
    train_size: int | None = None


def _load_spiral(args: argparse.Namespace) -> Arrays:
    from dnn.datasets import spiral_data

    seed = 0 if args.seed is None else args.seed
    x_train, y_train = spiral_data(1000, 3, noise=0.2, seed=seed)
    x_test, y_test = spiral_data(1000, 3, noise=0.2, seed=seed + 10_000)  # held out: fresh draws
    return x_train, y_train, x_test, y_test


def _image_loader(name: str) -> Callable[[argparse.Namespace], Arrays]:
    def load(args: argparse.Namespace) -> Arrays:
        from dnn.datasets import load_idx_dataset

        (x_train, y_train), (x_test, y_test) = load_idx_dataset(name, args.data_home)
        scale = np.float32(1.0 / 255.0)
        return (x_train.astype(np.float32) * scale, y_train.astype(np.int64),
                x_test.astype(np.float32) * scale, y_test.astype(np.int64))

    return load


DATASETS: dict[str, DatasetSpec] = {
    "spiral": DatasetSpec(_load_spiral, 3, epochs=300, batch_size=64, lr=0.01, hidden=(64, 64),
                          description="NNFS spiral, 3 classes, noise 0.2; embedded, no download",
                          kind="points", sample_shape=(2,), train_size=3000),
    "fashion-mnist": DatasetSpec(_image_loader("fashion-mnist"), 10, epochs=6, batch_size=128,
                                 lr=1e-3, hidden=(512, 256), description="Zalando Fashion-MNIST",
                                 kind="images", sample_shape=(28, 28), train_size=60000),
    "mnist": DatasetSpec(_image_loader("mnist"), 10, epochs=6, batch_size=128, lr=1e-3,
                         hidden=(512, 256), description="MNIST handwritten digits",
                         kind="images", sample_shape=(28, 28), train_size=60000),
}


# --------------------------------------------------------------------------- models
@dataclass(frozen=True)
class ModelSpec:
    """A model builder and the input layout it expects.

    ``build(sample_shape, classes, args)`` returns an uncompiled ``Sequential``
    whose output is ``classes`` logits. ``layout`` says how samples are
    presented: ``"flat"`` (N, features), ``"nchw"`` (N, 1, H, W) images or
    ``"sequence"`` (N, time, features), e.g. image rows as time steps.
    ``kinds`` are the data kinds (:attr:`DatasetSpec.kind`) it makes sense
    for; ``count_params(sample_shape, classes, args)``, when given, counts
    the parameters without building the model (so a model too large for the
    machine is refused before anything is allocated); ``uses_hidden`` is how
    many ``--hidden`` widths it reads (None: all of them).
    """

    build: Callable[[tuple[int, ...], int, argparse.Namespace], Any]
    layout: str = "flat"
    description: str = ""
    kinds: frozenset[str] = field(default_factory=lambda: frozenset({"points", "images"}))
    count_params: Callable[[tuple[int, ...], int, argparse.Namespace], int] | None = None
    uses_hidden: int | None = None


def build_mlp(sample_shape: tuple[int, ...], classes: int, args: argparse.Namespace) -> Any:
    """Dense → ReLU for each hidden width, then Dense to ``classes`` logits."""
    import dnn
    from dnn.layers import Dense, ReLU

    layers: list[Any] = []
    width = int(np.prod(sample_shape))
    for hidden in args.hidden:
        layers += [Dense(width, hidden), ReLU()]
        width = hidden
    layers.append(Dense(width, classes))
    return dnn.Sequential(layers)


def count_mlp(sample_shape: tuple[int, ...], classes: int, args: argparse.Namespace) -> int:
    widths = [math.prod(sample_shape), *args.hidden, classes]
    return sum(a * b + b for a, b in itertools.pairwise(widths))


def build_cnn(sample_shape: tuple[int, ...], classes: int, args: argparse.Namespace) -> Any:
    """conv3x3(32)-ReLU-maxpool2, conv3x3(64)-ReLU-maxpool2, flatten, Dense to ``classes``
    (examples/11_fashion_mnist_cnn.py); ``sample_shape`` is (C, H, W). A fixed architecture:
    ``--hidden`` does not apply."""
    import dnn
    from dnn.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU

    convs = [Conv2D(sample_shape[0], 32, 3, padding=1), ReLU(), MaxPool2D(2),
             Conv2D(32, 64, 3, padding=1), ReLU(), MaxPool2D(2), Flatten()]
    features = dnn.Sequential(convs).output_shape((1, *sample_shape))[1]
    return dnn.Sequential([*convs, Dense(features, classes)])


def count_cnn(sample_shape: tuple[int, ...], classes: int, args: argparse.Namespace) -> int:
    c, h, w = sample_shape
    return (9 * c * 32 + 32) + (9 * 32 * 64 + 64) + (64 * (h // 4) * (w // 4) + 1) * classes


def _lstm_hidden(args: argparse.Namespace) -> int:
    given = getattr(args, "hidden_given", None)
    if given is None:  # built outside the CLI: a --hidden other than the data set's default
        given = args.hidden is not None and tuple(args.hidden) != DATASETS[args.dataset].hidden
    return args.hidden[0] if given else 128


def build_lstm(sample_shape: tuple[int, ...], classes: int, args: argparse.Namespace) -> Any:
    """LSTM over the time axis (image rows as steps), then Dense from the last hidden state
    to ``classes`` (examples/12_mnist_lstm.py); ``sample_shape`` is (time, features). The
    hidden size is the first ``--hidden`` width when given, else 128."""
    import dnn
    from dnn.layers import LSTM, Dense

    hidden = _lstm_hidden(args)
    return dnn.Sequential([LSTM(sample_shape[1], hidden), Dense(hidden, classes)])


def count_lstm(sample_shape: tuple[int, ...], classes: int, args: argparse.Namespace) -> int:
    h = _lstm_hidden(args)
    return 4 * h * (sample_shape[1] + h + 1) + h * classes + classes


MODELS: dict[str, ModelSpec] = {
    "mlp": ModelSpec(build_mlp, "flat", "multi-layer perceptron (Dense + ReLU), widths from --hidden",
                     kinds=frozenset({"points", "images"}), count_params=count_mlp),
    "cnn": ModelSpec(build_cnn, "nchw", "conv32-pool-conv64-pool-dense on NCHW images (fixed; "
                     "--hidden does not apply)", kinds=frozenset({"images"}), count_params=count_cnn,
                     uses_hidden=0),
    "lstm": ModelSpec(build_lstm, "sequence", "LSTM over image rows (or features) as time steps, then Dense "
                      "(hidden size: the first --hidden width, default 128)",
                      kinds=frozenset({"points", "images"}), count_params=count_lstm,
                      uses_hidden=1),
}


def _layout(x: np.ndarray, layout: str) -> np.ndarray:
    if layout == "flat":
        return x.reshape(x.shape[0], -1)
    if layout == "nchw":
        return x.reshape(x.shape[0], 1, *x.shape[1:]) if x.ndim == 3 else x
    if layout == "sequence":
        return x if x.ndim == 3 else x.reshape(x.shape[0], x.shape[1], -1)
    raise ValueError(f"unknown input layout {layout!r}; valid: flat, nchw, sequence")


def _sample_shape(shape: tuple[int, ...], layout: str) -> tuple[int, ...]:
    """What :func:`_layout` makes of one sample of ``shape``."""
    return tuple(_layout(np.empty((1, *shape), np.uint8), layout).shape[1:])


def describe_model(model: Any) -> str:
    """A one-line account of the layers really built, e.g.
    ``Dense(2→64) → ReLU → Dense(64→3)``."""
    parts = []
    for layer in getattr(model, "layers", [model]):
        kind, cfg = type(layer).__name__, layer.get_config()
        if "in_features" in cfg:
            parts.append(f"{kind}({cfg['in_features']}→{cfg['out_features']})")
        elif "in_channels" in cfg:
            k, pad = cfg["kernel_size"], cfg.get("padding", [0, 0])
            extra = f", padding {pad[0]}" if any(pad) else ""
            parts.append(f"{kind}({cfg['in_channels']}→{cfg['out_channels']}, {k[0]}x{k[1]}{extra})")
        elif "hidden_size" in cfg:
            parts.append(f"{kind}({cfg['input_size']}→{cfg['hidden_size']})")
        elif "kernel_size" in cfg:
            parts.append(f"{kind}({cfg['kernel_size'][0]})")
        else:
            parts.append(kind)
    return " → ".join(parts)

def _models_by_dataset() -> str:
    """``spiral: mlp; fashion-mnist: mlp, cnn, lstm; ...``"""
    return "; ".join(f"{name}: {', '.join(m for m, ms in MODELS.items() if d.kind in ms.kinds)}"
                     for name, d in DATASETS.items())
