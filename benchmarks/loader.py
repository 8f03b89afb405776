"""Does the DataLoader hide its host work? One MLP epoch fed four ways, in ONE process.

    python -m benchmarks.loader [--repeats 5] [--threads 2] [--quick]

The model and data are those of ``benchmarks.compare`` (a): the MLP
784-512-256-10, batch 128, Adam(1e-3), float32, Fashion-MNIST's 60,000
training images (random data of that shape without the files). Contenders,
alternating round by round, each the median of its rounds:

- ``arrays``: ``model.fit(x, y, batch_size=128, shuffle=True)``;
- ``loader``: ``model.fit(DataLoader(ArrayDataset(x, y), 128, shuffle=True))``,
  batches gathered on the loader thread (prefetch 2) while the model computes;
- ``loader+crop``: the same with a CPU-heavy augmentation — every image padded
  by 2 and randomly cropped back to 28x28 (``RandomCrop``) — on the loader
  thread;
- ``loader+crop, no thread``: the same augmentation with ``prefetch=0``, done
  on the training thread: the time the thread has to hide.

Targets (issue #12): loader / arrays <= 1.05.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dnn
from benchmarks.common import RESULTS, machine_info, markdown_table, set_threads
from benchmarks.compare import BATCH, _summary, alternate, mlp_data
from dnn import backend
from dnn.data import ArrayDataset, DataLoader, RandomCrop


class FlatCrop:
    """RandomCrop for flat 784-pixel rows: (N, 784) -> (N, 1, 28, 28) -> crop -> (N, 784)."""

    def __init__(self) -> None:
        self.crop = RandomCrop(28, padding=2)

    def __call__(self, x: Any) -> Any:
        xp = backend.xp
        return xp.reshape(self.crop(xp.reshape(x, (-1, 1, 28, 28))), (-1, 784))


def contender(x: Any, y: Any, feed: str) -> Callable[[], float]:
    from dnn.layers import Dense, ReLU

    def epoch() -> float:
        dnn.manual_seed(0)
        model = dnn.Sequential([Dense(784, 512), ReLU(), Dense(512, 256), ReLU(), Dense(256, 10)])
        model.compile(loss=dnn.losses.SoftmaxCrossEntropy(), optimizer=dnn.optim.Adam(lr=1e-3))
        if feed == "arrays":
            args: tuple[Any, ...] = (x, y)
            kwargs: dict[str, Any] = {"batch_size": BATCH}
        else:
            transform = FlatCrop() if "crop" in feed else None
            prefetch = 0 if "no thread" in feed else 2
            args = (DataLoader(ArrayDataset(x, y), BATCH, shuffle=True, transform=transform,
                               prefetch=prefetch),)
            kwargs = {}
        backend.synchronize()
        start = time.perf_counter()
        model.fit(*args, epochs=1, verbose=0, seed=0, **kwargs)
        backend.synchronize()
        return time.perf_counter() - start

    return epoch


def run(repeats: int, threads: int | None, quick: bool) -> dict[str, Any]:
    set_threads(threads)
    dnn.set_backend("numpy")
    dnn.set_default_dtype("float32")
    x, y, source = mlp_data(n=6000 if quick else 60000)
    feeds = ["arrays", "loader", "loader+crop", "loader+crop, no thread"]
    times = alternate({feed: contender(x, y, feed) for feed in feeds}, repeats)
    return {"machine": machine_info(), "data": source, "threads": threads,
            "repeats": repeats, "epoch": _summary(times)}


def report(results: dict[str, Any]) -> str:
    epoch = results["epoch"]
    base = epoch["arrays"]["median"]
    rows = [[feed, f"{t['median']:.3f}", f"{t['min']:.3f}", f"{t['median'] / base:.3f}"]
            for feed, t in epoch.items()]
    hidden = epoch["loader+crop, no thread"]["median"] - epoch["loader+crop"]["median"]
    lines = [f"MLP epoch by feed ({results['data']}, threads={results['threads']}, "
             f"{results['repeats']} rounds)", "",
             markdown_table(["feed", "median s", "min s", "/ arrays"], rows), "",
             f"loader / arrays = {epoch['loader']['median'] / base:.3f} (target <= 1.05). The "
             f"crop on the loader thread instead of the training thread saves {hidden:.3f} s "
             "per epoch (negative: it costs): the thread can hide host work only on a core the "
             "BLAS is not using."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="6,000 samples (a smoke test)")
    parser.add_argument("--json", type=Path, default=RESULTS / "loader.json")
    args = parser.parse_args(argv)
    results = run(args.repeats, args.threads, args.quick)
    print(report(results))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
