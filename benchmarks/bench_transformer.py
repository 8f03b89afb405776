"""One pre-norm Transformer encoder block, next to PyTorch CPU (``torch.nn.TransformerEncoderLayer``).

    python -m pytest benchmarks/bench_transformer.py --benchmark-only --benchmark-group-by=group
    python -m benchmarks.bench_transformer [--threads 1] [--repeat 15] [--profile]

The block (dnn/transformer.py): x + MHA(LN(x)), then + Dense(GELU(Dense(LN(·)))),
batch 32, T 64, E 128, 4 heads, MLP 512, float32, dropout 0, GELU in the tanh
form on both sides; one step = forward + backward (the input gradient and every
parameter gradient), on the same arrays. dnn runs the block as a ``dnn.Model``
(the graph engine, one context per node); torch runs
``TransformerEncoderLayer(128, 4, 512, dropout=0, norm_first=True, batch_first=True)``
with autograd. The script alternates the two contenders round by round and
reports the best of ``--repeat`` in wall-clock and process CPU time (the CPU
time is steadier on a shared machine with one thread); ``--profile`` adds
where dnn's time goes, per layer type, forward and backward.

Target: dnn / torch <= 1.5. Measured on the shared 2-core machine (NumPy 2.4 +
OpenBLAS 0.3.31 vs torch 2.13 CPU), one thread each, ``python -m
benchmarks.bench_transformer --threads 1 --repeat 15 --profile``, three runs:
dnn 40.3-42.4 ms, torch 27.7-31.1 ms, ratio 1.36-1.46 (wall and CPU time alike);
with ``DNN_BACKEND=torch`` (the same math on torch tensors) 36.1 vs 28.8 ms, 1.25.
Where dnn's time goes (NumPy, per-node timing, sum 38.5 ms):

    Dense (4 products per Dense: forward, dW, dx)   4.1 + 8.6 ms   33 %
    MultiHeadAttention                              4.2 + 7.4 ms   30 %
    GELU, tanh form, on (32, 64, 512)               3.9 + 6.3 ms   27 %
    LayerNorm x2                                    1.5 + 2.3 ms   10 %
    Add x2                                          0.2 ms          1 %

The matrix products run at BLAS speed (the two Dense layers' 0.54 GFLOP forward in
4.1 ms); the gap to torch is mostly the GELU, ten elementwise passes over 1 M
values with their temporaries where torch runs one fused kernel each way.

The pytest-benchmark form does not limit threads: run it with
``OPENBLAS_NUM_THREADS=1`` on a busy machine (with two threads per process the
products wait for each other and both sides become erratic, dnn 0.3-2.9 s in one
such run).
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from typing import Any

import numpy as np
import pytest

import dnn
from benchmarks.bench_attention import best_times
from benchmarks.common import fmt_time, machine_info, machine_lines, set_threads
from dnn import backend
from dnn.transformer import transformer_block

BATCH, LENGTH, EMBED, HEADS, MLP = 32, 64, 128, 4, 512
GROUP = (f"transformer_block N={BATCH}, T={LENGTH}, E={EMBED}, {HEADS} heads, MLP {MLP}: "
         "forward+backward")


def _sync(value: Any) -> Any:
    backend.synchronize()
    return value


@pytest.fixture(autouse=True)
def _float32():
    dnn.set_default_dtype("float32")
    dnn.manual_seed(0)
    yield


def _arrays() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    shape = (BATCH, LENGTH, EMBED)
    return rng.standard_normal(shape, dtype=np.float32), rng.standard_normal(shape, dtype=np.float32)


def dnn_block() -> dnn.Model:
    inp = dnn.Input((LENGTH, EMBED))
    return dnn.Model(inp, transformer_block(inp, HEADS, MLP))


def dnn_step() -> Any:
    model = dnn_block()
    x, g = (backend.asarray(a) for a in _arrays())

    def step():
        model.forward(x, training=True)
        return _sync(model.backward(g))

    return step


def torch_step() -> Any:
    import torch

    functional = torch.nn.functional
    layer = torch.nn.TransformerEncoderLayer(
        EMBED, HEADS, MLP, dropout=0.0, activation=lambda t: functional.gelu(t, approximate="tanh"),
        norm_first=True, batch_first=True)
    x_np, g_np = _arrays()
    x, g = torch.from_numpy(x_np).requires_grad_(True), torch.from_numpy(g_np)

    def step():
        x.grad = None
        for p in layer.parameters():
            p.grad = None
        layer(x).backward(g)
        return x.grad

    return step


@pytest.mark.benchmark(group=GROUP)
def test_transformer_block_dnn(benchmark):
    dx = benchmark(dnn_step())
    assert tuple(dx.shape) == (BATCH, LENGTH, EMBED)


@pytest.mark.benchmark(group=GROUP)
def test_transformer_block_torch(benchmark):
    pytest.importorskip("torch")
    dx = benchmark(torch_step())
    assert tuple(dx.shape) == (BATCH, LENGTH, EMBED)


# ------------------------------------------------------------------ where the time goes
def _timed(method: Any, record: list[float]) -> Any:
    """``method`` that appends its wall time (device synchronised) to ``record``."""
    def run(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        out = _sync(method(*args, **kwargs))
        record.append(time.perf_counter() - start)
        return out
    return run


def profile(repeat: int) -> dict[str, dict[str, float]]:
    """Best-of-``repeat`` seconds per layer type (summed over its nodes), forward and
    backward, from timing each node of the block's step."""
    model = dnn_block()
    x, g = (backend.asarray(a) for a in _arrays())
    spent: dict[tuple[str, str], list[float]] = defaultdict(list)
    layers = [node.layer for node in model._graph.nodes]
    for layer in layers:  # instance attributes shadow the methods while profiling
        name = type(layer).__name__
        layer.forward_with = _timed(layer.forward_with, spent[(name, "forward")])
        layer.backward_with = _timed(layer.backward_with, spent[(name, "backward")])
    best: dict[str, dict[str, float]] = defaultdict(dict)
    try:
        for round_ in range(repeat + 1):  # round 0 warms up
            for record in spent.values():
                record.clear()
            model.forward(x, training=True)
            model.backward(g)
            for (name, part), record in spent.items():
                if round_:
                    best[name][part] = min(best[name].get(part, float("inf")), sum(record))
    finally:
        for layer in layers:
            del layer.forward_with, layer.backward_with
    return dict(best)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="BLAS/torch threads (default 1)")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--profile", action="store_true", help="dnn's time per layer type")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    dnn.set_default_dtype("float32")
    info = machine_info()
    info["threads_requested"] = args.threads
    print("\n".join(machine_lines(info)))
    steps = {"dnn": dnn_step()}
    try:
        steps["torch"] = torch_step()
    except ImportError:
        print("torch is not installed: dnn alone")
    best = best_times(steps, args.repeat)
    print(f"\n{GROUP}, float32, backend {backend.name}, best of {args.repeat}:")
    for clock, b in best.items():
        ratio = f", ratio dnn / torch {b['dnn'] / b['torch']:.2f}" if "torch" in b else ""
        print(f"  {clock}: " + ", ".join(f"{k} {fmt_time(v)}" for k, v in b.items()) + ratio)
    if args.profile:
        table = profile(args.repeat)
        total = sum(p["forward"] + p["backward"] for p in table.values())
        print(f"\ndnn per layer type (best of {args.repeat} per node timing, wall clock; "
              f"sum {fmt_time(total)}):\n\n| layer | forward | backward | share |\n|---|---|---|---|")
        for name, p in sorted(table.items(), key=lambda kv: -(kv[1]["forward"] + kv[1]["backward"])):
            share = (p["forward"] + p["backward"]) / total
            print(f"| {name} | {fmt_time(p['forward'])} | {fmt_time(p['backward'])} | {share:.0%} |")


if __name__ == "__main__":
    main()
