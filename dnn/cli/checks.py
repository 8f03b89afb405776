"""``dnn train``'s argument types and the checks made before any data is loaded or any
array allocated (each failure is one ``dnn train: error: argument ...`` line, exit status 2)."""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dnn.cli.catalog import DATASETS, MODELS, _models_by_dataset, _sample_shape

#: how each optional library is installed (the PyPI project named "dnn" is not this one, so
#: no hint asks pip for dnn[...]; the extras are installed from a checkout)
INSTALL = {
    "matplotlib": 'pip install matplotlib (or, in a dnn checkout: pip install -e ".[plot]")',
    "pandas": 'pip install pandas (or, in a dnn checkout: pip install -e ".[data]")',
}


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
    :func:`dnn.io.check_destination` (folder exists, is writable, the path is not a folder),
    then a probe file in the folder, which also catches what permission bits do not show
    (running as root, /proc, ACLs)."""
    from dnn.io import check_destination as check

    check(path)
    folder = Path(path).expanduser().parent
    try:
        _probe_folder(folder)
    except OSError as exc:
        raise ValueError(f"the folder {folder} is not writable ({exc.strerror or exc}); "
                         "choose another path") from None



def validate_train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Check what can be checked before loading data or building the model (exit status 2)."""
    if args.model is None:  # mlp, unless it does not fit and one model alone does
        fitting = [name for name, m in MODELS.items() if DATASETS[args.dataset].kind in m.kinds]
        args.model = "mlp" if "mlp" in fitting or len(fitting) != 1 else fitting[0]
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
        if spec.train_size is not None:
            batch = min(batch, spec.train_size)  # a larger batch is one batch of all the data
        used = args.hidden if model_spec.uses_hidden is None else args.hidden[:model_spec.uses_hidden]
        # values a sample keeps for its backward: the model's own count, else a few per width
        per_sample = model_spec.count_activations(shape, spec.classes, args) \
            if model_spec.count_activations is not None else \
            3 * (math.prod(shape) + sum(used) + spec.classes)
        # parameters, gradients and Adam's two moments, plus the activations of a batch
        weights, activations = itemsize * 4 * params, itemsize * batch * per_sample
        need, have = weights + activations, memory_bytes()
        if have is not None and need > have:
            what = (f"needs about {_fmt_bytes(need)} to train (weights, gradients, Adam state: "
                    f"{_fmt_bytes(weights)}; activations of a batch of {batch:,}: "
                    f"{_fmt_bytes(activations)}), more than this machine's {_fmt_bytes(have)} "
                    "of memory")
            if args.batch_size is not None and weights + itemsize * spec.batch_size * per_sample <= have:
                parser.error(f"argument --batch-size: --batch-size {args.batch_size} with --model "
                             f"{args.model} {what}; use a smaller batch such as {spec.batch_size}")
            parser.error(
                f"argument --hidden: --model {args.model} with --hidden "
                f"{','.join(map(str, args.hidden))} has {params:,} parameters and {what}; use "
                f"smaller widths such as {','.join(map(str, spec.hidden))}")
    if args.save is not None:
        if not args.save.strip():
            parser.error("argument --save: expected a file path such as model.dnn, got an empty "
                         "value")
        try:
            check_destination(args.save)
        except (OSError, ValueError, TypeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            if isinstance(exc, FileNotFoundError):
                reason += f"; create it first (mkdir -p {Path(args.save).expanduser().parent})"
            parser.error(f"argument --save: cannot save the model to {args.save}: {reason}")
    if args.plot is not None:
        if not args.plot.strip():
            parser.error("argument --plot: expected an output folder such as plots, got an empty "
                         "value")
        problem = matplotlib_problem()
        if problem:
            parser.error(f"argument --plot: {problem}")
        try:
            prepare_folder(args.plot)
        except ValueError as exc:
            parser.error(f"argument --plot: cannot write the plots to {args.plot}: {exc}")


def matplotlib_problem() -> str:
    """Why the plots cannot be drawn ("" if they can): matplotlib is missing, or installed
    but broken. The real import is tried now, so a broken install fails before training."""
    if importlib.util.find_spec("matplotlib") is None:
        return f"needs matplotlib, which is not installed; install it with: {INSTALL['matplotlib']}"
    try:
        import matplotlib
        import matplotlib.figure  # noqa: F401  (what dnn.plot draws with)
    except Exception as exc:
        return (f"needs matplotlib, which is installed but cannot be imported "
                f"({type(exc).__name__}: {exc}); repair it, e.g. {INSTALL['matplotlib']}")
    return ""
