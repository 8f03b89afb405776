"""Per-layer memory, measured against the count from shapes and dtype.

    python -m benchmarks.memory [--backend numpy]

For each layer: the bytes it keeps between forward and backward (its cache),
the bytes of its parameters, of their gradients and of the optimizer's state,
each measured — NumPy: ``tracemalloc`` (NumPy reports its array buffers to
it); CuPy: the memory pool's used bytes — and compared with the theory:

| layer | cache (theory) |
|---|---|
| Dense(in, out) on (N, in) | its input x: N·in |
| ReLU, ELU, Sigmoid, Tanh, Softmax, LogSoftmax | the output y: N·F |
| LeakyReLU, Softplus | the input x: N·F |
| GELU | x and tanh(·): 2·N·F |
| Dropout(p) | the scaled mask: N·F |
| Conv2D(C, O, k) | im2col ``cols``: N·OH·OW·k²·C, and the flattened kernel O·k²·C |
| MaxPool2D(k) | the argmax index per output: N·C·OH·OW int8 |
| AvgPool2D(k) | nothing (shapes only) |
| BatchNorm(C) | x̂: the input's size, and 1/σ: C |
| LayerNorm(F) | x̂: the input's size, and 1/σ: N |
| LSTM(in, H) on (B, T, in) | x time-major T·B·in; h, c: 2·(T+1)·B·H; gates 4·T·B·H; tanh(c): T·B·H |
| SiLU, Mish, GELU(approximate="none") | x and σ(x) / tanh(softplus(x)) / Φ(x): 2·N·F |
| PReLU(C) | the input x: N·C·H·W |
| GroupNorm(G, C) | x̂: the input's size, and 1/σ: N·G |
| MultiHeadAttention(E, h) on (N, T, E) | the probabilities N·h·T², and x, Q̂, K, V, O: 5·N·T·E |
| PositionalEmbedding | nothing (the length T only) |
| Bidirectional(LSTM) | the two LSTMs' caches |
| SoftmaxCrossEntropy (N, C) | softmax and one-hot targets: 2·N·C |

Parameters and gradients: Σ sizes × itemsize each; Adam: exp_avg and
exp_avg_sq (2 × the parameters) plus, without the fused kernel (Numba), its
scratch (one chunk of min(P, 2¹⁶) elements per elementwise thread,
``Optimizer._for_chunks``). PASS when the measurement is within 5 % of the
theory either way, and 4 KiB (Python objects: tuples, Parameter instances).
After backward a layer must hold nothing but its gradients (the cache is
dropped); a convolution hands its im2col matrix to the library's spare
workspaces (``backend.library.give_workspace``), which the next step's forward
writes into instead of a fresh array (19 % of the reference CNN's step) and
which ``fit`` releases when it ends: that row shows it.

The peak of a whole training step of the MLP 784-512-256-10 (batch 128, Adam)
is compared with the sum of the theory: parameters + gradients + Adam state +
the batch + the distinct cached arrays + the largest gradient pair in flight.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import dnn
from benchmarks.common import RESULTS, fmt_bytes, layer_available, markdown_table
from dnn import backend

RATIO = 1.05
SLACK = 4096  # bytes of Python objects (tuples, dicts, Parameter instances)


# ---------------------------------------------------------------- measuring
class Meter:
    """Bytes currently allocated (and the peak) on the active backend."""

    def __enter__(self) -> Meter:
        gc.collect()
        if backend.name == "cupy":
            self._pool = backend.module.get_default_memory_pool()
        else:
            tracemalloc.start()
        return self

    def current(self) -> int:
        gc.collect()
        backend.synchronize()
        if backend.name == "cupy":
            return int(self._pool.used_bytes())
        return tracemalloc.get_traced_memory()[0]

    def peak(self) -> int:
        if backend.name == "cupy":  # the pool's total bytes is an upper bound on the peak
            return int(self._pool.total_bytes())
        return tracemalloc.get_traced_memory()[1]

    def reset_peak(self) -> None:
        if backend.name == "cupy":
            self._pool.free_all_blocks()
        else:
            tracemalloc.reset_peak()

    def __exit__(self, *exc: Any) -> None:
        if backend.name != "cupy":
            tracemalloc.stop()


def supported() -> str | None:
    """Why memory cannot be measured on the active backend, or None."""
    if backend.name in ("numpy", "cupy", "array_api_strict"):  # strict wraps NumPy arrays
        return None
    return (f"backend {backend.name!r}: its allocations are invisible to tracemalloc "
            "(measure on numpy, or cupy on a GPU)")


# ---------------------------------------------------------------- the cases
def _nbytes(shape: tuple[int, ...], itemsize: int = 4) -> int:
    n = itemsize
    for d in shape:
        n *= d
    return n


def _conv_cache(n, c, h, w, o, k, pad):
    oh, ow = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    return _nbytes((n, oh, ow, k * k * c)) + _nbytes((o, k * k * c))


def _lstm_cache(b, t, i, h):
    return _nbytes((t, b, i)) + 2 * _nbytes((t + 1, b, h)) + _nbytes((t, b, 4 * h)) + _nbytes((t, b, h))


#: name -> (class that must exist, factory, input shape, cache theory in bytes)
CASES: dict[str, tuple[str, Callable[[], Any], tuple[int, ...], int]] = {
    "Dense 784->512": ("Dense", lambda: dnn.layers.Dense(784, 512), (128, 784), _nbytes((128, 784))),
    "Dense 512->256": ("Dense", lambda: dnn.layers.Dense(512, 256), (128, 512), _nbytes((128, 512))),
    **{f"{a} 128x512": (a, (lambda a=a: getattr(dnn.layers, a)()), (128, 512), _nbytes((128, 512)))
       for a in ("ReLU", "LeakyReLU", "ELU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "Softplus")},
    "GELU 128x512": ("GELU", lambda: dnn.layers.GELU(), (128, 512), 2 * _nbytes((128, 512))),
    "Dropout 0.5 128x512": ("Dropout", lambda: dnn.layers.Dropout(0.5), (128, 512), _nbytes((128, 512))),
    "Conv2D 1->32 3x3 pad1 on 64x1x28x28": (
        "Conv2D", lambda: dnn.layers.Conv2D(1, 32, 3, padding=1), (64, 1, 28, 28),
        _conv_cache(64, 1, 28, 28, 32, 3, 1)),
    "Conv2D 32->64 3x3 pad1 on 64x32x14x14": (
        "Conv2D", lambda: dnn.layers.Conv2D(32, 64, 3, padding=1), (64, 32, 14, 14),
        _conv_cache(64, 32, 14, 14, 64, 3, 1)),
    "MaxPool2D 2 on 64x32x28x28": ("MaxPool2D", lambda: dnn.layers.MaxPool2D(2), (64, 32, 28, 28),
                                   _nbytes((64, 32, 14, 14), 1)),
    "AvgPool2D 2 on 64x32x28x28": ("AvgPool2D", lambda: dnn.layers.AvgPool2D(2), (64, 32, 28, 28), 0),
    "BatchNorm 512 on 128x512": ("BatchNorm", lambda: dnn.layers.BatchNorm(512), (128, 512),
                                 _nbytes((128, 512)) + _nbytes((512,))),
    "BatchNorm 32 on 64x32x14x14": ("BatchNorm", lambda: dnn.layers.BatchNorm(32), (64, 32, 14, 14),
                                    _nbytes((64, 32, 14, 14)) + _nbytes((32,))),
    "LayerNorm 512 on 128x512": ("LayerNorm", lambda: dnn.layers.LayerNorm(512), (128, 512),
                                 _nbytes((128, 512)) + _nbytes((128,))),
    "LSTM 32->128 on 64x50x32": ("LSTM", lambda: dnn.layers.LSTM(32, 128), (64, 50, 32),
                                 _lstm_cache(64, 50, 32, 128)),
    # issue #13's layers
    **{f"{a} 128x512": (a, (lambda a=a: getattr(dnn.layers, a)()), (128, 512), 2 * _nbytes((128, 512)))
       for a in ("SiLU", "Mish")},
    "GELU exact 128x512": ("GELU", lambda: dnn.layers.GELU(approximate="none"), (128, 512),
                           2 * _nbytes((128, 512))),
    "PReLU 32 on 64x32x14x14": ("PReLU", lambda: dnn.layers.PReLU(32), (64, 32, 14, 14),
                                _nbytes((64, 32, 14, 14))),
    "GroupNorm 8x32 on 64x32x14x14": ("GroupNorm", lambda: dnn.layers.GroupNorm(8, 32),
                                      (64, 32, 14, 14), _nbytes((64, 32, 14, 14)) + _nbytes((64, 8))),
    "MultiHeadAttention E128 h4 on 32x64x128": (
        "MultiHeadAttention", lambda: dnn.layers.MultiHeadAttention(128, 4), (32, 64, 128),
        _nbytes((32, 4, 64, 64)) + 5 * _nbytes((32, 64, 128))),
    "PositionalEmbedding 64x128 on 32x64x128": (
        "PositionalEmbedding", lambda: dnn.layers.PositionalEmbedding(64, 128), (32, 64, 128), 0),
    "Conv1D 16->32 k5 pad2 on 32x16x256": (
        "Conv1D", lambda: dnn.layers.Conv1D(16, 32, 5, padding=2), (32, 16, 256),
        _nbytes((32, 256, 5 * 16)) + _nbytes((32, 5 * 16))),
    "Conv2D depthwise 32 3x3 pad1 on 64x32x14x14": (
        "Conv2D", lambda: dnn.layers.Conv2D(32, 32, 3, padding=1, groups=32), (64, 32, 14, 14),
        _nbytes((64, 32, 16, 16))),
    "Conv2D 32->64 3x3 dilation 2 same on 64x32x14x14": (
        "Conv2D", lambda: dnn.layers.Conv2D(32, 64, 3, padding="same", dilation=2),
        (64, 32, 14, 14), _nbytes((64, 14, 14, 9 * 32)) + _nbytes((64, 9 * 32))),
    "Conv2DTranspose 32->16 3x3 s2 on 64x32x7x7": (
        "Conv2DTranspose", lambda: dnn.layers.Conv2DTranspose(32, 16, 3, stride=2, padding=1,
                                                              output_padding=1),
        (64, 32, 7, 7), _nbytes((64, 7, 7, 32)) + _nbytes((32, 9 * 16))),
    "UpSampling2D 2 on 64x32x14x14": ("UpSampling2D", lambda: dnn.layers.UpSampling2D(2),
                                      (64, 32, 14, 14), 0),
    "GlobalMaxPool2D on 64x32x14x14": ("GlobalMaxPool2D", lambda: dnn.layers.GlobalMaxPool2D(),
                                       (64, 32, 14, 14), _nbytes((64, 32), 8)),
    "Patches 7 on 64x1x28x28": ("Patches", lambda: dnn.layers.Patches(7), (64, 1, 28, 28), 0),
    "SequenceAvgPool on 32x64x128": ("SequenceAvgPool", lambda: dnn.layers.SequenceAvgPool(),
                                     (32, 64, 128), 0),
    "Bidirectional(LSTM 32->128) on 64x50x32": (
        "Bidirectional", lambda: dnn.layers.Bidirectional(dnn.layers.LSTM(32, 128)), (64, 50, 32),
        2 * _lstm_cache(64, 50, 32, 128)),
}


def _adam_theory(param_bytes: int, itemsize: int = 4) -> int:
    """m and v, and one scratch chunk per elementwise thread that has chunks to update
    (none with the fused kernel of dnn.backend.kernels: it needs no scratch)."""
    if backend.library.fused("adam", backend.default_dtype()) is not None:
        return 2 * param_bytes
    elements = param_bytes // itemsize
    chunk = min(elements, backend.library.scratch_elements())
    workers = min(dnn.num_threads(), -(-elements // chunk))
    return 2 * param_bytes + workers * chunk * itemsize


def _row(what: str, measured: int, theory: int) -> dict[str, Any]:
    """PASS when the measurement is within 5 % (and 4 KiB) of the theory either way: a
    cache far below its theory means the theory or the measurement misses something."""
    return {"what": what, "measured": measured, "theory": theory,
            "ratio": measured / theory if theory else (0.0 if measured <= SLACK else float("inf")),
            "pass": (2 - RATIO) * theory - SLACK <= measured <= RATIO * theory + SLACK}


def _workspace_theory(name: str) -> int:
    """The spare im2col matrix a convolution leaves with the library after its backward."""
    _, factory, shape, _ = CASES[name]
    layer = factory()
    if not hasattr(layer, "_kernel2") or getattr(layer, "is_depthwise", False) or \
            not backend.library.strided_writes:  # the portable path keeps none (no out=)
        return 0
    from dnn.backend import windows

    if isinstance(layer, dnn.layers.Conv2DTranspose):  # its backward takes im2col of dL/dy
        shape = tuple(layer.output_shape(shape))
    if len(shape) == 3:  # Conv1D: a one-row image (N, C, 1, L)
        shape = (shape[0], shape[1], 1, shape[2])
    return _nbytes(windows.im2col_shape(shape, layer._kernel2, layer._stride2, layer.pads,
                                        dilation=layer._dilation2, groups=layer.groups))


def _compile_kernels() -> None:
    """One Adam step on a tiny parameter first: a fused kernel's compilation (Numba)
    allocates, and it must not count as the optimizer's state."""
    from dnn.parameter import Parameter

    p = Parameter(backend.asarray(np.zeros(4, np.float32)), "w")
    p.grad = backend.asarray(np.ones(4, np.float32))
    dnn.optim.Adam(lr=1e-3).step([p])


def measure_layer(name: str) -> dict[str, Any]:
    """Cache, params, grads and Adam state of one layer, measured and in theory."""
    _, factory, shape, cache_theory = CASES[name]
    spare_theory = _workspace_theory(name)
    _compile_kernels()
    rng = np.random.default_rng(0)
    dnn.manual_seed(0)
    with Meter() as meter:
        m0 = meter.current()
        layer = factory()
        m1 = meter.current()
        params = layer.parameters()
        param_bytes = sum(_nbytes(p.shape) for p in params)
        buffer_bytes = sum(_nbytes(tuple(getattr(layer, b).shape)) for b in layer.buffer_names)
        x = backend.asarray(rng.standard_normal(shape, dtype=np.float32))
        out_shape = tuple(layer.forward(x, training=True).shape)
        layer.backward(backend.asarray(np.ones(out_shape, np.float32)))  # warm-up: grads exist
        for p in params:
            p.grad = None
        backend.library.release_workspaces()  # the forward below allocates its im2col matrix
        base = meter.current()  # x held, no grads, no cache
        g = backend.asarray(rng.standard_normal(out_shape, dtype=np.float32))
        g_bytes = meter.current() - base
        y = layer.forward(x, training=True)
        del x, y
        cache = meter.current() - base - g_bytes + _nbytes(shape)
        dx = layer.backward(g)
        del dx, g
        m4 = meter.current()
        spare = backend.library.workspace_bytes()  # kept for the next step (fit releases it)
        grads = m4 - base + _nbytes(shape) - spare
        rows = [_row("cache (forward → backward)", cache, cache_theory)]
        if spare or spare_theory:
            rows.append(_row("spare workspace after backward (the next step reuses it)", spare,
                             spare_theory))
        if params:
            opt = dnn.optim.Adam(lr=1e-3)
            opt.step(params)
            m5 = meter.current()
            rows += [_row("parameters" + (" and buffers" if buffer_bytes else ""), m1 - m0,
                          param_bytes + buffer_bytes),
                     _row("gradients (and nothing else after backward)", grads, param_bytes),
                     _row("Adam state (+ scratch)", m5 - m4, _adam_theory(param_bytes))]
        else:
            rows.append(_row("after backward (must be nothing)", grads, 0))
        backend.library.release_workspaces()
    return {"layer": name, "rows": rows}


def measure_training_step() -> dict[str, Any]:
    """Peak bytes of one MLP 784-512-256-10 training step (batch 128, Adam) vs theory."""
    from dnn.layers import Dense, ReLU

    _compile_kernels()
    n, sizes = 128, (784, 512, 256, 10)
    rng = np.random.default_rng(0)
    dnn.manual_seed(0)
    with Meter() as meter:
        m0 = meter.current()
        model = dnn.Sequential([Dense(784, 512), ReLU(), Dense(512, 256), ReLU(), Dense(256, 10)])
        model.compile(loss=dnn.losses.SoftmaxCrossEntropy(), optimizer=dnn.optim.Adam(lr=1e-3))
        x = backend.asarray(rng.random((n, 784), dtype=np.float32))
        y = backend.asarray(rng.integers(0, 10, n))
        model.train_step(x, y)  # state allocated; the next step is the measured one
        meter.reset_peak()
        model.train_step(x, y)
        peak = meter.peak() - m0
        steady = meter.current() - m0
    params = sum(a * b + b for a, b in itertools.pairwise(sizes)) * 4
    batch = _nbytes((n, 784)) + n * 8
    # distinct arrays alive at the start of backward: the ReLU outputs (also the next Dense's
    # cached input), the logits, the loss's softmax and one-hot targets
    caches = _nbytes((n, 512)) + _nbytes((n, 256)) + 3 * _nbytes((n, 10))
    in_flight = max(_nbytes((n, a)) + _nbytes((n, b)) for a, b in itertools.pairwise(sizes[1:]))
    in_flight = max(in_flight, 2 * _nbytes((n, 512)))  # ReLU backward: grad in and out
    theory = 2 * params + _adam_theory(params) + batch + caches + in_flight
    return {"peak": peak, "steady": steady, "theory": theory, "ratio": peak / theory,
            "pass": peak <= RATIO * theory + SLACK,
            "parts": {"parameters": params, "gradients": params, "Adam state + scratch": _adam_theory(params),
                      "batch (x, y)": batch, "cached activations + loss": caches,
                      "gradients in flight": in_flight}}


def run(backend_name: str = "numpy") -> dict[str, Any]:
    dnn.set_backend(backend_name)
    dnn.set_default_dtype("float32")
    why = supported()
    if why:
        return {"backend": backend_name, "skipped": why}
    layers = [measure_layer(name) for name, case in CASES.items() if layer_available(case[0])]
    return {"backend": backend_name, "layers": layers, "step": measure_training_step()}


def report(results: dict[str, Any]) -> str:
    if "skipped" in results:
        return f"skipped: {results['skipped']}"
    rows = [[r["layer"] if i == 0 else "", row["what"], fmt_bytes(row["measured"]), fmt_bytes(row["theory"]),
             f"{row['ratio']:.3f}" if row["theory"] else "–", "PASS" if row["pass"] else "FAIL"]
            for r in results["layers"] for i, row in enumerate(r["rows"])]
    step = results["step"]
    parts = ", ".join(f"{k} {fmt_bytes(v)}" for k, v in step["parts"].items())
    return "\n".join([
        f"Backend {results['backend']}, float32, measured with "
        f"{'the CuPy memory pool' if results['backend'] == 'cupy' else 'tracemalloc'}; "
        f"PASS when measured ≤ {RATIO} × theory + {SLACK // 1024} KiB.",
        "",
        markdown_table(["layer", "what", "measured", "theory", "measured/theory", "verdict"], rows),
        "",
        f"Whole training step of the MLP 784-512-256-10, batch 128, Adam: peak {fmt_bytes(step['peak'])} "
        f"vs theory {fmt_bytes(step['theory'])} (ratio {step['ratio']:.3f}, "
        f"{'PASS' if step['pass'] else 'FAIL'}); held between steps {fmt_bytes(step['steady'])}. "
        f"Theory = {parts}.",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--json", type=Path, default=RESULTS / "memory.json")
    args = parser.parse_args(argv)
    results = run(args.backend)
    print(report(results))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1, default=str))
    ok = "skipped" in results or (all(row["pass"] for r in results["layers"] for row in r["rows"])
                                  and results["step"]["pass"])
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
