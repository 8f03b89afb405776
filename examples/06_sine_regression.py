"""06 — Regression: fitting y = sin(2πx) (NNFS chapter 17), with Adam and with L-BFGS.

For regression the output layer is linear (no softmax), the loss is the mean
squared error, and "accuracy" needs a tolerance: the book counts a
prediction as right when |ŷ − y| < std(y)/250 (``regression_accuracy``).
MAE, RMSE and R² tell the same story in the usual units.

L-BFGS, a quasi-Newton method from ``scipy.optimize``, uses all the data at
every step and an estimate of the curvature; on a small smooth problem like
this it often beats hundreds of first-order steps.

Run:  python examples/06_sine_regression.py [--small] [--out out]
Writes out/06_sine_adam.png, out/06_sine_lbfgs.png and out/06_sine_history.png.
"""

from __future__ import annotations

import argparse
import os
import time

import dnn
from dnn.datasets import sine_data
from dnn.layers import Dense, ReLU, Tanh


def make_model(activation: type, y_train) -> dnn.Sequential:
    dnn.manual_seed(0)
    model = dnn.Sequential([Dense(1, 64), activation(), Dense(64, 64), activation(), Dense(64, 1)])
    # the book's tolerance: std of the *training* targets / 250 (fixed once, used for every split)
    within = dnn.metrics.RegressionAccuracy()
    within.set_precision(y_train)
    model.compile(loss="mse", optimizer=dnn.optim.Adam(lr=0.005), metrics=[within, "mae", "rmse", "r2"])
    return model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny sizes (used by the tests)")
    parser.add_argument("--out", default="out", help="directory for the output files")
    args = parser.parse_args(argv)
    samples, epochs, maxiter = (200, 5, 20) if args.small else (1000, 200, 500)

    x, y = sine_data(samples)
    x_test, y_test = sine_data(samples + 17)  # a different grid of x for testing

    # 1. Adam on mini-batches
    model = make_model(ReLU, y)
    start = time.perf_counter()
    history = model.fit(x, y, epochs=epochs, batch_size=32, verbose=0, seed=0)
    adam = model.evaluate(x_test, y_test)
    print(f"Adam, {epochs} epochs ({time.perf_counter() - start:.1f} s):",
          {k: round(v, 5) for k, v in adam.items()})

    # 2. L-BFGS on the full batch (tanh: smooth, which quasi-Newton methods like)
    lbfgs_model = make_model(Tanh, y)
    result = dnn.optim.LBFGS(lbfgs_model, "mse", x, y, maxiter=maxiter)
    lbfgs = lbfgs_model.evaluate(x_test, y_test)
    print(f"L-BFGS, {result.nit} iterations, {result.nfev} evaluations ({result.seconds:.1f} s):",
          {k: round(v, 5) for k, v in lbfgs.items()})

    try:
        from dnn.plot import plot_regression

        os.makedirs(args.out, exist_ok=True)
        plot_regression(x_test, y_test, model.predict(x_test), os.path.join(args.out, "06_sine_adam.png"),
                        title=f"Adam: R² = {adam['r2']:.4f}")
        plot_regression(x_test, y_test, lbfgs_model.predict(x_test),
                        os.path.join(args.out, "06_sine_lbfgs.png"), title=f"L-BFGS: R² = {lbfgs['r2']:.4f}")
        history.plot(os.path.join(args.out, "06_sine_history.png"))
        print("wrote", os.path.join(args.out, "06_sine_*.png"))
    except ImportError as exc:
        print("no plot:", exc)


if __name__ == "__main__":
    main()
