"""04 — Random search vs gradient descent (NNFS chapter 6, then chapter 10).

The book's first "optimizer" tweaks every weight by random noise and keeps
the change only if the loss went down. On the easy vertical data that works
about as well as anything; on the spiral it stalls near chance (a lucky
direction among hundreds of weights is rare). Gradient descent instead moves
every weight in the direction that lowers the loss fastest, using the
gradients backpropagation gives: same network, same number of full-batch
loss evaluations, and on the spiral a far better result (here with Adam,
the optimizer the book ends with; example 09 compares optimizers).

Run:  python examples/04_random_search_vs_gradient_descent.py [--small] [--out out]
Writes out/04_random_vs_gd_<data>.png (loss against iteration).
"""

from __future__ import annotations

import argparse
import os

import dnn
from dnn.datasets import spiral_data, vertical_data
from dnn.layers import Dense, ReLU


def make_model() -> dnn.Sequential:
    dnn.manual_seed(0)
    model = dnn.Sequential([Dense(2, 64), ReLU(), Dense(64, 3)])  # 387 weights
    model.compile(loss="SoftmaxCrossEntropy", optimizer=dnn.optim.Adam(lr=0.02), metrics=["accuracy"])
    return model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny sizes (used by the tests)")
    parser.add_argument("--out", default="out", help="directory for the output files")
    args = parser.parse_args(argv)
    samples, iterations = (30, 50) if args.small else (100, 2000)

    for name, (x, y) in (("vertical", vertical_data(samples, 3, seed=0)),
                         ("spiral", spiral_data(samples, 3, seed=0))):
        # Random search: noise of std 0.05 on all weights, kept only if the loss improves
        model = make_model()
        search = dnn.optim.RandomSearch(scale=0.05, iterations=iterations, init_scale=0.01)
        rs = search.minimize(model, None, x, y)
        rs_acc = model.evaluate(x, y)["accuracy"]

        # Gradient descent (Adam): the same number of full-batch steps
        model = make_model()
        history = model.fit(x, y, epochs=iterations, batch_size=len(x), shuffle=False, verbose=0)
        gd = model.evaluate(x, y)
        print(f"{name:8s} random search: loss {rs.loss:.3f}, accuracy {rs_acc:.3f} "
              f"({rs.accepted} of {rs.iterations} tries kept) | gradient descent: "
              f"loss {gd['loss']:.3f}, accuracy {gd['accuracy']:.3f}")

        try:
            from dnn.plot import plot_curves

            path = os.path.join(args.out, f"04_random_vs_gd_{name}.png")
            plot_curves({"random search (best so far)": rs.history,
                         "gradient descent": history.history["loss"]},
                        path, title=f"{name} data: loss per iteration", xlabel="iteration")
            print("  wrote", path)
        except ImportError as exc:
            print("no plot:", exc)


if __name__ == "__main__":
    main()
