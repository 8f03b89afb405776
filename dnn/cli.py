"""Command line: ``dnn train <dataset>`` and ``dnn info`` (also ``python -m dnn``).

Examples::

    dnn train spiral                          # embedded data, no download, a few seconds
    dnn train fashion-mnist                   # MLP 784-512-256-10, Adam, batch 128, 6 epochs
    dnn train mnist --hidden 256 --backend torch --save mnist.dnn
    dnn info                                  # backend, device, library versions

Models are looked up in :data:`MODELS` (name -> :class:`ModelSpec`) and data
sets in :data:`DATASETS`, so new architectures (``cnn``, ``lstm``) are one
dictionary entry each.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import numpy as np

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


# --------------------------------------------------------------------------- data sets
@dataclass(frozen=True)
class DatasetSpec:
    """How to get a data set and the training defaults that suit it."""

    load: Callable[[argparse.Namespace], Arrays]  # -> x_train, y_train, x_test, y_test (host)
    classes: int
    epochs: int
    batch_size: int
    lr: float
    hidden: tuple[int, ...]
    description: str


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
                          description="NNFS spiral, 3 classes, noise 0.2 (embedded, no download)"),
    "fashion-mnist": DatasetSpec(_image_loader("fashion-mnist"), 10, epochs=6, batch_size=128,
                                 lr=1e-3, hidden=(512, 256), description="Zalando Fashion-MNIST"),
    "mnist": DatasetSpec(_image_loader("mnist"), 10, epochs=6, batch_size=128, lr=1e-3,
                         hidden=(512, 256), description="MNIST handwritten digits"),
}


# --------------------------------------------------------------------------- models
@dataclass(frozen=True)
class ModelSpec:
    """A model builder and the input layout it expects.

    ``build(sample_shape, classes, args)`` returns an uncompiled ``Sequential``
    whose output is ``classes`` logits. ``layout`` says how samples are
    presented: ``"flat"`` (N, features), ``"nchw"`` (N, 1, H, W) images or
    ``"sequence"`` (N, time, features), e.g. image rows as time steps.
    """

    build: Callable[[tuple[int, ...], int, argparse.Namespace], Any]
    layout: str = "flat"
    description: str = ""


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


def build_cnn(sample_shape: tuple[int, ...], classes: int, args: argparse.Namespace) -> Any:
    """conv3x3(32)-ReLU-maxpool2, conv3x3(64)-ReLU-maxpool2, flatten, Dense to ``classes``
    (examples/11_fashion_mnist_cnn.py); ``sample_shape`` is (C, H, W)."""
    import dnn
    from dnn.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU

    convs = [Conv2D(sample_shape[0], 32, 3, padding=1), ReLU(), MaxPool2D(2),
             Conv2D(32, 64, 3, padding=1), ReLU(), MaxPool2D(2), Flatten()]
    features = dnn.Sequential(convs).output_shape((1, *sample_shape))[1]
    return dnn.Sequential([*convs, Dense(features, classes)])


def build_lstm(sample_shape: tuple[int, ...], classes: int, args: argparse.Namespace) -> Any:
    """LSTM over the time axis (image rows as steps), then Dense from the last hidden state
    to ``classes`` (examples/12_mnist_lstm.py); ``sample_shape`` is (time, features). The
    hidden size is the first ``--hidden`` width when given, else 128."""
    import dnn
    from dnn.layers import LSTM, Dense

    given = args.hidden is not None and tuple(args.hidden) != DATASETS[args.dataset].hidden
    hidden = args.hidden[0] if given else 128
    return dnn.Sequential([LSTM(sample_shape[1], hidden), Dense(hidden, classes)])


MODELS: dict[str, ModelSpec] = {
    "mlp": ModelSpec(build_mlp, "flat", "multi-layer perceptron (Dense + ReLU), widths from --hidden"),
    "cnn": ModelSpec(build_cnn, "nchw", "conv32-pool-conv64-pool-dense on NCHW images"),
    "lstm": ModelSpec(build_lstm, "sequence", "LSTM(128) over image rows as time steps, then Dense"),
}


def _layout(x: np.ndarray, layout: str) -> np.ndarray:
    if layout == "flat":
        return x.reshape(x.shape[0], -1)
    if layout == "nchw":
        return x.reshape(x.shape[0], 1, *x.shape[1:]) if x.ndim == 3 else x
    if layout == "sequence":
        return x if x.ndim == 3 else x.reshape(x.shape[0], x.shape[1], -1)
    raise ValueError(f"unknown input layout {layout!r}; valid: flat, nchw, sequence")


# --------------------------------------------------------------------------- commands
def _hidden(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated layer widths such as 512,256; got {text!r}") from None
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"layer widths must be positive integers, got {text!r}")
    return widths


def _positive(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
        return value

    return parse


def cmd_train(args: argparse.Namespace) -> int:
    import dnn

    spec = DATASETS[args.dataset]
    model_spec = MODELS[args.model]
    if args.backend:
        dnn.set_backend(args.backend)
    if args.float64:
        dnn.set_default_dtype("float64")
    seed = 0 if args.seed is None else args.seed
    dnn.manual_seed(seed)
    epochs = args.epochs if args.epochs is not None else spec.epochs
    batch_size = args.batch_size if args.batch_size is not None else spec.batch_size
    lr = args.lr if args.lr is not None else spec.lr
    if args.hidden is None:
        args.hidden = spec.hidden

    x_train, y_train, x_test, y_test = spec.load(args)
    x_train, x_test = _layout(x_train, model_spec.layout), _layout(x_test, model_spec.layout)
    model = model_spec.build(tuple(x_train.shape[1:]), spec.classes, args)
    steps = epochs * -(-x_train.shape[0] // batch_size)
    schedule = dnn.optim.schedules.CosineDecay(lr, steps, lr / 50)  # settles in the last epochs
    model.compile(loss=dnn.losses.SoftmaxCrossEntropy(), optimizer=dnn.optim.Adam(lr=schedule),
                  metrics=["accuracy"])
    print(f"dnn {dnn.__version__}: training {args.model} on {args.dataset} ({spec.description}); "
          f"backend {dnn.backend.name} on {dnn.backend.device_name()}")
    print(f"  {x_train.shape[0]} training / {x_test.shape[0]} held-out samples, hidden "
          f"{','.join(map(str, args.hidden))}, epochs {epochs}, batch {batch_size}, Adam lr {lr:g} "
          "(cosine decay)")
    start = time.perf_counter()
    history = model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size,
                        verbose=1 if args.verbose else 0, seed=seed)
    dnn.synchronize()
    seconds = time.perf_counter() - start
    train_acc = history.history["accuracy"][-1] if history.history.get("accuracy") else float("nan")
    result = model.evaluate(x_test, y_test)
    print(f"  trained in {seconds:.1f} s ({seconds / max(epochs, 1):.2f} s/epoch); "
          f"final training accuracy {train_acc:.4f}")
    print(f"test accuracy: {result['accuracy']:.4f} (test loss {result['loss']:.4f})")
    if args.save:
        model.save(args.save)
        print(f"saved the model to {args.save}")
    if args.plot:
        for path in _write_plots(args.plot, args.dataset, model, history, x_test, y_test):
            print(f"wrote {path}")
    return 0


def _write_plots(outdir: str, dataset: str, model: Any, history: Any, x_test: np.ndarray,
                 y_test: np.ndarray) -> list[str]:
    """PNGs of a finished run: training curves, test confusion matrix, and the decision
    boundary (2-D inputs) or a grid of misclassified test images (image data sets)."""
    import os

    import dnn
    from dnn import plot
    from dnn.datasets import FASHION_MNIST_CLASSES, MNIST_CLASSES

    os.makedirs(outdir, exist_ok=True)
    names = {"fashion-mnist": FASHION_MNIST_CLASSES, "mnist": MNIST_CLASSES}.get(dataset)
    paths = {key: os.path.join(outdir, f"{dataset}_{key}.png")
             for key in ("history", "confusion_matrix", "decision_boundary", "misclassified")}
    plot.plot_history(history, paths["history"], title=f"{dataset}")
    cm = dnn.metrics.ConfusionMatrix(num_classes=int(y_test.max()) + 1)(model.predict(x_test), y_test)
    plot.plot_confusion_matrix(cm, names, paths["confusion_matrix"], title=f"{dataset} test set")
    written = [paths["history"], paths["confusion_matrix"]]
    if x_test.ndim == 2 and x_test.shape[1] == 2:
        plot.plot_decision_boundary(model, x_test, y_test, paths["decision_boundary"])
        written.append(paths["decision_boundary"])
    elif x_test[0].size == 28 * 28:
        plot.plot_misclassified(model, x_test.reshape(len(x_test), 28, 28), y_test,
                                paths["misclassified"], class_names=names, inputs=x_test)
        written.append(paths["misclassified"])
    return written


def _dtype_name(dtype: Any) -> str:
    return getattr(dtype, "__name__", None) or str(dtype).replace("torch.", "")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def cmd_info(args: argparse.Namespace) -> int:
    import dnn
    from dnn.datasets import data_home

    if args.backend:
        dnn.set_backend(args.backend)
    home = data_home()
    rows = [
        ("dnn", dnn.__version__),
        ("python", f"{platform.python_version()} ({platform.system()} {platform.machine()})"),
        ("backend", dnn.backend.name),
        ("device", dnn.backend.device_name()),
        ("default dtype", _dtype_name(dnn.backend.default_dtype())),
    ]
    rows += [(dist, _version(dist)) for dist in
             ("numpy", "array-api-compat", "array-api-strict", "torch", "cupy-cuda12x",
              "cupy-cuda11x", "tqdm", "scipy", "pandas", "matplotlib")]
    for name in ("fashion-mnist", "mnist"):
        present = (home / name).is_dir() and any((home / name).glob("*-ubyte.gz"))
        rows.append((f"data: {name}", f"{home / name} ({'present' if present else 'not downloaded'})"))
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        print(f"{key.ljust(width)}  {value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dnn", description="dnn: a deep learning framework from first principles.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train = sub.add_parser("train", help="train a model on a data set and print the test accuracy",
                           description="Train a model and print its accuracy on held-out data.")
    train.add_argument("dataset", choices=list(DATASETS), help="data set to train on")
    train.add_argument("--model", choices=list(MODELS), default="mlp", help="architecture (default: mlp)")
    train.add_argument("--epochs", type=_positive(int), help="passes over the data (default: per data set)")
    train.add_argument("--batch-size", type=_positive(int), help="mini-batch size (default: per data set)")
    train.add_argument("--lr", type=_positive(float),
                       help="peak Adam learning rate, cosine-decayed to lr/50 (default: per data set)")
    train.add_argument("--hidden", type=_hidden, help="hidden widths, e.g. 512,256 (default: per data set)")
    train.add_argument("--backend", help="numpy | torch | cupy | array_api_strict (default: $DNN_BACKEND)")
    train.add_argument("--float64", action="store_true", help="train in float64 instead of float32")
    train.add_argument("--seed", type=int, help="seed for data, initialisation and shuffling (default 0)")
    train.add_argument("--data-home", help="folder holding fashion-mnist/ and mnist/ (default: "
                       "$DNN_DATA_HOME or ~/.cache/dnn)")
    train.add_argument("--save", metavar="PATH", help="save the trained model to PATH (e.g. model.dnn)")
    train.add_argument("--plot", metavar="OUTDIR", help="write PNG plots (training curves, confusion "
                       "matrix, decision boundary or misclassified images) to OUTDIR (needs matplotlib)")
    train.add_argument("--verbose", "-v", action="store_true", help="show per-epoch progress")
    train.set_defaults(func=cmd_train)

    info = sub.add_parser("info", help="print backend, device and library versions")
    info.add_argument("--backend", help="report on this backend instead of $DNN_BACKEND")
    info.set_defaults(func=cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dnn`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from dnn.datasets import DatasetError
    from dnn.errors import BackendError

    try:
        return args.func(args)
    except (BackendError, DatasetError, ValueError, OSError, ImportError, FloatingPointError) as exc:
        print(f"dnn: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("dnn: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
