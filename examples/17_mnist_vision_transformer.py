"""17 — A Vision Transformer on MNIST: attention instead of convolutions.

A Transformer reads a set of tokens, so the image is first cut into tokens: 16
tiles of 7x7 pixels (``Patches(7)``: (N, 1, 28, 28) -> (N, 16, 49)), each mapped
to a vector of width 64 by one shared Dense layer (the "patch embedding", the
same function as a 7x7 convolution with stride 7). Attention itself ignores
order, so a learned position vector is added to each token (``PositionalEmbedding``):
otherwise the model could not tell the top-left tile from the bottom-right one.

Then ``depth`` pre-norm Transformer blocks (dnn/transformer.py), each

    h = x + MultiHeadAttention(LayerNorm(x))       every tile looks at every tile
    y = h + Dense(GELU(Dense(LayerNorm(h))))       a small MLP on each tile

and finally a LayerNorm, the mean over the 16 tokens (``SequenceAvgPool``) and
a Dense to 10 logits. In code, with the functional API:

    image = dnn.Input((1, 28, 28))
    x = PositionalEmbedding(16, 64)(Dense(49, 64)(Patches(7)(image)))
    for _ in range(depth):
        x = transformer_block(x, num_heads=4, mlp_dim=128)
    logits = Dense(64, 10)(SequenceAvgPool()(LayerNorm(64)(x)))

(``dnn.transformer.vision_transformer`` builds exactly this.) Attention costs
grow with the square of the number of tokens: 16 tokens make a (16 x 16) score
matrix per head; 4x4 patches would give 49 tokens and a 49 x 49 matrix.

Training: Adam with a linear warm-up over the first 200 steps (a Transformer
with freshly initialised attention is easily knocked off course by the first,
large updates), then cosine decay to lr/50; batch 128; no augmentation.

Measured (NumPy, ``OPENBLAS_NUM_THREADS=1`` on the shared 2-core machine, seed 0,
lr 2e-3, 72k parameters; 15-50 s per epoch depending on the machine's load):

    patch  depth  epochs   test accuracy   wall time
      7      2      8         0.9799         3 min 21 s   (the defaults)
      7      2      5         0.9738         2 min 3 s
      7      3      6         0.9780         2 min 36 s
      4      2     (2)       (0.9285)       72 s per epoch: three times the cost of
                                            patch 7 and behind it after 2 epochs
                                            (0.9580), so that run was stopped

The training accuracy reaches 0.996 in 8 epochs: with no augmentation and no
dropout the model starts to memorise, and the test accuracy levels off near 0.98.
(With two BLAS threads per process on a machine this busy, matrix products wait
for their second thread and a step takes several times longer: set
``OPENBLAS_NUM_THREADS=1`` there.)

Run:  python examples/17_mnist_vision_transformer.py [--epochs 8] [--depth 2] [--small]
``--small`` trains on 2,000 images for one epoch: a smoke test in seconds.
Writes out/17_vit.dnn (the trained model; reload it with dnn.load_model).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import dnn
from dnn.datasets import load_mnist
from dnn.transformer import vision_transformer


def prepare(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) in [0, 1]."""
    return (images.astype(np.float32) * np.float32(1 / 255.0))[:, None, :, :]


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    parser.add_argument("--warmup-steps", type=int, default=200)
    parser.add_argument("--patch", type=int, default=7, help="patch size (7: 16 tokens, 4: 49)")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--mlp", type=int, default=128)
    parser.add_argument("--backend", default=None, help="numpy (default), torch, cupy, ...")
    parser.add_argument("--data-home", default=None, help="default: $DNN_DATA_HOME")
    parser.add_argument("--out", default="out", help="folder for the saved model")
    parser.add_argument("--small", action="store_true", help="2,000 images, 1 epoch (smoke test)")
    parser.add_argument("--verbose", type=int, default=1)
    args = parser.parse_args(argv)
    if args.backend:
        dnn.set_backend(args.backend)
    dnn.set_default_dtype("float32")

    (x_train, y_train), (x_test, y_test) = load_mnist(args.data_home)
    x_train, x_test = prepare(x_train), prepare(x_test)
    epochs = args.epochs
    if args.small:
        x_train, y_train, x_test, y_test = x_train[:2000], y_train[:2000], x_test[:500], y_test[:500]
        epochs = 1

    dnn.manual_seed(0)
    model = vision_transformer((1, 28, 28), patch_size=args.patch, num_classes=10, dim=args.dim,
                               depth=args.depth, heads=args.heads, mlp_dim=args.mlp)
    steps = epochs * -(-x_train.shape[0] // args.batch_size)
    warmup = min(args.warmup_steps, steps // 2)
    schedule = dnn.optim.schedules.LinearWarmup(
        dnn.optim.schedules.CosineDecay(args.lr, steps, args.lr / 50), warmup)
    model.compile(loss="SoftmaxCrossEntropy", optimizer=dnn.optim.Adam(lr=schedule),
                  metrics=["accuracy"])
    if args.verbose:
        model.summary()
    start = time.perf_counter()
    model.fit(x_train, y_train, epochs=epochs, batch_size=args.batch_size,
              validation_data=(x_test, y_test), verbose=args.verbose, seed=0)
    seconds = time.perf_counter() - start
    result = model.evaluate(x_test, y_test)
    result["seconds_per_epoch"] = seconds / epochs
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "17_vit.dnn")
    if args.verbose:
        print(f"test accuracy {result['accuracy']:.4f}, loss {result['loss']:.4f}, "
              f"{seconds / epochs:.0f} s per epoch on {dnn.backend.name}")
    return result


if __name__ == "__main__":
    main()
