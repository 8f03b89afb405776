"""08 — A deeper network: check its gradients, then fight overfitting with dropout and L2.

Stacking layers is just composing forward passes, and backpropagation is
composing their backward passes in reverse. Before trusting a deep model,
compare its analytic gradients with numerical ones (central differences, in
float64): the relative error should be ~1e-8 or smaller.

Then train the same deep network twice on a small, noisy spiral: once plain
(it memorises the training set: train accuracy far above validation), once
with Dropout (randomly zeroing 10% of activations while training) and an L2
penalty l2·Σw² on the weights. Regularisation narrows the gap.

Run:  python examples/08_deep_network_dropout_l2_gradcheck.py [--small] [--out out]
Writes out/08_plain_history.png and out/08_regularised_history.png.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import dnn
from dnn.datasets import spiral_data
from dnn.layers import Dense, Dropout, ReLU, Tanh


def deep(dropout: float, l2: float, width: int) -> dnn.Sequential:
    layers = [Dense(2, width, l2=l2), ReLU()]
    for _ in range(2):
        layers += [Dropout(dropout)] if dropout else []
        layers += [Dense(width, width, l2=l2), ReLU()]
    layers += [Dense(width, 3)]
    return dnn.Sequential(layers)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny sizes (used by the tests)")
    parser.add_argument("--out", default="out", help="directory for the output files")
    args = parser.parse_args(argv)
    samples, epochs, width = (30, 5, 32) if args.small else (100, 300, 128)

    # 1. Gradient check of a 4-layer network (float64; eval mode so Dropout is off and
    #    the function is deterministic; the L2 penalty is part of the checked objective)
    dnn.set_default_dtype("float64")
    dnn.manual_seed(0)
    net = dnn.Sequential([Dense(2, 8, l2=1e-3), Tanh(), Dense(8, 8), ReLU(), Dropout(0.5),
                          Dense(8, 8), Tanh(), Dense(8, 3)])
    error = dnn.gradcheck(net, np.random.default_rng(0).normal(size=(5, 2)))
    print(f"gradient check of a network of {len(net.layers)} layers: max relative error {error:.1e}")
    assert error < 1e-6, "backward does not match the numerical gradient"
    dnn.set_default_dtype("float32")

    # 2. Overfitting and regularisation: 100 points per class is little data for 3 wide layers
    x, y = spiral_data(samples, 3, noise=0.3, seed=0)
    x_val, y_val = spiral_data(200, 3, noise=0.3, seed=1)
    for name, dropout, l2 in (("plain", 0.0, 0.0), ("regularised", 0.1, 5e-4)):
        dnn.manual_seed(0)
        model = deep(dropout, l2, width)
        model.compile(optimizer=dnn.optim.Adam(lr=0.005), metrics=["accuracy"])
        history = model.fit(x, y, epochs=epochs, batch_size=32, validation_data=(x_val, y_val),
                            verbose=0, seed=0)
        train_acc = model.evaluate(x, y)["accuracy"]  # eval mode: no dropout
        val_acc = history.history["val_accuracy"][-1]
        print(f"{name:12s} train accuracy {train_acc:.3f}, validation accuracy {val_acc:.3f}, "
              f"gap {train_acc - val_acc:+.3f}")
        try:
            from dnn.plot import plot_history

            plot_history(history, os.path.join(args.out, f"08_{name}_history.png"), title=name)
        except ImportError as exc:
            print("no plot:", exc)


if __name__ == "__main__":
    main()
