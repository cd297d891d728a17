"""Correctness of everything the benchmark times: the library drivers and kernels on each timed
backend variant against the NumPy reference.

Run before any timing (and by CI through tests/test_bench.py). The properties themselves are
written once, in `verify.checks`; this module only chooses the backends and sizes and turns the
comparisons into rows. Every check takes a backend object, so a test can pass a broken one and
see the check fail (the negative twins in tests/test_bench.py).
"""

from __future__ import annotations

import numpy as np

from rtrl_ref.bench import cases
from rtrl_ref.kernels import Backend, numba_backend
from rtrl_ref.traces import trace_step_accumulate
from verify.checks import check_backend_carried_pass, check_backend_drivers, check_backend_step
from verify.compare import compare_fields, tolerance


def _rows(label: str, comparisons) -> list[dict]:
    return [dict(name=f"{label} {c.name}", rel=c.rel, tol=c.tol, ok=bool(c.ok)) for c in comparisons]


def timed_backends() -> dict[str, Backend]:
    """The backend variants the benchmark times: numba serial and numba parallel."""
    return {"numba-serial": numba_backend.backend(parallel=False),
            "numba-parallel": numba_backend.backend(parallel=True)}


def check_backend(label: str, backend: Backend, T: int, B: int, H: int, I: int, dtype) -> list[dict]:
    """Per-step kernel, carried pass and the four library drivers (elstm_forward, bptt,
    rtrl_segment, rtrl_sequence) on `backend` vs NumPy, at tolerance('kernel', dtype)."""
    where = f"{label} {np.dtype(dtype).name}"
    return (_rows(where, check_backend_step(backend, B, H, I, dtype))
            + _rows(where, check_backend_carried_pass(backend, T, B, H, I, dtype))
            + _rows(where, check_backend_drivers(backend, B, H, I, T, dtype)))


def check_torch(B, H, I, dtype) -> list[dict]:
    """The PyTorch-eager formulation vs NumPy (empty when torch is not installed)."""
    from rtrl_ref.bench import torch_eager

    if not torch_eager.available():
        return []
    tol = tolerance("kernel", dtype)
    case = cases.step_case(B, H, I, dtype)
    want_S, want_G = trace_step_accumulate(case.traces.copy(), case.cache, case.reset_t, case.g_c_t, case.grads)
    S, G = torch_eager.step_numpy_io(case)
    name = f"step torch-eager {np.dtype(dtype).name}"
    return (_rows(name, compare_fields("traces", S, want_S, tol))
            + _rows(name, compare_fields("grads", G, want_G, tol)))


def run_checks(quick: bool = True) -> list[dict]:
    """Every check in float32 and float64 (QUICK_SIZES, or the benchmark sizes)."""
    s = cases.QUICK_SIZES if quick else cases.SIZES
    rows = []
    for dtype in (np.float32, np.float64):
        for label, backend in timed_backends().items():
            rows += check_backend(label, backend, s["T"], s["B"], s["H"], s["I"], dtype)
        rows += check_torch(s["B"], s["H"], s["I"], dtype)
    return rows
