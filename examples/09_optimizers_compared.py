"""09 — Optimizers compared: SGD, SGD with momentum, RMSprop and Adam on one problem.

Same network, same initial weights, same mini-batches — only the update rule
differs (NNFS chapter 10; the formulas are torch.optim's):

- SGD:       θ ← θ − lr·g
- momentum:  b ← μ·b + g;  θ ← θ − lr·b   (keeps moving through flat regions)
- RMSprop:   v ← α·v + (1−α)·g²;  θ ← θ − lr·g/(√v + ε)   (per-weight step sizes)
- Adam:      momentum + RMSprop + bias correction

Run:  python examples/09_optimizers_compared.py [--small] [--out out]
Writes out/09_optimizers_loss.png and out/09_optimizers_val_accuracy.png.
"""

from __future__ import annotations

import argparse
import os

import dnn
from dnn.datasets import spiral_data
from dnn.layers import Dense, ReLU

OPTIMIZERS = {
    "SGD (lr=0.1)": lambda: dnn.optim.SGD(lr=0.1),
    "SGD + momentum 0.9": lambda: dnn.optim.SGD(lr=0.1, momentum=0.9),
    "RMSprop (lr=0.002)": lambda: dnn.optim.RMSprop(lr=0.002),
    "Adam (lr=0.005)": lambda: dnn.optim.Adam(lr=0.005),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny sizes (used by the tests)")
    parser.add_argument("--out", default="out", help="directory for the output files")
    args = parser.parse_args(argv)
    samples, epochs = (30, 3) if args.small else (300, 60)

    x, y = spiral_data(samples, 3, seed=0)
    x_val, y_val = spiral_data(100, 3, seed=1)
    losses, accuracies = {}, {}
    for name, make_optimizer in OPTIMIZERS.items():
        dnn.manual_seed(0)  # identical initial weights for every optimizer
        model = dnn.Sequential([Dense(2, 64), ReLU(), Dense(64, 64), ReLU(), Dense(64, 3)])
        model.compile(optimizer=make_optimizer(), metrics=["accuracy"])
        history = model.fit(x, y, epochs=epochs, batch_size=32, validation_data=(x_val, y_val),
                            verbose=0, seed=0)  # seed: the same shuffling for every run
        losses[name], accuracies[name] = history.history["loss"], history.history["val_accuracy"]
        print(f"{name:20s} final loss {losses[name][-1]:.3f}, "
              f"validation accuracy {accuracies[name][-1]:.3f}")

    try:
        from dnn.plot import plot_curves

        plot_curves(losses, os.path.join(args.out, "09_optimizers_loss.png"),
                    title="Training loss", xlabel="epoch", ylabel="loss", logy=True)
        plot_curves(accuracies, os.path.join(args.out, "09_optimizers_val_accuracy.png"),
                    title="Validation accuracy", xlabel="epoch", ylabel="accuracy")
        print("wrote", os.path.join(args.out, "09_optimizers_*.png"))
    except ImportError as exc:
        print("no plot:", exc)


if __name__ == "__main__":
    main()
