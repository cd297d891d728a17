"""The verification properties, each written once.

Every function returns a list of `verify.compare.Comparison` rows, one per named tensor, already
judged (structural zeros: verify/compare.py). Tests assert them (`assert_all_ok`), the audit
(`python -m verify audit`) turns them into report rows, the benchmark's correctness checks and
scripts/gpu_check.py call them before timing anything. A negative twin passes a deliberately wrong
implementation (`drivers=` from verify.broken, or a broken backend object) and requires a failure.

    check_bptt_fd(prob)                       BPTT vs central finite differences (float64)
    check_rtrl_step(prob)                     RTRL step form vs BPTT
    check_rtrl_segment(prob, cuts)            segment form over consecutive unrolls vs BPTT and the step form
    check_float32_vs_float64(prob)            float32 step and segment forms vs float64 BPTT
    check_dense(prob)                         the naive dense influence-matrix RTRL vs the step form
    check_reset_split(prob, split)            a reset at `split` makes the two halves independent
    check_batch_rows(prob)                    batch rows are independent (sums / stacks of single rows)
    check_tbptt_full_window(prob, k, mode)    TBPTT with k >= T equals BPTT
    check_tbptt_bias(seed, T, k)              TBPTT(k < T) measurably differs from BPTT on long memory
    check_backend_step(backend, ...)          per-step kernel trace_step_accumulate vs NumPy
    check_backend_carried_pass(backend, ...)  segment carried pass vs NumPy
    check_backend_drivers(backend, ...)       elstm_forward, bptt, rtrl_segment, rtrl_sequence vs NumPy
    check_vtrace(vtrace, inputs)              V-trace vs its defining sums (verify.vtrace)

Equations: docs/derivation.md, Eq. 1-3 (cell), 7-9 (traces), 10 (resets), 12-13 (BPTT),
14-15 (segment form), 16 (TBPTT), 17 (V-trace).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np

from rtrl_ref import CellCache, ELSTMParams, Traces, bptt, elstm_forward, rtrl_segment, rtrl_sequence, tbptt
from rtrl_ref.kernels import get_backend
from verify.compare import Comparison, compare, compare_fields, differs, judge, measure, tolerance
from verify.fd import fd_check
from verify.problem import Problem, ProblemGrads, bptt_grads, loss, make_problem, reset_mask


class Drivers(NamedTuple):
    """The gradient code under check (same signatures as the library's drivers)."""

    problem_grads: Callable = bptt_grads       # Problem -> verify.problem.Backward
    elstm_forward: Callable = elstm_forward    # (p, x, reset, c_0, validate, backend) -> (c, traj)
    bptt: Callable = bptt                      # (p, traj, reset, g_c, backend) -> BPTTResult
    tbptt: Callable = tbptt                    # (p, traj, reset, g_c, k, mode) -> BPTTResult
    rtrl_sequence: Callable = rtrl_sequence    # (traj, reset, g_c, traces, backend) -> RTRLResult
    rtrl_segment: Callable = rtrl_segment      # (p, traj, reset, g_c, traces, backend) -> SegmentResult


LIBRARY = Drivers()
PARAM_FIELDS = ELSTMParams._fields


# ---------------------------------------------------------------------------------------------
# helpers: devices, slicing, random kernel inputs


def backend_name(backend) -> str:
    return backend if isinstance(backend, str) else getattr(backend, "name", type(backend).__name__)


def to_backend(backend, *trees):
    """Arrays and NamedTuples of arrays on the backend's device (CuPy arrays for cupy)."""
    if backend_name(backend) != "cupy":
        return trees if len(trees) > 1 else trees[0]
    import cupy

    def move(t):
        if isinstance(t, tuple) and hasattr(t, "_fields"):
            return type(t)(*(move(a) for a in t))
        return None if t is None else cupy.asarray(t)

    moved = tuple(move(t) for t in trees)
    return moved if len(moved) > 1 else moved[0]


def copy_tree(tree):
    return type(tree)(*(a.copy() for a in tree))


def slice_traj(traj: CellCache, start: int, stop: int) -> CellCache:
    return CellCache(*(a[start:stop] for a in traj))


def add_trees(a, b):
    return b if a is None else type(a)(*(u + v for u, v in zip(a, b)))


def random_traces(rng: np.random.Generator, B: int, H: int, I: int, dtype) -> Traces:
    def draw(*shape):
        return rng.standard_normal(shape).astype(dtype)

    return Traces(draw(B, H, I), draw(B, H, I), draw(B, H), draw(B, H), draw(B, H), draw(B, H))


class StepInputs(NamedTuple):
    """Arguments of trace_step_accumulate: random and non-zero, so every code path touches a number."""

    traces: Traces       # (B, H, I) / (B, H)
    cache: CellCache     # one step: x_t (B, I), the rest (B, H)
    reset_t: np.ndarray  # (B,) bool
    g_c_t: np.ndarray    # (B, H)
    grads: ELSTMParams   # (H, I) / (H,)


def step_inputs(seed: int, B: int, H: int, I: int, dtype, pattern="random") -> StepInputs:
    """Random step arguments; `pattern` names a reset pattern (verify.problem) or is a (B,) bool mask."""
    rng = np.random.default_rng(seed)

    def draw(*shape):
        return rng.standard_normal(shape).astype(dtype)

    traces = random_traces(rng, B, H, I, dtype)
    grads = ELSTMParams(draw(H, I), draw(H, I), draw(H), draw(H), draw(H), draw(H))
    cache = CellCache(draw(B, I), *(draw(B, H) for _ in range(7)))
    if isinstance(pattern, str):
        reset_t = reset_mask(rng, 1, B, pattern)[0]                              # (B,)
    else:
        reset_t = np.asarray(pattern, bool)                                      # (B,)
        if reset_t.shape != (B,):
            raise ValueError(f"pattern: expected a reset name or a ({B},) mask, got shape {reset_t.shape}")
    return StepInputs(traces, cache, reset_t, draw(B, H), grads)


class CarriedInputs(NamedTuple):
    """Arguments of segment_carried_pass (docs/derivation.md, Eq. 14-15)."""

    traces_in: Traces
    coef_in: np.ndarray   # (B, H) Jeff_0 * lam_0
    decay_in: np.ndarray  # (B, H) Jeff_0 * P_0
    u_z: np.ndarray       # (T, B, H) P_s * dc_dzpre_s
    u_f: np.ndarray       # (T, B, H) P_s * dc_dfpre_s
    x: np.ndarray         # (T, B, I)
    c_tm1: np.ndarray     # (T, B, H)


def carried_inputs(seed: int, T: int, B: int, H: int, I: int, dtype) -> CarriedInputs:
    rng = np.random.default_rng(seed)

    def draw(*shape):
        return rng.standard_normal(shape).astype(dtype)

    traces = random_traces(rng, B, H, I, dtype)
    return CarriedInputs(traces, draw(B, H), draw(B, H), draw(T, B, H), draw(T, B, H), draw(T, B, I),
                         draw(T, B, H))


# ---------------------------------------------------------------------------------------------
# exact gradients of a problem


def check_bptt_fd(prob: Problem, drivers: Drivers = LIBRARY, max_entries: int | None = None,
                  seed: int = 0) -> list[Comparison]:
    """BPTT gradients of every parameter, x and c_0 vs central finite differences (float64)."""
    if prob.x.dtype != np.float64:
        raise ValueError(f"prob: expected float64 for finite differences, got {prob.x.dtype}")
    grads = drivers.problem_grads(prob).grads
    params = ProblemGrads(prob.p, prob.q, prob.V, prob.x, prob.c_0)

    def f():
        return loss(prob)

    return fd_check("grad", f, params, grads, max_entries=max_entries, seed=seed)


def check_rtrl_step(prob: Problem, drivers: Drivers = LIBRARY, backend="numpy") -> list[Comparison]:
    """RTRL step form (Eq. 7-9) on `backend` vs BPTT (Eq. 12-13), tolerance('exact', dtype)."""
    back = bptt_grads(prob)
    traj, reset, g_c = to_backend(backend, back.traj, prob.reset, back.g_c)
    res = drivers.rtrl_sequence(traj, reset, g_c, None, backend=backend)
    return compare_fields("grad", res.grads, back.grads.p, tolerance("exact", prob.x.dtype))


def check_rtrl_segment(prob: Problem, cuts: Sequence[int] = (), drivers: Drivers = LIBRARY,
                       backend="numpy") -> list[Comparison]:
    """Segment form (Eq. 14-15) over consecutive unrolls cut at `cuts`, traces carried: the summed
    gradient equals BPTT over the whole sequence and the carried-out traces equal the step form's."""
    T = prob.x.shape[0]
    cuts = sorted(set(int(c) for c in cuts))
    if any(not 0 < c < T for c in cuts):
        raise ValueError(f"cuts: expected positions in 1..{T - 1}, got {cuts}")
    back = bptt_grads(prob)
    tol = tolerance("exact", prob.x.dtype)
    p, traj, reset, g_c = to_backend(backend, prob.p, back.traj, prob.reset, back.g_c)
    traces, total = None, None
    for start, stop in zip([0] + cuts, cuts + [T]):
        seg = drivers.rtrl_segment(p, slice_traj(traj, start, stop), reset[start:stop], g_c[start:stop],
                                   traces, backend=backend)
        traces, total = seg.traces, add_trees(total, seg.grads)
    step = rtrl_sequence(back.traj, prob.reset, back.g_c)
    return (compare_fields("grad", total, back.grads.p, tol)
            + compare_fields("final trace", traces, step.traces, tol))


def check_float32_vs_float64(prob: Problem, drivers: Drivers = LIBRARY) -> list[Comparison]:
    """float32 step and segment forms within tolerance('vs_float64') of the float64 BPTT gradient."""
    if prob.x.dtype != np.float32:
        raise ValueError(f"prob: expected float32, got {prob.x.dtype}")
    back32 = bptt_grads(prob)
    prob64 = prob._replace(p=prob.p.astype(np.float64), q=prob.q.astype(np.float64),
                           V=prob.V.astype(np.float64), x=prob.x.astype(np.float64),
                           c_0=prob.c_0.astype(np.float64))
    want = bptt_grads(prob64).grads.p
    step = drivers.rtrl_sequence(back32.traj, prob.reset, back32.g_c, None, backend="numpy")
    seg = drivers.rtrl_segment(prob.p, back32.traj, prob.reset, back32.g_c, None, backend="numpy")
    tol = tolerance("vs_float64", np.float32)
    return compare_fields("step grad", step.grads, want, tol) + compare_fields("segment grad", seg.grads, want, tol)


def check_dense(prob: Problem, drivers: Drivers = LIBRARY) -> list[Comparison]:
    """The naive dense influence-matrix RTRL (verify.dense, H <= 8) vs the step form: gradients,
    the diagonal blocks of the influence matrix vs the traces, and exact zeros off the diagonal."""
    from verify.dense import dense_rtrl, unflatten

    back = bptt_grads(prob)
    res = drivers.rtrl_sequence(back.traj, prob.reset, back.g_c, None, backend="numpy")
    dense = dense_rtrl(prob.p, prob.x, prob.reset, back.g_c, prob.c_0)
    tol = tolerance("exact", np.float64)
    H, I = prob.p.W_z.shape
    M = unflatten(dense.influence, H, I)                 # fields (B, H, H, I) / (B, H, H)
    idx = np.arange(H)
    diagonal = Traces(*(f[:, idx, idx] for f in M))
    off = dense.max_offdiag
    offdiag = Comparison("max |dc[h]/dtheta[k!=h]|", off, off, 0.0, off == 0.0, False)
    return (compare_fields("grad", res.grads, dense.grads, tol)
            + compare_fields("trace", res.traces, diagonal, tol) + [offdiag])


def check_reset_split(prob: Problem, split: int, drivers: Drivers = LIBRARY) -> list[Comparison]:
    """With a reset at step `split` (Eq. 10), BPTT and the step form over the whole sequence equal
    the sum of two independent runs on [0, split) and [split, T); so does the loss."""
    reset = prob.reset.copy()                                                    # (T, B)
    reset[split] = True
    return check_split(prob._replace(reset=reset), split, drivers)


def check_split(prob: Problem, split: int, drivers: Drivers = LIBRARY) -> list[Comparison]:
    """The comparisons of check_reset_split without adding the reset (its negative twin)."""
    T = prob.x.shape[0]
    if not 0 < split < T:
        raise ValueError(f"split: expected a step in 1..{T - 1}, got {split}")
    whole = drivers.problem_grads(prob)
    first = bptt_grads(prob._replace(x=prob.x[:split], reset=prob.reset[:split], y=prob.y[:split]))
    second = bptt_grads(prob._replace(x=prob.x[split:], reset=prob.reset[split:], y=prob.y[split:]))
    total = add_trees(first.grads.p, second.grads.p)
    tol = tolerance("exact", prob.x.dtype)
    rtrl = drivers.rtrl_sequence(whole.traj, prob.reset, whole.g_c, None, backend="numpy")
    return (compare_fields("bptt grad", whole.grads.p, total, tol)
            + compare_fields("rtrl grad", rtrl.grads, total, tol)
            + [compare("loss", whole.loss, first.loss + second.loss, tol)])


def single_row(prob: Problem, b: int) -> Problem:
    """Batch row b of `prob` as a problem of its own (B = 1)."""
    return prob._replace(x=prob.x[:, b:b + 1], reset=prob.reset[:, b:b + 1], c_0=prob.c_0[b:b + 1],
                         y=prob.y[:, b:b + 1])


def check_batch_rows(prob: Problem, drivers: Drivers = LIBRARY, backend="numpy") -> list[Comparison]:
    """Batch rows are independent: the batch's BPTT and RTRL step-form gradients equal the sums
    of single-row runs, and its input gradient g_x and final traces are the rows' stacked."""
    whole = drivers.problem_grads(prob)
    traj, reset, g_c = to_backend(backend, whole.traj, prob.reset, whole.g_c)
    step = drivers.rtrl_sequence(traj, reset, g_c, None, backend=backend)
    rows = [bptt_grads(single_row(prob, b)) for b in range(prob.x.shape[1])]
    row_steps = [rtrl_sequence(r.traj, single_row(prob, b).reset, r.g_c) for b, r in enumerate(rows)]
    total = ELSTMParams(*(sum(fields) for fields in zip(*(r.grads.p for r in rows))))
    g_x = np.concatenate([r.grads.x for r in rows], axis=1)                     # (T, B, I)
    traces = Traces(*(np.concatenate(fields) for fields in zip(*(r.traces for r in row_steps))))
    tol = tolerance("exact", prob.x.dtype)
    return (compare_fields("bptt grad (batch vs sum of rows)", whole.grads.p, total, tol)
            + [compare("g_x (batch vs rows)", whole.grads.x, g_x, tol)]
            + compare_fields("rtrl grad (batch vs sum of rows)", step.grads, total, tol)
            + compare_fields("rtrl traces (batch vs rows)", step.traces, traces, tol))


def check_tbptt_full_window(prob: Problem, k: int, mode: str = "window",
                            drivers: Drivers = LIBRARY) -> list[Comparison]:
    """TBPTT (Eq. 16) with a window k >= T is full BPTT: parameter and input gradients."""
    back = bptt_grads(prob)
    trunc = drivers.tbptt(prob.p, back.traj, prob.reset, back.g_c, k, mode)
    tol = tolerance("exact", prob.x.dtype)
    return compare_fields("grad", trunc.grads, back.grads.p, tol) + [compare("g_x", trunc.g_x, back.bptt.g_x, tol)]


def check_tbptt_bias(seed: int, T: int, k: int, dtype="float64", mode: str = "window",
                     drivers: Drivers = LIBRARY, threshold: float = 1e-2) -> list[Comparison]:
    """Forget gates near 1 (memory span >> k) and a loss at the last step only: TBPTT(k < T) must
    differ from BPTT by at least `threshold` (relation '>='), TBPTT(T) must equal BPTT."""
    prob = make_problem(seed, T, 2, 3, 4, dtype=np.dtype(dtype), regime="forget_open", resets="none")
    back = bptt_grads(prob)
    rng = np.random.default_rng(seed)
    g_c = np.zeros_like(back.g_c)                                                # (T, B, H)
    g_c[-1] = rng.standard_normal(g_c[-1].shape)
    full = bptt(prob.p, back.traj, prob.reset, g_c).grads
    short = drivers.tbptt(prob.p, back.traj, prob.reset, g_c, k, mode).grads
    whole = drivers.tbptt(prob.p, back.traj, prob.reset, g_c, T, mode).grads
    bias = judge([differs(f"bias grad.{n}", getattr(short, n), getattr(full, n), threshold)
                  for n in PARAM_FIELDS])
    return bias + compare_fields("k=T grad", whole, full, tolerance("exact", dtype))


# ---------------------------------------------------------------------------------------------
# every backend vs the NumPy reference (tolerance('kernel', dtype))


@contextmanager
def numba_layout(block_bytes: int | None = None, n_chunks: int | None = None):
    """Force the Numba kernels' blocking: the per-step kernel's block budget in bytes (blocks of
    at least 4 units) and the parallel variants' chunk count (at most the units, whatever the
    machine's thread count). Restored on exit."""
    from rtrl_ref.kernels import segment_numba, step_numba

    saved = step_numba.BLOCK_BYTES, step_numba.n_chunks_for, segment_numba.n_chunks_for

    def forced(n: int) -> int:
        return max(1, min(n, n_chunks))

    try:
        if block_bytes is not None:
            step_numba.BLOCK_BYTES = block_bytes
        if n_chunks is not None:
            step_numba.n_chunks_for = segment_numba.n_chunks_for = forced
        yield
    finally:
        step_numba.BLOCK_BYTES, step_numba.n_chunks_for, segment_numba.n_chunks_for = saved


def check_backend_step(backend, B: int, H: int, I: int, dtype, seed: int = 0,
                       pattern="random") -> list[Comparison]:
    """The fused per-step kernel trace_step_accumulate (Eq. 7-10 and the Eq. 9 accumulation)."""
    be = get_backend(backend)
    case = step_inputs(seed, B, H, I, dtype, pattern)
    want_S, want_G = get_backend("numpy").trace_step_accumulate(copy_tree(case.traces), case.cache,
                                                                 case.reset_t, case.g_c_t, copy_tree(case.grads))
    traces, cache, reset_t, g_c_t, grads = to_backend(backend, copy_tree(case.traces), case.cache, case.reset_t,
                                                      case.g_c_t, copy_tree(case.grads))
    got_S, got_G = be.trace_step_accumulate(traces, cache, reset_t, g_c_t, grads)
    tol = tolerance("kernel", dtype)
    return compare_fields("step traces", got_S, want_S, tol) + compare_fields("step grads", got_G, want_G, tol)


def check_backend_carried_pass(backend, T: int, B: int, H: int, I: int, dtype, seed: int = 0) -> list[Comparison]:
    """The segment form's carried pass (Eq. 14-15): gradients from S_in and carried-out traces."""
    be = get_backend(backend)
    case = carried_inputs(seed, T, B, H, I, dtype)
    want_G, want_S = get_backend("numpy").segment_carried_pass(copy_tree(case.traces_in), *case[1:])
    args = to_backend(backend, copy_tree(case.traces_in), *case[1:])
    got_G, got_S = be.segment_carried_pass(*args)
    tol = tolerance("kernel", dtype)
    return compare_fields("carried grads", got_G, want_G, tol) + compare_fields("carried traces", got_S, want_S, tol)


def check_backend_drivers(backend, B: int, H: int, I: int, T: int, dtype, seed: int = 0,
                          regime: str = "normal", resets: str = "random",
                          drivers: Drivers = LIBRARY) -> list[Comparison]:
    """The library drivers on `backend` vs NumPy on a random problem (see check_drivers_on)."""
    prob = make_problem(seed, T, B, I, H, dtype=np.dtype(dtype), regime=regime, resets=resets)
    return check_drivers_on(prob, backend, drivers, seed)


def check_drivers_on(prob: Problem, backend, drivers: Drivers = LIBRARY, seed: int = 0) -> list[Comparison]:
    """elstm_forward (c and the cell cache), bptt (gradients, g_x, g_c0), rtrl_segment (with and
    without overwrite_traces; without it the carried-in traces must come back untouched) and
    rtrl_sequence (gradients and carried-out traces, random carried-in traces) on `backend` vs the
    NumPy reference; the backward drivers all read the NumPy forward pass."""
    dtype = prob.x.dtype
    tol = tolerance("kernel", dtype)
    B, H, I = prob.x.shape[1], prob.p.W_z.shape[0], prob.x.shape[2]
    back = bptt_grads(prob)
    traces_in = random_traces(np.random.default_rng(seed + 1), B, H, I, dtype)
    c_ref, traj_ref = elstm_forward(prob.p, prob.x, prob.reset, prob.c_0)
    bptt_ref = bptt(prob.p, traj_ref, prob.reset, back.g_c)
    seg_ref = rtrl_segment(prob.p, traj_ref, prob.reset, back.g_c, copy_tree(traces_in))
    seq_ref = rtrl_sequence(traj_ref, prob.reset, back.g_c, copy_tree(traces_in))

    p, x, reset, c_0, traj, g_c = to_backend(backend, prob.p, prob.x, prob.reset, prob.c_0, traj_ref, back.g_c)
    c, traj_got = drivers.elstm_forward(p, x, reset, c_0, backend=backend)
    rows = [compare("forward c", c, c_ref, tol)] + compare_fields("forward cache", traj_got, traj_ref, tol)
    got = drivers.bptt(p, traj, reset, g_c, backend=backend)
    rows += compare_fields("bptt", dict(grads=got.grads, g_x=got.g_x, g_c0=got.g_c0),
                           dict(grads=bptt_ref.grads, g_x=bptt_ref.g_x, g_c0=bptt_ref.g_c0), tol)
    kept = to_backend(backend, copy_tree(traces_in))
    got = drivers.rtrl_segment(p, traj, reset, g_c, kept, backend=backend)
    rows += compare_fields("rtrl_segment grads", got.grads, seg_ref.grads, tol)
    rows += compare_fields("rtrl_segment traces", got.traces, seg_ref.traces, tol)
    rows += compare_fields("rtrl_segment leaves the carried-in traces", kept, traces_in, 0.0)
    got = drivers.rtrl_segment(p, traj, reset, g_c, to_backend(backend, copy_tree(traces_in)), backend=backend,
                               overwrite_traces=True)
    rows += compare_fields("rtrl_segment overwrite_traces grads", got.grads, seg_ref.grads, tol)
    rows += compare_fields("rtrl_segment overwrite_traces traces", got.traces, seg_ref.traces, tol)
    got = drivers.rtrl_sequence(traj, reset, g_c, to_backend(backend, copy_tree(traces_in)), backend=backend)
    rows += compare_fields("rtrl_sequence grads", got.grads, seq_ref.grads, tol)
    rows += compare_fields("rtrl_sequence traces", got.traces, seq_ref.traces, tol)
    return rows


# ---------------------------------------------------------------------------------------------
# V-trace


def check_vtrace(vtrace: Callable, inputs: Sequence, **bars) -> list[Comparison]:
    """vtrace(*inputs, **bars) vs the defining sums (verify.vtrace, Eq. 17), tolerance('exact')."""
    from verify.vtrace import vtrace_slow_reference

    fast = vtrace(*inputs, **bars)
    slow = vtrace_slow_reference(*inputs, **bars)
    tol = tolerance("exact", np.float64)
    return judge([measure("vs", fast.vs, slow.vs, tol),
                  measure("pg_advantages", fast.pg_advantages, slow.pg_advantages, tol)])
