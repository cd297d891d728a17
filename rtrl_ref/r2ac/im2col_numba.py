"""col2im kernel (Numba) for the convolutions' input gradient.

Reproduces the NumPy reference `rtrl_ref.r2ac.conv.col2im_numpy`: for channel c, kernel cell
(u, v), sample n and output cell (i, j), with r = (c KY + u) KX + v and q = (n OY + i) OX + j,

    g_x[n, c, S i + u - P, S j + v - P] += g_cols[r, q]     (cells inside the image only)

g_x is (C, N, Y, X) memory, the layout the convolutions use. The reference makes KY * KX strided
adds of whole (C, N, OY, OX) slabs into a padded buffer; this loop keeps one image plane in
cache while all its patches are added (timings: docs/performance.md). A Numba im2col (the
gather) was no faster than NumPy's strided window copy, so im2col stays NumPy.
"""

from __future__ import annotations

import numba

from rtrl_ref.kernels.numba_config import JIT


@numba.njit(**JIT)
def _valid_range(S, offset, n_out, n_in):
    """The output indices j with 0 <= S j + offset < n_in, as [lo, hi)."""
    lo = 0
    while lo < n_out and S * lo + offset < 0:
        lo += 1
    hi = n_out
    while hi > lo and S * (hi - 1) + offset >= n_in:
        hi -= 1
    return lo, hi


@numba.njit(**JIT)
def scatter_add(g_cols, KY, KX, S, P, OY, OX, g_x):
    """g_x (C, N, Y, X), zero on entry, += the patches of g_cols (C * KY * KX, N * OY * OX).

    Channel and sample outermost; no array views inside the loops (each would cost a
    reference-count update); for each input cell the adds come in the same (u, v) row-major
    order as in the NumPy reference.
    """
    C, N, Y, X = g_x.shape
    for c in range(C):
        for n in range(N):
            for u in range(KY):
                for v in range(KX):
                    r = (c * KY + u) * KX + v
                    j_lo, j_hi = _valid_range(S, v - P, OX, X)
                    for i in range(OY):
                        yy = S * i + u - P
                        if yy < 0 or yy >= Y:
                            continue
                        q0 = (n * OY + i) * OX
                        for j in range(j_lo, j_hi):
                            g_x[c, n, yy, S * j + v - P] += g_cols[r, q0 + j]
