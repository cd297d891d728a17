"""Exact RTRL for the eLSTM: the step-form and segment-form drivers.

The traces and their NumPy reference operations are in `rtrl_ref.traces` (docs/derivation.md,
Eqs. 7-10); this module runs them over a trajectory on a backend (`rtrl_ref.kernels`).

Step form (`rtrl_sequence`): the trace recursion one step at a time; the only form that
supports a weight update after every single step (fully online learning).

Segment form (`rtrl_segment`, Eqs. 14-15): for an unroll of T steps whose immediate gradients are
known, with lam the BPTT adjoint inside the unroll (Eq. 12), Jeff_t = J_t * (1 - reset_t) and
P_s = prod_{r=s+1..T-1} Jeff_r (0-based, P_{T-1} = 1):

    gradient = in-unroll BPTT gradient + sum_b (Jeff_0 * lam_0)[b, :, None] * S_in[b]
    S_out    = (Jeff_0 * P_0)[:, :, None] * S_in + sum_s (P_s * dc_dpre_s)[:, :, None] x_s[:, None, :]

two passes over the (B, H, I) traces plus GEMMs instead of 2T passes. Both forms are exact.
"""

from __future__ import annotations

from typing import NamedTuple

from rtrl_ref.bptt import BPTTResult, adjoint, backward_from_adjoint, check_upstream, effective_jacobian
from rtrl_ref.cell import CellCache, cache_at
from rtrl_ref.kernels import Backend, get_backend
from rtrl_ref.params import ELSTMParams
from rtrl_ref.traces import Traces, check_traces, zero_grads, zero_traces
from rtrl_ref.xp import array_module


class RTRLResult(NamedTuple):
    grads: ELSTMParams   # exact gradient of sum_t L_t over the whole history since the last reset
    traces: Traces       # traces after the last step (carry them into the next unroll)


class SegmentResult(NamedTuple):
    grads: ELSTMParams   # exact (untruncated) gradient, like RTRLResult.grads
    traces: Traces       # carried-out traces
    bptt: BPTTResult     # the in-unroll BPTT part (its g_x is the truncated input gradient)


def _prepare(traj: CellCache, reset, g_c, traces_in):
    """Check the upstream gradient and the carried-in traces; zeros if traces_in is None.

    Cost: the finiteness scan of g_c (T, B, H) and of the (B, H) traces; the (B, H, I) traces are
    checked for shape and dtype only (see `rtrl_ref.traces.check_traces`)."""
    check_upstream(traj, reset, g_c)
    T, B, H = traj.c_t.shape
    I = traj.x_t.shape[-1]
    if traces_in is None:
        return zero_traces(B, H, I, g_c.dtype, array_module(g_c))
    return check_traces("traces", traces_in, B, H, I, g_c.dtype)


def rtrl_sequence(traj: CellCache, reset, g_c, traces=None, backend: str | Backend = "numpy") -> RTRLResult:
    """Step form over a whole trajectory: T calls of the fused per-step update (Eqs. 7-10).

    traj from `elstm_forward`, reset (T, B), g_c (T, B, H) immediate gradients, traces the
    carried-in traces (zeros if None; never modified).
    """
    be = get_backend(backend)
    traces = _prepare(traj, reset, g_c, traces).copy()
    T, B, H = traj.c_t.shape
    I = traj.x_t.shape[-1]
    grads = zero_grads(H, I, g_c.dtype, array_module(g_c))
    for t in range(T):
        traces, grads = be.trace_step_accumulate(traces, cache_at(traj, t), reset[t], g_c[t], grads)
    return RTRLResult(grads, traces)


def rtrl_segment(p: ELSTMParams, traj: CellCache, reset, g_c, traces=None,
                 backend: str | Backend = "numpy", overwrite_traces: bool = False) -> SegmentResult:
    """Segment form over one unroll: exact gradient and carried-out traces (see module doc).

    traces: the carried-in traces (zeros if None). They are never modified unless
    overwrite_traces=True, which lets a backend whose trace operations work in place reuse their
    memory for the carried-out traces (no copy of the (B, H, I) arrays; the caller gives them up).
    """
    be = get_backend(backend)
    traces_in = _prepare(traj, reset, g_c, traces)
    if be.traces_in_place and traces is not None and not overwrite_traces:
        traces_in = traces_in.copy()
    if be.segment_unroll is not None:
        inner_grads, g_x, g_c0, lam, carried, traces_out = be.segment_unroll(p, traj, reset, g_c, traces_in)
        inner = BPTTResult(inner_grads, g_x, g_c0, lam)
    else:
        inner, carried, traces_out = _segment_reference(be, p, traj, reset, g_c, traces_in)
    grads = ELSTMParams(*(a + b for a, b in zip(inner.grads, carried)))
    return SegmentResult(grads, traces_out, inner)


def _segment_reference(be: Backend, p: ELSTMParams, traj: CellCache, reset, g_c, traces_in: Traces):
    """Eqs. 12-15 in plain array code; the carried pass on the backend. (inner, carried, traces_out)"""
    xp = array_module(g_c)
    lam = adjoint(traj, reset, g_c)                                   # (T, B, H)
    inner = backward_from_adjoint(p, traj, reset, lam)
    j_eff = effective_jacobian(traj, reset)                           # (T, B, H)
    T = g_c.shape[0]
    P = xp.empty_like(j_eff)                                          # (T, B, H)
    P[T - 1] = 1
    for s in range(T - 2, -1, -1):
        P[s] = P[s + 1] * j_eff[s + 1]
    coef_in = j_eff[0] * lam[0]                                       # (B, H)
    decay_in = j_eff[0] * P[0]                                        # (B, H)
    u_z = P * traj.dc_dzpre                                           # (T, B, H)
    u_f = P * traj.dc_dfpre                                           # (T, B, H)
    carried, traces_out = be.segment_carried_pass(traces_in, coef_in, decay_in, u_z, u_f,
                                                  traj.x_t, traj.c_tm1)
    return inner, carried, traces_out

