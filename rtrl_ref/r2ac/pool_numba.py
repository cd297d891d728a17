"""Max-pooling kernels (Numba): forward with argmax, and the gradient scatter.

Reproduce the NumPy reference in `rtrl_ref.r2ac.conv` (`max_pool2d_numpy` and
`max_pool2d_backward_numpy`): for every channel c, sample n and output cell (i, j),

    y[c, n, i, j]      = max over the window u, v in [0, K) of xpad[c, n, S i + u, S j + v]
    argmax[c, n, i, j] = u * K + v of the first (row-major) cell attaining it
    g_x[c, n, S i + u - P, S j + v - P] += g_y[c, n, i, j]   at that cell

with padded cells (-inf) never winning. Arrays are (C, N, Y, X), the memory layout the
convolutions produce. The NumPy reference makes 3 K^2 strided passes with boolean temporaries;
these loops make one (timings: docs/performance.md).
"""

from __future__ import annotations

import numba

from rtrl_ref.kernels.numba_config import JIT


@numba.njit(**JIT)
def pool_forward(xpad, K, S, y, argmax):
    """xpad (C, N, Yp, Xp), padded with -inf -> y, argmax (C, N, OY, OX), written in place."""
    C, N = xpad.shape[0], xpad.shape[1]
    OY, OX = y.shape[2], y.shape[3]
    for c in range(C):
        for n in range(N):
            for i in range(OY):
                for j in range(OX):
                    best = xpad[c, n, S * i, S * j]
                    k_best = 0
                    for u in range(K):
                        for v in range(K):
                            value = xpad[c, n, S * i + u, S * j + v]
                            if value > best:
                                best = value
                                k_best = u * K + v
                    y[c, n, i, j] = best
                    argmax[c, n, i, j] = k_best


@numba.njit(**JIT)
def pool_backward(g_y, argmax, K, S, P, g_x):
    """g_y, argmax (C, N, OY, OX) -> g_x (C, N, Y, X), accumulated in place (zeroed by caller)."""
    C, N, OY, OX = g_y.shape
    Y, X = g_x.shape[2], g_x.shape[3]
    for c in range(C):
        for n in range(N):
            for i in range(OY):
                for j in range(OX):
                    k = argmax[c, n, i, j]
                    yy = S * i + k // K - P
                    xx = S * j + k % K - P
                    if 0 <= yy < Y and 0 <= xx < X:     # a padded cell (only if a whole window
                        g_x[c, n, yy, xx] += g_y[c, n, i, j]   # is NaN/-inf) has no input to reach
