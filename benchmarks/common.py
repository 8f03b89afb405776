"""What every benchmark shares: honest timing, backends, machine facts, a log-log fit."""

from __future__ import annotations

import importlib.util
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import dnn
from dnn import backend

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BACKEND_NAMES = ("numpy", "torch", "array_api_strict", "cupy")


def installed_backends(names: tuple[str, ...] = BACKEND_NAMES) -> list[str]:
    """The backends that can run here (cupy only with a usable GPU)."""
    found = []
    for name in names:
        if name != "numpy" and importlib.util.find_spec(name) is None:
            continue
        if name == "cupy":
            try:
                import cupy

                cupy.cuda.runtime.getDeviceCount()
            except Exception:
                continue
        found.append(name)
    return found


def timed(fn: Callable[[], Any]) -> float:
    """Seconds one call of ``fn`` takes, with the device synchronised before and after."""
    backend.synchronize()
    start = time.perf_counter()
    fn()
    backend.synchronize()
    return time.perf_counter() - start


def best_of(fn: Callable[[], Any], repeat: int = 5, number: int = 1, warmup: int = 1) -> float:
    """Minimum over ``repeat`` runs of the mean time of ``number`` calls (seconds)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        backend.synchronize()
        start = time.perf_counter()
        for _ in range(number):
            fn()
        backend.synchronize()
        times.append((time.perf_counter() - start) / number)
    return min(times)


def set_threads(threads: int | None) -> None:
    """Use ``threads`` BLAS/OpenMP threads in NumPy (threadpoolctl) and PyTorch alike (dnn's
    elementwise work keeps its default, one thread: see dnn/backend/threads.py).

    On a busy machine a 2-thread GEMM waits for its second thread to be scheduled,
    which can cost more than the product: ``--threads 1`` gives steadier timings.
    None leaves the libraries' defaults.
    """
    if threads is None:
        return
    try:
        from threadpoolctl import threadpool_limits

        global _limits
        _limits = threadpool_limits(threads)  # kept alive: the limit holds until exit
    except ImportError:
        pass
    if importlib.util.find_spec("torch") is not None:
        import torch

        torch.set_num_threads(threads)


_limits: Any = None


def median(values: list[float]) -> float:
    return statistics.median(values)


def layer_available(name: str) -> bool:
    """Whether ``dnn.layers`` has a layer class of that name (suites skip missing ones)."""
    return hasattr(dnn.layers, name)


# ---------------------------------------------------------------- the machine
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_info() -> list[dict[str, Any]]:
    """threadpoolctl's view of the BLAS / OpenMP libraries loaded (kernel, threads)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keys = ("internal_api", "prefix", "version", "architecture", "num_threads", "threading_layer")
    return [{k: info.get(k) for k in keys if info.get(k) is not None} for info in threadpool_info()]


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "dnn": dnn.__version__, "numpy": np.__version__}
    for mod in ("torch", "sklearn", "array_api_strict", "array_api_compat", "cupy", "numexpr"):
        if importlib.util.find_spec(mod) is None:
            continue
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # cupy without a GPU and the like
            out[mod] = "installed"
    return out


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "versions": versions(),
        "blas": blas_info(),
        "env": {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                           "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                           "MKL_NUM_THREADS", "DNN_BACKEND") if k in os.environ},
    }
    if importlib.util.find_spec("torch") is not None:
        import torch

        info["torch_threads"] = torch.get_num_threads()
    try:
        info["load_average"] = os.getloadavg()
    except OSError:
        pass
    return info


def machine_lines(info: dict[str, Any]) -> list[str]:
    """The machine as Markdown bullet lines."""
    blas = "; ".join(
        f"{b.get('internal_api')} {b.get('version', '')} ({b.get('architecture', '?')} kernel, "
        f"{b.get('num_threads')} threads)" for b in info["blas"]
    ) or "unknown (threadpoolctl missing)"
    lines = [
        f"- CPU: {info['cpu']}, {info['cores']} cores; {info['platform']}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()),
        f"- BLAS: {blas}",
    ]
    if info.get("threads_requested"):
        lines.append(f"- threads: limited to {info['threads_requested']} for NumPy's BLAS and PyTorch alike "
                     "(`--threads`)")
    if "torch_threads" in info:
        lines.append(f"- torch threads: {info['torch_threads']}")
    lines.append("- environment: " + (", ".join(f"{k}={v}" for k, v in info["env"].items()) or "(none set)"))
    if "load_average" in info:
        lines.append("- load average when measured: " + ", ".join(f"{x:.2f}" for x in info["load_average"]))
    return lines


# ---------------------------------------------------------------- statistics
def _t_quantile(df: int, q: float = 0.975) -> float:
    try:
        from scipy import stats

        return float(stats.t.ppf(q, df))
    except ImportError:  # Cornish-Fisher expansion of Student's t around the normal quantile
        z = 1.959963984540054
        g1 = (z**3 + z) / 4
        g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
        return z + g1 / df + g2 / df**2


def loglog_fit(x: list[float], y: list[float]) -> dict[str, float]:
    """Least squares of log y = a + b·log x: slope b, its 95% confidence half-width, R²."""
    lx, ly = np.log(np.asarray(x, dtype=float)), np.log(np.asarray(y, dtype=float))
    n = lx.size
    if n < 3:
        raise ValueError(f"loglog_fit: need at least 3 points, got {n}")
    mx, my = lx.mean(), ly.mean()
    sxx = float(((lx - mx) ** 2).sum())
    slope = float(((lx - mx) * (ly - my)).sum() / sxx)
    intercept = float(my - slope * mx)
    resid = ly - (intercept + slope * lx)
    s2 = float((resid**2).sum() / (n - 2))
    se = math.sqrt(s2 / sxx)
    ss_tot = float(((ly - my) ** 2).sum())
    return {
        "slope": slope, "intercept": intercept, "ci95": _t_quantile(n - 2) * se, "se": se,
        "r2": 1.0 - float((resid**2).sum()) / ss_tot if ss_tot else 1.0, "n": n,
        "decades": float((lx.max() - lx.min()) / math.log(10)),
    }


def fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.3f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} GiB"


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
