"""14 — A siamese network: one tower, two inputs, shared weights.

Does a pair of Fashion-MNIST images show the same kind of garment? A siamese
network answers with ONE encoder (the tower) applied to both images, then
compares the two embeddings:

    tower:  image (784) → Dense 256 → ReLU → Dense 64            (a dnn.Model)
    left, right = dnn.Input((784,)), dnn.Input((784,))
    a, b = tower(left), tower(right)                              # the same weights, twice
    d = Subtract()([a, b]);  score = Dense(64, 1)(Multiply()([d, d]))   # (a − b)² → logit
    model = dnn.Model([left, right], score)

Because the tower is one object at two nodes of the graph, its weights get
the SUM of the gradients of both uses — exactly what makes the embedding of
an image independent of the side it is shown on (swap the pair and the
score is the same). The model is trained with the logistic loss on balanced
pairs (half the same class, half different) and reports the accuracy on pairs
of test images it never saw, then the same accuracy with the pairs swapped.

Run:  python examples/14_siamese_fashion_pairs.py [--epochs 3] [--small] [--backend torch] [--out out]
``--small`` uses 2,000 pairs for one epoch: a smoke test in seconds.
Writes out/14_siamese.dnn (the trained model; reload it with dnn.load_model).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import dnn
from dnn.datasets import load_fashion_mnist
from dnn.layers import Dense, Multiply, ReLU, Subtract


def build_model(features: int = 784, hidden: int = 256, embedding: int = 64) -> dnn.Model:
    x = dnn.Input((features,), name="image")
    tower = dnn.Model(x, Dense(hidden, embedding)(ReLU()(Dense(features, hidden)(x))),
                      name="tower")
    left, right = dnn.Input((features,), name="left"), dnn.Input((features,), name="right")
    difference = Subtract()([tower(left), tower(right)])
    score = Dense(embedding, 1, name="score")(Multiply()([difference, difference]))
    return dnn.Model([left, right], score)


def make_pairs(images: np.ndarray, labels: np.ndarray, count: int,
               rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray]:
    """``count`` pairs, half of the same class: ([left, right], same (count, 1) as 0/1)."""
    by_class = [np.flatnonzero(labels == c) for c in range(10)]
    first = rng.integers(0, labels.shape[0], count)
    same = rng.random(count) < 0.5
    second = np.empty(count, dtype=np.int64)
    for i, (j, s) in enumerate(zip(first, same)):
        c = labels[j] if s else (labels[j] + rng.integers(1, 10)) % 10
        second[i] = rng.choice(by_class[c])
    return [images[first], images[second]], same.astype(np.float32)[:, None]


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=60_000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--backend", default=None, help="numpy (default), torch, cupy, ...")
    parser.add_argument("--data-home", default=None, help="default: $DNN_DATA_HOME")
    parser.add_argument("--small", action="store_true", help="2,000 pairs, 1 epoch (smoke test)")
    parser.add_argument("--verbose", type=int, default=1)
    parser.add_argument("--out", default="out", help="folder for the saved model (default: out)")
    args = parser.parse_args(argv)
    if args.backend:
        dnn.set_backend(args.backend)
    dnn.set_default_dtype("float32")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)  # before training: a bad --out fails at once

    (x_train, y_train), (x_test, y_test) = load_fashion_mnist(args.data_home)
    x_train = x_train.reshape(-1, 784).astype(np.float32) / 255
    x_test = x_test.reshape(-1, 784).astype(np.float32) / 255
    pairs, epochs = (2000, 1) if args.small else (args.pairs, args.epochs)
    rng = np.random.default_rng(0)
    train_x, train_y = make_pairs(x_train, y_train, pairs, rng)
    test_x, test_y = make_pairs(x_test, y_test, max(pairs // 6, 1000), rng)

    dnn.manual_seed(0)
    model = build_model()
    model.compile(loss="SigmoidBinaryCrossentropy", optimizer=dnn.optim.Adam(lr=1e-3),
                  metrics=[dnn.metrics.BinaryAccuracy(threshold=0.0)])  # logits: threshold 0
    if args.verbose:
        model.summary()
    start = time.perf_counter()
    model.fit(train_x, train_y, epochs=epochs, batch_size=args.batch_size, verbose=args.verbose,
              seed=0)
    seconds = time.perf_counter() - start
    result = model.evaluate(test_x, test_y)
    swapped = model.evaluate(test_x[::-1], test_y)
    result["swapped_accuracy"] = swapped["binary_accuracy"]
    result["seconds_per_epoch"] = seconds / epochs
    model.save(out / "14_siamese.dnn")
    if args.verbose:
        print(f"test pairs: accuracy {result['binary_accuracy']:.4f} (swapped "
              f"{result['swapped_accuracy']:.4f}), {seconds / epochs:.1f} s per epoch")
    return result


if __name__ == "__main__":
    main()
