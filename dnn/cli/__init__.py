"""Command line: ``dnn train <dataset>`` and ``dnn info`` (also ``python -m dnn``).

Examples::

    dnn train spiral                          # embedded data, no download, a few seconds
    dnn train fashion-mnist                   # MLP 784-512-256-10, Adam, batch 128, 6 epochs
    dnn train mnist --hidden 256 --backend torch --save mnist.dnn
    dnn train mnist --model vit               # a Vision Transformer (7x7 patches, 2 blocks)
    dnn train stdlib-text --model char-transformer   # a character LM on Python's own source
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
import contextlib
import io
import os
import platform
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from typing import Any

import numpy as np

from dnn.cli.catalog import (  # noqa: F401  (DatasetSpec, ModelSpec, build_*: the public API)
    DATASETS,
    MODELS,
    DatasetSpec,
    ModelSpec,
    _layout,
    _models_by_dataset,
    build_lstm,
    build_mlp,
    describe_model,
)
from dnn.cli.checks import SEED_MAX, _hidden, _positive, _seed, validate_train


# --------------------------------------------------------------------------- commands
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
    if dnn.distributed.launched_by_mpi():  # mpiexec -n N python -m mpi4py -m dnn train ...
        dnn.distributed.init()
        if dnn.distributed.rank() != 0:  # one rank reports; every rank trains its slice
            with contextlib.redirect_stdout(io.StringIO()):
                return _train(dnn, args, spec, model_spec)
    return _train(dnn, args, spec, model_spec)


def _train(dnn: Any, args: argparse.Namespace, spec: Any, model_spec: Any) -> int:
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
    if dnn.distributed.world_size() > 1:
        backend_note += f"; data parallel on {dnn.distributed.world_size()} ranks"
    print(f"dnn {dnn.__version__}: training {args.model} on {args.dataset} ({spec.description}); "
          f"backend {dnn.backend.name} on {dnn.backend.device_name()}{backend_note}", flush=True)
    if spec.kind in ("images", "text") and progress != "none":
        print(f"  loading {args.dataset} ...", flush=True)
    x_train, y_train, x_test, y_test = spec.load(args)
    x_train, x_test = _layout(x_train, model_spec.layout), _layout(x_test, model_spec.layout)
    model = model_spec.build(tuple(x_train.shape[1:]), spec.classes, args)
    batch_size = min(batch_size, x_train.shape[0])  # a larger batch is one batch of all the data
    steps = epochs * -(-x_train.shape[0] // batch_size)
    schedule = dnn.optim.schedules.CosineDecay(lr, steps, lr / 50)  # settles in the last epochs
    model.compile(loss=dnn.losses.SoftmaxCrossEntropy(), optimizer=dnn.optim.Adam(lr=schedule),
                  metrics=list(spec.metrics))
    params = sum(int(np.prod(p.shape)) for p in model.parameters())
    hidden = (f" (hidden {','.join(map(str, args.hidden))})" if model_spec.uses_hidden is None
              else "")
    print(f"  model {args.model}{hidden}: {describe_model(model)}; {params:,} parameters")
    print(f"  {x_train.shape[0]} training / {x_test.shape[0]} held-out samples, epochs {epochs}, "
          f"batch {batch_size}, Adam lr {lr:g} (cosine decay)", flush=True)
    start = time.perf_counter()
    verbose = {"bar": 1, "lines": 2, "none": 0}[progress]  # lines: one per epoch, for logs
    history = model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size,
                        verbose=verbose, seed=seed)
    dnn.synchronize()
    seconds = time.perf_counter() - start
    result = model.evaluate(x_test, y_test)
    _report(spec, history, result, seconds, epochs, y_train, y_test)
    if args.save:
        model.save(args.save)
        print(f"saved the model to {args.save}")
    if args.plot and dnn.distributed.rank() == 0:
        for path in _write_plots(args.plot, args.dataset, model, history, x_test, y_test):
            print(f"wrote {path}")
    return 0


def _report(spec: Any, history: Any, result: dict[str, Any], seconds: float, epochs: int,
            y_train: np.ndarray, y_test: np.ndarray) -> None:
    """The result lines: accuracy when the data set reports it, else the test loss, next to
    the data set's baseline when it has one."""
    timing = f"  trained in {seconds:.1f} s ({seconds / max(epochs, 1):.2f} s/epoch)"
    if "accuracy" not in result:
        print(f"{timing}; final training loss {history.history['loss'][-1]:.4f}")
        base = "" if spec.baseline is None else \
            f" (baseline {spec.baseline(y_train, y_test, spec.classes):.4f})"
        print(f"test loss: {result['loss']:.4f}{base}")
        return
    train_acc = history.history["accuracy"][-1] if history.history.get("accuracy") else float("nan")
    print(f"{timing}; final training accuracy {train_acc:.4f}")
    print(f"test accuracy: {result['accuracy']:.4f} (test loss {result['loss']:.4f})")


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
    if y_test.ndim > 1:  # per-position targets (text): no confusion matrix over classes
        return [paths["history"]]
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
        ("elementwise threads", f"{dnn.num_threads()} (dnn.set_num_threads; the BLAS has its "
                                f"own: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})"),
        ("fused kernels", _fused_kernels()),
    ]
    for name in dnn.backend.BACKENDS:  # each backend: installed? usable here? why not?
        rows.append((f"backend: {name}", dnn.backend.status(name).describe()))
    rows += [(dist, _version(dist)) for dist in
             ("numpy", "array-api-compat", "array-api-strict", "torch", "cupy-cuda13x",
              "cupy-cuda12x", "cupy-cuda11x", "numba", "tqdm", "scipy", "pandas", "matplotlib")]
    for name in ("fashion-mnist", "mnist"):
        present = (home / name).is_dir() and any((home / name).glob("*-ubyte.gz"))
        rows.append((f"data: {name}", f"{home / name} ({'present' if present else 'not downloaded'})"))
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        print(f"{key.ljust(width)}  {value}")
    return 0


def _fused_kernels() -> str:
    """Whether the hot elementwise work runs as compiled kernels here (dnn.backend.kernels)."""
    import importlib.util

    import dnn

    what = "optimizer updates, max pooling, im2col/col2im, ReLU backward, LSTM/GRU cells"
    if dnn.backend.library.fused("adam", "float32") is not None:
        return f"yes (Numba, one pass each: {what})"
    if importlib.util.find_spec("numba") is None:
        return f"no (pip install -e \".[fast]\" for one-pass {what} on NumPy)"
    return "no (Numba is installed; the fused kernels serve the NumPy backend, or DNN_FUSED=0)"


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
    train.add_argument("--model", choices=list(MODELS), default=None,
                       help=f"architecture (default: mlp, or the one model that fits the data "
                            f"set); models by data set: {fits}")
    train.add_argument("--epochs", type=_positive(int), help="passes over the data (default: per data set)")
    train.add_argument("--batch-size", type=_positive(int), help="mini-batch size (default: per data set)")
    train.add_argument("--lr", type=_positive(float),
                       help="peak Adam learning rate, cosine-decayed to lr/50 (default: per data set)")
    train.add_argument("--hidden", type=_hidden, help="hidden widths, e.g. 512,256 (default: per data "
                       "set; mlp uses all, lstm, vit and char-transformer the first, cnn none)")
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
