"""MultiHeadAttention benchmarks, next to PyTorch CPU (``torch.nn.MultiheadAttention``).

    python -m pytest benchmarks/bench_attention.py --benchmark-only --benchmark-group-by=group
    python -m benchmarks.bench_attention [--threads 1] [--repeat 7]   # the T sweep + slope

pytest-benchmark groups (float32, the active ``DNN_BACKEND``):

- ``mha_step``: self-attention forward + backward (input gradient and every
  parameter gradient), batch 32, T 64, E 128, 4 heads; dnn and torch on the
  same arrays (torch with ``need_weights=False``, its fused
  ``scaled_dot_product_attention`` path, as a user would call it).
- ``qkv projections``: x @ W_q, x @ W_k, x @ W_v (+ their backward) as three
  GEMMs, as the layer does, against one GEMM x @ [W_q | W_k | W_v] whose
  (N, T, 3E) output is split into strided head views — the fusion the layer
  does NOT use: it did not pay on NumPy (figures below).
- ``attention core T=...``: only the part quadratic in T — S = Q̂Kᵀ, softmax,
  P V and their backward (``attention_weights`` / ``attention_backward``) — at
  fixed batch N = 8 (so the work grows as T², not as T: fixed N·T would make
  it linear), 4 heads of 32, T = 64, 128, 256, 512.

The script form times the same core, the whole layer and torch's layer over
the T sweep (best of ``--repeat``, alternating contenders round by round; wall
clock and process CPU time, the latter steadier on a shared machine with one
thread) and fits the log-log slope of time against T with its 95% interval: the core is
expected near 2 at large T; the whole layer starts lower (its projections are
linear in T) and approaches 2.

Measured on the shared 2-core machine (NumPy 2.4 + OpenBLAS 0.3.30 vs torch 2.13
CPU), one thread each, ``python -m benchmarks.bench_attention --threads 1
--repeat 15``, CPU time (best of 45 for mha_step, 15 per T):

- mha_step: dnn 12.2 ms, torch 13.4 ms (ratio 0.91); with DNN_BACKEND=torch
  (same math on torch tensors) 9.1 vs 11.7 ms (0.78).
- T sweep (N = 8), core / dnn layer / torch layer: T=64 1.11 / 3.11 / 3.66 ms,
  128 3.86 / 7.57 / 7.65 ms, 256 16.4 / 23.2 / 20.6 ms, 512 83.9 / 101 / 60.1 ms.
  Slopes over T 64-512: core 2.08 ± 0.38 (R² 0.996), dnn layer 1.67 ± 0.57,
  torch layer 1.35 ± 0.34 (its fused CPU kernel never stores the N·h·T²
  probabilities; at T = 512 each of ours is 33 MB, past glibc's mmap
  threshold, so every fresh one costs page faults: dnn / torch 1.7 there,
  0.85-1.13 up to T = 256).
- qkv projections (alternating, CPU time, best of 60): three GEMMs 6.2 ms, one
  fused GEMM 8.2 ms: the fusion does not pay here, so the layer keeps three.
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import numpy as np
import pytest

import dnn
from benchmarks.common import fmt_time, loglog_fit, machine_info, machine_lines, set_threads
from dnn import backend
from dnn.layers import MultiHeadAttention
from dnn.layers.attention import attention_backward, attention_weights

BATCH, LENGTH, EMBED, HEADS = 32, 64, 128, 4
SWEEP_BATCH, SWEEP_LENGTHS = 8, (64, 128, 256, 512)


def _sync(value: Any) -> Any:
    backend.synchronize()
    return value


def _torch():
    return pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def _float32():
    dnn.set_default_dtype("float32")
    dnn.manual_seed(0)
    yield


def _inputs(n: int, t: int, e: int = EMBED) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (rng.standard_normal((n, t, e), dtype=np.float32),
            rng.standard_normal((n, t, e), dtype=np.float32))


# ------------------------------------------------------------------ whole layer
def dnn_step(n: int, t: int) -> Any:
    """A function running one forward + backward of the dnn layer on (n, t, E)."""
    layer = MultiHeadAttention(EMBED, HEADS)
    x, g = (backend.asarray(a) for a in _inputs(n, t))

    def step():
        layer.forward(x, training=True)
        return _sync(layer.backward(g))

    return step


def torch_step(n: int, t: int) -> Any:
    """The same with ``torch.nn.MultiheadAttention(batch_first=True)`` on the CPU."""
    import torch

    module = torch.nn.MultiheadAttention(EMBED, HEADS, batch_first=True)
    xs, gs = _inputs(n, t)
    x, g = torch.from_numpy(xs).requires_grad_(True), torch.from_numpy(gs)

    def step():
        x.grad = None
        module.zero_grad(set_to_none=True)
        y, _ = module(x, x, x, need_weights=False)
        y.backward(g)
        return x.grad

    return step


MHA_GROUP = f"mha_step batch {BATCH}, T {LENGTH}, E {EMBED}, {HEADS} heads: forward+backward"


@pytest.mark.benchmark(group=MHA_GROUP)
def test_mha_step_dnn(benchmark):
    dx = benchmark(dnn_step(BATCH, LENGTH))
    assert tuple(dx.shape) == (BATCH, LENGTH, EMBED)


@pytest.mark.benchmark(group=MHA_GROUP)
def test_mha_step_torch(benchmark):
    _torch()
    dx = benchmark(torch_step(BATCH, LENGTH))
    assert tuple(dx.shape) == (BATCH, LENGTH, EMBED)


# ------------------------------------------------------------------ one GEMM or three
QKV_GROUP = f"qkv projections {BATCH}x{LENGTH}x{EMBED}, {HEADS} heads: forward+backward"


def _projection_arrays() -> dict[str, Any]:
    rng = np.random.default_rng(1)
    e, d = EMBED, EMBED // HEADS
    arrays = {"x": rng.standard_normal((BATCH * LENGTH, e), dtype=np.float32)}
    for part in "qkv":
        arrays[f"w_{part}"] = 0.1 * rng.standard_normal((e, e), dtype=np.float32)
        arrays[f"g_{part}"] = rng.standard_normal((BATCH, HEADS, LENGTH, d), dtype=np.float32)
    return {k: backend.asarray(v) for k, v in arrays.items()}


def _heads(x2: Any) -> Any:
    return backend.xp.permute_dims(
        backend.xp.reshape(x2, (BATCH, LENGTH, HEADS, EMBED // HEADS)), (0, 2, 1, 3))


def _rows(xh: Any, width: int = EMBED) -> Any:
    return backend.xp.reshape(backend.xp.permute_dims(xh, (0, 2, 1, 3)), (-1, width))


@pytest.mark.benchmark(group=QKV_GROUP)
def test_qkv_three_gemms(benchmark):
    a = _projection_arrays()
    x = a["x"]

    def step():
        heads = [_heads(x @ a[f"w_{p}"]) for p in "qkv"]
        scores = heads[0] @ backend.xp.matrix_transpose(heads[1])   # the reads that follow
        grads = [_rows(a[f"g_{p}"]) for p in "qkv"]
        weight_grads = [x.T @ g for g in grads]
        dx = grads[0] @ a["w_q"].T
        dx += grads[1] @ a["w_k"].T
        dx += grads[2] @ a["w_v"].T
        return _sync((scores, weight_grads, dx))

    benchmark(step)


@pytest.mark.benchmark(group=QKV_GROUP)
def test_qkv_one_gemm(benchmark):
    a = _projection_arrays()
    x, xp = a["x"], backend.xp
    d = EMBED // HEADS

    def step():
        w = xp.concat([a["w_q"], a["w_k"], a["w_v"]], axis=1)          # (E, 3E)
        qkv = xp.permute_dims(xp.reshape(x @ w, (BATCH, LENGTH, 3, HEADS, d)), (2, 0, 3, 1, 4))
        scores = qkv[0] @ xp.matrix_transpose(qkv[1])
        stacked = xp.stack([a[f"g_{p}"] for p in "qkv"], axis=2)        # (N, h, 3, T, d)
        grads = xp.reshape(xp.permute_dims(stacked, (0, 3, 2, 1, 4)), (-1, 3 * EMBED))
        weight_grads = x.T @ grads
        dx = grads @ w.T
        return _sync((scores, weight_grads, dx))

    benchmark(step)


# ------------------------------------------------------------------ the quadratic part
def core_step(n: int, t: int) -> Any:
    """S = Q̂Kᵀ, softmax, P V and their backward on (n, h, t, d) heads: no projections."""
    rng = np.random.default_rng(2)
    d = EMBED // HEADS
    q, k, v, g = (backend.asarray(rng.standard_normal((n, HEADS, t, d), dtype=np.float32))
                  for _ in range(4))
    q = q * (1.0 / math.sqrt(d))  # a Python float: keeps float32

    def step():
        probs = attention_weights(q, k)
        out = probs @ v
        grads = attention_backward(g, q, k, v, probs, out)
        return _sync((out, grads))

    return step


@pytest.mark.parametrize("length", SWEEP_LENGTHS)
def test_attention_core(benchmark, length):
    benchmark.group = f"attention core N={SWEEP_BATCH}, {HEADS} heads of {EMBED // HEADS}"
    benchmark.extra_info.update(length=length, batch=SWEEP_BATCH)
    benchmark(core_step(SWEEP_BATCH, length))


# ------------------------------------------------------------------ the T sweep (script)
def best_times(steps: dict[str, Any], repeat: int) -> dict[str, dict[str, float]]:
    """{"wall"|"cpu": {name: best-of-``repeat`` seconds}}, the steps alternating round by
    round (process CPU time: steadier than the wall clock on a shared machine, one thread)."""
    best = {c: dict.fromkeys(steps, float("inf")) for c in ("wall", "cpu")}
    for step in steps.values():
        step()  # warm-up
    for _ in range(repeat):
        for name, step in steps.items():
            wall, cpu = time.perf_counter(), time.process_time()
            step()
            best["cpu"][name] = min(best["cpu"][name], time.process_time() - cpu)
            best["wall"][name] = min(best["wall"][name], time.perf_counter() - wall)
    return best


def sweep(repeat: int, with_torch: bool) -> dict[str, dict[str, list[float]]]:
    """Best-of-``repeat`` seconds per T, wall clock and CPU time, for the core, the dnn layer
    and torch's layer."""
    names = ["core", "dnn layer", *(["torch layer"] if with_torch else [])]
    times: dict[str, dict[str, list[float]]] = {c: {n: [] for n in names} for c in ("wall", "cpu")}
    for t in SWEEP_LENGTHS:
        steps = {"core": core_step(SWEEP_BATCH, t), "dnn layer": dnn_step(SWEEP_BATCH, t)}
        if with_torch:
            steps["torch layer"] = torch_step(SWEEP_BATCH, t)
        best = best_times(steps, repeat)
        for clock in times:
            for name in steps:
                times[clock][name].append(best[clock][name])
        print(f"T={t}: " + ", ".join(f"{k} {fmt_time(best['wall'][k])} wall, "
                                     f"{fmt_time(best['cpu'][k])} CPU" for k in steps), flush=True)
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="BLAS/torch threads (default 1)")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--no-torch", action="store_true")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    dnn.set_default_dtype("float32")
    try:
        import torch  # noqa: F401
        with_torch = not args.no_torch
    except ImportError:
        with_torch = False
    info = machine_info()
    info["threads_requested"] = args.threads
    print("\n".join(machine_lines(info)))
    if with_torch:
        best = best_times({"dnn": dnn_step(BATCH, LENGTH), "torch": torch_step(BATCH, LENGTH)},
                          3 * args.repeat)
        print(f"\nmha_step N={BATCH}, T={LENGTH}, E={EMBED}, {HEADS} heads, forward+backward, "
              f"best of {3 * args.repeat}: " + "; ".join(
                  f"{clock}: dnn {fmt_time(b['dnn'])}, torch {fmt_time(b['torch'])}, ratio "
                  f"{b['dnn'] / b['torch']:.2f}" for clock, b in best.items()))
    print(f"\nT sweep: backend {backend.name}, float32, N={SWEEP_BATCH}, E={EMBED}, {HEADS} "
          f"heads, forward+backward, best of {args.repeat}")
    all_times = sweep(args.repeat, with_torch)
    for clock, times in all_times.items():
        print(f"\n{clock} time (best of {args.repeat})\n\n| T | " + " | ".join(times)
              + " |\n|---|" + "---|" * len(times))
        for i, t in enumerate(SWEEP_LENGTHS):
            print(f"| {t} | " + " | ".join(fmt_time(v[i]) for v in times.values()) + " |")
        print()
        for name, values in times.items():
            fit = loglog_fit(list(SWEEP_LENGTHS), values)
            top = loglog_fit(list(SWEEP_LENGTHS[1:]), values[1:])
            print(f"{name}: slope {fit['slope']:.2f} ± {fit['ci95']:.2f} over T 64-512 "
                  f"(R² {fit['r2']:.3f}); {top['slope']:.2f} ± {top['ci95']:.2f} over T 128-512")
        if with_torch:
            ratios = [a / b for a, b in zip(times["dnn layer"], times["torch layer"])]
            print("dnn / torch layer: " + ", ".join(f"T={t} {r:.2f}"
                                                    for t, r in zip(SWEEP_LENGTHS, ratios)))


if __name__ == "__main__":
    main()
