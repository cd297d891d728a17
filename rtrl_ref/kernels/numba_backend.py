"""The Numba CPU backend (fields of `rtrl_ref.kernels.Backend`):

    trace_step_accumulate   rtrl_ref.kernels.step_numba     (reference rtrl_ref.traces.trace_step_accumulate)
    segment_carried_pass    rtrl_ref.kernels.segment_numba  (reference rtrl_ref.traces.segment_carried_pass)
    forward_unroll          rtrl_ref.kernels.forward_gemm   (one input GEMM + per-step NumPy recurrence)
    bptt_unroll             rtrl_ref.kernels.adjoint_numba  (adjoint sweep + GEMMs)
    segment_unroll          rtrl_ref.kernels.segment_numba  (coefficient sweep + GEMMs + carried pass)

Threading: importing this module selects Numba's `workqueue` threading layer unless the user set
NUMBA_THREADING_LAYER (see numba_config), so a `fork()` after a parallel kernel is safe.
By default the kernels are serial: the per-step update is bound by memory bandwidth, and
serial Numba code never competes with a threaded BLAS (OpenMP and OpenBLAS threads called
alternately cost up to 15x). Set RTRL_NUMBA_PARALLEL=1, or call backend(parallel=True), for the
variants that split units over Numba's threads; docs/performance.md has the measurements behind
this default.
"""

from __future__ import annotations

import functools
import os

from rtrl_ref.kernels import (
    adjoint_numba,
    forward_gemm,
    numba_config,  # noqa: F401  (threading layer before any kernel)
    segment_numba,
    step_numba,
)
from rtrl_ref.kernels.interface import Backend


def default_parallel() -> bool:
    """RTRL_NUMBA_PARALLEL=1 selects the parallel variants; serial otherwise."""
    value = os.environ.get("RTRL_NUMBA_PARALLEL", "0").strip().lower()
    if value not in ("0", "1", "false", "true", ""):
        raise ValueError(f"RTRL_NUMBA_PARALLEL: expected 0 or 1, got {value!r}")
    return value in ("1", "true")


def backend(parallel: bool | None = None) -> Backend:
    """The numba Backend, serial or parallel (default: RTRL_NUMBA_PARALLEL)."""
    if parallel is None:
        parallel = default_parallel()
    return Backend(
        name="numba",
        trace_step_accumulate=(step_numba.trace_step_accumulate_parallel if parallel
                               else step_numba.trace_step_accumulate),
        segment_carried_pass=(segment_numba.segment_carried_pass_parallel if parallel
                              else segment_numba.segment_carried_pass),
        traces_in_place=True,
        forward_unroll=forward_gemm.forward_unroll,
        bptt_unroll=adjoint_numba.bptt_unroll,
        segment_unroll=functools.partial(segment_numba.segment_unroll, parallel=parallel),
    )
