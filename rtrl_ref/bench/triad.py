"""STREAM-style triad a = b + s c (Numba, one thread): the DRAM bandwidth reference.

Bytes counted as in STREAM: 3 * n * itemsize per call (the write-allocate read of `a` is not
counted). The arrays must be much larger than the last-level cache.
"""

from __future__ import annotations

import numba
import numpy as np

from rtrl_ref.kernels.numba_config import JIT


@numba.njit(**JIT)
def triad(a, b, c, s):
    for i in range(a.shape[0]):
        a[i] = b[i] + s * c[i]


def triad_arrays(n: int, dtype) -> tuple:
    rng = np.random.default_rng(0)
    b = rng.standard_normal(n).astype(dtype)                          # (n,)
    c = rng.standard_normal(n).astype(dtype)                          # (n,)
    a = np.zeros(n, dtype)                                            # (n,)
    return a, b, c, np.dtype(dtype).type(0.5)
