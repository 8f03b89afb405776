"""A character-level text corpus that ships with Python: the standard library's own source.

Every Python installation holds several megabytes of carefully written code under
``sysconfig.get_paths()["stdlib"]`` (12 MB of ``.py`` text in CPython 3.11), so a
character language model can train here without downloading anything.

- Files: every ``*.py`` below the stdlib folder except tests, ``site-packages``
  and caches, sorted by relative path, then put in one fixed pseudo-random order
  (seed 0), so that a size cap takes a sample of the whole library rather than
  the modules whose names start with "a". Files are read as UTF-8, ``\\r\\n``
  becomes ``\\n``, and files are joined with ``\\n``.
- Size cap: files are taken in that order until ``max_chars`` characters are
  reached (the last one cut there).
- Split by file: a file (in that order) goes to validation whenever the
  validation text so far is less than ``valid_fraction`` of all the text before
  it, else to training; so about that fraction of the characters is validation
  text at any size cap, and no function is half in each split.
- Vocabulary: fixed, not learned from the data (a saved model decodes the same
  on any machine): ``"\\n"``, the 95 printable ASCII characters (space to ``~``)
  and ``"\\ufffd"`` for everything else (a few hundred accented letters and
  symbols in 12 MB); id = position in :data:`VOCAB`.
- Windows: an input window is ``ids[s : s + T]`` and its target the same window
  shifted by one, ``ids[s + 1 : s + T + 1]`` (next-character prediction at every
  position), both (N, T) int64 arrays.
- Baseline: the unigram cross-entropy H = −Σ_c q(c)·log p(c) in nats, q the
  character frequencies of the validation text and p those of the training text
  (add-one smoothed over the vocabulary, so a character never seen in training
  costs log(N_train + V) instead of infinity). A model that ignores context can
  do no better than about this; a language model must beat it.

Which files exist depends on the Python version, so the corpus is deterministic
for one installation; :attr:`TextCorpus.files` lists what was read.
"""

from __future__ import annotations

import math
import os
import stat
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: the characters a model sees: newline, printable ASCII, and the replacement character
VOCAB = "\n" + "".join(chr(c) for c in range(32, 127)) + "\ufffd"
#: the id every character outside the vocabulary gets
UNKNOWN = len(VOCAB) - 1
#: folders whose files are not the library itself
_SKIP = frozenset({"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"})
#: code point -> id, for the code points below 128 (all others are UNKNOWN)
_ASCII_IDS = np.full(128, UNKNOWN, dtype=np.int64)
for _i, _c in enumerate(VOCAB[:-1]):
    _ASCII_IDS[ord(_c)] = _i


def encode(text: str) -> np.ndarray:
    """Characters -> int64 ids of :data:`VOCAB` (characters outside it -> :data:`UNKNOWN`)."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    ids = np.full(codes.shape, UNKNOWN, dtype=np.int64)
    ascii_ = codes < 128
    ids[ascii_] = _ASCII_IDS[codes[ascii_]]
    return ids


def decode(ids: np.ndarray | list[int]) -> str:
    """int ids -> text (the inverse of :func:`encode` on text inside the vocabulary)."""
    flat = np.asarray(ids).reshape(-1)
    if flat.size and (not np.issubdtype(flat.dtype, np.integer) or flat.min() < 0
                      or flat.max() >= len(VOCAB)):
        raise ValueError(f"decode: ids must be integers in [0, {len(VOCAB)}), got "
                         f"{flat.dtype} ids from {flat.min()} to {flat.max()}")
    return "".join(VOCAB[int(i)] for i in flat)


def stdlib_files(root: str | Path | None = None) -> list[Path]:
    """The library's ``.py`` files (tests, site-packages and caches left out), sorted by path
    relative to ``root`` (default: this interpreter's stdlib folder), then in the fixed order."""
    base = Path(root if root is not None else sysconfig.get_paths()["stdlib"])
    if not base.is_dir():
        raise FileNotFoundError(f"stdlib_text: {base} is not a folder")
    files = sorted((p for p in base.rglob("*.py")
                    if not _SKIP.intersection(p.relative_to(base).parts[:-1])),
                   key=lambda p: p.relative_to(base).as_posix())
    order = np.random.default_rng(0).permutation(len(files))
    return [files[i] for i in order]


@dataclass(frozen=True)
class TextCorpus:
    """Training and validation text as ids of :data:`VOCAB`, and the files they came from."""

    train: np.ndarray
    valid: np.ndarray
    train_files: tuple[str, ...]
    valid_files: tuple[str, ...]
    vocab: str = VOCAB

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def split(self, name: str) -> np.ndarray:
        if name not in ("train", "valid"):
            raise ValueError(f"TextCorpus: split must be 'train' or 'valid', got {name!r}")
        return self.train if name == "train" else self.valid

    def windows(self, split: str, context: int, stride: int | None = None,
                limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and next-character targets, (N, context) int64 each, from windows starting
        every ``stride`` characters (default ``context``: back to back); at most ``limit``."""
        ids = self.split(split)
        stride = context if stride is None else stride
        for arg, value, low in (("context", context, 1), ("stride", stride, 1),
                                ("limit", 0 if limit is None else limit, 0)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
                raise ValueError(f"TextCorpus.windows: {arg} must be an int >= {low}, got "
                                 f"{value!r}")
        count = (ids.shape[0] - context - 1) // stride + 1 if ids.shape[0] > context else 0
        count = count if limit is None else min(count, limit)
        return _gather(ids, np.arange(count, dtype=np.int64) * stride, context)

    def random_windows(self, split: str, context: int, count: int,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``count`` windows at uniformly random starts drawn from ``rng``."""
        ids = self.split(split)
        if ids.shape[0] <= context:
            raise ValueError(f"TextCorpus: the {split} text has {ids.shape[0]} characters, too "
                             f"few for windows of {context}")
        return _gather(ids, rng.integers(0, ids.shape[0] - context, size=count), context)

    def unigram_cross_entropy(self) -> float:
        """H(valid, train unigram) in nats per character (add-one smoothed; see the module)."""
        return unigram_cross_entropy(self.train, self.valid, self.vocab_size)

    def encode(self, text: str) -> np.ndarray:
        return encode(text)

    def decode(self, ids: np.ndarray | list[int]) -> str:
        return decode(ids)


def unigram_cross_entropy(train: np.ndarray, valid: np.ndarray, vocab_size: int) -> float:
    """−Σ_c q(c)·log p(c) in nats: q the frequencies of the ids ``valid``, p those of ``train``
    add-one smoothed over ``vocab_size`` ids, p(c) = (count(c) + 1) / (len(train) + V)."""
    train_counts = np.bincount(train, minlength=vocab_size).astype(np.float64)
    valid_counts = np.bincount(valid, minlength=vocab_size).astype(np.float64)
    log_p = np.log(train_counts + 1.0) - math.log(train.shape[0] + vocab_size)
    return float(-(valid_counts * log_p).sum() / valid_counts.sum())


def _gather(ids: np.ndarray, starts: np.ndarray, context: int) -> tuple[np.ndarray, np.ndarray]:
    index = starts[:, None] + np.arange(context + 1)
    window = ids[index]
    return np.ascontiguousarray(window[:, :-1]), np.ascontiguousarray(window[:, 1:])


def _read_head(path: Path, chars: int) -> str | None:
    """At most ``chars`` characters of a regular UTF-8 file (None for anything else: a FIFO
    would block, a link to /dev/zero never end, and a huge file is read only as far as
    needed)."""
    try:
        if not path.is_file() or not stat.S_ISREG(os.stat(path).st_mode):
            return None
        with open(path, encoding="utf-8", newline="") as f:
            return f.read(chars).replace("\r\n", "\n")
    except (UnicodeDecodeError, OSError):
        return None


def load_stdlib_text(max_chars: int = 4_000_000, valid_fraction: float = 0.1,
                     root: str | Path | None = None) -> TextCorpus:
    """The standard library's source as a :class:`TextCorpus`: at most ``max_chars``
    characters, about ``valid_fraction`` of them (whole files) for validation (see the
    module docstring); ``root``: another folder of ``.py`` files."""
    if not isinstance(max_chars, int) or isinstance(max_chars, bool) or max_chars < 2:
        raise ValueError(f"load_stdlib_text: max_chars must be an int >= 2, got {max_chars!r}")
    if isinstance(valid_fraction, bool) or not isinstance(valid_fraction, (int, float)) \
            or not 0.0 < valid_fraction < 1.0:
        raise ValueError(f"load_stdlib_text: valid_fraction must be a number in (0, 1), got "
                         f"{valid_fraction!r}")
    base = Path(root if root is not None else sysconfig.get_paths()["stdlib"])
    parts: dict[str, list[str]] = {"train": [], "valid": []}
    names: dict[str, list[str]] = {"train": [], "valid": []}
    total = valid_chars = 0
    for path in stdlib_files(base):
        if total >= max_chars:
            break
        text = _read_head(path, max_chars - total)
        if text is None:
            continue
        text = (text + "\n")[: max_chars - total]
        split = "valid" if valid_chars < valid_fraction * total else "train"
        total += len(text)
        valid_chars += len(text) if split == "valid" else 0
        parts[split].append(text)
        names[split].append(path.relative_to(base).as_posix())
    if not parts["train"] or not parts["valid"]:
        raise ValueError(f"load_stdlib_text: {base} gave too little text for a training and a "
                         f"validation split (max_chars={max_chars}, valid_fraction={valid_fraction})")
    return TextCorpus(encode("".join(parts["train"])), encode("".join(parts["valid"])),
                      tuple(names["train"]), tuple(names["valid"]))
