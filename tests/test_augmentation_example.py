"""examples/15: a Fashion-MNIST CNN trained from a DataLoader with augmentation.

- fast: ``--small`` (2,000 images, one epoch) runs with and without augmentation and
  with ``--find-lr``, writes the model and the LR finder's plot, and the range test
  leaves the training that follows exactly as it would have been without it;
- slow: the full augmented run reaches >= 0.925 test accuracy (measured: see the
  example's docstring).

Both skip when the Fashion-MNIST files are absent (the ``data_home`` fixture).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "15_fashion_mnist_cnn_augmented.py"


def _example():
    spec = importlib.util.spec_from_file_location(EXAMPLE.stem, EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _main(data_home: Path, out: Path, *flags: str) -> dict[str, float]:
    return _example().main(["--data-home", str(data_home), "--out", str(out), "--verbose", "0",
                            *flags])


def test_augmented_example_small(data_home, tmp_path):
    with_finder = _main(data_home, tmp_path / "a", "--small", "--find-lr")
    assert (tmp_path / "a" / "15_cnn_augmented.dnn").stat().st_size > 0
    assert (tmp_path / "a" / "15_lr_finder.png").stat().st_size > 0
    assert 1e-6 <= with_finder["lr_suggestion"] <= 1.0
    assert 1e-6 <= with_finder["lr_min_loss"] <= 1.0
    assert 0.0 <= with_finder["accuracy"] <= 1.0 and math.isfinite(with_finder["loss"])
    assert 0.0 <= with_finder["train_accuracy"] <= 1.0

    # the range test restores the model, optimizer and generators: training is unchanged
    without = _main(data_home, tmp_path / "b", "--small")
    assert without["accuracy"] == with_finder["accuracy"]
    assert without["loss"] == with_finder["loss"]
    assert not (tmp_path / "b" / "15_lr_finder.png").exists()

    plain = _main(data_home, tmp_path / "c", "--small", "--no-augment")
    assert (tmp_path / "c" / "15_cnn_plain.dnn").stat().st_size > 0
    assert plain["loss"] != without["loss"]  # the transform really changed what was trained on


@pytest.mark.slow
def test_augmented_example_reaches_0925(data_home, tmp_path, record_property):
    result = _main(data_home, tmp_path)
    record_property("augmented_test_accuracy", result["accuracy"])
    record_property("augmented_seconds_per_epoch", result["seconds_per_epoch"])
    assert result["accuracy"] >= 0.925
    assert (tmp_path / "15_cnn_augmented.dnn").is_file()
