"""The CuPy GPU backend (fields of `rtrl_ref.kernels.Backend`):

    trace_step_accumulate   rtrl_ref.kernels.step_cupy     (reference rtrl_ref.traces.trace_step_accumulate)
    segment_carried_pass    rtrl_ref.kernels.segment_cupy  (reference rtrl_ref.traces.segment_carried_pass)

The whole-unroll fields are None: the drivers run their reference code, plain array code that
runs on CuPy arrays, and call the two kernels above.

Arrays are CuPy arrays (NumPy inputs are copied to the device). `backend()` raises ImportError
when cupy is not installed and RuntimeError when no CUDA device is usable, so
`rtrl_ref.kernels.available_backends()` leaves it out on CPU-only machines.
"""

from __future__ import annotations

from rtrl_ref.kernels.interface import Backend


def require_cupy():
    """The cupy module, or a clear ImportError / RuntimeError."""
    try:
        import cupy
    except ImportError as err:
        raise ImportError("cupy backend: cupy is not installed; install the `gpu` extra "
                          "(pip install 'rtrl_ref[gpu]', i.e. cupy-cuda12x) on a machine with a "
                          "CUDA 12 GPU") from err
    try:
        usable = bool(cupy.is_available())
    except Exception as err:  # any CUDA driver or runtime failure means unusable
        raise RuntimeError(f"cupy backend: CUDA is not usable here ({err})") from err
    if not usable:
        raise RuntimeError("cupy backend: cupy is installed but no CUDA GPU is available "
                           "(cupy.is_available() is False)")
    return cupy


def backend() -> Backend:
    require_cupy()
    from rtrl_ref.kernels import segment_cupy, step_cupy

    return Backend(
        name="cupy",
        trace_step_accumulate=step_cupy.trace_step_accumulate,
        segment_carried_pass=segment_cupy.segment_carried_pass,
        traces_in_place=True,
    )
