"""Plots of training runs and trained models (needs matplotlib: ``pip install matplotlib``).

Every function builds a ``matplotlib.figure.Figure`` directly (no pyplot, so
no global state and no GUI: it renders with the Agg backend anywhere, on a
server too), writes it as a PNG when ``path`` is given and returns it. In a
notebook the returned figure displays itself.

- :func:`plot_history` — loss and metric curves per epoch (train and validation);
- :func:`plot_curves` — several named curves on one axis (e.g. optimizers compared);
- :func:`plot_confusion_matrix` — counts (or row-normalised rates) with labels;
- :func:`plot_decision_boundary` — the class regions of a 2-D classifier;
- :func:`plot_regression` — targets and predictions of a 1-D regression;
- :func:`plot_misclassified` — a grid of images the model gets wrong.

Plotting is host work: arrays are copied to NumPy first.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dnn import backend


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ModuleNotFoundError(
            "dnn.plot needs matplotlib, which is not installed; install it with "
            "`pip install matplotlib` (or, in a dnn checkout, `pip install -e \".[plot]\"`)",
            name="matplotlib",
        ) from exc
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _save(fig: Any, path: str | os.PathLike[str] | None) -> Any:
    if path is not None:
        path = os.fspath(path)
        if os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        fig.savefig(path, format="png")
    return fig


def _host(x: Any) -> np.ndarray:
    return np.asarray(backend.to_numpy(x)) if not isinstance(x, np.ndarray) else x


# ------------------------------------------------------------------ curves
def plot_history(history: Any, path: str | os.PathLike[str] | None = None,
                 title: str | None = None) -> Any:
    """One panel per quantity (loss, accuracy, ...) with its ``val_`` twin on the same axes.

    ``history`` is a :class:`dnn.History` (what ``fit`` returns) or a dict of
    lists. The loss axis is logarithmic when the loss spans > 2 decades.
    """
    logs: Mapping[str, Sequence[float]] = getattr(history, "history", history)
    epochs = list(getattr(history, "epoch", []) or [])
    if not logs:
        raise ValueError("plot_history: the history is empty (train for at least one epoch)")
    names = [k for k in logs if not k.startswith("val_")]
    names += [k[4:] for k in logs if k.startswith("val_") and k[4:] not in names]
    cols = min(len(names), 3)
    rows = math.ceil(len(names) / cols)
    fig = _figure(4.2 * cols, 3.2 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, name in zip(axes, names):
        for key, label, style in ((name, "train", "-"), (f"val_{name}", "validation", "--")):
            values = logs.get(key)
            if values:
                xs = [e + 1 for e in epochs] if len(epochs) == len(values) else range(1, len(values) + 1)
                ax.plot(list(xs), list(values), style, marker="o", markersize=3, label=label)
        values = [v for k in (name, f"val_{name}") for v in logs.get(k, []) if np.isfinite(v)]
        if "loss" in name and values and min(values) > 0 and max(values) / min(values) > 100:
            ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    for ax in axes[len(names):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_curves(curves: Mapping[str, Sequence[float]], path: str | os.PathLike[str] | None = None,
                title: str = "", xlabel: str = "step", ylabel: str = "loss",
                logy: bool = False) -> Any:
    """Several named curves on one axis, e.g. ``{"SGD": losses, "Adam": losses}``."""
    if not curves:
        raise ValueError("plot_curves: no curves given")
    fig = _figure(6.4, 4.2)
    ax = fig.subplots()
    for label, values in curves.items():
        ax.plot(np.arange(1, len(values) + 1), np.asarray(values, dtype=float), label=label)
    if logy:
        ax.set_yscale("log")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


# ------------------------------------------------------------------ classification
def plot_confusion_matrix(cm: Any, class_names: Sequence[str] | None = None,
                          path: str | os.PathLike[str] | None = None, normalize: bool = False,
                          title: str = "Confusion matrix") -> Any:
    """The matrix as a heat map: rows are true classes, columns predicted classes.

    ``cm`` is what :class:`dnn.metrics.ConfusionMatrix` returns (or any C×C
    counts). ``normalize=True`` shows each row as rates (the recall on the
    diagonal). Cells are annotated when C ≤ 20.
    """
    cm = _host(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"plot_confusion_matrix: expected a square matrix, got shape {cm.shape}")
    n = cm.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(n)]
    if len(names) != n:
        raise ValueError(f"plot_confusion_matrix: {n} classes but {len(names)} class_names")
    values = cm.astype(float)
    if normalize:
        values = values / np.maximum(values.sum(axis=1, keepdims=True), 1)
    size = max(4.5, 0.55 * n + 2.5)
    fig = _figure(size, size * 0.9)
    ax = fig.subplots()
    image = ax.imshow(values, cmap="Blues")
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set_xticks(range(n), names, rotation=45, ha="right")
    ax.set_yticks(range(n), names)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    if n <= 20:
        threshold = values.max() / 2 if values.size else 0
        for i in range(n):
            for j in range(n):
                text = f"{values[i, j]:.2f}" if normalize else f"{int(cm[i, j])}"
                ax.text(j, i, text, ha="center", va="center", fontsize=8,
                        color="white" if values[i, j] > threshold else "black")
    return _save(fig, path)


def _predict_classes(model: Any, x: np.ndarray, threshold: float) -> np.ndarray:
    out = _host(model.predict(x)) if hasattr(model, "predict") else _host(model(backend.asarray(x)))
    if out.ndim == 2 and out.shape[1] > 1:
        return out.argmax(axis=1)
    return (out.reshape(-1) > threshold).astype(np.int64)


def plot_decision_boundary(model: Any, X: Any, y: Any, path: str | os.PathLike[str] | None = None,
                           resolution: int = 200, threshold: float = 0.5,
                           title: str = "Decision boundary") -> Any:
    """Class regions of a classifier over a 2-D input plane, with the data on top.

    ``model.predict`` is called on a ``resolution``² grid covering the data
    (plus a margin); the class is the argmax of (N, C) outputs or
    ``output > threshold`` for one output (use 0 for logits).
    """
    X, y = _host(X), _host(y)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"plot_decision_boundary: X must be (N, 2) points, got shape {X.shape}")
    labels = y.argmax(axis=1) if y.ndim == 2 and y.shape[1] > 1 else y.reshape(-1)
    margin = 0.1 * (X.max(axis=0) - X.min(axis=0)) + 1e-3
    lo, hi = X.min(axis=0) - margin, X.max(axis=0) + margin
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution))
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
    regions = _predict_classes(model, grid, threshold).reshape(gx.shape)
    classes = int(max(regions.max(), labels.max())) + 1
    fig = _figure(5.5, 5.0)
    ax = fig.subplots()
    cmap = "tab10" if classes <= 10 else "tab20"
    ax.contourf(gx, gy, regions, levels=np.arange(classes + 1) - 0.5, cmap=cmap, alpha=0.3,
                vmin=-0.5, vmax=(10 if classes <= 10 else 20) - 0.5)
    ax.scatter(X[:, 0], X[:, 1], c=labels, cmap=cmap, s=12, edgecolors="k", linewidths=0.3,
               vmin=-0.5, vmax=(10 if classes <= 10 else 20) - 0.5)
    accuracy = float(np.mean(_predict_classes(model, X.astype(np.float32), threshold) == labels))
    ax.set(title=f"{title} (accuracy {accuracy:.3f})", xlabel="x₁", ylabel="x₂")
    return _save(fig, path)


def plot_regression(x: Any, y_true: Any, y_pred: Any, path: str | os.PathLike[str] | None = None,
                    title: str = "Regression") -> Any:
    """Targets (points) and predictions (line) against a 1-D input."""
    x, y_true, y_pred = (_host(a).reshape(-1) for a in (x, y_true, y_pred))
    order = np.argsort(x)
    fig = _figure(6.4, 4.2)
    ax = fig.subplots()
    ax.scatter(x, y_true, s=6, alpha=0.5, label="target")
    ax.plot(x[order], y_pred[order], color="C3", linewidth=2, label="prediction")
    ax.set(title=title, xlabel="x", ylabel="y")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_misclassified(model: Any, images: Any, labels: Any, path: str | os.PathLike[str] | None = None,
                       class_names: Sequence[str] | None = None, inputs: Any = None,
                       max_images: int = 25, title: str = "Misclassified") -> Any:
    """A grid of up to ``max_images`` images the model gets wrong ("true → predicted").

    ``images`` are (N, H, W) or (N, H, W, C) pixels to show. The model sees
    ``inputs`` if given; otherwise the images scaled to [0, 1] when they are
    integers (uint8 pixels) and flattened to (N, H·W) when the model's first
    layer is fully connected.
    """
    images, labels = _host(images), _host(labels).reshape(-1)
    if inputs is None:
        inputs = images.astype(np.float32)
        if np.issubdtype(images.dtype, np.integer):
            inputs /= 255.0
        first = getattr(model, "layers", [None])[0]
        if hasattr(first, "in_features") and inputs.ndim > 2:
            inputs = inputs.reshape(len(inputs), -1)
    predicted = _predict_classes(model, _host(inputs), 0.5)
    wrong = np.flatnonzero(predicted != labels)[:max_images]
    cols = max(1, min(5, len(wrong)))
    rows = max(1, math.ceil(len(wrong) / cols))
    fig = _figure(2.0 * cols, 2.2 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()

    def name(i: int) -> str:
        return class_names[i] if class_names is not None and i < len(class_names) else str(i)

    for ax, index in zip(axes, wrong):
        ax.imshow(images[index], cmap="gray" if images.ndim == 3 else None)
        ax.set_title(f"{name(int(labels[index]))} → {name(int(predicted[index]))}", fontsize=8,
                     color="C3")
    for ax in axes:
        ax.axis("off")
    if not len(wrong):
        axes[0].text(0.5, 0.5, "no misclassified images", ha="center", va="center")
    fig.suptitle(f"{title}: {int(np.sum(predicted != labels))} of {len(labels)} wrong")
    return _save(fig, path)


__all__ = ["plot_confusion_matrix", "plot_curves", "plot_decision_boundary", "plot_history",
           "plot_misclassified", "plot_regression"]
