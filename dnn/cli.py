"""Command line: ``dnn train <dataset>`` and ``dnn info`` (also ``python -m dnn``).

Examples::

    dnn train spiral                          # embedded data, no download, a few seconds
    dnn train fashion-mnist                   # MLP 784-512-256-10, Adam, batch 128, 6 epochs
    dnn train mnist --hidden 256 --backend torch --save mnist.dnn
    dnn info                                  # backend, device, library versions
    dnn --version

Models are looked up in :data:`MODELS` (name -> :class:`ModelSpec`) and data
sets in :data:`DATASETS`, so new architectures are one dictionary entry each.

Every argument is checked before any data is loaded or any array allocated:
a model that does not fit the data, a model too large for this machine, a
``--save`` or ``--plot`` destination that cannot be written, ``--plot``
without matplotlib — each is one ``dnn train: error: argument ...`` line
(exit status 2), never a traceback after minutes of training.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]

#: how each optional library is installed (the PyPI project named "dnn" is not this one, so
#: no hint asks pip for dnn[...]; the extras are installed from a checkout)
INSTALL = {
    "matplotlib": 'pip install matplotlib (or, in a dnn checkout: pip install -e ".[plot]")',
    "pandas": 'pip install pandas (or, in a dnn checkout: pip install -e ".[data]")',
}


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
                          kind="points", sample_shape=(2,)),
    "fashion-mnist": DatasetSpec(_image_loader("fashion-mnist"), 10, epochs=6, batch_size=128,
                                 lr=1e-3, hidden=(512, 256), description="Zalando Fashion-MNIST",
                                 kind="images", sample_shape=(28, 28)),
    "mnist": DatasetSpec(_image_loader("mnist"), 10, epochs=6, batch_size=128, lr=1e-3,
                         hidden=(512, 256), description="MNIST handwritten digits",
                         kind="images", sample_shape=(28, 28)),
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


# --------------------------------------------------------------------------- argument types
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
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


SEED_MAX = 2**32 - 1


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(
            f"expected an integer from 0 to {SEED_MAX} (e.g. --seed 0), got {text!r}")
    return value


# --------------------------------------------------------------------------- up-front checks
def memory_bytes() -> int | None:
    """This machine's physical memory in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    raise AssertionError  # pragma: no cover


def _probe_folder(folder: Path) -> None:
    """Create a file in ``folder`` and remove it: the one honest test that files can be
    written there (permissions, read-only file systems, ACLs; root passes ``os.access``)."""
    with tempfile.TemporaryFile(dir=folder):
        pass


def prepare_folder(path: str) -> None:
    """Create the output folder ``path`` (and its parents) now and check files can be written
    in it, so that a bad ``--plot`` folder fails before training, not after."""
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{path} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _probe_folder(folder)
    except OSError as exc:
        raise ValueError(f"cannot create or write the folder {path} ({exc.strerror or exc})") from None


def check_destination(path: str) -> None:
    """Raise ``OSError``/``ValueError`` unless a model file can be written at ``path``:
    ``dnn.io.check_destination`` (folder exists, is writable, the path is not a folder) where
    dnn.io provides it, else the same checks here; then a probe file in the folder, which
    also catches what permission bits do not show (running as root, /proc, ACLs)."""
    try:
        from dnn import io as dnn_io
    except ImportError:  # pragma: no cover - dnn.io is part of the package
        dnn_io = None
    target = Path(path).expanduser()
    check = getattr(dnn_io, "check_destination", None)
    if check is not None:
        check(path)
    else:
        if target.is_dir():
            raise ValueError(f"{path} is a folder; give a file name such as {target / 'model.dnn'}")
        if not target.parent.is_dir():
            what = "is a file, not a folder" if target.parent.exists() else "does not exist"
            raise ValueError(f"the folder {target.parent} {what}; create it first (mkdir -p "
                             f"{target.parent}) or choose another path")
    try:
        _probe_folder(target.parent)
    except OSError as exc:
        raise ValueError(f"the folder {target.parent} is not writable ({exc.strerror or exc}); "
                         "choose another path") from None


def _models_by_dataset() -> str:
    """``spiral: mlp; fashion-mnist: mlp, cnn, lstm; ...``"""
    return "; ".join(f"{name}: {', '.join(m for m, ms in MODELS.items() if d.kind in ms.kinds)}"
                     for name, d in DATASETS.items())


def validate_train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Check what can be checked before loading data or building the model (exit status 2)."""
    spec, model_spec = DATASETS[args.dataset], MODELS[args.model]
    if spec.kind not in model_spec.kinds:
        suitable = [name for name, d in DATASETS.items() if d.kind in model_spec.kinds]
        parser.error(f"argument --model: {args.model} does not fit {args.dataset}, whose samples "
                     f"are {spec.kind} of shape {spec.sample_shape}; {args.model} works on "
                     f"{', '.join(suitable) or 'no data set here'}. Models by data set: "
                     f"{_models_by_dataset()}")
    given_hidden = args.hidden
    args.hidden_given = given_hidden is not None
    if args.hidden is None:
        args.hidden = spec.hidden
    elif model_spec.uses_hidden is not None and len(given_hidden) > model_spec.uses_hidden:
        used = ("nothing (a fixed architecture)" if model_spec.uses_hidden == 0 else
                f"only the first {model_spec.uses_hidden} width")
        print(f"dnn: warning: --model {args.model} uses {used} of --hidden "
              f"{','.join(map(str, given_hidden))}; the rest is ignored", file=sys.stderr)
    if model_spec.count_params is not None and spec.sample_shape:
        shape = _sample_shape(spec.sample_shape, model_spec.layout)
        params = model_spec.count_params(shape, spec.classes, args)
        itemsize = 8 if args.float64 else 4
        batch = args.batch_size or spec.batch_size
        used = args.hidden if model_spec.uses_hidden is None else args.hidden[:model_spec.uses_hidden]
        widths = math.prod(shape) + sum(used) + spec.classes
        # parameters, gradients and Adam's two moments, plus a few activations per width
        need = itemsize * (4 * params + 3 * batch * widths)
        have = memory_bytes()
        if have is not None and need > have:
            parser.error(
                f"argument --hidden: --model {args.model} with --hidden "
                f"{','.join(map(str, args.hidden))} has {params:,} parameters and needs about "
                f"{_fmt_bytes(need)} to train (weights, gradients, Adam state, activations), more "
                f"than this machine's {_fmt_bytes(have)} of memory; use smaller widths such as "
                f"{','.join(map(str, spec.hidden))}")
    if args.save:
        try:
            check_destination(args.save)
        except (OSError, ValueError, TypeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            if isinstance(exc, FileNotFoundError):
                reason += f"; create it first (mkdir -p {Path(args.save).expanduser().parent})"
            parser.error(f"argument --save: cannot save the model to {args.save}: {reason}")
    if args.plot:
        if importlib.util.find_spec("matplotlib") is None:
            parser.error(f"argument --plot: needs matplotlib, which is not installed; "
                         f"install it with: {INSTALL['matplotlib']}")
        try:
            prepare_folder(args.plot)
        except ValueError as exc:
            parser.error(f"argument --plot: cannot write the plots to {args.plot}: {exc}")


# --------------------------------------------------------------------------- commands
def _epoch_lines(epochs: int) -> Any:
    """A callback that prints one line per epoch (``--progress lines``, the default when the
    output is not a terminal): a log gets the numbers without a progress bar's redraws."""
    from dnn.callbacks import Callback

    class EpochLines(Callback):
        start = 0.0

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            values = ", ".join(f"{k} {v:.4f}" for k, v in (logs or {}).items())
            print(f"  epoch {epoch + 1}/{epochs}: {values} ({time.perf_counter() - self.start:.1f} s)",
                  flush=True)

    return EpochLines()


def _progress(args: argparse.Namespace) -> str:
    """--progress as given; by default a bar on a terminal, else one line per epoch."""
    if args.progress is not None:
        return args.progress
    return "bar" if sys.stderr.isatty() and sys.stdout.isatty() else "lines"


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
    progress = _progress(args)

    backend_note = (f" ({dnn.backend.fallback.split(':', 1)[0]}: see the warning)"
                    if dnn.backend.fallback else "")
    print(f"dnn {dnn.__version__}: training {args.model} on {args.dataset} ({spec.description}); "
          f"backend {dnn.backend.name} on {dnn.backend.device_name()}{backend_note}", flush=True)
    if spec.kind == "images" and progress != "none":
        print(f"  loading {args.dataset} ...", flush=True)
    x_train, y_train, x_test, y_test = spec.load(args)
    x_train, x_test = _layout(x_train, model_spec.layout), _layout(x_test, model_spec.layout)
    model = model_spec.build(tuple(x_train.shape[1:]), spec.classes, args)
    steps = epochs * -(-x_train.shape[0] // batch_size)
    schedule = dnn.optim.schedules.CosineDecay(lr, steps, lr / 50)  # settles in the last epochs
    model.compile(loss=dnn.losses.SoftmaxCrossEntropy(), optimizer=dnn.optim.Adam(lr=schedule),
                  metrics=["accuracy"])
    params = sum(int(np.prod(p.shape)) for p in model.parameters())
    hidden = (f" (hidden {','.join(map(str, args.hidden))})" if model_spec.uses_hidden is None
              else "")
    print(f"  model {args.model}{hidden}: {describe_model(model)}; {params:,} parameters")
    print(f"  {x_train.shape[0]} training / {x_test.shape[0]} held-out samples, epochs {epochs}, "
          f"batch {batch_size}, Adam lr {lr:g} (cosine decay)", flush=True)
    callbacks = []
    if progress == "lines":
        callbacks.append(_epoch_lines(epochs))
    start = time.perf_counter()
    history = model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size,
                        verbose=1 if progress == "bar" else 0, seed=seed, callbacks=callbacks)
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
    active = dnn.backend.name
    if dnn.backend.fallback:
        active += f" (fallback: {dnn.backend.fallback})"
    rows = [
        ("dnn", dnn.__version__),
        ("python", f"{platform.python_version()} ({platform.system()} {platform.machine()})"),
        ("backend", active),
        ("device", dnn.backend.device_name()),
        ("default dtype", _dtype_name(dnn.backend.default_dtype())),
    ]
    for name in dnn.backend.BACKENDS:  # each backend: installed? usable here? why not?
        rows.append((f"backend: {name}", dnn.backend.status(name).describe()))
    rows += [(dist, _version(dist)) for dist in
             ("numpy", "array-api-compat", "array-api-strict", "torch", "cupy-cuda13x",
              "cupy-cuda12x", "cupy-cuda11x", "tqdm", "scipy", "pandas", "matplotlib")]
    for name in ("fashion-mnist", "mnist"):
        present = (home / name).is_dir() and any((home / name).glob("*-ubyte.gz"))
        rows.append((f"data: {name}", f"{home / name} ({'present' if present else 'not downloaded'})"))
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        print(f"{key.ljust(width)}  {value}")
    return 0


def _dnn_version() -> str:
    from dnn import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dnn", description="dnn: a deep learning framework from first principles.")
    parser.add_argument("--version", action="version", version=f"dnn {_dnn_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    fits = _models_by_dataset()
    train = sub.add_parser("train", help="train a model on a data set and print the test accuracy",
                           description="Train a model and print its accuracy on held-out data.")
    train.add_argument("dataset", choices=list(DATASETS), help="data set to train on")
    train.add_argument("--model", choices=list(MODELS), default="mlp",
                       help=f"architecture (default: mlp); models by data set: {fits}")
    train.add_argument("--epochs", type=_positive(int), help="passes over the data (default: per data set)")
    train.add_argument("--batch-size", type=_positive(int), help="mini-batch size (default: per data set)")
    train.add_argument("--lr", type=_positive(float),
                       help="peak Adam learning rate, cosine-decayed to lr/50 (default: per data set)")
    train.add_argument("--hidden", type=_hidden, help="hidden widths, e.g. 512,256 (default: per data "
                       "set; mlp uses all, lstm the first, cnn none)")
    train.add_argument("--backend", help="numpy | torch | cupy | array_api_strict (default: $DNN_BACKEND)")
    train.add_argument("--float64", action="store_true", help="train in float64 instead of float32")
    train.add_argument("--seed", type=_seed, help=f"seed for data, initialisation and shuffling, 0 to "
                       f"{SEED_MAX} (default 0)")
    train.add_argument("--data-home", help="folder holding fashion-mnist/ and mnist/ (default: "
                       "$DNN_DATA_HOME or ~/.cache/dnn)")
    train.add_argument("--save", metavar="PATH", help="save the trained model to PATH (e.g. model.dnn)")
    train.add_argument("--plot", metavar="OUTDIR", help="write PNG plots (training curves, confusion "
                       "matrix, decision boundary or misclassified images) to OUTDIR (needs matplotlib)")
    train.add_argument("--progress", choices=("bar", "lines", "none"), default=None,
                       help="bar: a progress bar per epoch; lines: one line per epoch (for logs); "
                       "none: only the result (default: bar on a terminal, lines when piped)")
    train.add_argument("--verbose", "-v", dest="progress", action="store_const", const="bar",
                       help="same as --progress bar")
    train.add_argument("--quiet", "-q", dest="progress", action="store_const", const="none",
                       help="same as --progress none")
    train.set_defaults(func=cmd_train)

    info = sub.add_parser("info", help="print backend, device and library versions")
    info.add_argument("--backend", help="report on this backend instead of $DNN_BACKEND")
    info.set_defaults(func=cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dnn`` console script; returns the exit status."""
    from dnn import backend

    if backend.cli_notice:  # DNN_BACKEND could not be used: say so once, as the command's line
        print(f"dnn: warning: {backend.cli_notice}", file=sys.stderr)
        backend.cli_notice = None
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.func is cmd_train:
        validate_train(args, parser)
    from dnn.datasets import DatasetError
    from dnn.errors import BackendError

    try:
        return args.func(args)
    except (BackendError, DatasetError, ValueError, OSError, ImportError, FloatingPointError) as exc:
        print(f"dnn: error: {exc}", file=sys.stderr)
        return 1
    except MemoryError:
        print("dnn: error: out of memory; use smaller --hidden widths or --batch-size",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("dnn: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
