"""18 — A character-level language model, trained on the Python standard library's source.

A language model gives the probability of a text one character at a time,

    p(c₁ … c_T) = Π_t p(c_t | c₁ … c_{t−1}),

and is trained to make each next character likely: the loss is the mean over
positions of −log p(c_{t+1} | c_≤t), the cross-entropy in nats per character.
The text needs no download: every Python installation holds megabytes of
well-written code (``dnn.datasets.load_stdlib_text``: the stdlib's .py files,
tests left out, split by file into training and validation text, a fixed
97-character vocabulary).

The model (``dnn.transformer.char_transformer``, a small GPT) reads a window of
T characters as ids (N, T), embeds each id and adds a learned position vector,
runs ``depth`` *causal* Transformer blocks (position t may attend only to
positions ≤ t, so it cannot peek at the character it must predict) and ends in
a Dense to logits (N, T, 97): a prediction at every position at once. The
targets are the same window shifted by one character, (N, T) ids, and
``SoftmaxCrossEntropy`` averages over all N·T positions.

Training is a plain loop over steps, each on a fresh batch of windows cut at
random places in the training text (no epochs: 4 MB of text holds far more
windows than a few minutes of CPU can visit):

    for step in range(steps):
        x, y = corpus.random_windows("train", T, batch, rng)     # (N, T) ids each
        model.train_step(x, y)

What to compare the loss with: a model that ignores context and always predicts
the training text's character frequencies scores the *unigram baseline* on the
validation text (about 3.2 nats per character here). A model that has learned
anything about Python must do better; one that has learned a lot gets near 1.

Sampling: starting from a prompt, draw the next character from
softmax(logits / temperature) at the last position, append it, crop the window
to the last T characters, repeat (``dnn.transformer.generate``; a seeded
generator makes it reproducible). Temperature < 1 sharpens the distribution
(safer, more repetitive text), > 1 flattens it.

Measured (NumPy, ``OPENBLAS_NUM_THREADS=1`` on the shared 2-core machine, seed 0;
the defaults: T 64, dim 96, depth 3, 4 heads, MLP 384 (361k parameters), batch 32,
Adam peaking at 3e-3 after 100 warm-up steps, cosine decay over 1500 steps; 3.6 M
training characters from 224 files, 0.4 M validation characters from 18 others):

    step             250    500    750   1000   1250   1500
    train loss      2.556  2.034  1.749  1.571  1.479  1.432   nats/char
    validation      2.264  1.964  1.780  1.688  1.622  1.603   (unigram baseline 3.211)

204 s of training (0.13 s per step), 1.61 nats per character below the baseline.
A sample at temperature 0.8 from the prompt "import " — Python's shape (indentation,
``self.``, ``def``, brackets, ``if ... :``) with invented words:

    import is the is reds.

          _type = 0 ord _filename(self, self.patch_signgmary()
                                    self.pop = direction = gtrepling
             if self._set_options.compachors.codexct.exec()
                  if node.name('file='.None.prament')

Run:  python examples/18_char_language_model.py [--steps 1500] [--small]
``--small``: 200 k characters of text and 30 steps, a smoke test in seconds.
Writes out/18_char_lm.dnn (the trained model; reload it with dnn.load_model).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import dnn
from dnn.datasets import TextCorpus, load_stdlib_text
from dnn.transformer import char_transformer, generate


def mean_loss(model: dnn.Model, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> float:
    """Cross-entropy in nats per character of ``model`` on windows ``x`` -> targets ``y``."""
    loss = dnn.losses.SoftmaxCrossEntropy(reduction="sum")
    total = 0.0
    for start in range(0, x.shape[0], batch_size):
        logits = model.predict(dnn.backend.asarray(x[start:start + batch_size]))
        total += float(loss(logits, dnn.backend.asarray(y[start:start + batch_size])))
    return total / x.shape[0]        # "sum" adds the per-window means: divide by the windows


def samples(model: dnn.Model, corpus: TextCorpus, prompts: list[str], length: int,
            context: int, temperature: float, seed: int) -> list[str]:
    ids = [corpus.encode(p) for p in prompts]
    return [corpus.decode(generate(model, prompt, length, context=context,
                                   temperature=temperature, seed=seed + k))
            for k, prompt in enumerate(ids)]


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--context", type=int, default=64, help="window length T")
    parser.add_argument("--dim", type=int, default=96)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--mlp", type=int, default=384)
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    parser.add_argument("--warmup-steps", type=int, default=100)
    parser.add_argument("--max-chars", type=int, default=4_000_000, help="text to read")
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--sample-length", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default=None, help="numpy (default), torch, cupy, ...")
    parser.add_argument("--out", default="out", help="folder for the saved model")
    parser.add_argument("--small", action="store_true", help="200k characters, 30 steps (smoke test)")
    parser.add_argument("--verbose", type=int, default=1)
    args = parser.parse_args(argv)
    if args.backend:
        dnn.set_backend(args.backend)
    dnn.set_default_dtype("float32")
    if args.small:
        args.max_chars, args.steps, args.eval_every, args.sample_length = 200_000, 30, 15, 60

    corpus = load_stdlib_text(max_chars=args.max_chars)
    baseline = corpus.unigram_cross_entropy()
    t = args.context
    x_val, y_val = corpus.windows("valid", t, limit=100 if args.small else 1000)
    if args.verbose:
        print(f"text: {corpus.train.shape[0]:,} training characters from {len(corpus.train_files)} "
              f"files, {corpus.valid.shape[0]:,} validation characters from "
              f"{len(corpus.valid_files)} files; vocabulary {corpus.vocab_size}")
        print(f"unigram baseline on the validation text: {baseline:.3f} nats per character")

    dnn.manual_seed(args.seed)
    model = char_transformer(corpus.vocab_size, t, args.dim, args.depth, args.heads, args.mlp)
    schedule = dnn.optim.schedules.LinearWarmup(
        dnn.optim.schedules.CosineDecay(args.lr, args.steps, args.lr / 50),
        min(args.warmup_steps, args.steps // 2))
    model.compile(loss="SoftmaxCrossEntropy", optimizer=dnn.optim.Adam(lr=schedule))
    if args.verbose:
        params = sum(p.size for p in model.parameters())
        print(f"model: T {t}, dim {args.dim}, depth {args.depth}, {args.heads} heads, "
              f"MLP {args.mlp}: {params:,} parameters")

    rng = np.random.default_rng(args.seed)
    start, recent = time.perf_counter(), []
    history: dict[str, list[float]] = {"step": [], "train_loss": [], "val_loss": []}
    for step in range(1, args.steps + 1):
        x, y = corpus.random_windows("train", t, args.batch_size, rng)
        loss = model.train_step(dnn.backend.asarray(x), dnn.backend.asarray(y))
        recent.append(loss)
        if step % args.eval_every == 0 or step == args.steps:
            train_loss = float(np.mean([float(v) for v in recent]))
            val_loss = mean_loss(model, x_val, y_val)
            recent = []
            for key, value in (("step", step), ("train_loss", train_loss), ("val_loss", val_loss)):
                history[key].append(value)
            if args.verbose:
                print(f"step {step:5d}  train {train_loss:.3f}  validation {val_loss:.3f} nats/char "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)
    seconds = time.perf_counter() - start
    val_loss = history["val_loss"][-1]

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "18_char_lm.dnn")
    texts = samples(model, corpus, ["def ", "import ", "class "], args.sample_length, t,
                    args.temperature, args.seed)
    if args.verbose:
        print(f"\nvalidation {val_loss:.3f} nats/char vs the unigram baseline {baseline:.3f} "
              f"({baseline - val_loss:+.3f}); {seconds:.0f} s for {args.steps} steps on "
              f"{dnn.backend.name}")
        for text in texts:
            print(f"\n--- sample (temperature {args.temperature}) ---\n{text}")
    return {"val_loss": val_loss, "train_loss": history["train_loss"][-1], "baseline": baseline,
            "seconds": seconds}


if __name__ == "__main__":
    main()
