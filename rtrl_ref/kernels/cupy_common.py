"""Shared helpers of the CuPy kernels: dtype-specialised RawKernels and argument preparation."""

from __future__ import annotations

import functools

import numpy as np

from rtrl_ref.validate import check_array

CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}


@functools.cache
def raw_kernel(source: str, name: str, dtype_name: str):
    """Compile `source` with `real` = the C type of dtype_name (cached per dtype)."""
    import cupy

    ctype = CTYPES[np.dtype(dtype_name)]
    return cupy.RawKernel(f"typedef {ctype} real;\n" + source, name)


def kernel_dtype(name: str, a) -> np.dtype:
    dtype = np.dtype(getattr(a, "dtype", None))
    if dtype not in CTYPES:
        raise ValueError(f"{name}: expected dtype float32 or float64, got {dtype}")
    return dtype


def device_input(name: str, a, shape: tuple, dtype, labels: str):
    """A C-contiguous CuPy array of `shape` and `dtype` (NumPy inputs are copied to the device)."""
    import cupy

    if not (hasattr(a, "shape") and tuple(a.shape) == shape and np.dtype(a.dtype) == dtype):
        labeled = tuple((l, n) for l, n in zip(labels.split(","), shape))
        check_array(name, a, labeled, dtype, finite=False)
    return cupy.ascontiguousarray(cupy.asarray(a))


def device_output(name: str, a, shape: tuple, dtype, labels: str):
    """Like device_input; the caller uses the returned array (it may be a copy)."""
    return device_input(name, a, shape, dtype, labels)
