"""Issue #7's measurements: dnn on CuPy next to PyTorch CUDA, in one process, one command.

    python -m benchmarks.gpu --out out/gpu_bench            # on a GPU (cupy + torch CUDA)
    python -m benchmarks.gpu --device cpu --quick           # dnn on NumPy vs torch CPU, small

What is timed (float32; the same architecture, loss and optimizer on both sides):

- ``mlp_b128`` / ``mlp_b1024``: one training epoch of an MLP 784-512-256-10 (ReLU) with
  softmax cross-entropy and Adam(lr=1e-3) over 60000 random samples already on the device,
  shuffled each epoch: ``model.fit(x, y, epochs=1, batch_size=B, verbose=0)`` against the usual
  torch loop (``randperm``, gather, forward, ``cross_entropy``, backward, ``Adam.step``).
- ``cnn``: one training step of the reference CNN on a batch of 64 1x28x28 images: conv3x3
  1->32 pad 1, ReLU, maxpool 2, conv3x3 32->64 pad 1, ReLU, maxpool 2, flatten, dense
  3136->10, softmax cross-entropy, SGD(lr=0.01).
- ``lstm``: one training step of LSTM(32->128) over 50 steps of a batch of 64, last h_T ->
  Dense(128->10), softmax cross-entropy, SGD(lr=0.01) (torch: ``nn.LSTM``, i.e. cuDNN on a GPU).
- ``dense``: forward + backward (dL/dx, dL/dW, dL/db) of one Dense(4096->4096) on a batch of
  4096 — the GEMM-bound case.

How: both sides are built once and warmed up (CuPy compiles its kernels on first use); then
``--repeats`` (>= 5) rounds, each timing one dnn run and one torch run back to back, the order
alternating every round; each run is bracketed by ``dnn.synchronize()`` and
``torch.cuda.synchronize()``. The table shows medians (per epoch, or per step where a run is
``--steps`` steps) and the ratio dnn / torch with its target (large-batch MLP and large Dense
<= 1.2x, batch-128 MLP <= 2x, CNN and LSTM <= 3x).

Memory: the peak bytes allocated during one training step (after a warm-up step, so optimizer
state exists on both sides), on a single batch: CuPy through a memory-pool hook that tracks
live bytes (``cupy.cuda.MemoryHook``; the pool's ``total_bytes`` and
``dnn.backend.memory_stats()`` are recorded too), torch through
``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``. On the CPU only dnn's
NumPy allocations can be traced (``tracemalloc``, the step's increase); torch CPU has no peak
counter, so the ratio is n/a there. The ratio compares each side's step memory, its peak
minus its baseline (what was resident before the step: data sets, weights, optimizer state),
so resident data that one side keeps and the other does not cannot decide it.

TF32 is off on both sides so the comparison is float32 against float32: torch
``backends.cuda.matmul.allow_tf32`` and ``backends.cudnn.allow_tf32`` are set False; CuPy
uses TF32 only when ``CUPY_TF32=1`` (default 0), which the run records. ``--tf32`` lets torch
use it (the table says so).

Writes ``gpu_bench.json`` (every run's time, sizes, versions, device) and ``gpu_bench.md``
(the tables) under ``--out``, and prints the markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import dnn
from dnn import backend
from dnn.layers import LSTM, Conv2D, Dense, Flatten, MaxPool2D, ReLU

#: dnn / torch time ratio each benchmark should stay under (issue #7)
TARGETS = {"mlp_b128": 2.0, "mlp_b1024": 1.2, "cnn": 3.0, "lstm": 3.0, "dense": 1.2}

FULL = {"mlp_samples": 60000, "cnn_batch": 64, "lstm_batch": 64, "lstm_steps": 50,
        "lstm_in": 32, "lstm_hidden": 128, "dense_batch": 4096, "dense_width": 4096, "steps": 20}
#: --quick: a smoke run of every code path (the CPU test), not a measurement
QUICK = {"mlp_samples": 256, "cnn_batch": 4, "lstm_batch": 8, "lstm_steps": 5,
         "lstm_in": 32, "lstm_hidden": 64, "dense_batch": 256, "dense_width": 256, "steps": 1}
MIB = 1 << 20


@dataclass
class Side:
    """One framework's side of a benchmark: ``run`` is the timed work, ``step`` one training
    step on a single batch (for the memory peak), ``warm`` a short warm-up."""

    run: Callable[[], Any]
    step: Callable[[], Any]
    warm: Callable[[], Any]


@dataclass
class Bench:
    name: str
    title: str
    unit: str  # "epoch" or "step"
    per_run: int  # units per timed run
    dnn: Side
    torch: Side
    result: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------ devices
class Device:
    """The pair under test: dnn's backend (numpy | cupy) and torch's device (cpu | cuda)."""

    def __init__(self, kind: str, tf32: bool) -> None:
        import torch

        self.kind, self.torch = kind, torch
        if kind == "cuda":
            if not torch.cuda.is_available():
                raise SystemExit("benchmarks.gpu: --device cuda needs torch with CUDA (torch.cuda "
                                 "is not available); use --device cpu for the CPU smoke run")
            try:
                dnn.set_backend("cupy")
            except dnn.BackendError as exc:  # names the pip install that provides it
                raise SystemExit(f"benchmarks.gpu: --device cuda needs CuPy: {exc}") from exc
            self.tdev = torch.device("cuda")
        else:
            dnn.set_backend("numpy")
            self.tdev = torch.device("cpu")
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        dnn.set_default_dtype("float32")

    def sync(self) -> None:
        dnn.synchronize()
        if self.kind == "cuda":
            self.torch.cuda.synchronize()

    def info(self) -> dict[str, Any]:
        torch = self.torch
        info = {
            "device": self.kind, "dnn_backend": backend.name, "dnn_device": backend.device_name(),
            "numpy": np.__version__, "torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "torch_threads": torch.get_num_threads(),
            "torch_allow_tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
            "torch_allow_tf32_cudnn": torch.backends.cudnn.allow_tf32,
            "torch_cudnn_benchmark": torch.backends.cudnn.benchmark,
            "CUPY_TF32": os.environ.get("CUPY_TF32", "0 (unset)"),
            "NVIDIA_TF32_OVERRIDE": os.environ.get("NVIDIA_TF32_OVERRIDE", "(unset)"),
        }
        if self.kind == "cuda":
            import cupy

            info.update({"cupy": cupy.__version__, "gpu": torch.cuda.get_device_name(),
                         "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion()})
        return info


# ------------------------------------------------------------------------------ builders
def _mlp_dnn(batch: int, x: Any, y: Any, xb: Any, yb: Any) -> Side:
    model = dnn.Sequential([Dense(784, 512), ReLU(), Dense(512, 256), ReLU(), Dense(256, 10)])
    model.compile(loss="SoftmaxCrossEntropy", optimizer=dnn.optim.Adam(lr=1e-3))

    def warm():
        for _ in range(3):
            model.train_step(xb, yb)

    return Side(run=lambda: model.fit(x, y, epochs=1, batch_size=batch, shuffle=True, verbose=0),
                step=lambda: model.train_step(xb, yb), warm=warm)


def _mlp_torch(dev: Device, batch: int, x: Any, y: Any, xb: Any, yb: Any) -> Side:
    torch, nn = dev.torch, dev.torch.nn
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                          nn.Linear(256, 10)).to(dev.tdev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(xs: Any, ys: Any) -> Any:
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(xs), ys)
        loss.backward()
        opt.step()
        return loss.detach()

    def epoch() -> None:
        n = x.shape[0]
        order = torch.randperm(n, device=dev.tdev)
        for start in range(0, n, batch):
            index = order[start:start + batch]
            step(x[index], y[index])

    def warm():
        for _ in range(3):
            step(xb, yb)

    return Side(run=epoch, step=lambda: step(xb, yb), warm=warm)


def _steps(fn: Callable[[], Any], n: int) -> Callable[[], None]:
    def run() -> None:
        for _ in range(n):
            fn()
    return run


def _classifier_dnn(model: dnn.Sequential, opt: Any, xb: Any, yb: Any, steps: int) -> Side:
    model.compile(loss="SoftmaxCrossEntropy", optimizer=opt)

    def step():
        return model.train_step(xb, yb)

    return Side(run=_steps(step, steps), step=step, warm=_steps(step, 3))


def _classifier_torch(dev: Device, forward: Callable[[Any], Any], params: list, xb: Any, yb: Any,
                      steps: int) -> Side:
    torch = dev.torch
    opt = torch.optim.SGD(params, lr=0.01)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(forward(xb), yb)
        loss.backward()
        opt.step()
        return loss.detach()

    return Side(run=_steps(step, steps), step=step, warm=_steps(step, 3))


def build(dev: Device, sizes: dict[str, int], only: set[str] | None) -> list[Bench]:
    torch, nn = dev.torch, dev.torch.nn
    rng = np.random.default_rng(0)
    steps = sizes["steps"]
    benches: list[Bench] = []

    def want(name: str) -> bool:
        return only is None or name in only

    def both(arr: np.ndarray) -> tuple[Any, Any]:
        return dnn.to_device(arr), torch.from_numpy(arr).to(dev.tdev)

    if want("mlp_b128") or want("mlp_b1024"):
        n = sizes["mlp_samples"]
        x_np = rng.standard_normal((n, 784), dtype=np.float32)
        y_np = rng.integers(0, 10, size=n).astype(np.int64)
        (xd, xt), (yd, yt) = both(x_np), both(y_np)
        for batch in (128, 1024):
            name = f"mlp_b{batch}"
            if not want(name):
                continue
            xbd, xbt = both(x_np[:batch])
            ybd, ybt = both(y_np[:batch])
            benches.append(Bench(
                name, f"MLP 784-512-256-10 epoch, {n} samples, batch {batch}, Adam", "epoch", 1,
                _mlp_dnn(batch, xd, yd, xbd, ybd), _mlp_torch(dev, batch, xt, yt, xbt, ybt)))

    if want("cnn"):
        b = sizes["cnn_batch"]
        x_np = rng.standard_normal((b, 1, 28, 28), dtype=np.float32)
        y_np = rng.integers(0, 10, size=b).astype(np.int64)
        (xd, xt), (yd, yt) = both(x_np), both(y_np)
        model = dnn.Sequential([Conv2D(1, 32, 3, padding=1), ReLU(), MaxPool2D(2),
                                Conv2D(32, 64, 3, padding=1), ReLU(), MaxPool2D(2),
                                Flatten(), Dense(3136, 10)])
        tnet = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(3136, 10)).to(dev.tdev)
        benches.append(Bench(
            "cnn", f"CNN step, batch {b} of 1x28x28 (conv32-pool-conv64-pool-dense), SGD", "step", steps,
            _classifier_dnn(model, dnn.optim.SGD(lr=0.01), xd, yd, steps),
            _classifier_torch(dev, tnet, list(tnet.parameters()), xt, yt, steps)))

    if want("lstm"):
        b, t, f, h = (sizes[k] for k in ("lstm_batch", "lstm_steps", "lstm_in", "lstm_hidden"))
        x_np = rng.standard_normal((b, t, f), dtype=np.float32)
        y_np = rng.integers(0, 10, size=b).astype(np.int64)
        (xd, xt), (yd, yt) = both(x_np), both(y_np)
        model = dnn.Sequential([LSTM(f, h), Dense(h, 10)])
        lstm, head = nn.LSTM(f, h, batch_first=True).to(dev.tdev), nn.Linear(h, 10).to(dev.tdev)
        benches.append(Bench(
            "lstm", f"LSTM step, batch {b}, {t} steps, {f}->{h}, Dense {h}->10, SGD", "step", steps,
            _classifier_dnn(model, dnn.optim.SGD(lr=0.01), xd, yd, steps),
            _classifier_torch(dev, lambda xs: head(lstm(xs)[0][:, -1]),
                              [*lstm.parameters(), *head.parameters()], xt, yt, steps)))

    if want("dense"):
        b, w = sizes["dense_batch"], sizes["dense_width"]
        x_np = rng.standard_normal((b, w), dtype=np.float32)
        g_np = rng.standard_normal((b, w), dtype=np.float32)
        (xd, xt), (gd, gt) = both(x_np), both(g_np)
        layer = Dense(w, w)
        lin = nn.Linear(w, w).to(dev.tdev)
        xt.requires_grad_(True)

        def dnn_step():
            layer.forward(xd, training=True)
            return layer.backward(gd)

        def torch_step():
            xt.grad = None
            lin.zero_grad(set_to_none=True)
            lin(xt).backward(gt)
            return xt.grad

        benches.append(Bench(
            "dense", f"Dense {w}x{w} forward+backward, batch {b}", "step", steps,
            Side(_steps(dnn_step, steps), dnn_step, _steps(dnn_step, 3)),
            Side(_steps(torch_step, steps), torch_step, _steps(torch_step, 3))))
    return benches


# ------------------------------------------------------------------------------ measuring
def time_pair(dev: Device, bench: Bench, repeats: int, full_warmup: bool = True) -> None:
    """Warm up, then ``repeats`` alternating rounds; medians per unit into ``bench.result``."""
    for side in (bench.dnn, bench.torch):
        side.warm()
        if full_warmup:
            side.run()  # one whole untimed run: first-epoch effects (allocator growth, kernels)
    times: dict[str, list[float]] = {"dnn": [], "torch": []}
    for r in range(repeats):
        order = [("dnn", bench.dnn), ("torch", bench.torch)]
        for label, side in order if r % 2 == 0 else order[::-1]:
            dev.sync()
            start = time.perf_counter()
            side.run()
            dev.sync()
            times[label].append((time.perf_counter() - start) / bench.per_run)
    dnn_s, torch_s = statistics.median(times["dnn"]), statistics.median(times["torch"])
    bench.result.update({
        "dnn_s": dnn_s, "torch_s": torch_s, "ratio": dnn_s / torch_s,
        "target": TARGETS[bench.name], "meets": dnn_s / torch_s <= TARGETS[bench.name], "runs": times,
        "spread_dnn": (max(times["dnn"]) - min(times["dnn"])) / dnn_s,
        "spread_torch": (max(times["torch"]) - min(times["torch"])) / torch_s,
    })


def _cupy_peak(dev: Device, fn: Callable[[], Any]) -> dict[str, int]:
    import cupy

    class PeakHook(cupy.cuda.MemoryHook):
        """Live bytes handed out by the pool (its rounded sizes), and their maximum."""

        name = "dnn_peak"

        def __init__(self, start: int) -> None:
            self.current = self.peak = start

        def malloc_postprocess(self, **kw: Any) -> None:
            self.current += kw["mem_size"]
            self.peak = max(self.peak, self.current)

        def free_postprocess(self, **kw: Any) -> None:
            self.current -= kw["mem_size"]

    pool = cupy.get_default_memory_pool()
    dev.sync()
    start = pool.used_bytes()
    hook = PeakHook(start)
    with hook:
        fn()
        dev.sync()
    stats = backend.memory_stats()
    return {"baseline": start, "peak": hook.peak, "pool_total": stats.get("total_bytes", -1),
            "pool_used_after": stats.get("used_bytes", -1)}


def _torch_cuda_peak(dev: Device, fn: Callable[[], Any]) -> dict[str, int]:
    torch = dev.torch
    dev.sync()
    torch.cuda.reset_peak_memory_stats()
    start = torch.cuda.memory_allocated()
    fn()
    dev.sync()
    return {"baseline": start, "peak": torch.cuda.max_memory_allocated()}


def _numpy_peak(fn: Callable[[], Any]) -> dict[str, int]:
    """The increase over the step (tracemalloc sees NumPy's allocations, not the model's)."""
    tracemalloc.start()
    try:
        fn()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return {"baseline": 0, "peak": peak, "after": current}


def measure_memory(dev: Device, bench: Bench) -> None:
    bench.dnn.step()  # optimizer state exists on both sides before the measured step
    bench.torch.step()
    if dev.kind == "cuda":
        d, t = _cupy_peak(dev, bench.dnn.step), _torch_cuda_peak(dev, bench.torch.step)
    else:
        d, t = _numpy_peak(bench.dnn.step), {}
    # the step's own memory: peak minus what was resident before it (data sets, weights)
    step = {side: m["peak"] - m.get("baseline", 0) for side, m in (("dnn", d), ("torch", t))
            if m.get("peak") is not None}
    bench.result["memory"] = {"dnn": d, "torch": t, "step": step,
                              "ratio": step["dnn"] / step["torch"] if step.get("torch") else None}


# ------------------------------------------------------------------------------ reporting
def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f}" if seconds < 1 else f"{seconds * 1e3:.0f}"


def markdown(benches: list[Bench], info: dict[str, Any], args: argparse.Namespace) -> str:
    dev = info.get("gpu") or f"CPU ({platform.processor() or platform.machine()})"
    lines = [
        f"## dnn ({info['dnn_backend']}) vs PyTorch ({info['device']}) — {dev}",
        "",
        f"float32, median of {args.repeats} alternating runs after warm-up; "
        f"{'QUICK sizes' if args.quick else 'full sizes'}; TF32 torch matmul="
        f"{info['torch_allow_tf32_matmul']} cudnn={info['torch_allow_tf32_cudnn']}, "
        f"CUPY_TF32={info['CUPY_TF32']}; torch {info['torch']}"
        + (f", cupy {info['cupy']}" if "cupy" in info else "") + ".",
        "",
        "| benchmark | unit | dnn (ms) | torch (ms) | dnn/torch | target | meets |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for b in benches:
        r = b.result
        if "ratio" not in r:
            continue
        meets = "yes" if r["ratio"] <= r["target"] else "**no**"
        lines.append(f"| {b.title} | {b.unit} | {_ms(r['dnn_s'])} | {_ms(r['torch_s'])} | "
                     f"{r['ratio']:.2f}x | <= {r['target']:.1f}x | {meets} |")
    lines += ["", "Peak memory of one training step (single batch, after a warm-up step):", "",
              "| benchmark | dnn baseline (MiB) | dnn peak (MiB) | torch baseline (MiB) | "
              "torch peak (MiB) | dnn/torch (peak - baseline) |",
              "|---|---:|---:|---:|---:|---:|"]
    for b in benches:
        m = b.result.get("memory")
        if not m:
            continue
        d, t = m["dnn"], m["torch"]

        def mib(v: Any) -> str:
            return "n/a" if v is None else f"{v / MIB:.1f}"

        ratio = f"{m['ratio']:.2f}x" if m["ratio"] else "n/a"
        lines.append(f"| {b.name} | {mib(d.get('baseline'))} | {mib(d.get('peak'))} | "
                     f"{mib(t.get('baseline'))} | {mib(t.get('peak'))} | {ratio} |")
    if info["device"] == "cpu":
        lines += ["", "CPU: dnn's figures are tracemalloc's peak increase during the step "
                  "(NumPy arrays only); torch CPU has no peak counter. The targets are the GPU "
                  "targets of issue #7, shown for reference."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                        help="cuda: dnn on CuPy vs torch CUDA (default); cpu: dnn on NumPy vs torch CPU")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run; CPU tests)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per side (>= 5)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per timed run "
                        "of the per-step benchmarks (default 20, 2 with --quick)")
    parser.add_argument("--only", default=None,
                        help=f"comma-separated subset of {','.join(TARGETS)}")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory step")
    parser.add_argument("--tf32", action="store_true", help="let torch use TF32 (default off)")
    parser.add_argument("--out", default="out/gpu_bench", help="folder for gpu_bench.json/.md")
    args = parser.parse_args(argv)
    if args.repeats < 5:
        parser.error("--repeats must be >= 5 (the issue asks for the median of at least 5 runs)")
    only = None if args.only is None else {s.strip() for s in args.only.split(",") if s.strip()}
    if only and (unknown := only - set(TARGETS)):
        parser.error(f"--only: unknown benchmarks {sorted(unknown)}; valid: {', '.join(TARGETS)}")

    sizes = dict(QUICK if args.quick else FULL)
    if args.steps is not None:
        sizes["steps"] = args.steps
    dev = Device(args.device, args.tf32)
    dnn.manual_seed(0)
    dev.torch.manual_seed(0)
    info = dev.info()
    print(f"benchmarks.gpu: dnn on {info['dnn_backend']} ({info['dnn_device']}) vs torch on "
          f"{dev.tdev}; sizes {sizes}", file=sys.stderr, flush=True)
    benches = build(dev, sizes, only)
    for bench in benches:
        t0 = time.perf_counter()
        time_pair(dev, bench, args.repeats, full_warmup=not args.quick)
        if not args.no_memory:
            measure_memory(dev, bench)
        r = bench.result
        print(f"  {bench.name}: dnn {_ms(r['dnn_s'])} ms, torch {_ms(r['torch_s'])} ms per "
              f"{bench.unit} -> {r['ratio']:.2f}x ({time.perf_counter() - t0:.1f} s)",
              file=sys.stderr, flush=True)

    table = markdown(benches, info, args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_bench.md").write_text(table)
    record = {"info": info, "sizes": sizes, "repeats": args.repeats, "quick": args.quick,
              "benchmarks": {b.name: {"title": b.title, "unit": b.unit, "per_run": b.per_run, **b.result}
                             for b in benches}}
    (out / "gpu_bench.json").write_text(json.dumps(record, indent=2, default=str))
    print(table)
    print(f"wrote {out / 'gpu_bench.md'} and {out / 'gpu_bench.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
