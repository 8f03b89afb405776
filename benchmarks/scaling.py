"""The cost model, measured: a Dense layer costs O(batch·n·m), a Conv2D
O(batch·output pixels·kernel volume·in channels·out channels).

    python -m benchmarks.scaling [--quick] [--backend numpy] [--plot PATH] [--json PATH]

Times Dense(n, m) forward and backward at batch 256 over the grid n, m in
256..4096 (n·m spans 2.4 decades, where the GEMMs dominate), fits the log-log
slope of time against n·m by least squares with its 95% confidence interval
(Student's t), and says PASS when that interval lies within 1.00 ± 0.10. The
same for Conv2D against N·H·W·k²·C_in·C_out. Prints a table and saves a plot
(time vs n·m with the fitted lines) as PNG.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

import dnn
from benchmarks.common import (
    RESULTS,
    fmt_time,
    layer_available,
    loglog_fit,
    machine_info,
    markdown_table,
    set_threads,
    timed,
)
from dnn import backend

TOLERANCE = 0.10
DENSE_SIZES = (256, 512, 1024, 2048, 4096)
DENSE_BATCH = 256
#: (channels in = out, spatial size) of the Conv2D grid, batch 16, 3x3, padding 1
CONV_CHANNELS = (8, 16, 32, 64)
CONV_SIZES = (14, 28, 56)
CONV_BATCH = 16


def _time_layer(layer: Any, x: Any, g: Any, repeat: int) -> tuple[float, float]:
    """Best-of-``repeat`` seconds of forward and of backward (each after its own forward)."""
    layer.forward(x, training=True)
    layer.backward(g)  # warm-up: allocations, BLAS threads
    fwd, bwd = [], []
    for _ in range(repeat):
        fwd.append(timed(lambda: layer.forward(x, training=True)))
        bwd.append(timed(lambda: layer.backward(g)))
    return min(fwd), min(bwd)


def dense_points(sizes: tuple[int, ...] = DENSE_SIZES, batch: int = DENSE_BATCH,
                 repeat: int = 5) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    points = []
    for n in sizes:
        x = backend.asarray(rng.standard_normal((batch, n), dtype=np.float32))
        for m in sizes:
            layer = dnn.layers.Dense(n, m)
            g = backend.asarray(rng.standard_normal((batch, m), dtype=np.float32))
            fwd, bwd = _time_layer(layer, x, g, repeat)
            points.append({"n": n, "m": m, "work": n * m, "flops_fwd": 2 * batch * n * m,
                           "forward": fwd, "backward": bwd})
    return points


def conv_points(channels: tuple[int, ...] = CONV_CHANNELS, sizes: tuple[int, ...] = CONV_SIZES,
                batch: int = CONV_BATCH, repeat: int = 3) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    points = []
    for c in channels:
        for hw in sizes:
            layer = dnn.layers.Conv2D(c, c, 3, padding=1)
            x = backend.asarray(rng.standard_normal((batch, c, hw, hw), dtype=np.float32))
            g = backend.asarray(rng.standard_normal((batch, c, hw, hw), dtype=np.float32))
            fwd, bwd = _time_layer(layer, x, g, repeat)
            work = batch * hw * hw * 9 * c * c
            points.append({"channels": c, "size": hw, "work": work, "flops_fwd": 2 * work,
                           "forward": fwd, "backward": bwd})
    return points


def fit(points: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    out = {}
    for which in ("forward", "backward"):
        f = loglog_fit([p["work"] for p in points], [p[which] for p in points])
        f["pass"] = bool(abs(f["slope"] - 1.0) + f["ci95"] <= TOLERANCE)
        out[which] = f
    return out


def verdict(f: dict[str, float]) -> str:
    return "PASS" if f["pass"] else "FAIL"


def fit_rows(name: str, fits: dict[str, dict[str, float]]) -> list[list[Any]]:
    return [[name, which, f"{f['slope']:.3f} ± {f['ci95']:.3f}", f"{f['r2']:.4f}", f["n"],
             f"{f['decades']:.1f}", verdict(f)] for which, f in fits.items()]


FIT_HEADER = ["layer", "pass", "slope ± 95% CI", "R²", "points", "decades of work", "1.00 ± 0.10"]


def plot(results: dict[str, Any], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    panels = [k for k in ("dense", "conv") if results.get(k)]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.8), squeeze=False)
    for ax, key in zip(axes[0], panels):
        points, fits = results[key]["points"], results[key]["fit"]
        work = np.array([p["work"] for p in points], dtype=float)
        line = np.geomspace(work.min(), work.max(), 50)
        for which, marker in (("forward", "o"), ("backward", "s")):
            t = np.array([p[which] for p in points])
            f = fits[which]
            (dots,) = ax.loglog(work, t * 1e3, marker, ls="none", alpha=0.7, label=f"{which} (measured)")
            ax.loglog(line, np.exp(f["intercept"]) * line ** f["slope"] * 1e3, "-", color=dots.get_color(),
                      label=f"{which} fit: slope {f['slope']:.3f} ± {f['ci95']:.3f}")
        ax.set_xlabel("n·m (Dense, batch 256)" if key == "dense" else "N·H·W·9·C_in·C_out (Conv2D 3x3)")
        ax.set_ylabel("time per call [ms]")
        ax.set_title(f"{key.capitalize()} on {results['backend']}: time ∝ work^slope")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run(quick: bool = False, backend_name: str = "numpy", plot_path: Path | None = None,
        threads: int | None = None) -> dict[str, Any]:
    set_threads(threads)
    dnn.set_backend(backend_name)
    dnn.set_default_dtype("float32")
    dnn.manual_seed(0)
    results: dict[str, Any] = {"backend": backend_name, "machine": machine_info()}
    sizes = DENSE_SIZES[:-1] if quick else DENSE_SIZES
    dense = dense_points(sizes, repeat=3 if quick else 5)
    results["dense"] = {"points": dense, "fit": fit(dense)}
    if layer_available("Conv2D"):
        conv = conv_points(CONV_CHANNELS[:-1] if quick else CONV_CHANNELS, repeat=2 if quick else 3)
        results["conv"] = {"points": conv, "fit": fit(conv)}
    path = plot(results, plot_path or RESULTS / "scaling.png")
    results["plot"] = str(path) if path else None
    return results


def report(results: dict[str, Any]) -> str:
    """The Markdown section for BENCHMARKS.md (also what the CLI prints)."""
    rows = fit_rows("Dense", results["dense"]["fit"])
    if "conv" in results:
        rows += fit_rows("Conv2D", results["conv"]["fit"])
    dense_rows = [[p["n"], p["m"], f"{p['work']:,}", fmt_time(p["forward"]), fmt_time(p["backward"]),
                   f"{p['flops_fwd'] / p['forward'] / 1e9:.1f}"] for p in results["dense"]["points"]]
    parts = [
        markdown_table(FIT_HEADER, rows),
        "",
        f"Dense(n, m) at batch {DENSE_BATCH}, best of 5 (backend {results['backend']}, float32):",
        "",
        markdown_table(["n", "m", "n·m", "forward", "backward", "forward GFLOP/s"], dense_rows),
    ]
    if "conv" in results:
        conv_rows = [[p["channels"], p["size"], f"{p['work']:,}", fmt_time(p["forward"]),
                      fmt_time(p["backward"]), f"{p['flops_fwd'] / p['forward'] / 1e9:.1f}"]
                     for p in results["conv"]["points"]]
        parts += ["", f"Conv2D(C, C, 3, padding=1) on {CONV_BATCH}×C×S×S, best of 3:", "",
                  markdown_table(["C", "S", "N·S²·9·C²", "forward", "backward", "forward GFLOP/s"],
                                 conv_rows)]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller grid (for a smoke test)")
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--plot", type=Path, default=None,
                        help="PNG path (default benchmarks/results/scaling.png)")
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads (default: as installed)")
    parser.add_argument("--json", type=Path, default=RESULTS / "scaling.json")
    args = parser.parse_args(argv)
    results = run(args.quick, args.backend, args.plot, args.threads)
    print(report(results))
    if results["plot"]:
        print(f"\nplot: {results['plot']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1, default=str))
    fits = [results["dense"]["fit"]] + ([results["conv"]["fit"]] if "conv" in results else [])
    return 0 if all(f["pass"] for fs in fits for f in fs.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
