"""05 — A two-layer network on the spiral, and the decision boundary it learns.

Three interleaved spiral arms cannot be separated by lines (see 02). One
hidden layer of ReLU units bends the space: each unit contributes a "hinge",
and together they carve curved class regions. We train with Adam on
mini-batches, check the accuracy on a fresh validation spiral, and draw the
regions the network assigns to each class.

Run:  python examples/05_spiral_decision_boundary.py [--small] [--out out]
Writes out/05_spiral_boundary.png and out/05_spiral_history.png.
"""

from __future__ import annotations

import argparse
import os

import dnn
from dnn.datasets import spiral_data
from dnn.layers import Dense, ReLU


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny sizes (used by the tests)")
    parser.add_argument("--out", default="out", help="directory for the output files")
    args = parser.parse_args(argv)
    samples, epochs = (50, 5) if args.small else (300, 300)

    x, y = spiral_data(samples, 3, seed=0)           # training spiral
    x_val, y_val = spiral_data(100, 3, seed=1)       # a fresh one for validation

    dnn.manual_seed(0)
    model = dnn.Sequential([
        Dense(2, 128), ReLU(),  # 128 hinges in the plane
        Dense(128, 3),          # one score (logit) per class
    ])
    # SoftmaxCrossEntropy = softmax + cross-entropy fused: stable, and its gradient is (p − onehot)/N
    model.compile(loss="SoftmaxCrossEntropy", optimizer=dnn.optim.Adam(lr=0.01), metrics=["accuracy"])
    model.summary()
    history = model.fit(x, y, epochs=epochs, batch_size=32, validation_data=(x_val, y_val),
                        verbose=0, seed=0)
    final = {k: round(v[-1], 3) for k, v in history.history.items()}
    print(f"after {epochs} epochs:", final)

    try:
        from dnn.plot import plot_decision_boundary

        os.makedirs(args.out, exist_ok=True)
        plot_decision_boundary(model, x, y, os.path.join(args.out, "05_spiral_boundary.png"),
                               resolution=60 if args.small else 250, title="Spiral, 2-layer net")
        history.plot(os.path.join(args.out, "05_spiral_history.png"))
        print("wrote", os.path.join(args.out, "05_spiral_*.png"))
    except ImportError as exc:
        print("no plot:", exc)


if __name__ == "__main__":
    main()
