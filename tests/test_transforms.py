"""Batch transforms (dnn.data.transforms) on every backend: shapes and dtypes, values on
hand-made images for reproduced draws, determinism under a seeded generator, the flip
rate and crop offsets as distributions, and the errors for bad arguments and batches."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from dnn import backend
from dnn.backend import random
from dnn.data.transforms import (
    Compose,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    Rescale,
    Transform,
)
from dnn.errors import ShapeError


def batch(values, dtype: str = "float32"):
    return backend.asarray(np.asarray(values), dtype=getattr(backend.xp, dtype))


def host(x) -> np.ndarray:
    return backend.to_numpy(x)


def images(n: int, shape: tuple[int, ...] = (1, 3, 3)) -> np.ndarray:
    """n distinct images: sample k holds 100·k + 0, 1, 2, ... (so a mixed-up order shows)."""
    size = int(np.prod(shape))
    return (100.0 * np.arange(n)[:, None] + np.arange(size)).reshape(n, *shape)


def drawn(seed: int, draw):
    """What ``draw()`` returns from a fresh generator seeded with ``seed``."""
    with random.use(random.generator(seed)):
        return host(draw())


# ---------------------------------------------------------------- shapes and dtypes


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(4, 3, 8, 9), (4, 8, 9), (2, 2, 3, 8, 9), (0, 3, 8, 9)])
def test_every_transform_keeps_the_dtype_and_gives_the_right_shape(backend_name, dtype, shape):
    x = batch(np.random.default_rng(0).random(shape), dtype)
    channels = shape[1] if len(shape) >= 4 else 1
    cases = [
        (Normalize(0.5, 0.25), shape),
        (Normalize([0.1] * channels, [0.2] * channels), shape),
        (RandomHorizontalFlip(), shape),
        (RandomCrop(5, padding=2), (*shape[:-2], 5, 5)),
        (RandomCrop((3, 7)), (*shape[:-2], 3, 7)),
        (Compose([RandomCrop(8, padding=1), RandomHorizontalFlip(0.3), Normalize(0.0, 2.0)]),
         (*shape[:-2], 8, 8)),
    ]
    for transform, expected in cases:
        y = transform(x)
        assert backend.is_array(y), transform
        assert y.dtype == x.dtype, transform
        assert tuple(y.shape) == expected, transform


# ---------------------------------------------------------------- RandomHorizontalFlip values


def test_flip_with_p_one_mirrors_every_sample_and_p_zero_none(backend_name):
    x = images(5, (2, 3, 4))
    assert np.array_equal(host(RandomHorizontalFlip(1.0)(batch(x))), x[..., ::-1])
    assert np.array_equal(host(RandomHorizontalFlip(0.0)(batch(x))), x)


@pytest.mark.parametrize("shape", [(1, 3, 3), (3, 3)])
def test_flip_mirrors_exactly_the_samples_whose_draw_is_below_p(backend_name, shape):
    n, p = 40, 0.5
    x = images(n, shape)
    with random.use(random.generator(3)):
        y = host(RandomHorizontalFlip(p)(batch(x)))
    flip = drawn(3, lambda: random.uniform((n,), dtype=backend.xp.float64)) < p
    assert 0 < flip.sum() < n
    assert np.array_equal(y[flip], x[flip][..., ::-1])
    assert np.array_equal(y[~flip], x[~flip])


def test_flip_on_a_hand_made_image(backend_name):
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    assert host(RandomHorizontalFlip(1.0)(batch(x)))[0, 0].tolist() == [
        [2.0, 1.0, 0.0], [5.0, 4.0, 3.0], [8.0, 7.0, 6.0]]


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_flip_rate_is_near_p(backend_name, p):
    n = 20_000
    x = batch(np.tile(np.array([0.0, 1.0]), (n, 1, 1, 1)))  # (n, 1, 1, 2): flipped iff [1, 0]
    with random.use(random.generator(11)):
        rate = float(np.mean(host(RandomHorizontalFlip(p)(x))[:, 0, 0, 0] == 1.0))
    assert abs(rate - p) < 5 * np.sqrt(p * (1 - p) / n)


# ---------------------------------------------------------------- RandomCrop values

#: the 1×1×3×3 image 0..8 padded by one cell of fill −1
PADDED = np.array([[-1, -1, -1, -1, -1],
                   [-1, 0, 1, 2, -1],
                   [-1, 3, 4, 5, -1],
                   [-1, 6, 7, 8, -1],
                   [-1, -1, -1, -1, -1]], dtype=float)
#: its nine 3×3 windows, keyed by the window's top-left corner in the padded image
WINDOWS = {(r, c): PADDED[r:r + 3, c:c + 3] for r in range(3) for c in range(3)}


def test_the_hand_made_windows():
    assert WINDOWS[0, 0].tolist() == [[-1, -1, -1], [-1, 0, 1], [-1, 3, 4]]
    assert WINDOWS[1, 1].tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert WINDOWS[2, 2].tolist() == [[4, 5, -1], [7, 8, -1], [-1, -1, -1]]
    assert WINDOWS[0, 2].tolist() == [[-1, -1, -1], [1, 2, -1], [4, 5, -1]]


def test_every_crop_is_one_of_the_windows_and_every_window_occurs(backend_name):
    x = batch(np.tile(np.arange(9.0).reshape(1, 1, 3, 3), (300, 1, 1, 1)))
    with random.use(random.generator(0)):
        y = host(RandomCrop(3, padding=1, fill=-1.0)(x))[:, 0]
    seen = set()
    for crop in y:
        matches = [key for key, window in WINDOWS.items() if np.array_equal(crop, window)]
        assert len(matches) == 1, crop
        seen.add(matches[0])
    assert seen == set(WINDOWS)  # 300 draws miss one of 9 with probability < 1e-14


def test_crop_takes_each_sample_at_its_drawn_offset_in_order(backend_name):
    n = 64  # more samples than offsets: groups of equal offset, then the original order
    x = images(n)
    with random.use(random.generator(5)):
        y = host(RandomCrop(3, padding=1, fill=-1.0)(batch(x)))

    def offsets():
        return random.integers(0, 3, (n,)), random.integers(0, 3, (n,))

    with random.use(random.generator(5)):
        top, left = (host(o) for o in offsets())
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-1.0)
    for k in range(n):
        assert np.array_equal(y[k], padded[k, :, top[k]:top[k] + 3, left[k]:left[k] + 3]), k
        shifted = np.where(WINDOWS[top[k], left[k]] >= 0, WINDOWS[top[k], left[k]] + 100 * k, -1)
        assert np.array_equal(y[k, 0], shifted), k


@pytest.mark.parametrize(("shape", "size", "padding"), [
    ((7, 2, 4, 5), (2, 3), 0),   # no padding, a non-square window
    ((7, 4, 5), (4, 4), 2),      # (N, H, W)
    ((7, 2, 1, 3, 3), 2, 3),     # (N, C, D, H, W); padding larger than the window
])
def test_crop_matches_a_reference_for_the_reproduced_draws(backend_name, shape, size, padding):
    h, w = (size, size) if isinstance(size, int) else size
    x = np.random.default_rng(1).random(shape)
    with random.use(random.generator(9)):
        y = host(RandomCrop(size, padding=padding, fill=0.5)(batch(x, "float64")))
    rows, cols = shape[-2] + 2 * padding - h + 1, shape[-1] + 2 * padding - w + 1
    with random.use(random.generator(9)):
        top = host(random.integers(0, rows, (shape[0],)))
        left = host(random.integers(0, cols, (shape[0],)))
    pad = [(0, 0)] * (len(shape) - 2) + [(padding, padding)] * 2
    padded = np.pad(x, pad, constant_values=0.5)
    expected = np.stack([padded[k, ..., top[k]:top[k] + h, left[k]:left[k] + w]
                         for k in range(shape[0])])
    assert np.array_equal(y, expected)


def test_crop_of_the_whole_padded_image_is_the_padded_image(backend_name):
    x = np.arange(6.0).reshape(1, 1, 2, 3)
    y = host(RandomCrop((4, 5), padding=1, fill=9.0)(batch(x)))
    assert y[0, 0].tolist() == [[9, 9, 9, 9, 9], [9, 0, 1, 2, 9], [9, 3, 4, 5, 9], [9, 9, 9, 9, 9]]


def test_crop_offsets_are_uniform_over_all_positions(backend_name):
    n = 9_000
    x = batch(np.tile(np.arange(9.0).reshape(1, 1, 3, 3), (n, 1, 1, 1)))
    with random.use(random.generator(2)):
        y = host(RandomCrop(3, padding=1, fill=-1.0)(x))[:, 0]
    counts = {key: int(np.all(y == window, axis=(1, 2)).sum()) for key, window in WINDOWS.items()}
    assert sum(counts.values()) == n
    expected = n / 9  # each count ~ Binomial(n, 1/9): sd ≈ 30
    assert all(abs(c - expected) < 5 * np.sqrt(n * (1 / 9) * (8 / 9)) for c in counts.values()), counts


# ---------------------------------------------------------------- determinism


def augment():
    return Compose([RandomCrop(24, padding=4), RandomHorizontalFlip()])


def test_same_seed_same_output_different_seed_different_output(backend_name):
    x = batch(np.random.default_rng(0).random((32, 1, 28, 28)))

    def run(seed):
        with random.use(random.generator(seed)):
            return host(augment()(x))

    assert np.array_equal(run(7), run(7))
    assert not np.array_equal(run(7), run(8))


def test_random_transforms_draw_only_from_the_current_generator(backend_name):
    """Inside random.use(gen) the shared generator (initializers, Dropout) is not touched."""
    x = batch(np.random.default_rng(0).random((16, 3, 28, 28)))
    random.manual_seed(4)
    with random.use(random.generator(1)):
        augment()(x)
    after = host(random.uniform((5,)))
    random.manual_seed(4)
    assert np.array_equal(after, host(random.uniform((5,))))


def test_a_loader_thread_with_its_own_generator_is_reproducible(backend_name):
    """As a DataLoader runs them: on a background thread inside random.use(gen), while the
    main thread keeps drawing from the shared generator (Dropout)."""
    x = batch(np.random.default_rng(0).random((32, 1, 28, 28)))
    with random.use(random.generator(6)):
        expected = [host(augment()(x)) for _ in range(3)]
    got = []

    def load():
        with random.use(random.generator(6)):
            got.extend(host(augment()(x)) for _ in range(3))

    thread = threading.Thread(target=load)
    thread.start()
    while thread.is_alive():
        random.uniform((1000,))
    thread.join()
    assert all(np.array_equal(a, b) for a, b in zip(expected, got, strict=True))


def test_successive_calls_continue_the_generator(backend_name):
    x = batch(np.random.default_rng(0).random((32, 1, 28, 28)))
    with random.use(random.generator(3)):
        first, second = host(augment()(x)), host(augment()(x))
    assert not np.array_equal(first, second)


# ---------------------------------------------------------------- Normalize


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_normalize_per_channel_values(backend_name, dtype):
    x = np.random.default_rng(0).random((2, 3, 4, 5))
    mean, std = (0.1, 0.2, 0.3), (1.0, 2.0, 4.0)
    y = host(Normalize(mean, std)(batch(x, dtype)))
    expected = (x - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
    assert np.allclose(y, expected, rtol=1e-6, atol=1e-6)
    assert np.allclose(y[:, 2], (x[:, 2] - 0.3) / 4.0, rtol=1e-6, atol=1e-6)


def test_normalize_hand_made_values(backend_name):
    x = np.array([[[[1.0, 3.0]], [[10.0, 30.0]]]])  # (1, 2, 1, 2)
    assert host(Normalize((1.0, 10.0), (2.0, 10.0))(batch(x))).tolist() == [[[[0.0, 1.0]],
                                                                             [[0.0, 2.0]]]]
    assert host(Normalize(1.0, 2.0)(batch(x))).tolist() == [[[[0.0, 1.0]], [[4.5, 14.5]]]]


@pytest.mark.parametrize("mean, std", [(0.5, 0.25), ([0.5], [0.25]), (0.5, (0.25,)),
                                       (np.array([0.5]), np.float32(0.25))])
def test_normalize_scalars_and_length_one_sequences_apply_to_every_value(backend_name, mean, std):
    x = np.random.default_rng(0).random((3, 4, 5))  # (N, H, W): no channel axis needed
    assert np.allclose(host(Normalize(mean, std)(batch(x))), (x - 0.5) / 0.25, atol=1e-5)


def test_normalize_mixes_a_number_and_per_channel_values(backend_name):
    x = np.random.default_rng(0).random((2, 2, 3, 3))
    y = host(Normalize(0.5, [1.0, 2.0])(batch(x, "float64")))
    assert np.allclose(y, (x - 0.5) / np.array([1.0, 2.0])[:, None, None])


# ---------------------------------------------------------------- Compose and Transform


def test_compose_applies_in_the_order_given(backend_name):
    x = np.full((1, 1, 2, 2), 9.0)
    first = host(Compose([Normalize(1.0, 2.0), Normalize(3.0, 4.0)])(batch(x)))
    second = host(Compose([Normalize(3.0, 4.0), Normalize(1.0, 2.0)])(batch(x)))
    assert np.all(first == ((9 - 1) / 2 - 3) / 4) and np.all(second == ((9 - 3) / 4 - 1) / 2)

    calls = []

    def tag(name):
        def f(b):
            calls.append(name)
            return b
        return f

    Compose([tag("a"), RandomHorizontalFlip(), tag("b"), tag("c")])(batch(x))
    assert calls == ["a", "b", "c"]
    assert np.array_equal(host(Compose([])(batch(x))), x)


def test_a_user_transform_composes_and_the_base_is_abstract(backend_name):
    class Scale(Transform):
        def __init__(self, factor: float) -> None:
            self.factor = factor

        def __call__(self, x):
            return x * self.factor

    x = np.ones((2, 1, 2, 2))
    assert np.all(host(Compose([Scale(3.0), Normalize(1.0, 2.0)])(batch(x))) == 1.0)
    assert repr(Scale(3.0)) == "Scale(factor=3.0)"
    with pytest.raises(TypeError):
        Transform()


def test_reprs_show_the_arguments():
    assert repr(Normalize((0.5, 0.4), 0.2)) == "Normalize(mean=(0.5, 0.4), std=0.2)"
    assert repr(Normalize([1, 2], np.array([3.0]))) == "Normalize(mean=(1.0, 2.0), std=(3.0,))"
    assert repr(RandomHorizontalFlip(0.3)) == "RandomHorizontalFlip(p=0.3)"
    assert repr(RandomCrop(28, padding=4)) == "RandomCrop(size=(28, 28), padding=4, fill=0.0)"
    assert repr(Compose([RandomCrop((2, 3)), RandomHorizontalFlip()])) == (
        "Compose([\n    RandomCrop(size=(2, 3), padding=0, fill=0.0),\n"
        "    RandomHorizontalFlip(p=0.5),\n])")
    assert repr(Compose([])) == "Compose([])"


# ---------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(("make", "error", "words"), [
    (lambda: Normalize(0.5, 0.0), ValueError, ["Normalize", "std", "> 0", "0.0"]),
    (lambda: Normalize(0.5, [1.0, -2.0]), ValueError, ["Normalize", "std", "> 0", "-2.0"]),
    (lambda: Normalize([0.1, 0.2], [1.0, 1.0, 1.0]), ValueError,
     ["Normalize", "mean has 2 values", "std has 3"]),
    (lambda: Normalize([], 1.0), ValueError, ["Normalize", "mean", "empty"]),
    (lambda: Normalize("0.5", 1.0), TypeError, ["Normalize", "mean", "number", "'0.5'"]),
    (lambda: Normalize(0.5, None), TypeError, ["Normalize", "std", "None"]),
    (lambda: Normalize([0.5, "a"], 1.0), TypeError, ["Normalize", "mean[1]", "'a'"]),
    (lambda: Normalize(float("nan"), 1.0), ValueError, ["Normalize", "mean", "finite", "nan"]),
    (lambda: Normalize(0.0, True), TypeError, ["Normalize", "std", "True"]),
    (lambda: RandomHorizontalFlip(1.5), ValueError, ["RandomHorizontalFlip", "p", "[0, 1]", "1.5"]),
    (lambda: RandomHorizontalFlip(-0.1), ValueError, ["RandomHorizontalFlip", "[0, 1]", "-0.1"]),
    (lambda: RandomHorizontalFlip("half"), TypeError, ["RandomHorizontalFlip", "p", "'half'"]),
    (lambda: RandomCrop(0), ValueError, ["RandomCrop", "size", ">= 1", "0"]),
    (lambda: RandomCrop(2.5), TypeError, ["RandomCrop", "size", "integer", "2.5"]),
    (lambda: RandomCrop((2, 3, 4)), ValueError, ["RandomCrop", "size", "pair", "(2, 3, 4)"]),
    (lambda: RandomCrop((2, -3)), ValueError, ["RandomCrop", "size[1]", ">= 1", "-3"]),
    (lambda: RandomCrop(3, padding=-1), ValueError, ["RandomCrop", "padding", ">= 0", "-1"]),
    (lambda: RandomCrop(3, padding=1.0), TypeError, ["RandomCrop", "padding", "integer"]),
    (lambda: RandomCrop(3, fill="black"), TypeError, ["RandomCrop", "fill", "'black'"]),
    (lambda: Compose(RandomCrop(3)), TypeError, ["Compose", "list of transforms", "RandomCrop"]),
    (lambda: Compose([RandomCrop(3), 5]), TypeError, ["Compose", "transforms[1]", "callable", "5"]),
])
def test_bad_arguments_are_clear_errors(make, error, words):
    with pytest.raises(error) as info:
        make()
    for word in words:
        assert word in str(info.value), (word, str(info.value))


# ---------------------------------------------------------------- bad batches

TRANSFORMS = [Normalize(0.5, 0.5), RandomHorizontalFlip(), RandomCrop(2)]


def test_compose_leaves_the_checks_to_its_transforms_so_a_first_one_may_convert(backend_name):
    """Compose checks nothing itself: each member checks what it reads, so
    Compose([Rescale(1/255), RandomCrop(...)]) takes the uint8 images a memmap holds."""
    images = np.arange(2 * 1 * 3 * 3, dtype=np.uint8).reshape(2, 1, 3, 3)
    out = Compose([Rescale(1 / 255), RandomHorizontalFlip(1.0)])(backend.asarray(images))
    assert out.dtype == backend.default_dtype()
    np.testing.assert_allclose(backend.to_numpy(out), images[..., ::-1] / 255, rtol=1e-6)
    with pytest.raises(ShapeError, match="RandomCrop: expected a floating batch"):
        Compose([RandomCrop(2)])(backend.asarray(images))
    assert Compose([])(backend.asarray(images)) is not None


def test_rescale_maps_integers_and_floats(backend_name):
    pixels = backend.asarray(np.array([[[0, 51, 255]]], dtype=np.uint8))
    out = Rescale(1 / 255)(pixels)
    assert out.dtype == backend.default_dtype()
    np.testing.assert_allclose(backend.to_numpy(out), [[[0.0, 0.2, 1.0]]], rtol=1e-6)
    floats = backend.asarray(np.array([[[1.0, 2.0]]], dtype=np.float64))
    shifted = Rescale(2.0, offset=-1.0)(floats)
    assert shifted.dtype == floats.dtype
    np.testing.assert_array_equal(backend.to_numpy(shifted), [[[1.0, 3.0]]])
    with pytest.raises(TypeError, match="Rescale: scale must be a real number"):
        Rescale("1/255")
    with pytest.raises(ValueError, match="Rescale: offset must be finite"):
        Rescale(1.0, offset=float("nan"))
    with pytest.raises(TypeError, match="Rescale: expected a batch as a"):
        Rescale(1.0)([1, 2])


@pytest.mark.parametrize("transform", TRANSFORMS, ids=lambda t: type(t).__name__)
def test_a_batch_that_is_not_a_backend_array_is_a_type_error(backend_name, transform):
    name = type(transform).__name__
    with pytest.raises(TypeError, match=rf"{name}: expected a batch as a {backend_name} array.*list"):
        transform([[[0.0]]])
    if backend_name != "numpy":
        with pytest.raises(TypeError, match=rf"{name}: .*{backend_name} array.*got ndarray"):
            transform(np.zeros((2, 1, 3, 3), dtype=np.float32))


@pytest.mark.parametrize("transform", TRANSFORMS, ids=lambda t: type(t).__name__)
def test_a_batch_of_fewer_than_three_axes_is_a_shape_error(backend_name, transform):
    with pytest.raises(ShapeError, match=rf"{type(transform).__name__}: .*\(N, C, H, W\).*"
                                         r"got shape \(4, 5\)"):
        transform(batch(np.zeros((4, 5))))


@pytest.mark.parametrize("transform", TRANSFORMS, ids=lambda t: type(t).__name__)
def test_an_integer_batch_is_a_shape_error_naming_the_dtype(backend_name, transform):
    with pytest.raises(ShapeError, match=rf"{type(transform).__name__}: expected a floating batch"
                                         r".*got dtype .*uint8"):
        transform(backend.asarray(np.zeros((2, 1, 3, 3), dtype=np.uint8)))


def test_normalize_refuses_a_channel_count_it_has_no_values_for(backend_name):
    norm = Normalize((0.1, 0.2, 0.3), (1.0, 1.0, 1.0))
    with pytest.raises(ShapeError, match=r"Normalize: 3 per-channel values need a batch of shape "
                                         r"\(N, 3, H, W\); got 1 channels \(axis 1 of shape "
                                         r"\(2, 1, 4, 4\)\)"):
        norm(batch(np.zeros((2, 1, 4, 4))))
    with pytest.raises(ShapeError, match=r"Normalize: 3 per-channel.*got shape \(2, 4, 4\), "
                                         "which has no channel axis"):
        norm(batch(np.zeros((2, 4, 4))))


def test_crop_larger_than_the_padded_image_is_a_shape_error(backend_name):
    with pytest.raises(ShapeError, match=r"RandomCrop: crop size \(8, 8\) is larger than the "
                                         r"padded image \(7, 6\) \(input \(5, 4\) \+ "
                                         r"2·padding=1\)"):
        RandomCrop(8, padding=1)(batch(np.zeros((2, 1, 5, 4))))
