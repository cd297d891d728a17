"""Correctness of everything the benchmark times, against the NumPy references.

Run before any timing (and by CI through tests/test_bench.py): each candidate is compared per
named tensor with `verify.compare` at tolerance('kernel', dtype). Candidates are looked up on
their modules at call time, so a test can substitute a broken one and see the check fail.
"""

from __future__ import annotations

import numpy as np

from rtrl_ref import rtrl
from rtrl_ref.bench import cases, pipelines
from rtrl_ref.bptt import bptt
from rtrl_ref.rtrl import rtrl_segment, rtrl_sequence
from rtrl_ref.unroll import elstm_forward
from verify.compare import compare, compare_fields, tolerance


def _rows(prefix, comparisons) -> list[dict]:
    return [dict(name=c.name, rel=c.rel, tol=c.tol, ok=bool(c.ok)) for c in comparisons]


def check_step(B, H, I, dtype) -> list[dict]:
    """Fused per-step kernels (numba serial and parallel, torch eager if present) vs NumPy."""
    from rtrl_ref.kernels import numba_backend

    tol = tolerance("kernel", dtype)
    case = cases.step_case(B, H, I, dtype)
    want_S, want_G = rtrl.trace_step_accumulate(case.traces.copy(), case.cache, case.reset_t,
                                                case.g_c_t, case.grads)
    rows = []
    for variant in ("serial", "parallel"):
        be = numba_backend.backend(parallel=variant == "parallel")
        S, G = be.trace_step_accumulate(case.traces.copy(), case.cache, case.reset_t, case.g_c_t,
                                        type(case.grads)(*(a.copy() for a in case.grads)))
        name = f"step numba-{variant} {np.dtype(dtype).name}"
        rows += _rows(name, compare_fields(f"{name} traces", S, want_S, tol))
        rows += _rows(name, compare_fields(f"{name} grads", G, want_G, tol))
    return rows


def check_carried_pass(T, B, H, I, dtype) -> list[dict]:
    from rtrl_ref.kernels import numba_backend

    tol = tolerance("kernel", dtype)
    rng = np.random.default_rng(1)
    draw = lambda *shape: rng.standard_normal(shape).astype(dtype)
    traces = cases.random_traces(rng, B, H, I, dtype)
    args = (draw(B, H), draw(B, H), draw(T, B, H), draw(T, B, H), draw(T, B, I), draw(T, B, H))
    want_G, want_S = rtrl.segment_carried_pass(traces.copy(), *args)
    rows = []
    for variant in ("serial", "parallel"):
        be = numba_backend.backend(parallel=variant == "parallel")
        G, S = be.segment_carried_pass(traces.copy(), *args)
        name = f"carried pass numba-{variant} {np.dtype(dtype).name}"
        rows += _rows(name, compare_fields(f"{name} grads", G, want_G, tol))
        rows += _rows(name, compare_fields(f"{name} traces", S, want_S, tol))
    return rows


def check_pipelines(T, B, H, I, dtype) -> list[dict]:
    """Forward, BPTT, segment-form RTRL and the step loop of `pipelines` vs the library."""
    from rtrl_ref.kernels import step_numba

    tol = tolerance("kernel", dtype)
    c = cases.segment_case(T, B, H, I, dtype)
    dn = np.dtype(dtype).name
    rows = []
    _, traj_ref = elstm_forward(c.p, c.x, c.reset, c.c_0)
    for fw in (pipelines.forward_numba, pipelines.forward_numpy):
        traj = fw(c.p, c.W, c.x, c.keep, c.c_0)
        rows += _rows("", compare_fields(f"{fw.__name__} {dn}", traj, traj_ref, tol))
    back = bptt(c.p, traj_ref, c.reset, c.g_c)
    grads, g_x, _ = pipelines.bptt_backward(c.W, c.traj, c.keep, c.g_c)
    rows += _rows("", compare_fields(f"bptt_backward {dn} grads", grads, back.grads, tol))
    rows += _rows("", [compare(f"bptt_backward {dn} g_x", g_x, back.g_x, tol)])
    ref = rtrl_segment(c.p, traj_ref, c.reset, c.g_c, c.traces)
    grads, g_x, traces = pipelines.rtrl_backward(c.W, c.traj, c.keep, c.g_c, c.traces.copy())
    rows += _rows("", compare_fields(f"rtrl_backward {dn} grads", grads, ref.grads, tol))
    rows += _rows("", compare_fields(f"rtrl_backward {dn} traces", traces, ref.traces, tol))
    rows += _rows("", [compare(f"rtrl_backward {dn} g_x", g_x, ref.bptt.g_x, tol)])
    grads, _, traces = pipelines.rtrl_backward(c.W, c.traj, c.keep, c.g_c, c.traces.copy(), input_grad=False)
    rows += _rows("", compare_fields(f"rtrl_backward(no g_x) {dn} grads", grads, ref.grads, tol))
    rows += _rows("", compare_fields(f"rtrl_backward(no g_x) {dn} traces", traces, ref.traces, tol))
    ref = rtrl_sequence(traj_ref, c.reset, c.g_c, c.traces)
    grads, traces = pipelines.step_loop(step_numba.trace_step_accumulate, c.traj, c.reset, c.g_c,
                                        c.traces.copy(), rtrl.zero_grads(H, I, dtype))
    rows += _rows("", compare_fields(f"step_loop {dn} grads", grads, ref.grads, tol))
    rows += _rows("", compare_fields(f"step_loop {dn} traces", traces, ref.traces, tol))
    return rows


def check_torch(B, H, I, dtype) -> list[dict]:
    """The PyTorch-eager formulation vs NumPy (empty when torch is not installed)."""
    from rtrl_ref.bench import torch_eager

    if not torch_eager.available():
        return []
    tol = tolerance("kernel", dtype)
    case = cases.step_case(B, H, I, dtype)
    want_S, want_G = rtrl.trace_step_accumulate(case.traces.copy(), case.cache, case.reset_t,
                                                case.g_c_t, case.grads)
    S, G = torch_eager.step_numpy_io(case)
    name = f"step torch-eager {np.dtype(dtype).name}"
    return (_rows(name, compare_fields(f"{name} traces", S, want_S, tol))
            + _rows(name, compare_fields(f"{name} grads", G, want_G, tol)))


def run_checks(quick: bool = True) -> list[dict]:
    """Every check in float32 and float64 (QUICK_SIZES, or the benchmark sizes)."""
    s = cases.QUICK_SIZES if quick else cases.SIZES
    rows = []
    for dtype in (np.float32, np.float64):
        rows += check_step(s["B"], s["H"], s["I"], dtype)
        rows += check_carried_pass(s["T"], s["B"], s["H"], s["I"], dtype)
        rows += check_pipelines(s["T"], s["B"], s["H"], s["I"], dtype)
        rows += check_torch(s["B"], s["H"], s["I"], dtype)
    return rows
