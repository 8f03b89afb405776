"""07 — Binary classification: sigmoid output, binary cross-entropy, precision and recall.

Two spiral arms, one output neuron with a sigmoid (NNFS chapter 16). The
prediction is "class 1" when p > 0.5. Accuracy alone hides which mistakes a
model makes, so we also report precision (of the samples called positive,
how many are?), recall (of the positives, how many were found?), their
harmonic mean F1, and the confusion matrix. ``l2`` on the hidden layer
penalises large weights (a smoother boundary, less overfitting).

Run:  python examples/07_binary_classification.py [--small] [--out out]
Writes out/07_binary_boundary.png and out/07_binary_confusion.png.
"""

from __future__ import annotations

import argparse
import os

import dnn
from dnn.datasets import spiral_data
from dnn.layers import Dense, ReLU, Sigmoid


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny sizes (used by the tests)")
    parser.add_argument("--out", default="out", help="directory for the output files")
    args = parser.parse_args(argv)
    samples, epochs = (50, 5) if args.small else (500, 150)

    x, y = spiral_data(samples, 2, seed=0)
    x_val, y_val = spiral_data(200, 2, seed=1)
    # one 0/1 target per sample, shaped (N, 1) like the output
    y, y_val = y.reshape(-1, 1).astype("float32"), y_val.reshape(-1, 1).astype("float32")

    dnn.manual_seed(0)
    model = dnn.Sequential([
        Dense(2, 64, l2=5e-4), ReLU(),
        Dense(64, 64, l2=5e-4), ReLU(),
        Dense(64, 1), Sigmoid(),          # p(class 1)
    ])
    model.compile(loss="binary_crossentropy", optimizer=dnn.optim.Adam(lr=0.005),
                  metrics=["accuracy", "precision", "recall", "f1", dnn.metrics.ConfusionMatrix()])
    history = model.fit(x, y, epochs=epochs, batch_size=32, validation_data=(x_val, y_val),
                        verbose=0, seed=0)
    result = model.evaluate(x_val, y_val)
    cm = result.pop("confusion_matrix")
    print(f"after {len(history.epoch)} epochs, validation:", {k: round(v, 4) for k, v in result.items()})
    print("confusion matrix (rows: true 0/1, columns: predicted 0/1):\n", cm)

    try:
        from dnn.plot import plot_confusion_matrix, plot_decision_boundary

        os.makedirs(args.out, exist_ok=True)
        plot_decision_boundary(model, x_val, y_val, os.path.join(args.out, "07_binary_boundary.png"),
                               resolution=60 if args.small else 200, title="Binary spiral")
        plot_confusion_matrix(cm, ["arm 0", "arm 1"], os.path.join(args.out, "07_binary_confusion.png"))
        print("wrote", os.path.join(args.out, "07_binary_*.png"))
    except ImportError as exc:
        print("no plot:", exc)


if __name__ == "__main__":
    main()
