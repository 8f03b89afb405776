"""Plots render real PNG files: non-trivial size and not blank (pixel variance)."""

from __future__ import annotations

import numpy as np
import pytest

import dnn
from dnn import metrics, plot
from dnn.layers import Dense, ReLU

pytest.importorskip("matplotlib")


def check_png(path, min_bytes=5_000):
    from matplotlib.image import imread

    assert path.exists(), f"{path} was not written"
    assert path.stat().st_size > min_bytes
    pixels = imread(str(path))
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert float(pixels[..., :3].var()) > 1e-3, f"{path} looks blank"
    return pixels


def blobs(n=150, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centers = np.array([[0.0, 2.0], [2.0, -1.0], [-2.0, -1.0]], dtype=np.float32)
    x = (centers[y] + rng.normal(size=(n, 2)) * 0.5).astype(np.float32)
    return x, y


@pytest.fixture
def trained(backend_name):
    x, y = blobs()
    model = dnn.Sequential([Dense(2, 16), ReLU(), Dense(16, 3)])
    model.compile(optimizer=dnn.optim.Adam(lr=0.05), metrics=["accuracy", metrics.ConfusionMatrix()])
    history = model.fit(x, y, epochs=4, batch_size=32, validation_split=0.2, verbose=0)
    return model, history, x, y


def test_history_and_decision_boundary(trained, tmp_path):
    model, history, x, y = trained
    fig = history.plot(tmp_path / "history.png")
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 2  # loss, accuracy
    check_png(tmp_path / "history.png")
    fig = plot.plot_decision_boundary(model, x, y, tmp_path / "boundary.png", resolution=60)
    assert "accuracy" in fig.axes[0].get_title()
    check_png(tmp_path / "boundary.png")


def test_confusion_matrix_plot(trained, tmp_path):
    model, _, x, y = trained
    cm = model.evaluate(x, y)["confusion_matrix"]
    assert cm.sum() == len(y)
    plot.plot_confusion_matrix(cm, ["a", "b", "c"], tmp_path / "cm.png")
    check_png(tmp_path / "cm.png")
    plot.plot_confusion_matrix(cm, None, tmp_path / "cm_norm.png", normalize=True)
    check_png(tmp_path / "cm_norm.png")
    with pytest.raises(ValueError, match="class_names"):
        plot.plot_confusion_matrix(cm, ["a", "b"])


def test_misclassified_grid(tmp_path):
    rng = np.random.default_rng(0)
    images = (rng.random((30, 8, 8)) * 255).astype(np.uint8)
    labels = rng.integers(0, 4, 30)
    model = dnn.Sequential([Dense(64, 4)])
    model.compile()
    fig = plot.plot_misclassified(model, images, labels, tmp_path / "wrong.png", max_images=10,
                                  class_names=["w", "x", "y", "z"])
    shown = [ax for ax in fig.axes if ax.images]
    wrong = int(np.sum(model.predict(images.reshape(30, -1) / 255.0).argmax(1) != labels))
    assert len(shown) == min(10, wrong)
    assert f"{wrong} of 30 wrong" in fig._suptitle.get_text()
    check_png(tmp_path / "wrong.png")


def test_curves_and_regression(tmp_path):
    steps = np.arange(1, 50)
    plot.plot_curves({"a": 1 / steps, "b": 2 / steps}, tmp_path / "curves.png", logy=True)
    check_png(tmp_path / "curves.png")
    x = np.linspace(0, 1, 100)
    plot.plot_regression(x, np.sin(6 * x), np.sin(6 * x) * 0.9, tmp_path / "reg.png")
    check_png(tmp_path / "reg.png")


def test_plot_without_path_returns_figure_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fig = plot.plot_history({"loss": [1.0, 0.5], "val_loss": [1.1, 0.7]})
    assert fig.axes[0].get_title() == "loss" and len(fig.axes[0].lines) == 2
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="empty"):
        plot.plot_history({})


def test_cli_train_plot_writes_pngs(tmp_path, capsys):
    from dnn import cli

    status = cli.main(["train", "spiral", "--epochs", "2", "--hidden", "16", "--plot", str(tmp_path)])
    assert status == 0
    for name in ("history", "confusion_matrix", "decision_boundary"):
        check_png(tmp_path / f"spiral_{name}.png")
    assert f"wrote {tmp_path / 'spiral_history.png'}" in capsys.readouterr().out
