"""dnn side by side with PyTorch (and scikit-learn, and the bare GEMMs) in ONE process.

    python -m benchmarks.compare [--repeats 5] [--synthetic] [--profile] [--threads 1,2]

``--threads 1,2`` runs everything once per thread count in the same process and
adds the speed-up from 1 to 2 threads of dnn and of PyTorch.

Every contender runs in turn, round after round (alternating, so a busy
machine slows all of them alike), and each reports the median of its rounds:

(a) one epoch of the MLP 784-512-256-10 (ReLU), batch 128, Adam(1e-3), float32,
    softmax cross-entropy, 60,000 samples shuffled: Fashion-MNIST from
    DNN_DATA_HOME (or ../shared/datasets) when its files are there, else random
    data of its shape (``--synthetic`` forces that);
    ``dnn`` is ``model.fit(x, y, epochs=1, batch_size=128, verbose=0)``;
    ``torch`` is the usual loop over a ``randperm`` (index, zero_grad,
    forward, CrossEntropyLoss, backward, Adam.step); ``torch-fused`` the same
    with ``Adam(fused=True)``, PyTorch's one-kernel optimizer step (the
    strongest CPU anchor);
    ``floor`` is the GEMM-only floor: the same 8 matrix products per batch
    (3 forward, 3 weight gradients, 2 input gradients: the first layer's input
    needs none), in NumPy, preallocated, with nothing else;
    ``sklearn`` is MLPClassifier(hidden_layer_sizes=(512, 256), solver="adam",
    batch_size=128, max_iter=1) on the same data.
(b) one training step of the reference CNN (benchmarks/bench_conv.py), batch 64, SGD;
(c) one LSTM step as in benchmarks/bench_lstm.py: batch 64, 50 steps, 32 -> 128,
    forward, backpropagation through time from the last h, SGD.

(b) and (c) have a ``floor`` too: the same matrix products as dnn's step (im2col rows
times the flattened kernels; the recurrent product per time step), in NumPy,
preallocated, with nothing else. ``dnn/floor`` is what dnn adds around its GEMMs;
``torch/floor`` below 1 means PyTorch's own kernels (oneDNN convolutions, MKL) beat
NumPy's BLAS at these shapes, a part of the gap no elementwise work can close.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import dnn
from benchmarks.common import (
    RESULTS,
    layer_available,
    machine_info,
    markdown_table,
    median,
    set_threads,
)
from dnn import backend

BATCH = 128
MLP_SIZES = (784, 512, 256, 10)


# ---------------------------------------------------------------- data
def _shared_data_home() -> Path | None:
    for home in (os.environ.get("DNN_DATA_HOME"),
                 Path(__file__).resolve().parents[2] / "shared" / "datasets"):
        if home and (Path(home) / "fashion-mnist" / "train-images-idx3-ubyte.gz").is_file():
            return Path(home)
    return None


def mlp_data(synthetic: bool = False, n: int = 60000) -> tuple[np.ndarray, np.ndarray, str]:
    """(x float32 (n, 784) in [0, 1], y int64 (n,), a description)."""
    home = None if synthetic else _shared_data_home()
    if home is not None:
        from dnn.datasets import load_fashion_mnist

        (x, y), _ = load_fashion_mnist(home)
        x = (x.reshape(len(x), -1)[:n].astype(np.float32) / 255.0)
        return x, y[:n].astype(np.int64), f"Fashion-MNIST train ({home})"
    rng = np.random.default_rng(0)
    x = rng.random((n, 784), dtype=np.float32)
    return x, rng.integers(0, 10, n).astype(np.int64), "random data of Fashion-MNIST's shape"


# ---------------------------------------------------------------- (a) the MLP epoch
def dnn_mlp(x: np.ndarray, y: np.ndarray) -> Callable[[], float]:
    from dnn.layers import Dense, ReLU

    def epoch() -> float:
        dnn.manual_seed(0)
        model = dnn.Sequential([Dense(784, 512), ReLU(), Dense(512, 256), ReLU(), Dense(256, 10)])
        model.compile(loss=dnn.losses.SoftmaxCrossEntropy(), optimizer=dnn.optim.Adam(lr=1e-3))
        backend.synchronize()
        start = time.perf_counter()
        model.fit(x, y, epochs=1, batch_size=BATCH, verbose=0, seed=0)
        backend.synchronize()
        return time.perf_counter() - start

    return epoch


def torch_mlp(x: np.ndarray, y: np.ndarray, fused: bool = False) -> Callable[[], float]:
    import torch

    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    n = xt.shape[0]

    def epoch() -> float:
        torch.manual_seed(0)
        nn = torch.nn
        model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                              nn.Linear(256, 10))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused or None)
        loss_fn = nn.CrossEntropyLoss()
        start = time.perf_counter()
        order = torch.randperm(n)
        for s in range(0, n, BATCH):
            index = order[s:s + BATCH]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xt[index]), yt[index])
            loss.backward()
            opt.step()
        float(loss.detach())
        return time.perf_counter() - start

    return epoch


def floor_mlp(x: np.ndarray, y: np.ndarray) -> Callable[[], float]:
    """The 8 GEMMs per batch of (a), preallocated, in NumPy: what no framework can beat."""
    rng = np.random.default_rng(0)
    sizes = MLP_SIZES
    w = [rng.standard_normal((a, b), dtype=np.float32) * 0.05 for a, b in itertools.pairwise(sizes)]
    dw = [np.empty_like(wi) for wi in w]
    n = x.shape[0]
    full = n - n % BATCH

    def buffers(rows: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        return ([np.empty((rows, b), np.float32) for b in sizes[1:]],
                [np.empty((rows, a), np.float32) for a in sizes[1:-1]])

    full_bufs, tail_bufs = buffers(BATCH), buffers(n - full)
    grad_out = {r: rng.standard_normal((r, sizes[-1]), dtype=np.float32) for r in (BATCH, n - full)}

    def epoch() -> float:
        start = time.perf_counter()
        for s in range(0, n, BATCH):
            xb = x[s:s + BATCH]
            acts, dxs = full_bufs if xb.shape[0] == BATCH else tail_bufs
            np.matmul(xb, w[0], out=acts[0])
            np.matmul(acts[0], w[1], out=acts[1])
            np.matmul(acts[1], w[2], out=acts[2])
            g = grad_out[xb.shape[0]]
            np.matmul(acts[1].T, g, out=dw[2])
            np.matmul(g, w[2].T, out=dxs[1])
            np.matmul(acts[0].T, dxs[1], out=dw[1])
            np.matmul(dxs[1], w[1].T, out=dxs[0])
            np.matmul(xb.T, dxs[0], out=dw[0])
        return time.perf_counter() - start

    return epoch


def sklearn_mlp(x: np.ndarray, y: np.ndarray) -> Callable[[], float]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    def epoch() -> float:
        clf = MLPClassifier(hidden_layer_sizes=MLP_SIZES[1:-1], activation="relu", solver="adam",
                            batch_size=BATCH, learning_rate_init=1e-3, max_iter=1, shuffle=True,
                            random_state=0, alpha=0.0)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(x, y)
        return time.perf_counter() - start

    return epoch


# ---------------------------------------------------------------- (b) CNN and (c) LSTM steps
def _steps(step: Callable[[], Any], count: int) -> float:
    """Median seconds of ``count`` calls of ``step`` (device synchronised after each)."""
    times = []
    for _ in range(count):
        start = time.perf_counter()
        step()
        backend.synchronize()
        times.append(time.perf_counter() - start)
    return median(times)


def cnn_contenders(steps: int) -> dict[str, Callable[[], float]]:
    import torch

    from benchmarks.bench_conv import BATCH as CNN_BATCH
    from benchmarks.bench_conv import reference_cnn

    rng = np.random.default_rng(1)
    xb = rng.standard_normal((CNN_BATCH, 1, 28, 28), dtype=np.float32)
    yb = rng.integers(0, 10, size=CNN_BATCH)
    dnn.manual_seed(0)
    model = reference_cnn()
    model.compile(loss=dnn.losses.SoftmaxCrossEntropy(), optimizer=dnn.optim.SGD(lr=0.01))
    x, y = backend.asarray(xb), backend.asarray(yb)
    nn = torch.nn
    torch.manual_seed(0)
    tmodel = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                           nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                           nn.Flatten(), nn.Linear(64 * 7 * 7, 10))
    topt = torch.optim.SGD(tmodel.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    tx, ty = torch.from_numpy(xb), torch.from_numpy(yb)

    def torch_step() -> None:
        topt.zero_grad(set_to_none=True)
        loss_fn(tmodel(tx), ty).backward()
        topt.step()

    return {"dnn": lambda: _steps(lambda: model.train_step(x, y), steps),
            "torch": lambda: _steps(torch_step, steps),
            "floor": lambda: _steps(gemm_floor(cnn_gemms(CNN_BATCH)), steps)}


def lstm_contenders(steps: int) -> dict[str, Callable[[], float]]:
    import torch

    from benchmarks.bench_lstm import BATCH as B
    from benchmarks.bench_lstm import FEATURES, HIDDEN, STEPS

    rng = np.random.default_rng(0)
    xs = rng.standard_normal((B, STEPS, FEATURES), dtype=np.float32)
    gs = rng.standard_normal((B, HIDDEN), dtype=np.float32)
    dnn.manual_seed(0)
    layer = dnn.layers.LSTM(FEATURES, HIDDEN)
    opt = dnn.optim.SGD(lr=0.01)
    params = layer.parameters()
    x, g = backend.asarray(xs), backend.asarray(gs)

    def dnn_step() -> None:
        layer.forward(x, training=True)
        layer.backward(g)
        opt.step(params)

    torch.manual_seed(0)
    tlayer = torch.nn.LSTM(FEATURES, HIDDEN, batch_first=True)
    topt = torch.optim.SGD(tlayer.parameters(), lr=0.01)
    tx = torch.from_numpy(xs).requires_grad_(True)
    tg = torch.from_numpy(gs)

    def torch_step() -> None:
        tx.grad = None
        topt.zero_grad(set_to_none=True)
        out, _ = tlayer(tx)
        out[:, -1].backward(tg)
        topt.step()

    return {"dnn": lambda: _steps(dnn_step, steps), "torch": lambda: _steps(torch_step, steps),
            "floor": lambda: _steps(gemm_floor(lstm_gemms(B, STEPS, FEATURES, HIDDEN)), steps)}


def cnn_gemms(batch: int) -> list[tuple[int, int, int, int]]:
    """(count, m, k, n) of the matrix products of one reference-CNN step as dnn runs them
    (im2col rows times the flattened kernel): each convolution's forward and weight
    gradient, the second one's input gradient (the first reads the data), the dense
    layer's three."""
    rows1, rows2 = batch * 28 * 28, batch * 14 * 14
    return [(1, rows1, 9, 32), (1, 32, rows1, 9),
            (1, rows2, 288, 64), (1, 64, rows2, 288), (1, rows2, 64, 288),
            (1, batch, 3136, 10), (1, 3136, batch, 10), (1, batch, 10, 3136)]


def lstm_gemms(batch: int, steps: int, features: int, hidden: int) -> list[tuple[int, int, int, int]]:
    """(count, m, k, n) of one LSTM step of (c): the input projection, the recurrent product
    per time step forward and backward, the two weight gradients, the input gradient."""
    rows, gates = batch * steps, 4 * hidden
    return [(1, rows, features, gates), (steps, batch, hidden, gates), (steps, batch, gates, hidden),
            (1, hidden, rows, gates), (1, features, rows, gates), (1, rows, gates, features)]


def gemm_floor(shapes: list[tuple[int, int, int, int]]) -> Callable[[], None]:
    """A step of nothing but the given matrix products (count times (m, k) @ (k, n)), in
    NumPy, into preallocated outputs: the floor of any framework on this BLAS."""
    rng = np.random.default_rng(0)
    products = [(count, rng.standard_normal((m, k), dtype=np.float32),
                 rng.standard_normal((k, n), dtype=np.float32), np.empty((m, n), np.float32))
                for count, m, k, n in shapes]

    def step() -> None:
        for count, a, b, out in products:
            for _ in range(count):
                np.matmul(a, b, out=out)

    return step


# ---------------------------------------------------------------- the harness
def alternate(contenders: dict[str, Callable[[], float]], repeats: int,
              only: dict[str, int] | None = None,
              threads: int | None = None) -> dict[str, list[float]]:
    """Run each contender once per round, rounds after rounds; a warm-up round first.
    ``only`` caps the rounds of slow contenders (name -> rounds); ``threads``: checked
    after every run (:func:`_hold_threads`)."""
    for fn in contenders.values():
        fn()
        _hold_threads(threads)
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for r in range(repeats):
        names = list(contenders)
        names = names[r % len(names):] + names[:r % len(names)]  # rotate who goes first
        for name in names:
            if only and name in only and len(times[name]) >= only[name]:
                continue
            times[name].append(contenders[name]())
            _hold_threads(threads)
    return times


def _hold_threads(threads: int | None) -> None:
    """Fail if a contender changed PyTorch's thread count. Another OpenMP user in the
    process can do it: starting Numba's OpenMP pool set ``torch.get_num_threads()`` from 1
    to 2, so a "1-thread" torch CNN step took 18.0 ms instead of 28.2 ms (which is how
    this harness's earlier 1-thread torch figures came out too fast)."""
    if threads is None:
        return
    import torch

    if torch.get_num_threads() != threads:
        raise RuntimeError(f"benchmarks.compare: PyTorch now runs on {torch.get_num_threads()} "
                           f"threads, not the {threads} this run measures; a contender "
                           "changed the OpenMP thread count, and its figures would be wrong")


def run(repeats: int = 5, synthetic: bool = False, steps: int = 10, sklearn: bool = True,
        quick: bool = False, threads: int | None = None) -> dict[str, Any]:
    set_threads(threads)
    dnn.set_backend("numpy")
    dnn.set_default_dtype("float32")
    import torch

    torch.set_grad_enabled(True)
    x, y, source = mlp_data(synthetic, n=6000 if quick else 60000)
    results: dict[str, Any] = {"machine": machine_info(), "data": source, "repeats": repeats,
                               "samples": int(x.shape[0])}
    mlp = {"dnn": dnn_mlp(x, y), "torch": torch_mlp(x, y), "torch-fused": torch_mlp(x, y, True),
           "floor": floor_mlp(x, y)}
    only = {}
    if sklearn:
        mlp["sklearn"] = sklearn_mlp(x, y)
        only["sklearn"] = max(3, repeats // 2)
    results["mlp"] = _summary(alternate(mlp, repeats, only, threads))
    if layer_available("Conv2D") and layer_available("MaxPool2D") and layer_available("Flatten"):
        results["cnn"] = _summary(alternate(cnn_contenders(steps), repeats, threads=threads))
    if layer_available("LSTM"):
        results["lstm"] = _summary(alternate(lstm_contenders(steps), repeats, threads=threads))
    return results


def _summary(times: dict[str, list[float]]) -> dict[str, Any]:
    return {name: {"median": median(ts), "min": min(ts), "runs": ts} for name, ts in times.items()}


def ratios(results: dict[str, Any]) -> dict[str, float]:
    out = {}
    mlp = results["mlp"]
    out["mlp dnn/torch"] = mlp["dnn"]["median"] / mlp["torch"]["median"]
    if "torch-fused" in mlp:
        out["mlp dnn/torch-fused"] = mlp["dnn"]["median"] / mlp["torch-fused"]["median"]
    out["mlp dnn/floor"] = mlp["dnn"]["median"] / mlp["floor"]["median"]
    if "sklearn" in mlp:
        out["mlp sklearn/dnn"] = mlp["sklearn"]["median"] / mlp["dnn"]["median"]
    for key in ("cnn", "lstm"):
        if key in results:
            out[f"{key} dnn/torch"] = results[key]["dnn"]["median"] / results[key]["torch"]["median"]
            if "floor" in results[key]:
                out[f"{key} dnn/floor"] = results[key]["dnn"]["median"] / results[key]["floor"]["median"]
                out[f"{key} torch/floor"] = (results[key]["torch"]["median"]
                                             / results[key]["floor"]["median"])
    return out


#: ratio -> (target, stretch target or None, "<=" or ">="): issue #15's targets
TARGETS = {
    "mlp dnn/torch": (0.7, None, "<="), "mlp dnn/torch-fused": (1.0, None, "<="),
    "mlp dnn/floor": (1.4, None, "<="), "mlp sklearn/dnn": (1.5, None, ">="),
    "cnn dnn/torch": (0.9, None, "<="), "lstm dnn/torch": (1.0, None, "<="),
}


def speedups(by_threads: dict[int, dict[str, Any]]) -> list[list[Any]]:
    """Rows (benchmark, contender, t(fewest threads) / t(most threads)) for dnn and torch."""
    low, high = min(by_threads), max(by_threads)
    rows = []
    for key in ("mlp", "cnn", "lstm"):
        if key not in by_threads[low] or key not in by_threads[high]:
            continue
        for name in ("dnn", "torch", "torch-fused"):
            if name in by_threads[low][key]:
                rows.append([key, name, by_threads[low][key][name]["median"]
                             / by_threads[high][key][name]["median"]])
    return rows


def report_threads(by_threads: dict[int, dict[str, Any]]) -> str:
    """One report per thread count, then the speed-ups and whether dnn's keeps up."""
    parts = [f"### {t} thread{'s' if t > 1 else ''}\n\n{report(r)}" for t, r in by_threads.items()]
    if len(by_threads) > 1:
        low, high = min(by_threads), max(by_threads)
        rows = speedups(by_threads)
        table = [[k, n, f"{v:.2f}"] for k, n, v in rows]
        verdicts = []
        for key in ("mlp", "cnn", "lstm"):
            mine = [v for k, n, v in rows if k == key and n == "dnn"]
            theirs = [v for k, n, v in rows if k == key and n == "torch"]
            if mine and theirs:
                ok = "PASS" if mine[0] >= theirs[0] else "FAIL"
                verdicts.append(f"{key}: dnn {mine[0]:.2f}x vs torch {theirs[0]:.2f}x ({ok})")
        parts.append(f"### Speed-up from {low} to {high} threads (target: dnn's >= torch's)\n\n"
                     + markdown_table(["benchmark", "contender", f"t({low}) / t({high})"], table)
                     + "\n\n" + "; ".join(verdicts))
    return "\n\n".join(parts)


def _meets(value: float, target: float, how: str) -> bool:
    return value <= target if how == "<=" else value >= target


def report(results: dict[str, Any]) -> str:
    rows = []
    labels = {
        "mlp": f"(a) MLP 784-512-256-10 epoch, batch {BATCH}, Adam ({results['samples']:,} samples)",
        "cnn": "(b) reference CNN step, batch 64, SGD",
        "lstm": "(c) LSTM step, batch 64, 50 steps, 32 -> 128, SGD",
    }
    for key in ("mlp", "cnn", "lstm"):
        if key not in results:
            continue
        for name, r in results[key].items():
            rows.append([labels[key], name, f"{r['median'] * 1e3:.1f} ms", f"{r['min'] * 1e3:.1f} ms",
                         len(r["runs"])])
    ratio_rows = []
    for name, value in ratios(results).items():
        if name not in TARGETS:  # a reference figure, no target
            ratio_rows.append([name, f"{value:.2f}", "(reference)", ""])
            continue
        target, stretch, how = TARGETS[name]
        verdict = "PASS" if _meets(value, target, how) else "FAIL"
        if stretch is not None and _meets(value, stretch, how):
            verdict += " (stretch too)"
        goal = f"{how} {target}" + (f" (stretch {stretch})" if stretch else "")
        ratio_rows.append([name, f"{value:.2f}", goal, verdict])
    return "\n".join([
        f"Data for (a): {results['data']}. Alternating rounds, median of {results['repeats']} "
        "(scikit-learn: fewer rounds, it is slow); (b), (c): each round is the median of "
        "several steps.",
        "",
        markdown_table(["benchmark", "contender", "median", "best", "rounds"], rows),
        "",
        markdown_table(["ratio", "value", "target", "verdict"], ratio_rows),
    ])


def profile_dnn_epoch(synthetic: bool = False) -> str:
    """A pyinstrument profile of one dnn epoch of (a), as text."""
    from pyinstrument import Profiler

    x, y, _ = mlp_data(synthetic)
    epoch = dnn_mlp(x, y)
    epoch()  # warm-up
    profiler = Profiler(interval=0.001)
    profiler.start()
    epoch()
    profiler.stop()
    return profiler.output_text(unicode=False, show_all=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="steps per round for (b) and (c)")
    parser.add_argument("--synthetic", action="store_true", help="random data even if Fashion-MNIST is there")
    parser.add_argument("--no-sklearn", action="store_true")
    parser.add_argument("--quick", action="store_true", help="6,000 samples (a smoke test)")
    parser.add_argument("--profile", action="store_true", help="print a profile of one dnn epoch of (a)")
    parser.add_argument("--threads", default=None,
                        help="BLAS/OpenMP threads for NumPy and PyTorch alike (default: as "
                             "installed); a list such as 1,2 runs once per count")
    parser.add_argument("--json", type=Path, default=RESULTS / "compare.json")
    args = parser.parse_args(argv)
    counts = [int(t) for t in args.threads.split(",")] if args.threads else [None]
    if args.profile:
        set_threads(counts[-1])
        print(profile_dnn_epoch(args.synthetic))
        return 0
    by_threads = {}
    for threads in counts:
        results = run(args.repeats, args.synthetic, args.steps, not args.no_sklearn, args.quick,
                      threads)
        results["ratios"] = ratios(results)
        by_threads[threads or 0] = results
    if len(counts) == 1:
        print(report(results))
        payload: Any = results
    else:
        print(report_threads(by_threads))
        payload = {"by_threads": by_threads, "speedups": speedups(by_threads)}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(payload, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
