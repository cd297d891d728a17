"""The Numba CPU backend: fused per-step kernel and carried-trace pass of the segment form.

    trace_step_accumulate   rtrl_ref.kernels.step_numba     (reference rtrl_ref.rtrl.trace_step_accumulate)
    segment_carried_pass    rtrl_ref.kernels.segment_numba  (reference rtrl_ref.rtrl.segment_carried_pass)

Threading: importing this module selects Numba's `workqueue` threading layer unless the user set
NUMBA_THREADING_LAYER (see numba_config), so a `fork()` after a parallel kernel is safe.
By default the kernels are serial: the per-step update is bound by memory bandwidth, and
serial Numba code never competes with a threaded BLAS (PERF-NOTES.md: OpenMP and OpenBLAS threads
called alternately cost up to 15x). Set RTRL_NUMBA_PARALLEL=1, or call backend(parallel=True),
for the variants that split units over Numba's threads; docs/performance.md has the measurements
behind this default.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

from rtrl_ref.kernels import (
    numba_config,  # noqa: F401  (threading layer before any kernel)
    segment_numba,
    step_numba,
)


def default_parallel() -> bool:
    """RTRL_NUMBA_PARALLEL=1 selects the parallel variants; serial otherwise."""
    value = os.environ.get("RTRL_NUMBA_PARALLEL", "0").strip().lower()
    if value not in ("0", "1", "false", "true", ""):
        raise ValueError(f"RTRL_NUMBA_PARALLEL: expected 0 or 1, got {value!r}")
    return value in ("1", "true")


def backend(parallel: bool | None = None) -> SimpleNamespace:
    """The backend namespace (same fields as the numpy entry of rtrl_ref.kernels)."""
    if parallel is None:
        parallel = default_parallel()
    if parallel:
        return SimpleNamespace(
            name="numba",
            trace_step_accumulate=step_numba.trace_step_accumulate_parallel,
            segment_carried_pass=segment_numba.segment_carried_pass_parallel,
        )
    return SimpleNamespace(
        name="numba",
        trace_step_accumulate=step_numba.trace_step_accumulate,
        segment_carried_pass=segment_numba.segment_carried_pass,
    )
