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
    #: the metrics ``dnn train`` reports (none: the loss alone, e.g. for per-token logits)
    metrics: tuple[str, ...] = ("accuracy",)
    #: a reference loss for the held-out data, from (y_train, y_test, classes): what a model
    #: that ignores its input scores (the test loss is printed next to it)
    baseline: Callable[[np.ndarray, np.ndarray, int], float] | None = None


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


#: ``dnn train stdlib-text``: how much of the standard library's source it reads, and the
#: window length (characters per sample)
TEXT_CHARS, TEXT_CONTEXT = 1_000_000, 64


def _load_stdlib_text(args: argparse.Namespace) -> Arrays:
    """Windows of TEXT_CONTEXT characters, back to back, from the training and validation
    files (dnn.datasets.stdlib_text); targets are the next characters, (N, T) class ids: one
    label per position of the (N, T, vocab) output."""
    from dnn.datasets import load_stdlib_text

    corpus = load_stdlib_text(max_chars=TEXT_CHARS)
    x_train, y_train = corpus.windows("train", TEXT_CONTEXT)
    x_test, y_test = corpus.windows("valid", TEXT_CONTEXT)
    return x_train, y_train, x_test, y_test


def _unigram_baseline(y_train: np.ndarray, y_test: np.ndarray, classes: int) -> float:
    from dnn.datasets.stdlib_text import unigram_cross_entropy

    return unigram_cross_entropy(y_train.reshape(-1), y_test.reshape(-1), classes)


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
    "stdlib-text": DatasetSpec(_load_stdlib_text, 97, epochs=1, batch_size=32, lr=3e-3, hidden=(96,),
                               description="the Python standard library's own source as "
                               f"characters, windows of {TEXT_CONTEXT}; no download",
                               kind="text", sample_shape=(TEXT_CONTEXT,), metrics=(),
                               baseline=_unigram_baseline),
}


# --------------------------------------------------------------------------- models
@dataclass(frozen=True)
class ModelSpec:
    """A model builder and the input layout it expects.

    ``build(sample_shape, classes, args)`` returns an uncompiled model (a
    ``Sequential`` or a graph ``Model``) whose output is ``classes`` logits (per
    position for text). ``layout`` says how samples are presented: ``"flat"``
    (N, features), ``"nchw"`` (N, 1, H, W) images, ``"sequence"`` (N, time,
    features), e.g. image rows as time steps, or ``"tokens"`` (N, T) integer ids.
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
    #: values one sample keeps for its backward (None: a few per width, right for stacks of
    #: Dense/conv/LSTM; a Transformer keeps T·E per node and h·T² per attention)
    count_activations: Callable[[tuple[int, ...], int, argparse.Namespace], int] | None = None


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


def _width(args: argparse.Namespace, default: int) -> int:
    """The first --hidden width when the user gave --hidden, else ``default``."""
    given = getattr(args, "hidden_given", None)
    if given is None:  # built outside the CLI: a --hidden other than the data set's default
        given = args.hidden is not None and tuple(args.hidden) != DATASETS[args.dataset].hidden
    return args.hidden[0] if given else default


def _heads(dim: int) -> int:
    """4 attention heads when the width allows it (each head reads dim/heads features)."""
    return next(h for h in (4, 2, 1) if dim % h == 0)


def _patch(sample_shape: tuple[int, ...]) -> int:
    """The largest of 7, 4, 2, 1 that divides the image's height and width."""
    return next(p for p in (7, 4, 2, 1) if sample_shape[-2] % p == 0 and sample_shape[-1] % p == 0)


def _block_params(dim: int, mlp: int) -> int:
    """One Transformer block: two LayerNorms, attention (4 E×E + 4 E), the MLP."""
    return 4 * dim + (4 * dim * dim + 4 * dim) + (dim * mlp + mlp + mlp * dim + dim)


VIT_DEPTH, LM_DEPTH = 2, 3


def build_vit(sample_shape: tuple[int, ...], classes: int, args: argparse.Namespace) -> Any:
    """A Vision Transformer (examples/17_mnist_vision_transformer.py): 7x7 patches (else 4, 2
    or 1), width the first --hidden width (default 64), depth 2, 4 heads, MLP 2x the width,
    mean-pooled tokens; ``sample_shape`` is (C, H, W)."""
    from dnn.transformer import vision_transformer

    dim = _width(args, 64)
    return vision_transformer(sample_shape, _patch(sample_shape), classes, dim, VIT_DEPTH,
                              _heads(dim), 2 * dim)


def count_vit(sample_shape: tuple[int, ...], classes: int, args: argparse.Namespace) -> int:
    c, h, w = sample_shape
    dim, p = _width(args, 64), _patch(sample_shape)
    tokens = (h // p) * (w // p)
    return ((c * p * p + 1) * dim + tokens * dim + VIT_DEPTH * _block_params(dim, 2 * dim)
            + 2 * dim + (dim + 1) * classes)


def _block_activations(tokens: int, dim: int, mlp: int, heads: int) -> int:
    """Values one pre-norm block keeps per sample: two LayerNorms (x̂), attention (x, Q, K, V,
    O and the h·T² probabilities), the residual inputs, the MLP's input, hidden and GELU."""
    return tokens * (2 * dim + 5 * dim + 2 * dim + dim + 3 * mlp) + heads * tokens * tokens


def activations_vit(sample_shape: tuple[int, ...], classes: int, args: argparse.Namespace) -> int:
    c, h, w = sample_shape
    dim, p = _width(args, 64), _patch(sample_shape)
    tokens = (h // p) * (w // p)
    return (tokens * (c * p * p + 2 * dim) + VIT_DEPTH * _block_activations(
        tokens, dim, 2 * dim, _heads(dim)) + dim + 2 * classes)


def activations_char_transformer(sample_shape: tuple[int, ...], classes: int,
                                 args: argparse.Namespace) -> int:
    tokens, dim = sample_shape[0], _width(args, 96)
    return (tokens * 2 * dim + LM_DEPTH * _block_activations(tokens, dim, 4 * dim, _heads(dim))
            + tokens * (dim + 2 * classes))


def build_char_transformer(sample_shape: tuple[int, ...], classes: int,
                           args: argparse.Namespace) -> Any:
    """A causal character language model (examples/18_char_language_model.py): width the
    first --hidden width (default 96), depth 3, 4 heads, MLP 4x the width; ``sample_shape``
    is (T,) ids and ``classes`` the vocabulary: logits (N, T, classes)."""
    from dnn.transformer import char_transformer

    dim = _width(args, 96)
    return char_transformer(classes, sample_shape[0], dim, LM_DEPTH, _heads(dim), 4 * dim)


def count_char_transformer(sample_shape: tuple[int, ...], classes: int,
                           args: argparse.Namespace) -> int:
    dim = _width(args, 96)
    return ((classes + sample_shape[0]) * dim + LM_DEPTH * _block_params(dim, 4 * dim)
            + 2 * dim + (dim + 1) * classes)


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
    "vit": ModelSpec(build_vit, "nchw", "Vision Transformer: 7x7 patches, 2 pre-norm blocks, 4 heads "
                     "(width: the first --hidden width, default 64)", kinds=frozenset({"images"}),
                     count_params=count_vit, uses_hidden=1,
                     count_activations=activations_vit),
    "char-transformer": ModelSpec(build_char_transformer, "tokens", "causal character Transformer "
                                  "language model, 3 blocks, 4 heads (width: the first --hidden "
                                  "width, default 96)", kinds=frozenset({"text"}),
                                  count_params=count_char_transformer, uses_hidden=1,
                                  count_activations=activations_char_transformer),
}


def _layout(x: np.ndarray, layout: str) -> np.ndarray:
    if layout == "flat":
        return x.reshape(x.shape[0], -1)
    if layout == "nchw":
        return x.reshape(x.shape[0], 1, *x.shape[1:]) if x.ndim == 3 else x
    if layout == "sequence":
        return x if x.ndim == 3 else x.reshape(x.shape[0], x.shape[1], -1)
    if layout == "tokens":
        return x
    raise ValueError(f"unknown input layout {layout!r}; valid: flat, nchw, sequence, tokens")


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
