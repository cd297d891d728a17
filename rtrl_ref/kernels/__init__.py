"""Backend interface: one `Backend` object per implementation (numpy reference, numba, cupy).

The library drivers (`elstm_forward`, `bptt`, `rtrl_segment`, `rtrl_sequence`) take a backend
name or a `Backend` object; `get_backend` turns either into the object. Its fields:

    name                   "numpy", "numba" or "cupy"
    trace_step_accumulate  (traces, cache, reset_t, g_c_t, grads) -> (traces_t, grads)
                           one step of the step form, docs/derivation.md Eqs. 7-10
                           (reference: rtrl_ref.traces.trace_step_accumulate)
    segment_carried_pass   (traces_in, coef_in, decay_in, u_z, u_f, x, c_tm1) -> (grads, traces_out)
                           the carried-trace part of the segment form, Eqs. 14-15
                           (reference: rtrl_ref.traces.segment_carried_pass)
    traces_in_place        True if those two operations overwrite the traces (and grads) they are
                           given; the drivers then copy the caller's traces unless told they may
                           reuse them (`rtrl_segment(..., overwrite_traces=True)`)
    forward_unroll         (p, x, reset, c_0) -> CellCache over T steps, Eqs. 1-6 and 10
                           (reference: the per-step loop in rtrl_ref.unroll.elstm_forward)
    bptt_unroll            (p, traj, reset, g_c) -> (grads, g_x, g_c0, lam), Eqs. 12-13
                           (reference: rtrl_ref.bptt.adjoint + backward_from_adjoint)
    segment_unroll         (p, traj, reset, g_c, traces_in)
                           -> (inner_grads, g_x, g_c0, lam, carried_grads, traces_out), Eqs. 12-15,
                           may reuse traces_in's memory (reference: rtrl_ref.rtrl.rtrl_segment)

The three `*_unroll` fields are optional: None means the driver runs its reference code, which is
plain array code and so also runs on CuPy arrays. The numpy backend leaves all three None (it is
the reference); numba sets all three (compiled sweeps + BLAS GEMMs, see docs/performance.md);
cupy has its own kernels for the two trace operations and uses the reference for the rest.
"""

from __future__ import annotations

from rtrl_ref import traces
from rtrl_ref.kernels.interface import Backend

BACKENDS = ("numpy", "numba", "cupy")

NUMPY = Backend(
    name="numpy",
    trace_step_accumulate=traces.trace_step_accumulate,
    segment_carried_pass=traces.segment_carried_pass,
)

_loaded: dict[str, Backend] = {"numpy": NUMPY}


def get_backend(backend: str | Backend) -> Backend:
    """The Backend for a name (or the object itself); ValueError for an unknown name, ImportError
    or RuntimeError when the backend cannot run here (numba not installed, no usable GPU)."""
    if isinstance(backend, Backend):
        return backend
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    if backend not in _loaded:
        if backend == "numba":
            from rtrl_ref.kernels import numba_backend

            _loaded[backend] = numba_backend.backend()
        else:
            from rtrl_ref.kernels import cupy_backend

            _loaded[backend] = cupy_backend.backend()
    return _loaded[backend]


def available_backends() -> list[str]:
    """Backends that load and can run here (cupy only with a working GPU)."""
    names = []
    for name in BACKENDS:
        try:
            get_backend(name)
        except (ImportError, RuntimeError):
            continue
        names.append(name)
    return names


__all__ = ["BACKENDS", "Backend", "available_backends", "get_backend"]
