"""02 — The perceptron: Rosenblatt's learning rule on separable and non-separable data.

Before gradient descent there was the perceptron rule: predict with a step
function, and on every mistake move the weights towards the misclassified
sample (w ← w + lr·(t − ŷ)·x). On linearly separable data it provably stops
making mistakes; on XOR no straight line works, so it never converges —
which is why we need hidden layers.

Run:  python examples/02_perceptron.py [--small] [--out out]
Writes out/02_perceptron.png (the separating line it found).
"""

from __future__ import annotations

import argparse
import os
import warnings

import numpy as np

import dnn
from dnn.models import ConvergenceWarning, Perceptron


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny sizes (used by the tests)")
    parser.add_argument("--out", default="out", help="directory for the output files")
    args = parser.parse_args(argv)
    n = 40 if args.small else 200

    # Points labelled by which side of the line 1.2·x₁ − x₂ + 0.3 = 0 they fall on;
    # points closer than 0.05 to the line are dropped, so the classes are separable
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(2 * n, 2)).astype(np.float32)
    score = 1.2 * x[:, 0] - x[:, 1] + 0.3
    x, y = x[np.abs(score) > 0.05], (score[np.abs(score) > 0.05] > 0).astype(np.int64)

    perceptron = Perceptron(in_features=2, lr=1.0, max_epochs=100, seed=0)
    result = perceptron.fit(x, y)
    print(f"separable data: converged={result.converged} after {result.epochs} epochs; "
          f"training errors after each epoch: {result.errors}")
    print(f"  weights {dnn.to_numpy(perceptron.weight).round(3)}, bias {float(perceptron.bias):.3f}, "
          f"accuracy {perceptron.score(x, y):.3f}")

    # XOR: the classic problem no single line separates
    x_xor = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y_xor = np.array([0, 1, 1, 0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        xor = Perceptron(2, max_epochs=20, seed=0).fit(x_xor, y_xor)
    print(f"XOR: converged={xor.converged} after {xor.epochs} epochs (errors: {xor.errors})")
    for w in caught:
        print("  warning:", w.message)

    try:
        from dnn.plot import plot_decision_boundary

        os.makedirs(args.out, exist_ok=True)
        path = os.path.join(args.out, "02_perceptron.png")
        plot_decision_boundary(perceptron, x, y, path, resolution=100, title="Perceptron")
        print("wrote", path)
    except ImportError as exc:
        print("no plot:", exc)


if __name__ == "__main__":
    main()
