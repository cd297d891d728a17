"""Exact RTRL for the eLSTM: traces, the step form and the segment form.

Traces are the sensitivities of c_t to each parameter. Because the recurrence is element-wise,
dc_t[h]/dW_z[k, i] is zero for k != h, so only the diagonal block is kept (DESIGN.md section 2):

    S.W_z_t = J_t[:, None] * S.W_z_tm1 + dc_dzpre_t[:, None] * x_t[None, :]     (B, H, I)
    S.W_f_t = J_t[:, None] * S.W_f_tm1 + dc_dfpre_t[:, None] * x_t[None, :]     (B, H, I)
    S.w_z_t = J_t * S.w_z_tm1 + dc_dzpre_t * c_tm1      S.w_f_t likewise with dc_dfpre  (B, H)
    S.b_z_t = J_t * S.b_z_tm1 + dc_dzpre_t              S.b_f_t likewise                (B, H)

and the gradient is sum_t sum_b g_c[t, b] * S_t[b] with g_c the immediate gradient.
Every trace is zeroed with the cell at an episode start (`reset_state`).

Step form (`rtrl_sequence`): the recursion above, one step at a time; the only form that
supports a weight update after every single step (fully online learning).

Segment form (`rtrl_segment`): for an unroll of T steps whose immediate gradients are known,
with lam the BPTT adjoint inside the unroll, Jeff_t = J_t * (1 - reset_t) and
P_s = prod_{r=s+1..T-1} Jeff_r (0-based, P_{T-1} = 1):

    gradient = in-unroll BPTT gradient + sum_b (Jeff_0 * lam_0)[b, :, None] * S_in[b]
    S_out    = (Jeff_0 * P_0)[:, :, None] * S_in + sum_s (P_s * dc_dpre_s)[:, :, None] x_s[:, None, :]

two passes over the (B, H, I) traces plus GEMMs instead of 2T passes. Both forms are exact.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from rtrl_ref.bptt import BPTTResult, adjoint, backward_from_adjoint, check_upstream, effective_jacobian
from rtrl_ref.cell import CellCache, cache_at
from rtrl_ref.params import ELSTMParams
from rtrl_ref.validate import check_array
from rtrl_ref.xp import array_module


class Traces(NamedTuple):
    """RTRL traces: same field names as ELSTMParams, with a leading batch axis."""

    W_z: np.ndarray  # (B, H, I)
    W_f: np.ndarray  # (B, H, I)
    w_z: np.ndarray  # (B, H)
    w_f: np.ndarray  # (B, H)
    b_z: np.ndarray  # (B, H)
    b_f: np.ndarray  # (B, H)

    def copy(self) -> Traces:
        return Traces(*(a.copy() for a in self))


class RTRLState(NamedTuple):
    """Everything an RTRL agent carries from step to step."""

    c: np.ndarray    # (B, H) cell state c_t
    traces: Traces


def zero_traces(B: int, H: int, I: int, dtype=np.float32, xp=np) -> Traces:
    mat = lambda: xp.zeros((B, H, I), dtype)          # (B, H, I)
    vec = lambda: xp.zeros((B, H), dtype)             # (B, H)
    return Traces(mat(), mat(), vec(), vec(), vec(), vec())


def zero_state(B: int, H: int, I: int, dtype=np.float32, xp=np) -> RTRLState:
    return RTRLState(xp.zeros((B, H), dtype), zero_traces(B, H, I, dtype, xp))


def zero_grads(H: int, I: int, dtype=np.float32, xp=np) -> ELSTMParams:
    return ELSTMParams(xp.zeros((H, I), dtype), xp.zeros((H, I), dtype),
                       *(xp.zeros(H, dtype) for _ in range(4)))


def reset_state(state, reset_t):
    """Zero every field of `state` (an RTRLState or a Traces) for batch rows with reset_t True.

    The one reset function of the package: the cell and all six traces together.
    """
    xp = array_module(reset_t)
    keep = ~reset_t                                                   # (B,)

    def mask(a):
        return a * keep.reshape(keep.shape + (1,) * (a.ndim - 1)).astype(a.dtype)

    if isinstance(state, RTRLState):
        return RTRLState(mask(state.c), Traces(*(mask(a) for a in state.traces)))
    return type(state)(*(mask(a) for a in state))


def check_traces(name: str, traces: Traces, B: int, H: int, I: int, dtype):
    if not isinstance(traces, Traces):
        raise ValueError(f"{name}: expected a Traces container, got {type(traces).__name__}")
    for field in ("W_z", "W_f"):
        check_array(f"{name}.{field}", getattr(traces, field), (("B", B), ("H", H), ("I", I)), dtype)
    for field in ("w_z", "w_f", "b_z", "b_f"):
        check_array(f"{name}.{field}", getattr(traces, field), (("B", B), ("H", H)), dtype)
    return traces


# ---------------------------------------------------------------------------------------------
# Step form: NumPy reference


def trace_step(traces_tm1: Traces, cache: CellCache) -> Traces:
    """One step of the trace recursion (traces already reset for this step)."""
    J = cache.dc_dctm1                                                # (B, H)
    g_z, g_f = cache.dc_dzpre, cache.dc_dfpre                         # (B, H)
    x_t, c_tm1 = cache.x_t, cache.c_tm1                               # (B, I), (B, H)
    return Traces(
        W_z=J[:, :, None] * traces_tm1.W_z + g_z[:, :, None] * x_t[:, None, :],   # (B, H, I)
        W_f=J[:, :, None] * traces_tm1.W_f + g_f[:, :, None] * x_t[:, None, :],   # (B, H, I)
        w_z=J * traces_tm1.w_z + g_z * c_tm1,                                     # (B, H)
        w_f=J * traces_tm1.w_f + g_f * c_tm1,                                     # (B, H)
        b_z=J * traces_tm1.b_z + g_z,                                             # (B, H)
        b_f=J * traces_tm1.b_f + g_f,                                             # (B, H)
    )


def grads_from_traces(g_c_t, traces: Traces) -> ELSTMParams:
    """sum_b g_c_t[b] * S_t[b] for every parameter: dL_t/dtheta through the whole history."""
    return ELSTMParams(
        W_z=(g_c_t[:, :, None] * traces.W_z).sum(0),                 # (H, I)
        W_f=(g_c_t[:, :, None] * traces.W_f).sum(0),                 # (H, I)
        w_z=(g_c_t * traces.w_z).sum(0),                             # (H,)
        w_f=(g_c_t * traces.w_f).sum(0),                             # (H,)
        b_z=(g_c_t * traces.b_z).sum(0),                             # (H,)
        b_f=(g_c_t * traces.b_f).sum(0),                             # (H,)
    )


def trace_step_accumulate(traces: Traces, cache: CellCache, reset_t, g_c_t, grads: ELSTMParams):
    """Reset, trace update and gradient accumulation for one step (the fused kernel's contract).

    Returns (traces_t, grads + sum_b g_c_t[b] * traces_t[b]). Kernels of other backends may update
    `traces` and `grads` in place and return them; callers treat both inputs as consumed.
    """
    traces_t = trace_step(reset_state(traces, reset_t), cache)
    step_grads = grads_from_traces(g_c_t, traces_t)
    return traces_t, ELSTMParams(*(a + b for a, b in zip(grads, step_grads)))


# ---------------------------------------------------------------------------------------------
# Segment form: NumPy reference of the carried-trace pass


def segment_carried_pass(traces_in: Traces, coef_in, decay_in, u_z, u_f, x, c_tm1):
    """The part of the segment form that touches the (B, H, I) traces.

    coef_in  (B, H)    Jeff_0 * lam_0: how the carried-in traces enter the gradient
    decay_in (B, H)    Jeff_0 * P_0: how the carried-in traces survive to the end of the unroll
    u_z, u_f (T, B, H) P_s * dc_dzpre_s and P_s * dc_dfpre_s
    x (T, B, I), c_tm1 (T, B, H)
    Returns (carried_grads: ELSTMParams, traces_out: Traces). Kernels may reuse `traces_in`'s
    memory for traces_out.
    """
    S = traces_in
    g_vec, s_vec = segment_vector_pass(S.w_z, S.w_f, S.b_z, S.b_f, coef_in, decay_in, u_z, u_f, c_tm1)
    x_b = x.transpose(1, 0, 2)                                        # (B, T, I)
    grads = ELSTMParams(
        (coef_in[:, :, None] * S.W_z).sum(0),                        # (H, I)
        (coef_in[:, :, None] * S.W_f).sum(0),                        # (H, I)
        *g_vec)
    traces_out = Traces(
        decay_in[:, :, None] * S.W_z + u_z.transpose(1, 2, 0) @ x_b,  # (B, H, I)
        decay_in[:, :, None] * S.W_f + u_f.transpose(1, 2, 0) @ x_b,  # (B, H, I)
        *s_vec)
    return grads, traces_out


def segment_vector_pass(s_wz, s_wf, s_bz, s_bf, coef_in, decay_in, u_z, u_f, c_tm1):
    """The (B, H) traces' part of the segment form, shared by every backend (plain array code).

    Returns ((g_w_z, g_w_f, g_b_z, g_b_f) each (H,), (w_z, w_f, b_z, b_f) traces out each (B, H)).
    """
    grads = tuple((coef_in * s).sum(0) for s in (s_wz, s_wf, s_bz, s_bf))   # 4 x (H,)
    traces = (decay_in * s_wz + (u_z * c_tm1).sum(0),                 # (B, H)
              decay_in * s_wf + (u_f * c_tm1).sum(0),                 # (B, H)
              decay_in * s_bz + u_z.sum(0),                           # (B, H)
              decay_in * s_bf + u_f.sum(0))                           # (B, H)
    return grads, traces


# ---------------------------------------------------------------------------------------------
# Drivers (backend-independent)


class RTRLResult(NamedTuple):
    grads: ELSTMParams   # exact gradient of sum_t L_t over the whole history since the last reset
    traces: Traces       # traces after the last step (carry them into the next unroll)


class SegmentResult(NamedTuple):
    grads: ELSTMParams   # exact (untruncated) gradient, like RTRLResult.grads
    traces: Traces       # carried-out traces
    bptt: BPTTResult     # the in-unroll BPTT part (its g_x is the truncated input gradient)


def _prepare(traj: CellCache, reset, g_c, traces_in):
    check_upstream(traj, reset, g_c)
    T, B, H = traj.c_t.shape
    I = traj.x_t.shape[-1]
    xp = array_module(g_c)
    if traces_in is None:
        return zero_traces(B, H, I, g_c.dtype, xp)
    return check_traces("traces", traces_in, B, H, I, g_c.dtype)


def rtrl_sequence(traj: CellCache, reset, g_c, traces=None, backend: str = "numpy") -> RTRLResult:
    """Step form over a whole trajectory: T calls of the fused per-step update.

    traj from `elstm_forward`, reset (T, B), g_c (T, B, H) immediate gradients, traces the
    carried-in traces (zeros if None; never modified).
    """
    from rtrl_ref.kernels import get_backend

    be = get_backend(backend)
    traces = _prepare(traj, reset, g_c, traces).copy()
    T, B, H = traj.c_t.shape
    I = traj.x_t.shape[-1]
    grads = zero_grads(H, I, g_c.dtype, array_module(g_c))
    for t in range(T):
        traces, grads = be.trace_step_accumulate(traces, cache_at(traj, t), reset[t], g_c[t], grads)
    return RTRLResult(grads, traces)


def rtrl_segment(p: ELSTMParams, traj: CellCache, reset, g_c, traces=None,
                 backend: str = "numpy") -> SegmentResult:
    """Segment form over one unroll: exact gradient and carried-out traces (see module doc)."""
    from rtrl_ref.kernels import get_backend

    be = get_backend(backend)
    traces_in = _prepare(traj, reset, g_c, traces)
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
    carried, traces_out = be.segment_carried_pass(
        traces_in.copy(), coef_in, decay_in, u_z, u_f, traj.x_t, traj.c_tm1)
    grads = ELSTMParams(*(a + b for a, b in zip(inner.grads, carried)))
    return SegmentResult(grads, traces_out, inner)
