"""Deliberately wrong implementations: the negative twins of verify.checks.

A check that cannot fail proves nothing, so each check is run once more with one of these in
place of the shipped code, and must then fail. The mistakes are those of verify.mutants, fed to
the shipped drivers (same signatures as the functions they replace, see verify.checks.Drivers),
or broken kernel backends for the per-backend checks:

    bptt_grads_no_wz_term          BPTT with J_t lacking dc_dzpre * w_z (the paper's first arXiv version)
    mutant_drivers(name, p)        step and segment forms fed a mistake of verify.mutants: the same
                                   Jacobian, traces not reset, traces reset one step late
    rtrl_segment_drop_carried      the segment form that ignores the carried-in traces
    tbptt_untruncated              a "truncated" BPTT that does not truncate
    tbptt_off_by_one               a window of k - 1 steps instead of k
    off_by(eps)                    Drivers whose every float output is scaled by (1 + eps)
    backend_skipping_reset(b)      a kernel backend whose per-step kernel ignores reset_t
    backend_undecayed_carried(b)   a kernel backend whose carried pass does not decay S_in
    row_leak_drivers()             BPTT and the step form with batch row 0's input leaking into row 1
    backend_row_leak(b)            a kernel backend whose per-step kernel reads row 0's x_t into row 1
"""

from __future__ import annotations

from rtrl_ref import bptt, rtrl_segment, tbptt
from rtrl_ref.kernels import get_backend
from verify import mutants
from verify.checks import LIBRARY, Drivers
from verify.problem import Backward, Problem, ProblemGrads, bptt_grads


def bptt_grads_no_wz_term(prob: Problem) -> Backward:
    good = bptt_grads(prob)
    back = bptt(prob.p, mutants.drop_wz_term(prob.p, good.traj), prob.reset, good.g_c)
    g = good.grads
    grads = ProblemGrads(back.grads, g.q, g.V, g.x - good.bptt.g_x + back.g_x, back.g_c0)
    return good._replace(grads=grads, bptt=back)


def mutant_drivers(name: str, p, drivers: Drivers = LIBRARY) -> Drivers:
    """Drivers whose step and segment forms see mistake `name` of verify.mutants (given parameters p)."""
    def seq(traj, reset, g_c, traces=None, backend="numpy"):
        traj, reset = mutants.mutate(name, p, traj, reset)
        return drivers.rtrl_sequence(traj, reset, g_c, traces, backend=backend)

    def seg(p_, traj, reset, g_c, traces=None, backend="numpy"):
        traj, reset = mutants.mutate(name, p, traj, reset)
        return drivers.rtrl_segment(p_, traj, reset, g_c, traces, backend=backend)

    return drivers._replace(rtrl_sequence=seq, rtrl_segment=seg)


def rtrl_segment_drop_carried(p, traj, reset, g_c, traces=None, backend="numpy"):
    return rtrl_segment(p, traj, reset, g_c, None, backend=backend)


def tbptt_untruncated(p, traj, reset, g_c, k, mode="window"):
    return bptt(p, traj, reset, g_c)


def tbptt_off_by_one(p, traj, reset, g_c, k, mode="window"):
    return tbptt(p, traj, reset, g_c, max(int(k) - 1, 1), mode)


def scale_floats(tree, factor):
    """Every floating array of a result (NamedTuples and tuples of arrays) times `factor`."""
    if isinstance(tree, tuple):
        items = [scale_floats(a, factor) for a in tree]
        return type(tree)(*items) if hasattr(tree, "_fields") else tuple(items)
    if getattr(tree, "dtype", None) is not None and tree.dtype.kind == "f":
        return tree * factor
    return tree


def off_by(eps: float, drivers: Drivers = LIBRARY) -> Drivers:
    """Drivers whose outputs are all off by a relative eps (e.g. 10x a kernel tolerance)."""
    def scaled(fn):
        def run(*args, **kwargs):
            return scale_floats(fn(*args, **kwargs), 1 + eps)
        return run
    return Drivers(*(scaled(fn) for fn in drivers))


def segment_always_overwriting(drivers: Drivers = LIBRARY) -> Drivers:
    """Drivers whose rtrl_segment reuses the caller's traces even when not allowed to
    (overwrite_traces forced True): on an in-place backend the caller's traces change."""
    def rtrl_segment(*args, **kwargs):
        kwargs["overwrite_traces"] = True
        return drivers.rtrl_segment(*args, **kwargs)
    return drivers._replace(rtrl_segment=rtrl_segment)


def backend_skipping_reset(backend):
    """The backend object of `backend` whose per-step kernel never resets the traces."""
    be = get_backend(backend)

    def trace_step_accumulate(traces, cache, reset_t, g_c_t, grads):
        return be.trace_step_accumulate(traces, cache, reset_t != reset_t, g_c_t, grads)   # (B,) all False

    return be._replace(trace_step_accumulate=trace_step_accumulate)


def backend_undecayed_carried(backend):
    """The backend object of `backend` whose carried pass keeps S_in undecayed (decay_in = 1)."""
    be = get_backend(backend)

    def segment_carried_pass(traces_in, coef_in, decay_in, u_z, u_f, x, c_tm1):
        return be.segment_carried_pass(traces_in, coef_in, decay_in * 0 + 1, u_z, u_f, x, c_tm1)

    return be._replace(segment_carried_pass=segment_carried_pass)


def leak_rows(a):
    """a (T, B, ...) or (B, ...) with batch row 0 added into row 1 (needs B >= 2): the values a
    kernel would see if it indexed a neighbour's row (e.g. `x_t[b]` for `x_t[b + 1]`)."""
    axis = 1 if a.ndim == 3 else 0
    leaked = a.copy()
    dst = [slice(None)] * a.ndim
    src = [slice(None)] * a.ndim
    dst[axis], src[axis] = 1, 0
    leaked[tuple(dst)] += a[tuple(src)]
    return leaked


def row_leak_drivers(drivers: Drivers = LIBRARY) -> Drivers:
    """Drivers whose BPTT (problem_grads) and step form (rtrl_sequence) see row 0's input in row 1."""
    def problem_grads(prob: Problem) -> Backward:
        return drivers.problem_grads(prob._replace(x=leak_rows(prob.x)))

    def rtrl_sequence(traj, reset, g_c, traces=None, backend="numpy"):
        return drivers.rtrl_sequence(traj._replace(x_t=leak_rows(traj.x_t)), reset, g_c, traces, backend=backend)

    return drivers._replace(problem_grads=problem_grads, rtrl_sequence=rtrl_sequence)


def backend_row_leak(backend):
    """The backend object of `backend` whose per-step kernel adds row 0's x_t into row 1's."""
    be = get_backend(backend)

    def trace_step_accumulate(traces, cache, reset_t, g_c_t, grads):
        return be.trace_step_accumulate(traces, cache._replace(x_t=leak_rows(cache.x_t)), reset_t, g_c_t, grads)

    return be._replace(trace_step_accumulate=trace_step_accumulate)
