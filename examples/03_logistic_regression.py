"""03 — Logistic regression: one neuron with a sigmoid, trained by gradient descent.

Replace the perceptron's hard step with the smooth sigmoid σ(z) = 1/(1+e^−z)
and the output becomes a probability. Minimising the binary cross-entropy
−[t·log p + (1−t)·log(1−p)] by gradient descent is logistic regression —
in dnn, a one-layer network ``Dense(2, 1) → Sigmoid``. Unlike the
perceptron it also settles on overlapping (non-separable) classes.

Run:  python examples/03_logistic_regression.py [--small] [--out out]
Writes out/03_logistic_boundary.png and out/03_logistic_history.png.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import dnn
from dnn.models import logistic_regression


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny sizes (used by the tests)")
    parser.add_argument("--out", default="out", help="directory for the output files")
    args = parser.parse_args(argv)
    n, epochs = (100, 5) if args.small else (1000, 40)

    # Two overlapping Gaussian clouds: no line separates them perfectly
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal([-1.0, -0.5], 0.8, (n, 2)),
                        rng.normal([1.0, 0.5], 0.8, (n, 2))]).astype(np.float32)
    y = np.repeat([0.0, 1.0], n).astype(np.float32)[:, None]  # (N, 1) targets for a (N, 1) output
    order = rng.permutation(len(x))
    x, y = x[order], y[order]
    split = int(0.8 * len(x))

    model = logistic_regression(in_features=2, lr=0.1)  # Dense(2, 1) -> Sigmoid, BCE, SGD
    model.compile(loss="binary_crossentropy", optimizer=dnn.optim.SGD(lr=0.1),
                  metrics=["accuracy", "precision", "recall", "f1"])
    model.summary()
    history = model.fit(x[:split], y[:split], epochs=epochs, batch_size=32,
                        validation_data=(x[split:], y[split:]), verbose=0, seed=0)
    result = model.evaluate(x[split:], y[split:])
    print("validation:", {k: round(v, 4) for k, v in result.items()})
    w = dnn.to_numpy(model.layers[0].weight.data).ravel()
    b = float(dnn.to_numpy(model.layers[0].bias.data)[0])
    print(f"p(class 1 | x) = σ({w[0]:.3f}·x₁ + {w[1]:.3f}·x₂ + {b:.3f})")

    try:
        from dnn.plot import plot_decision_boundary

        os.makedirs(args.out, exist_ok=True)
        plot_decision_boundary(model, x, y, os.path.join(args.out, "03_logistic_boundary.png"),
                               resolution=100, title="Logistic regression")
        history.plot(os.path.join(args.out, "03_logistic_history.png"))
        print("wrote", os.path.join(args.out, "03_logistic_*.png"))
    except ImportError as exc:
        print("no plot:", exc)


if __name__ == "__main__":
    main()
