"""Benchmarks for ``dnn``: pytest-benchmark suites, the cost model, memory and the
side-by-side comparison with PyTorch and scikit-learn.

    python -m benchmarks            # everything, then regenerate BENCHMARKS.md
    python -m benchmarks.scaling    # the O(n·m) cost model and its plot
    python -m benchmarks.memory     # per-layer memory vs theory
    python -m benchmarks.compare    # dnn vs PyTorch vs the GEMM floor vs scikit-learn
    python -m pytest benchmarks --benchmark-only   # the per-layer suites
"""
