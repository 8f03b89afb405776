"""Sliding windows over images (NCHW) and their adjoint, the scatter-add.

Convolution and pooling see an image through k_h × k_w windows moved by a
stride over a zero- (or −∞-) padded copy. Everything they need is here:

- :func:`pad2d` / :func:`crop2d`: add and remove the border;
- :func:`window_view`: all windows as an (N, C, OH, OW, kh, kw) array — a
  strided *view* on NumPy/CuPy (``as_strided``) and PyTorch (``Tensor.unfold``);
- :func:`window_slices`: the kh·kw strided slices ``x[:, :, d·i::s, d·j::s]``
  (each (N, C, OH, OW)) — legal in the Array API, so every backend has it;
- :func:`fold_slices`: the adjoint of :func:`window_slices` — each slice's
  gradient added back at its offset (a loop over the kh·kw offsets with
  strided adds, never over samples or pixels);
- :func:`im2col` / :func:`col2im`: windows as the rows of one matrix, the
  GEMM-ready form convolution uses, and its scatter-add adjoint (per group of
  channels for a grouped convolution);
- :func:`depthwise`, :func:`depthwise_weight_grad`, :func:`depthwise_input_grad`:
  the depthwise convolution (one kernel per channel) and its two gradients as
  sums over the kh·kw taps, no im2col matrix at all.

Geometry. A window of kernel k and dilation d spans d·(k − 1) + 1 pixels and
reads every d-th of them (entry i at offset d·i); stride s moves it. Padding is
(ph, pw) on both sides of each axis, or (top, bottom, left, right) when the two
sides differ ("same" padding of an even kernel); :func:`sides` turns either into
the four numbers. Output size: ⌊(size + before + after − d·(k − 1) − 1) / s⌋ + 1.

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
#: padding: (ph, pw) on both sides of each axis, or (top, bottom, left, right)
Pads = tuple[int, ...]

_ONE = (1, 1)

#: the fewest channels for which the compiled im2col / col2im (:mod:`dnn.backend.numba_windows`)
#: beat NumPy's strided copies and adds, measured on 64×C×28×28, 3×3 windows: im2col 0.68
#: against 0.96 ms at 32 channels (14×14), but 1.00 against 0.77 ms at 1 and 1.22 against
#: 1.00 ms at 8; col2im 1.4 against 5.7 ms at 3 channels, 1.09 against 0.52 ms at 1
COMPILED_IM2COL_CHANNELS, COMPILED_COL2IM_CHANNELS = 16, 2


def out_size(size: int, kernel: int, stride: int, padding: int | Pair, dilation: int = 1) -> int:
    """Number of window positions along one axis: ⌊(size + p₀ + p₁ − d·(k − 1) − 1) / s⌋ + 1,
    ``padding`` = p on both sides or the pair (p₀, p₁) (before, after)."""
    before, after = (padding, padding) if isinstance(padding, int) else padding
    return (size + before + after - dilation * (kernel - 1) - 1) // stride + 1


def sides(padding: Pads) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) from (ph, pw) or from the four numbers themselves."""
    if len(padding) == 2:
        ph, pw = padding
        return ph, ph, pw, pw
    top, bottom, left, right = padding
    return top, bottom, left, right


def empty_like(x: Any, fill: float | None = None) -> Any:
    """An uninitialised (or ``fill``-ed) array shaped like the 4-D ``x``, channels-last in memory."""
    return backend.library.channels_last(tuple(x.shape), x.dtype, x, fill)


def pad2d(x: Any, padding: Pads, value: float = 0.0) -> Any:
    """(N, C, H, W) -> (N, C, H + top + bottom, W + left + right) with ``value`` in the
    border; ``padding`` is (ph, pw) or (top, bottom, left, right)."""
    top, bottom, left, right = sides(padding)
    if not (top or bottom or left or right):
        return x
    n, c, h, w = x.shape
    if backend.library.strided_writes:
        out = backend.library.channels_last((n, c, h + top + bottom, w + left + right), x.dtype,
                                            x, value)
        out[:, :, top:top + h, left:left + w] = x
        return out
    xp = backend.xp
    if left or right:  # a zero-width side is an empty array: concat takes it
        x = xp.concat([xp.full((n, c, h, left), value, dtype=x.dtype), x,
                       xp.full((n, c, h, right), value, dtype=x.dtype)], axis=3)
    if top or bottom:
        width = x.shape[3]
        x = xp.concat([xp.full((n, c, top, width), value, dtype=x.dtype), x,
                       xp.full((n, c, bottom, width), value, dtype=x.dtype)], axis=2)
    return x


def crop2d(x: Any, padding: Pads) -> Any:
    """The inverse of :func:`pad2d`: drop the ``padding`` rows and columns of each side."""
    top, bottom, left, right = sides(padding)
    if not (top or bottom or left or right):
        return x
    h, w = x.shape[2], x.shape[3]
    return x[:, :, top:h - bottom, left:w - right]


def _stops(shape: tuple[int, ...], kernel: Pair, stride: Pair,
           dilation: Pair = _ONE) -> tuple[int, int]:
    """Output size (OH, OW) of the windows over an already padded (N, C, H, W) shape."""
    return ((shape[2] - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1,
            (shape[3] - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1)


def window_view(x: Any, kernel: Pair, stride: Pair, dilation: Pair = _ONE) -> Any:
    """All kh × kw windows of an (already padded) (N, C, H, W) array: (N, C, OH, OW, kh, kw);
    entry (i, j) of the window at (p, q) is x[:, :, s·p + d·i, s·q + d·j].

    A strided view (no copy) where the library makes one (NumPy, CuPy: ``as_strided``;
    PyTorch: ``Tensor.unfold``); a stacked copy elsewhere.
    """
    kh, kw = kernel
    n, c = x.shape[0], x.shape[1]
    oh, ow = _stops(tuple(x.shape), kernel, stride, dilation)
    view = backend.library.window_view(x, (n, c, oh, ow), kernel, stride, dilation)
    if view is not None:
        return view
    xp = backend.xp
    pieces = window_slices(x, kernel, stride, dilation)
    return xp.reshape(xp.stack(pieces, axis=4), (n, c, oh, ow, kh, kw))


def window_slices(x: Any, kernel: Pair, stride: Pair, dilation: Pair = _ONE) -> list[Any]:
    """The kh·kw strided slices of an (already padded) (N, C, H, W) array, in (i, j) order.

    Slice (i, j) is ``x[:, :, d·i : d·i + sh·(OH−1) + 1 : sh, d·j : … : sw]``, shape
    (N, C, OH, OW): element (n, c, p, q) of it is entry (i, j) of the window at output
    pixel (p, q).
    """
    kh, kw = kernel
    sh, sw = stride
    dh, dw = dilation
    oh, ow = _stops(tuple(x.shape), kernel, stride, dilation)
    return [
        x[:, :, dh * i:dh * i + sh * (oh - 1) + 1:sh, dw * j:dw * j + sw * (ow - 1) + 1:sw]
        for i in range(kh)
        for j in range(kw)
    ]


def fold_slices(pieces: Iterable[Any], padded_shape: tuple[int, ...], kernel: Pair, stride: Pair,
                like: Any, dilation: Pair = _ONE) -> Any:
    """Adjoint of :func:`window_slices`: Σ over (i, j) of piece (i, j) added at its offset.

    ``pieces`` (any iterable, e.g. a generator, so only one piece need exist at a
    time) yields kh·kw arrays of shape (N, C, OH, OW) in (i, j) order. Returns an
    array of ``padded_shape`` (N, C, H, W) with the dtype (and device) of ``like``;
    crop it with :func:`crop2d`. Where windows do not overlap (stride ≥ the span
    d·(k − 1) + 1 of a window) every element is written at most once, so pieces are
    assigned, not added, and when they also tile the image exactly nothing is
    zero-filled first.
    """
    kh, kw = kernel
    sh, sw = stride
    dh, dw = dilation
    n, c, h, w = padded_shape
    oh, ow = _stops(tuple(padded_shape), kernel, stride, dilation)
    span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    overlap = sh < span_h or sw < span_w
    covered = (not overlap and sh == kh == span_h and sw == kw == span_w
               and oh * sh == h and ow * sw == w)
    fast = backend.library.strided_writes
    if fast:
        out = backend.library.channels_last((n, c, h, w), like.dtype, like,
                                            None if covered else 0.0)
    else:
        out = backend.xp.zeros((n, c, h, w), dtype=like.dtype)
    offsets = [(dh * i, dw * j) for i in range(kh) for j in range(kw)]
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
    """``x`` where ``mask`` is true, else 0, in ``x``'s dtype (``xp.where(mask, x, 0)``,
    or the branch-free ``x * mask`` where the library multiplies by booleans faster:
    :meth:`~dnn.backend.library.ArrayLibrary.masked`)."""
    return backend.library.masked(mask, x)


def im2col_shape(x_shape: tuple[int, ...], kernel: Pair, stride: Pair, padding: Pads, *,
                 dilation: Pair = _ONE, groups: int = 1) -> tuple[int, ...]:
    """The shape :func:`im2col` returns for an input of shape ``x_shape``."""
    n, c = x_shape[0], x_shape[1]
    _, oh, ow = _padded_geometry(tuple(x_shape), kernel, stride, padding, dilation)
    taps = kernel[0] * kernel[1]
    return (n * oh * ow, taps * c) if groups == 1 else (groups, n * oh * ow, taps * c // groups)


def im2col(x: Any, kernel: Pair, stride: Pair, padding: Pads, out: Any = None, *,
           dilation: Pair = _ONE, groups: int = 1) -> Any:
    """Windows of an (N, C, H, W) image as the rows of one matrix: (N·OH·OW, kh·kw·C).

    Row (n, p, q) holds the window under output pixel (p, q) of sample n, its
    columns ordered (i, j, c). ``im2col(x) @ W₂ᵀ``, with ``W₂`` the (out, C, kh, kw)
    kernel permuted to (out, kh, kw, C) and flattened, is the convolution.

    ``groups`` > 1 (a grouped convolution): the channels form ``groups`` consecutive
    blocks of C/groups and the result is (groups, N·OH·OW, kh·kw·C/groups), block g
    the windows of its own channels (columns (i, j, c'), c = g·C/groups + c'): one
    batched GEMM with the (groups, out/groups, kh·kw·C/groups) kernel convolves them all.

    ``out``: a previous result to overwrite when it has the right shape, dtype and
    device (NumPy, CuPy, PyTorch). Reusing it saves the page faults of a fresh
    multi-megabyte array on every call; otherwise a new array is returned (always
    a new array, never a view of ``x``, so it is safe to overwrite later).
    """
    fused = backend.library.fused("im2col", x.dtype) \
        if groups == 1 and x.shape[1] >= COMPILED_IM2COL_CHANNELS else None
    if fused is not None:  # one compiled pass, no padded copy
        _, oh, ow = _padded_geometry(tuple(x.shape), kernel, stride, padding, dilation)
        return fused(x, kernel, stride, sides(padding), (oh, ow), dilation, out)
    n, c = x.shape[0], x.shape[1]
    kh, kw = kernel
    cg = c // groups
    xpad = pad2d(x, padding)
    oh, ow = _stops(tuple(xpad.shape), kernel, stride, dilation)
    shape = im2col_shape(tuple(x.shape), kernel, stride, padding, dilation=dilation, groups=groups)
    xp = backend.xp
    if backend.library.strided_writes:
        if xpad is x:  # NumPy: a channels-last copy makes the gather below contiguous
            xpad = backend.library.channels_last_copy(x)
        windows = window_view(xpad, kernel, stride, dilation)  # (N, C, OH, OW, kh, kw), a view
        if (out is None or tuple(out.shape) != shape or out.dtype != x.dtype
                or out.device != x.device):
            out = xp.empty(shape, dtype=x.dtype, device=x.device)  # owned, never a view of x
        # the one gather: a view of a contiguous array, written in place
        if groups == 1:
            xp.reshape(out, (n, oh, ow, kh, kw, c))[...] = xp.permute_dims(windows, (0, 2, 3, 4, 5, 1))
        else:
            blocks = xp.reshape(windows, (n, groups, cg, oh, ow, kh, kw))
            xp.reshape(out, (groups, n, oh, ow, kh, kw, cg))[...] = xp.permute_dims(
                blocks, (1, 0, 3, 4, 5, 6, 2))
        return out
    pieces = [xp.permute_dims(p, (0, 2, 3, 1)) for p in window_slices(xpad, kernel, stride, dilation)]
    cols = xp.stack(pieces, axis=3)  # (N, OH, OW, kh·kw, C)
    if groups == 1:
        return xp.reshape(cols, shape)
    cols = xp.reshape(cols, (n, oh, ow, kh * kw, groups, cg))
    return xp.reshape(xp.permute_dims(cols, (4, 0, 1, 2, 3, 5)), shape)


def _padded_geometry(input_shape: tuple[int, ...], kernel: Pair, stride: Pair, padding: Pads,
                     dilation: Pair = _ONE) -> tuple[tuple[int, int, int, int], int, int]:
    """The padded input shape and the output height and width of a window pass."""
    n, c, h, w = input_shape
    top, bottom, left, right = sides(padding)
    padded = (n, c, h + top + bottom, w + left + right)
    return padded, *_stops(padded, kernel, stride, dilation)


def col2im_matmul(grad: Any, w2: Any, input_shape: tuple[int, ...], kernel: Pair, stride: Pair,
                  padding: Pads, *, dilation: Pair = _ONE, groups: int = 1) -> Any:
    """``col2im(grad @ w2, ...)`` without the (N·OH·OW, kh·kw·C) intermediate.

    ``grad`` is (N·OH·OW, out) and ``w2`` (out, kh·kw·C) with columns ordered (i, j, c):
    for each kernel offset (i, j) one GEMM ``grad @ w2[:, block (i, j)]`` gives that
    offset's (N·OH·OW, C) contribution, added straight into the channels-last input
    gradient (contiguous runs of OW·C numbers on both sides of the add). Same
    FLOPs as the single GEMM, a kh·kw-times smaller temporary, and no gather pass.

    ``groups`` > 1: ``w2`` is (groups, out/groups, kh·kw·C/groups) and each offset's
    contribution is one batched GEMM, group g's (N·OH·OW, C/groups) block landing in
    channels g·C/groups … of the (N·OH·OW, C) piece (on NumPy written there directly).
    """
    n, c, _, _ = input_shape
    cg = c // groups
    padded, oh, ow = _padded_geometry(input_shape, kernel, stride, padding, dilation)
    rows = n * oh * ow
    xp = backend.xp
    # reused: each piece is folded in before the next
    buf = xp.empty((rows, c), dtype=grad.dtype, device=grad.device)
    if groups > 1:
        grad3 = xp.permute_dims(xp.reshape(grad, (rows, groups, -1)), (1, 0, 2))  # (groups, rows, out/g)
        # where matmul writes through a strided view (NumPy): group g's block of buf
        buf3 = xp.permute_dims(xp.reshape(buf, (rows, groups, cg)), (1, 0, 2)) \
            if backend.library.matmul_into_strided else None

    def piece(t: int) -> Any:
        if groups == 1:
            return backend.library.matmul_into(grad, w2[:, t * c:(t + 1) * c], out=buf)
        block = w2[:, :, t * cg:(t + 1) * cg]  # (groups, out/groups, C/groups)
        if buf3 is not None:
            backend.library.matmul_into(grad3, block, out=buf3)
            return buf
        return xp.reshape(xp.permute_dims(grad3 @ block, (1, 0, 2)), (rows, c))

    pieces = (xp.permute_dims(xp.reshape(piece(t), (n, oh, ow, c)), (0, 3, 1, 2))
              for t in range(kernel[0] * kernel[1]))
    return crop2d(fold_slices(pieces, padded, kernel, stride, like=grad, dilation=dilation),
                  padding)


def col2im(cols: Any, input_shape: tuple[int, ...], kernel: Pair, stride: Pair, padding: Pads, *,
           dilation: Pair = _ONE, groups: int = 1) -> Any:
    """Adjoint of :func:`im2col`: the (N, C, H, W) gradient from (N·OH·OW, kh·kw·C) rows
    (from (groups, N·OH·OW, kh·kw·C/groups) blocks when ``groups`` > 1).

    Every window entry is added back to the pixel it was read from (a loop of
    kh·kw strided adds); the padding border is dropped.
    """
    n, c, _, _ = input_shape
    taps = kernel[0] * kernel[1]
    padded, oh, ow = _padded_geometry(input_shape, kernel, stride, padding, dilation)
    fused = backend.library.fused("col2im", cols.dtype) \
        if groups == 1 and c >= COMPILED_COL2IM_CHANNELS else None
    if fused is not None:  # one compiled pass, the same sums in the same order
        return fused(cols, input_shape, kernel, stride, sides(padding), (oh, ow), dilation)
    xp = backend.xp
    if groups > 1:  # (groups, rows, taps, C/groups) -> (rows, taps, C): the groups' columns side by side
        cols = xp.reshape(cols, (groups, n * oh * ow, taps, c // groups))
        cols = xp.reshape(xp.permute_dims(cols, (1, 2, 0, 3)), (n * oh * ow, taps * c))
    cols5 = xp.reshape(cols, (n, oh, ow, taps, c))
    pieces = (xp.permute_dims(cols5[:, :, :, t, :], (0, 3, 1, 2)) for t in range(taps))
    return crop2d(fold_slices(pieces, padded, kernel, stride, like=cols, dilation=dilation), padding)


# ---------------------------------------------------------------- depthwise convolution
# One kernel per channel, m outputs per input channel: weight (C, m, kh, kw), output
# channel c·m + k from input channel c. Each is a sum over the kh·kw taps of a strided
# slice times a per-channel weight: no im2col matrix (it would be kh·kw times the input
# for a GEMM of inner size kh·kw). The three entry points ask the library object; the
# portable implementation (``*_by_taps``, below) loops over the taps with elementwise
# array operations (GPU kernels on CuPy and PyTorch); NumPy contracts the taps with one
# einsum over the window view instead (:class:`~dnn.backend.numpy_library.NumpyLibrary`).


def depthwise(xpad: Any, weight: Any, stride: Pair, dilation: Pair = _ONE) -> Any:
    """y[n, c·m + k, p, q] = Σ_(i,j) W[c, k, i, j] · X[n, c, s·p + d·i, s·q + d·j]: the
    depthwise convolution of the already padded (N, C, H, W) ``xpad`` with ``weight``
    (C, m, kh, kw); returns (N, C·m, OH, OW)."""
    return backend.library.depthwise(xpad, weight, stride, dilation)


def depthwise_weight_grad(xpad: Any, grad: Any, kernel: Pair, stride: Pair,
                          dilation: Pair = _ONE) -> Any:
    """dL/dW[c, k, i, j] = Σ_(n,p,q) g[n, c·m + k, p, q] · X[n, c, s·p + d·i, s·q + d·j]:
    the (C, m, kh, kw) weight gradient of :func:`depthwise` from ``grad`` (N, C·m, OH, OW)."""
    return backend.library.depthwise_weight_grad(xpad, grad, kernel, stride, dilation)


def depthwise_input_grad(grad: Any, weight: Any, input_shape: tuple[int, ...], stride: Pair,
                         padding: Pads, dilation: Pair = _ONE) -> Any:
    """dL/dx[n, c, h, w] = Σ_(k,i,j) W[c, k, i, j] · g[n, c·m + k, p, q] over the (p, q, i, j)
    with s·p + d·i = h + top (and likewise for w): the (N, C, H, W) input gradient of
    :func:`depthwise` on an input padded by ``padding``."""
    return backend.library.depthwise_input_grad(grad, weight, input_shape, stride, padding,
                                                dilation)


def depthwise_by_taps(xpad: Any, weight: Any, stride: Pair, dilation: Pair = _ONE) -> Any:
    """:func:`depthwise` as Σ over the taps of slice · per-channel weight (portable)."""
    c, m, kh, kw = weight.shape
    n = xpad.shape[0]
    oh, ow = _stops(tuple(xpad.shape), (kh, kw), stride, dilation)
    xp = backend.xp
    y = None
    for t, piece in enumerate(window_slices(xpad, (kh, kw), stride, dilation)):
        w_t = xp.reshape(weight[:, :, t // kw, t % kw], (1, c, m, 1, 1))
        term = xp.reshape(piece, (n, c, 1, oh, ow)) * w_t  # (N, C, m, OH, OW)
        if y is None:
            y = term
        else:
            y += term
    return xp.reshape(y, (n, c * m, oh, ow))


def depthwise_weight_grad_by_taps(xpad: Any, grad: Any, kernel: Pair, stride: Pair,
                                  dilation: Pair = _ONE) -> Any:
    """:func:`depthwise_weight_grad` as one reduction per tap (portable)."""
    n, c = xpad.shape[0], xpad.shape[1]
    kh, kw = kernel
    m = grad.shape[1] // c
    oh, ow = grad.shape[2], grad.shape[3]
    xp = backend.xp
    g = xp.reshape(grad, (n, c, m, oh, ow))
    sums = [xp.sum(g * xp.reshape(piece, (n, c, 1, oh, ow)), axis=(0, 3, 4))  # (C, m) per tap
            for piece in window_slices(xpad, kernel, stride, dilation)]
    return xp.reshape(xp.stack(sums, axis=2), (c, m, kh, kw))


def depthwise_input_grad_by_taps(grad: Any, weight: Any, input_shape: tuple[int, ...],
                                 stride: Pair, padding: Pads, dilation: Pair = _ONE) -> Any:
    """:func:`depthwise_input_grad` as kh·kw pieces g·W[:, :, i, j] (summed over k) folded
    back at their offsets (:func:`fold_slices`; portable)."""
    c, m, kh, kw = weight.shape
    n = input_shape[0]
    oh, ow = grad.shape[2], grad.shape[3]
    xp = backend.xp
    padded, _, _ = _padded_geometry(input_shape, (kh, kw), stride, padding, dilation)
    g = xp.reshape(grad, (n, c, m, oh, ow))

    def pieces() -> Iterable[Any]:
        for t in range(kh * kw):
            w_t = weight[:, :, t // kw, t % kw]  # (C, m)
            if m == 1:
                yield grad * xp.reshape(w_t, (1, c, 1, 1))
            else:
                yield xp.sum(g * xp.reshape(w_t, (1, c, m, 1, 1)), axis=2)

    return crop2d(fold_slices(pieces(), padded, (kh, kw), stride, like=grad, dilation=dilation),
                  padding)
