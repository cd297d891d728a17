"""Deliberately wrong gradient functions: the negative twins of the audit's checks.

A check that cannot fail proves nothing, so the audit runs each check once more with one of
these in place of the shipped function, and passes only if the check then fails. They have the
signatures of the functions they replace (verify.audit_checks.Implementation); the mistakes
themselves are those of verify.mutants, fed to the shipped drivers:

    bptt_grads_no_wz_term          BPTT with J_t lacking gz_t * w_z (the paper's v1 Eq. 8/11 typo)
    rtrl_sequence_no_wz_term_for   the step form with the same Jacobian (given the parameters)
    rtrl_sequence_no_trace_reset   the step form that resets the cell but not the traces
    rtrl_sequence_late_reset       the step form that resets the traces one step late
    rtrl_segment_drop_carried      the segment form that ignores the carried-in traces
    tbptt_untruncated              a "truncated" BPTT that does not truncate
    tbptt_off_by_one               a window of k - 1 steps instead of k
"""

from __future__ import annotations

from rtrl_ref.bptt import bptt, tbptt
from rtrl_ref.rtrl import rtrl_segment, rtrl_sequence
from verify import mutants
from verify.problem import Backward, Problem, ProblemGrads, bptt_grads


def bptt_grads_no_wz_term(prob: Problem) -> Backward:
    good = bptt_grads(prob)
    back = bptt(prob.p, mutants.drop_wz_term(prob.p, good.traj), prob.reset, good.g_c)
    g = good.grads
    grads = ProblemGrads(back.grads, g.q, g.V, g.x - good.bptt.g_x + back.g_x, back.g_c0)
    return good._replace(grads=grads, bptt=back)


def rtrl_sequence_no_wz_term_for(p):
    """The step form with the wrong Jacobian for parameters p (signature of rtrl_sequence)."""
    def run(traj, reset, g_c, traces=None, backend="numpy"):
        return rtrl_sequence(mutants.drop_wz_term(p, traj), reset, g_c, traces, backend)
    return run


def rtrl_sequence_no_trace_reset(traj, reset, g_c, traces=None, backend="numpy"):
    return rtrl_sequence(traj, mutants.no_trace_reset(reset), g_c, traces, backend)


def rtrl_sequence_late_reset(traj, reset, g_c, traces=None, backend="numpy"):
    return rtrl_sequence(traj, mutants.reset_off_by_one(reset), g_c, traces, backend)


def rtrl_segment_drop_carried(p, traj, reset, g_c, traces=None, backend="numpy"):
    return rtrl_segment(p, traj, reset, g_c, None, backend)


def tbptt_untruncated(p, traj, reset, g_c, k, mode="window"):
    return bptt(p, traj, reset, g_c)


def tbptt_off_by_one(p, traj, reset, g_c, k, mode="window"):
    return tbptt(p, traj, reset, g_c, max(int(k) - 1, 1), mode)
