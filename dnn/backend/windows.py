"""Sliding windows over images (NCHW) and their adjoint, the scatter-add.

Convolution and pooling see an image through k_h × k_w windows moved by a
stride over a zero- (or −∞-) padded copy. Everything they need is here:

- :func:`pad2d` / :func:`crop2d`: add and remove the border;
- :func:`window_view`: all windows as an (N, C, OH, OW, kh, kw) array — a
  strided *view* on NumPy/CuPy (``as_strided``) and PyTorch (``Tensor.unfold``);
- :func:`window_slices`: the kh·kw strided slices ``x[:, :, i::s, j::s]``
  (each (N, C, OH, OW)) — legal in the Array API, so every backend has it;
- :func:`fold_slices`: the adjoint of :func:`window_slices` — each slice's
  gradient added back at its offset (a loop over the kh·kw offsets with
  strided adds, never over samples or pixels);
- :func:`im2col` / :func:`col2im`: windows as the rows of one matrix, the
  GEMM-ready form convolution uses, and its scatter-add adjoint.

Layout. ``im2col`` returns shape (N·OH·OW, kh·kw·C): rows ordered (n, oh, ow)
and columns ordered (i, j, c) — channels fastest. With that order a
convolution's output ``cols @ W₂ᵀ`` of shape (N·OH·OW, out) is the NHWC memory
of the NCHW result (a free transpose) and its gradient comes back the same
way, so neither GEMM operand needs a copy. On NumPy, CuPy and PyTorch the
padded image and the input gradient are allocated channels-last too (NCHW
views of NHWC memory): copying windows then moves runs of kw·C contiguous
numbers instead of kw. Arrays keep their NCHW meaning; only strides differ.
The portable path (array-api-strict and any other namespace) builds the same
results from basic slices, stacks and concatenations.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dnn import backend

Pair = tuple[int, int]

_FAST = ("numpy", "cupy", "torch")


def out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Number of window positions along one axis: ⌊(size + 2p − k) / s⌋ + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def _channels_last(shape: tuple[int, ...], dtype: Any, like: Any, fill: float | None) -> Any:
    """An (N, C, H, W) array whose memory is NHWC (fast backends); NCHW otherwise."""
    n, c, h, w = shape
    name, mod = backend.name, backend.module
    if name == "torch":
        out = (mod.empty if fill is None else mod.zeros)((n, h, w, c), dtype=dtype, device=like.device)
        if fill:
            out.fill_(fill)
        return out.permute(0, 3, 1, 2)
    if name in ("numpy", "cupy"):
        if fill is None:
            out = mod.empty((n, h, w, c), dtype=dtype)
        elif fill == 0:
            out = mod.zeros((n, h, w, c), dtype=dtype)
        else:
            out = mod.full((n, h, w, c), fill, dtype=dtype)
        return out.transpose(0, 3, 1, 2)
    xp = backend.xp
    if fill is None or fill == 0:
        return xp.zeros(shape, dtype=dtype)
    return xp.full(shape, fill, dtype=dtype)


def empty_like(x: Any, fill: float | None = None) -> Any:
    """An uninitialised (or ``fill``-ed) array shaped like the 4-D ``x``, channels-last in memory."""
    return _channels_last(tuple(x.shape), x.dtype, x, fill)


def pad2d(x: Any, padding: Pair, value: float = 0.0) -> Any:
    """(N, C, H, W) -> (N, C, H + 2·ph, W + 2·pw) with ``value`` in the border."""
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    n, c, h, w = x.shape
    if backend.name in _FAST:
        out = _channels_last((n, c, h + 2 * ph, w + 2 * pw), x.dtype, x, value)
        out[:, :, ph:ph + h, pw:pw + w] = x
        return out
    xp = backend.xp
    if pw:
        side = xp.full((n, c, h, pw), value, dtype=x.dtype)
        x = xp.concat([side, x, side], axis=3)
    if ph:
        top = xp.full((n, c, ph, w + 2 * pw), value, dtype=x.dtype)
        x = xp.concat([top, x, top], axis=2)
    return x


def crop2d(x: Any, padding: Pair) -> Any:
    """The inverse of :func:`pad2d`: drop ``padding`` rows and columns on each side."""
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    h, w = x.shape[2], x.shape[3]
    return x[:, :, ph:h - ph, pw:w - pw]


def _stops(shape: tuple[int, ...], kernel: Pair, stride: Pair) -> tuple[int, int]:
    """Output size (OH, OW) of the windows over an already padded (N, C, H, W) shape."""
    return ((shape[2] - kernel[0]) // stride[0] + 1, (shape[3] - kernel[1]) // stride[1] + 1)


def window_view(x: Any, kernel: Pair, stride: Pair) -> Any:
    """All kh × kw windows of an (already padded) (N, C, H, W) array: (N, C, OH, OW, kh, kw).

    A strided view (no copy) on NumPy, CuPy and PyTorch; a stacked copy elsewhere.
    """
    kh, kw = kernel
    sh, sw = stride
    n, c = x.shape[0], x.shape[1]
    oh, ow = _stops(tuple(x.shape), kernel, stride)
    name, mod = backend.name, backend.module
    if name == "torch":
        return x.unfold(2, kh, sh).unfold(3, kw, sw)
    if name in ("numpy", "cupy"):
        s0, s1, s2, s3 = x.strides
        return mod.lib.stride_tricks.as_strided(
            x, shape=(n, c, oh, ow, kh, kw), strides=(s0, s1, s2 * sh, s3 * sw, s2, s3)
        )
    xp = backend.xp
    pieces = window_slices(x, kernel, stride)
    return xp.reshape(xp.stack(pieces, axis=4), (n, c, oh, ow, kh, kw))


def window_slices(x: Any, kernel: Pair, stride: Pair) -> list[Any]:
    """The kh·kw strided slices of an (already padded) (N, C, H, W) array, in (i, j) order.

    Slice (i, j) is ``x[:, :, i : i + sh·(OH−1) + 1 : sh, j : … : sw]``, shape (N, C, OH, OW):
    element (n, c, p, q) of it is entry (i, j) of the window at output pixel (p, q).
    """
    kh, kw = kernel
    sh, sw = stride
    oh, ow = _stops(tuple(x.shape), kernel, stride)
    return [
        x[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
        for i in range(kh)
        for j in range(kw)
    ]


def fold_slices(pieces: Iterable[Any], padded_shape: tuple[int, ...], kernel: Pair, stride: Pair,
                like: Any) -> Any:
    """Adjoint of :func:`window_slices`: Σ over (i, j) of piece (i, j) added at its offset.

    ``pieces`` (any iterable, e.g. a generator, so only one piece need exist at a
    time) yields kh·kw arrays of shape (N, C, OH, OW) in (i, j) order. Returns an
    array of ``padded_shape`` (N, C, H, W) with the dtype (and device) of ``like``;
    crop it with :func:`crop2d`. Where windows do not overlap (stride ≥ kernel)
    every element is written at most once, so pieces are assigned, not added,
    and when they also tile the image exactly nothing is zero-filled first.
    """
    kh, kw = kernel
    sh, sw = stride
    n, c, h, w = padded_shape
    oh, ow = _stops(tuple(padded_shape), kernel, stride)
    overlap = sh < kh or sw < kw
    covered = not overlap and sh == kh and sw == kw and oh * sh == h and ow * sw == w
    fast = backend.name in _FAST
    if fast:
        out = _channels_last((n, c, h, w), like.dtype, like, None if covered else 0.0)
    else:
        out = backend.xp.zeros((n, c, h, w), dtype=like.dtype)
    offsets = [(i, j) for i in range(kh) for j in range(kw)]
    for (i, j), piece in zip(offsets, pieces, strict=True):
        key = (slice(None), slice(None), slice(i, i + sh * (oh - 1) + 1, sh),
               slice(j, j + sw * (ow - 1) + 1, sw))
        if not overlap:
            out[key] = piece
        elif fast:
            view = out[key]
            view += piece  # in place through the strided view
        else:
            out[key] = out[key] + piece
    return out


def masked(mask: Any, x: Any) -> Any:
    """``x`` where ``mask`` is true, else 0, in ``x``'s dtype (``xp.where(mask, x, 0)``).

    NumPy, CuPy and PyTorch multiply by the boolean mask instead: ``where`` branches
    per element and, on the random masks of ReLU and max pooling, runs several
    times slower than the branch-free product.
    """
    if backend.name in _FAST:
        return x * mask
    xp = backend.xp
    return xp.where(mask, x, xp.zeros((), dtype=x.dtype))


def im2col(x: Any, kernel: Pair, stride: Pair, padding: Pair, out: Any = None) -> Any:
    """Windows of an (N, C, H, W) image as the rows of one matrix: (N·OH·OW, kh·kw·C).

    Row (n, p, q) holds the window under output pixel (p, q) of sample n, its
    columns ordered (i, j, c). ``im2col(x) @ W₂ᵀ``, with ``W₂`` the (out, C, kh, kw)
    kernel permuted to (out, kh, kw, C) and flattened, is the convolution.

    ``out``: a previous result to overwrite when it has the right shape, dtype and
    device (NumPy, CuPy, PyTorch). Reusing it saves the page faults of a fresh
    multi-megabyte array on every call; otherwise a new array is returned (always
    a new array, never a view of ``x``, so it is safe to overwrite later).
    """
    n, c = x.shape[0], x.shape[1]
    kh, kw = kernel
    xpad = pad2d(x, padding)
    oh, ow = _stops(tuple(xpad.shape), kernel, stride)
    xp = backend.xp
    if backend.name in _FAST:
        if backend.name == "numpy" and c > 1 and padding == (0, 0) and x.strides[1] != x.itemsize:
            xpad = empty_like(x)  # a channels-last copy makes the gather below contiguous
            xpad[...] = x
        windows = window_view(xpad, kernel, stride)  # (N, C, OH, OW, kh, kw), a view
        shape = (n * oh * ow, kh * kw * c)
        if (out is None or tuple(out.shape) != shape or out.dtype != x.dtype
                or out.device != x.device):
            out = xp.empty(shape, dtype=x.dtype, device=x.device)  # owned, never a view of x
        # the one gather: a view of a contiguous array, written in place
        xp.reshape(out, (n, oh, ow, kh, kw, c))[...] = xp.permute_dims(windows, (0, 2, 3, 4, 5, 1))
        return out
    pieces = [xp.permute_dims(p, (0, 2, 3, 1)) for p in window_slices(xpad, kernel, stride)]
    return xp.reshape(xp.stack(pieces, axis=3), (n * oh * ow, kh * kw * c))


def _padded_geometry(input_shape: tuple[int, ...], kernel: Pair, stride: Pair,
                     padding: Pair) -> tuple[tuple[int, int, int, int], int, int]:
    """The padded input shape and the output height and width of a window pass."""
    n, c, h, w = input_shape
    padded = (n, c, h + 2 * padding[0], w + 2 * padding[1])
    return padded, *_stops(padded, kernel, stride)


def col2im_matmul(grad: Any, w2: Any, input_shape: tuple[int, ...], kernel: Pair, stride: Pair,
                  padding: Pair) -> Any:
    """``col2im(grad @ w2, ...)`` without the (N·OH·OW, kh·kw·C) intermediate.

    ``grad`` is (N·OH·OW, out) and ``w2`` (out, kh·kw·C) with columns ordered (i, j, c):
    for each kernel offset (i, j) one GEMM ``grad @ w2[:, block (i, j)]`` gives that
    offset's (N·OH·OW, C) contribution, added straight into the channels-last input
    gradient (contiguous runs of OW·C numbers on both sides of the add). Same
    FLOPs as the single GEMM, a kh·kw-times smaller temporary, and no gather pass.
    """
    n, c, _, _ = input_shape
    padded, oh, ow = _padded_geometry(input_shape, kernel, stride, padding)
    xp = backend.xp
    buf = xp.empty((n * oh * ow, c), dtype=grad.dtype)  # reused: each piece is folded in before the next

    def pieces() -> Iterable[Any]:
        for t in range(kernel[0] * kernel[1]):
            piece = backend.library.matmul_into(grad, w2[:, t * c:(t + 1) * c], out=buf)
            yield xp.permute_dims(xp.reshape(piece, (n, oh, ow, c)), (0, 3, 1, 2))

    return crop2d(fold_slices(pieces(), padded, kernel, stride, like=grad), padding)


def col2im(cols: Any, input_shape: tuple[int, ...], kernel: Pair, stride: Pair, padding: Pair) -> Any:
    """Adjoint of :func:`im2col`: the (N, C, H, W) gradient from (N·OH·OW, kh·kw·C) rows.

    Every window entry is added back to the pixel it was read from (a loop of
    kh·kw strided adds); the padding border is dropped.
    """
    n, c, _, _ = input_shape
    kh, kw = kernel
    padded, oh, ow = _padded_geometry(input_shape, kernel, stride, padding)
    xp = backend.xp
    cols5 = xp.reshape(cols, (n, oh, ow, kh * kw, c))
    pieces = (xp.permute_dims(cols5[:, :, :, t, :], (0, 3, 1, 2)) for t in range(kh * kw))
    return crop2d(fold_slices(pieces, padded, kernel, stride, like=cols), padding)
