"""01 — A neuron and a layer by hand, then the same with dnn (NNFS chapters 2–3, 9).

A neuron multiplies each input by a weight, adds them up and adds a bias.
A layer is several neurons reading the same inputs; a batch of inputs makes
that a matrix product. We compute it with plain Python, with array math, and
with ``dnn.layers.Dense`` — and check that all three agree. Then the
backward pass: the gradients a layer hands back, by hand and from dnn, and a
numerical gradient check.

Run:  python examples/01_neuron_and_layer_by_hand.py
"""

from __future__ import annotations

import argparse

import numpy as np

import dnn
from dnn.layers import Dense, ReLU


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny sizes (used by the tests)")
    parser.add_argument("--out", default="out", help="directory for output files (none here)")
    parser.parse_args(argv)

    # 1. One neuron: output = Σ input_i · weight_i + bias
    inputs = [1.0, 2.0, 3.0, 2.5]
    weights = [0.2, 0.8, -0.5, 1.0]
    bias = 2.0
    output = sum(i * w for i, w in zip(inputs, weights)) + bias
    print(f"one neuron:           {output:.3f}")  # 4.8

    # 2. A layer of three neurons: three such sums over the same inputs
    layer_weights = [[0.2, 0.8, -0.5, 1.0], [0.5, -0.91, 0.26, -0.5], [-0.26, -0.27, 0.17, 0.87]]
    layer_biases = [2.0, 3.0, 0.5]
    by_hand = [sum(i * w for i, w in zip(inputs, ws)) + b for ws, b in zip(layer_weights, layer_biases)]
    print("layer, plain Python: ", [round(v, 3) for v in by_hand])  # [4.8, 1.21, 2.385]

    # 3. A batch of inputs (one sample per row) turns the sums into a matrix product.
    #    dnn stores a Dense weight as (in_features, out_features), so y = X @ W + b.
    X = np.array([[1.0, 2.0, 3.0, 2.5], [2.0, 5.0, -1.0, 2.0], [-1.5, 2.7, 3.3, -0.8]])
    W = np.array(layer_weights).T  # (4, 3)
    b = np.array(layer_biases)
    Y = X @ W + b
    print("batch, matrix product:\n", np.round(Y, 3))
    assert np.allclose(Y[0], by_hand)

    # 4. The same with dnn: a Dense layer whose weights we load, run on the active backend
    dnn.set_default_dtype("float64")
    dense = Dense(4, 3)
    dense.load_state_dict({"weight": W, "bias": b})
    Y_dnn = dnn.to_numpy(dense(dnn.backend.asarray(X)))
    print(f"dnn.layers.Dense on backend {dnn.backend.name!r} agrees:", np.allclose(Y_dnn, Y))
    assert np.allclose(Y_dnn, Y)

    # 5. Backward pass. Take L = Σ ReLU(X @ W + b) · G for some upstream gradient G.
    #    Then with g = G ⊙ [Y > 0]:  dL/dW = Xᵀ g,  dL/db = Σ_rows g,  dL/dX = g Wᵀ
    G = np.ones_like(Y)
    g = G * (Y > 0)
    dW, db, dX = X.T @ g, g.sum(axis=0), g @ W.T
    relu = ReLU()
    relu(dense(dnn.backend.asarray(X)))  # forward (caches what backward needs)
    dX_dnn = dnn.to_numpy(dense.backward(relu.backward(dnn.backend.asarray(G))))
    print("dL/dW by hand == dnn:", np.allclose(dnn.to_numpy(dense.weight.grad), dW),
          "| dL/db:", np.allclose(dnn.to_numpy(dense.bias.grad), db),
          "| dL/dX:", np.allclose(dX_dnn, dX))
    assert np.allclose(dnn.to_numpy(dense.weight.grad), dW) and np.allclose(dX_dnn, dX)

    # 6. A numerical gradient check: central differences (L(θ+h) − L(θ−h)) / 2h for every
    #    input and weight, compared with backward. Errors around 1e-9 mean the math is right.
    error = dnn.gradcheck(Dense(4, 3), X)
    print(f"gradient check, max relative error: {error:.2e}")
    assert error < 1e-6


if __name__ == "__main__":
    main()
