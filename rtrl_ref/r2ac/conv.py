"""2-D convolution and max pooling on NCHW images, forward and backward (im2col + GEMM).

Dimensions (the package alphabet, extended for images; H is taken by hidden units):

    N       samples (one leading dim; the stems flatten (T, B) into it)
    C, D    input and output channels
    Y, X    input height and width
    KY, KX  kernel height and width
    OY, OX  output height and width: OY = (Y + 2 P - KY) // S + 1 (floor, as PyTorch)
    S, P    stride and zero padding (the same along both spatial axes)

Convolution (cross-correlation, as in deep-learning libraries), xpad = x zero-padded by P:

    y[n, d, i, j]  = b[d] + sum_{c, u, v} W[d, c, u, v] xpad[n, c, S i + u, S j + v]
    g_W[d, c, u, v] = sum_{n, i, j} g_y[n, d, i, j] xpad[n, c, S i + u, S j + v]
    g_b[d]          = sum_{n, i, j} g_y[n, d, i, j]
    g_xpad[n, c, S i + u, S j + v] += sum_d g_y[n, d, i, j] W[d, c, u, v]   (then crop P)

im2col: the patches xpad[n, :, S i + u, S j + v] are gathered once into a matrix `cols` of shape
(C * KY * KX, N * OY * OX) (a strided window view, copied once), so the forward and both
gradients are single GEMMs; the input gradient scatters back with KY * KX strided adds (col2im).
The cache holds the input, and the patches only where they are small (see conv2d).

Max pooling (padding counts as -inf, so a padded cell never wins; ties go to the first cell of the
window in row-major order, so the gradient reaches exactly one input per window):

    y[n, c, i, j] = max_{u, v} xpad[n, c, S i + u, S j + v]

Two implementations with one cache: the NumPy reference here, and Numba kernels (pool_numba.py,
and im2col_numba.py for col2im), the default (timings: docs/performance.md).

Memory layout: arrays are NCHW in shape, but outputs are (C, N, Y, X) in memory (a transposed
view). In that layout each im2col row and each col2im add is a run of whole image rows, the GEMMs
read and write (D, N * OY * OX) matrices without a copy, and the next layer's transpose is free
(cheaper than patches in (N * OY * OX, KY * KX * C) order from an NHWC buffer). Any layout is accepted as input. float32
and float64; the arithmetic stays in the input dtype.
"""

from __future__ import annotations

from itertools import product
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from rtrl_ref.r2ac.layers import init_weight_bias
from rtrl_ref.validate import check_array, check_float_dtype


class ConvParams(NamedTuple):
    W: np.ndarray  # (D, C, KY, KX)
    b: np.ndarray  # (D,)


class ConvCache(NamedTuple):
    x: np.ndarray             # (N, C, Y, X) the input (a reference, not a copy)
    cols: np.ndarray | None   # (C * KY * KX, N * OY * OX) im2col patches, or None: recomputed
    stride: int
    padding: int


class PoolCache(NamedTuple):
    argmax: np.ndarray  # (C, N, OY, OX) uint8 index u * K + v of the winning cell
    x_shape: tuple      # (N, C, Y, X)
    kernel: int
    stride: int
    padding: int


def out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length along one axis (floor mode)."""
    return (size + 2 * padding - kernel) // stride + 1


def init_conv(rng: np.random.Generator, C: int, D: int, kernel: int, dtype=np.float32,
              scheme: str = "pytorch") -> ConvParams:
    """Conv(C -> D, kernel x kernel) initialised by `scheme` with fan_in = C * k * k: "pytorch"
    (U(+-1/sqrt(fan_in)) for weights and biases, PyTorch's default) or "he" (see init_weight_bias)."""
    if min(C, D, kernel) < 1:
        raise ValueError(f"init_conv: expected C, D, kernel >= 1, got C={C}, D={D}, kernel={kernel}")
    W, b = init_weight_bias(rng, (D, C, kernel, kernel), (D,), C * kernel * kernel, dtype, scheme)
    return ConvParams(W, b)                                           # W (D, C, KY, KX), b (D,)


def _check_geometry(name: str, x, kernel: tuple[int, int], stride: int, padding: int) -> tuple[int, int]:
    if not (isinstance(stride, (int, np.integer)) and stride >= 1):
        raise ValueError(f"stride: expected an int >= 1, got {stride!r}")
    if not (isinstance(padding, (int, np.integer)) and padding >= 0):
        raise ValueError(f"padding: expected an int >= 0, got {padding!r}")
    Y, X = x.shape[2:]
    OY, OX = (out_size(s, k, stride, padding) for s, k in zip((Y, X), kernel))
    if OY < 1 or OX < 1:
        raise ValueError(f"{name}: spatial size (Y, X) = {(Y, X)} with padding {padding} is smaller "
                         f"than the kernel {kernel}")
    return OY, OX


def check_conv(p: ConvParams, x, stride: int, padding: int, name: str = "conv") -> tuple[int, int]:
    """Validate parameters and input; returns (OY, OX)."""
    check_array(f"{name}.W", p.W, (None, None, None, None))
    dtype = check_float_dtype(f"{name}.W", p.W)
    D, C = p.W.shape[:2]
    check_array(f"{name}.b", p.b, (("D", D),), dtype)
    check_array("x", x, (("N", None), ("C", C), ("Y", None), ("X", None)), dtype, finite=False)
    return _check_geometry("x", x, p.W.shape[2:], stride, padding)


def _pad_cnhw(x, padding: int, fill: float):
    """(N, C, Y, X) in any layout -> contiguous (C, N, Y + 2P, X + 2P) padded with `fill`."""
    N, C, Y, X = x.shape
    x_cnhw = x.transpose(1, 0, 2, 3)                                  # (C, N, Y, X) view
    if padding == 0:
        return np.ascontiguousarray(x_cnhw)                           # (C, N, Y, X)
    xpad = np.full((C, N, Y + 2 * padding, X + 2 * padding), fill, x.dtype)  # (C, N, Yp, Xp)
    xpad[:, :, padding:padding + Y, padding:padding + X] = x_cnhw
    return xpad


def _window(a, u: int, v: int, stride: int, OY: int, OX: int):
    """The cells a[..., S i + u, S j + v] of a (C, N, Yp, Xp) array, as a (C, N, OY, OX) view."""
    return a[..., u:u + stride * (OY - 1) + 1:stride, v:v + stride * (OX - 1) + 1:stride]


COL2IM_BACKENDS = ("numba", "numpy")


def im2col(x, KY: int, KX: int, stride: int, padding: int):
    """Patches of x (N, C, Y, X): returns (cols (C * KY * KX, N * OY * OX), OY, OX)."""
    N, C, Y, X = x.shape
    OY, OX = out_size(Y, KY, stride, padding), out_size(X, KX, stride, padding)
    xpad = _pad_cnhw(x, padding, 0)                                   # (C, N, Yp, Xp)
    windows = sliding_window_view(xpad, (KY, KX), axis=(2, 3))       # (C, N, Yp-KY+1, Xp-KX+1, KY, KX) view
    windows = windows[:, :, ::stride, ::stride]                       # (C, N, OY, OX, KY, KX) view
    cols = windows.transpose(0, 4, 5, 1, 2, 3).reshape(C * KY * KX, N * OY * OX)  # (C*KY*KX, N*OY*OX) copy
    return cols, OY, OX


def col2im(g_cols, x_shape: tuple, KY: int, KX: int, stride: int, padding: int,
           backend: str = "numba"):
    """Adjoint of im2col: scatter-add (C * KY * KX, N * OY * OX) patches back to (N, C, Y, X).

    backend "numba" runs `im2col_numba.scatter_add` (the default), "numpy" the reference.
    """
    if backend == "numpy":
        return col2im_numpy(g_cols, x_shape, KY, KX, stride, padding)
    if backend != "numba":
        raise ValueError(f"backend: expected one of {COL2IM_BACKENDS}, got {backend!r}")
    from rtrl_ref.r2ac import im2col_numba

    N, C, Y, X = x_shape
    OY, OX = out_size(Y, KY, stride, padding), out_size(X, KX, stride, padding)
    g_x = np.zeros((C, N, Y, X), g_cols.dtype)                        # (C, N, Y, X)
    im2col_numba.scatter_add(np.ascontiguousarray(g_cols), KY, KX, stride, padding, OY, OX, g_x)
    return g_x.transpose(1, 0, 2, 3)                                  # (N, C, Y, X) view


def col2im_numpy(g_cols, x_shape: tuple, KY: int, KX: int, stride: int, padding: int):
    """The NumPy reference of col2im (KY * KX strided adds into a padded buffer)."""
    N, C, Y, X = x_shape
    OY, OX = out_size(Y, KY, stride, padding), out_size(X, KX, stride, padding)
    g_patches = g_cols.reshape(C, KY, KX, N, OY, OX)                 # (C, KY, KX, N, OY, OX) view
    g_xpad = np.zeros((C, N, Y + 2 * padding, X + 2 * padding), g_cols.dtype)  # (C, N, Yp, Xp)
    for u, v in product(range(KY), range(KX)):
        _window(g_xpad, u, v, stride, OY, OX)[...] += g_patches[:, u, v]
    g_x_cnhw = g_xpad[:, :, padding:padding + Y, padding:padding + X]  # (C, N, Y, X) view
    return g_x_cnhw.transpose(1, 0, 2, 3)                            # (N, C, Y, X) view


def conv2d(p: ConvParams, x, stride: int = 1, padding: int = 0, validate: bool = True,
           keep_cols: bool | None = None):
    """Convolution of x (N, C, Y, X): returns (y (N, D, OY, OX), cache).

    The cache keeps x by reference (do not modify it in place before the backward) and, if
    keep_cols, the patch matrix too; otherwise the backward gathers the patches again. By default
    (None) the patches are kept when they are at most 4x the size of x (KY * KX <= 4 S^2): 3x3
    stride-1 patches are 9x the input, and recomputing them costs less than holding them for a
    whole unroll (a small share of the stem's time; see docs/performance.md).
    """
    if validate:
        check_conv(p, x, stride, padding)
    D, C, KY, KX = p.W.shape
    N = x.shape[0]
    cols, OY, OX = im2col(x, KY, KX, stride, padding)                # (C*KY*KX, N*OY*OX)
    y_t = p.W.reshape(D, C * KY * KX) @ cols                         # (D, N*OY*OX)
    y_t += p.b[:, None]
    y = y_t.reshape(D, N, OY, OX).transpose(1, 0, 2, 3)              # (N, D, OY, OX) view
    if keep_cols is None:
        keep_cols = KY * KX <= 4 * stride * stride
    return y, ConvCache(x, cols if keep_cols else None, stride, padding)


def conv2d_backward(g_y, cache: ConvCache, p: ConvParams, need_g_x: bool = True):
    """Backward of conv2d for g_y (N, D, OY, OX).

    Returns (g_x (N, C, Y, X) or None when need_g_x is False, grads: ConvParams).
    """
    D, C, KY, KX = p.W.shape
    N, _, Y, X = cache.x.shape
    OY, OX = out_size(Y, KY, cache.stride, cache.padding), out_size(X, KX, cache.stride, cache.padding)
    check_array("g_y", g_y, (("N", N), ("D", D), ("OY", OY), ("OX", OX)), p.W.dtype, finite=False)
    cols = cache.cols if cache.cols is not None else \
        im2col(cache.x, KY, KX, cache.stride, cache.padding)[0]     # (C*KY*KX, N*OY*OX)
    g_y_t = g_y.transpose(1, 0, 2, 3).reshape(D, -1)                 # (D, N*OY*OX), free if (D, N, OY, OX) memory
    g_W = (g_y_t @ cols.T).reshape(D, C, KY, KX)                     # (D, C, KY, KX)
    grads = ConvParams(W=g_W, b=g_y_t.sum(1))                        # b: (D,)
    if not need_g_x:
        return None, grads
    g_cols = p.W.reshape(D, C * KY * KX).T @ g_y_t                   # (C*KY*KX, N*OY*OX)
    g_x = col2im(g_cols, cache.x.shape, KY, KX, cache.stride, cache.padding)  # (N, C, Y, X)
    return g_x, grads


def check_pool(x, kernel: int, stride: int, padding: int) -> tuple[int, int]:
    """Validate a max-pool input and geometry; returns (OY, OX)."""
    check_array("x", x, (("N", None), ("C", None), ("Y", None), ("X", None)), finite=False)
    check_float_dtype("x", x)
    if not (isinstance(kernel, (int, np.integer)) and 1 <= kernel <= 15):   # argmax is uint8
        raise ValueError(f"kernel: expected an int in [1, 15], got {kernel!r}")
    if isinstance(padding, (int, np.integer)) and padding > kernel // 2:
        raise ValueError(f"padding: expected at most kernel // 2 = {kernel // 2} (so that every "
                         f"window holds a real cell), got {padding}")
    return _check_geometry("x", x, (kernel, kernel), stride, padding)


POOL_BACKENDS = ("numba", "numpy")


def max_pool2d(x, kernel: int = 3, stride: int = 2, padding: int = 1, validate: bool = True,
               backend: str = "numba"):
    """Max pooling of x (N, C, Y, X): returns (y (N, C, OY, OX), cache).

    backend "numba" runs the kernels of pool_numba.py, "numpy" the reference below; both return
    the same values and the same cache.
    """
    if validate:
        OY, OX = check_pool(x, kernel, stride, padding)
    else:
        OY, OX = (out_size(s, kernel, stride, padding) for s in x.shape[2:])
    if backend == "numpy":
        return max_pool2d_numpy(x, kernel, stride, padding, OY, OX)
    if backend != "numba":
        raise ValueError(f"backend: expected one of {POOL_BACKENDS}, got {backend!r}")
    from rtrl_ref.r2ac import pool_numba

    N, C = x.shape[:2]
    xpad = _pad_cnhw(x, padding, -np.inf)                             # (C, N, Yp, Xp)
    y = np.empty((C, N, OY, OX), x.dtype)                             # (C, N, OY, OX)
    argmax = np.empty((C, N, OY, OX), np.uint8)                       # (C, N, OY, OX)
    pool_numba.pool_forward(xpad, kernel, stride, y, argmax)
    return y.transpose(1, 0, 2, 3), PoolCache(argmax, tuple(x.shape), kernel, stride, padding)


def max_pool2d_backward(g_y, cache: PoolCache, backend: str = "numba"):
    """Backward of max_pool2d: each g_y entry goes to its window's winning input cell."""
    if backend == "numpy":
        return max_pool2d_backward_numpy(g_y, cache)
    if backend != "numba":
        raise ValueError(f"backend: expected one of {POOL_BACKENDS}, got {backend!r}")
    from rtrl_ref.r2ac import pool_numba

    N, C, Y, X = cache.x_shape
    check_array("g_y", g_y, (("N", N), ("C", C)) + cache.argmax.shape[2:], finite=False)
    g_y_cnhw = np.ascontiguousarray(g_y.transpose(1, 0, 2, 3))       # (C, N, OY, OX)
    g_x = np.zeros((C, N, Y, X), g_y.dtype)                           # (C, N, Y, X)
    pool_numba.pool_backward(g_y_cnhw, cache.argmax, cache.kernel, cache.stride, cache.padding, g_x)
    return g_x.transpose(1, 0, 2, 3)                                  # (N, C, Y, X) view


def max_pool2d_numpy(x, kernel: int, stride: int, padding: int, OY: int, OX: int):
    """The NumPy reference of max_pool2d (K^2 strided passes with a running argmax)."""
    xpad = _pad_cnhw(x, padding, -np.inf)                             # (C, N, Yp, Xp)
    y = _window(xpad, 0, 0, stride, OY, OX).copy()                    # (C, N, OY, OX)
    argmax = np.zeros(y.shape, np.uint8)                              # (C, N, OY, OX)
    for k, (u, v) in enumerate(product(range(kernel), range(kernel))):
        if k == 0:
            continue
        cell = _window(xpad, u, v, stride, OY, OX)                    # (C, N, OY, OX) view
        wins = cell > y                                               # (C, N, OY, OX) strict: first max wins ties
        np.copyto(y, cell, where=wins)
        np.copyto(argmax, k, where=wins)
    return y.transpose(1, 0, 2, 3), PoolCache(argmax, tuple(x.shape), kernel, stride, padding)


def max_pool2d_backward_numpy(g_y, cache: PoolCache):
    """The NumPy reference of max_pool2d_backward."""
    N, C, Y, X = cache.x_shape
    K, S, P = cache.kernel, cache.stride, cache.padding
    OY, OX = cache.argmax.shape[2:]
    g_y_cnhw = g_y.transpose(1, 0, 2, 3)                             # (C, N, OY, OX) view
    g_xpad = np.zeros((C, N, Y + 2 * P, X + 2 * P), g_y.dtype)       # (C, N, Yp, Xp)
    for k, (u, v) in enumerate(product(range(K), range(K))):
        _window(g_xpad, u, v, S, OY, OX)[...] += g_y_cnhw * (cache.argmax == k)
    return g_xpad[:, :, P:P + Y, P:P + X].transpose(1, 0, 2, 3)       # (N, C, Y, X) view
