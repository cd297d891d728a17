"""Input checks shared by every public function: clear errors, no silent broadcasting.

Every error names the argument, what was expected and what was given.
"""

from __future__ import annotations

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _xp_of(a):
    """Array module of `a` (numpy or cupy) without importing cupy."""
    mod = type(a).__module__.split(".")[0]
    if mod == "cupy":
        import cupy

        return cupy
    return np


def check_array(name: str, a, shape: tuple, dtype=None, finite: bool = True):
    """Check that `a` is an array of `shape` (None = any size) and `dtype`; return it.

    `shape` entries may be ints, None, or (label, int) pairs; labels appear in the message.
    """
    if not hasattr(a, "shape") or not hasattr(a, "dtype"):
        raise ValueError(f"{name}: expected an array of shape {_fmt(shape)}, got {type(a).__name__}")
    want = tuple(s[1] if isinstance(s, tuple) else s for s in shape)
    if len(a.shape) != len(want) or any(w is not None and w != g for w, g in zip(want, a.shape)):
        raise ValueError(f"{name}: expected shape {_fmt(shape)}, got {tuple(a.shape)}")
    if dtype is not None and np.dtype(a.dtype) != np.dtype(dtype):
        raise ValueError(f"{name}: expected dtype {np.dtype(dtype)}, got {np.dtype(a.dtype)}")
    if finite and np.dtype(a.dtype).kind == "f":
        xp = _xp_of(a)
        if not bool(xp.isfinite(a).all()):
            raise ValueError(f"{name}: expected finite values, got NaN or Inf")
    return a


def check_float_dtype(name: str, a):
    if np.dtype(a.dtype) not in FLOAT_DTYPES:
        raise ValueError(f"{name}: expected dtype float32 or float64, got {np.dtype(a.dtype)}")
    return np.dtype(a.dtype)


def check_reset(name: str, reset, shape: tuple):
    """Reset masks are boolean arrays: True means 'this step starts a new episode'."""
    check_array(name, reset, shape, finite=False)
    if np.dtype(reset.dtype) != np.dtype(bool):
        raise ValueError(f"{name}: expected dtype bool, got {np.dtype(reset.dtype)}")
    return reset


def _fmt(shape: tuple) -> str:
    parts = []
    for s in shape:
        if isinstance(s, tuple):
            parts.append(f"{s[0]}={s[1]}")
        else:
            parts.append("*" if s is None else str(s))
    return "(" + ", ".join(parts) + ")"


SMALL_ALLOCATION = 64 * 2**20                   # bytes below which check_memory does not look


class InsufficientMemory(MemoryError, ValueError):
    """An allocation refused before it was tried: it needs more memory than is available."""


def available_memory(xp=np) -> int | None:
    """Bytes that can be allocated now: MemAvailable of the host, or the free memory of the GPU for
    CuPy; None where it cannot be told (the check is then skipped)."""
    if xp is not np:
        try:
            return int(xp.cuda.runtime.memGetInfo()[0])
        except Exception:                       # no device query: no check
            return None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import os

        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(name: str, nbytes: int, what: str, xp=np) -> None:
    """Refuse, before allocating, `nbytes` that exceed the available memory (InsufficientMemory,
    which is both a MemoryError and a ValueError), naming the byte count and its shape."""
    if nbytes < SMALL_ALLOCATION:
        return                                  # not worth a system query
    available = available_memory(xp)
    if available is not None and nbytes > available:
        raise InsufficientMemory(f"{name}: needs {nbytes:,} bytes ({nbytes / 2**30:.1f} GiB) for {what}, more "
                                 f"than the {available:,} bytes available")
