"""Shared Numba settings of the CPU kernels: JIT options, threading layer, argument preparation.

Imported by every Numba kernel file *before* it defines a parallel kernel, so the safe threading
layer is chosen before any parallel kernel can run:

- threading layer `workqueue` (Numba's own pool) unless the user set NUMBA_THREADING_LAYER:
  the OpenMP layer kills children of `fork()` once it has run (gymnasium's AsyncVectorEnv forks
  on Linux), and its spinning threads collide with threaded OpenBLAS (docs/performance.md);
- `error_model='numpy'`: no division-by-zero branch that would stop loops from vectorising;
- `cache=True`: a warm first call loads machine code instead of compiling; one `def` per
  variant (serial and parallel are separate functions, never two `njit`s of the same `def`).
"""

from __future__ import annotations

import os

import numba
import numpy as np

from rtrl_ref.validate import check_array

JIT = dict(cache=True, error_model="numpy", nogil=True)
JIT_PARALLEL = dict(JIT, parallel=True)


def configure_threading_layer() -> str:
    """Select `workqueue` unless the user chose a layer (NUMBA_THREADING_LAYER, or
    numba.config.THREADING_LAYER set in code before this import); returns the configured layer."""
    if "NUMBA_THREADING_LAYER" not in os.environ and numba.config.THREADING_LAYER == "default":
        numba.config.THREADING_LAYER = "workqueue"
    return numba.config.THREADING_LAYER


configure_threading_layer()


def n_chunks_for(n: int) -> int:
    """How many chunks a parallel kernel splits n rows into (one per Numba thread, at most n)."""
    return max(1, min(n, numba.get_num_threads()))


def kernel_dtype(name: str, a) -> np.dtype:
    """The float dtype every argument of one kernel call must share."""
    dtype = np.dtype(getattr(a, "dtype", None))
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"{name}: expected dtype float32 or float64, got {dtype}")
    return dtype


def _labeled(shape: tuple, labels: str | None):
    if labels is None:
        return shape
    return tuple((l, n) if n is not None else None for l, n in zip(labels.split(","), shape))


def as_input(name: str, a, shape: tuple, dtype, labels: str | None = None) -> np.ndarray:
    """A read-only kernel argument: checked (shape, dtype; no finiteness scan), C-contiguous.

    shape holds ints (None = any size); labels, e.g. "T,B,H", name them in the error message.
    Fast path (a few attribute reads) for the common case; the full check builds the message.
    """
    if type(a) is np.ndarray and a.dtype == dtype and a.flags.c_contiguous and a.shape == shape:
        return a
    check_array(name, a, _labeled(shape, labels), dtype, finite=False)
    return np.ascontiguousarray(a)


def as_output(name: str, a, shape: tuple, dtype, labels: str | None = None) -> np.ndarray:
    """An argument updated in place: checked, and copied only if not C-contiguous and writeable."""
    if (type(a) is np.ndarray and a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable
            and a.shape == shape):
        return a
    check_array(name, a, _labeled(shape, labels), dtype, finite=False)
    return np.require(a, requirements=("C", "W"))


def as_keep(name: str, reset_t, B: int, dtype) -> np.ndarray:
    """(B,) 1 where the step continues the episode, 0 where reset_t starts a new one."""
    if not (type(reset_t) is np.ndarray and reset_t.shape == (B,)):
        check_array(name, reset_t, (("B", B),), finite=False)
    if np.dtype(reset_t.dtype) != np.dtype(bool):
        raise ValueError(f"{name}: expected dtype bool, got {np.dtype(reset_t.dtype)}")
    return (~np.asarray(reset_t)).astype(dtype)                       # (B,)
