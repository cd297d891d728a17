"""RTRL traces: their containers and the NumPy reference of the two trace operations.

Traces are the sensitivities of c_t to each parameter. Because the recurrence is element-wise,
dc_t[h]/dW_z[k, i] is zero for k != h, so only the diagonal block is kept
(docs/derivation.md, Eqs. 7-8):

    S.W_z_t = J_t[:, None] * S.W_z_tm1 + dc_dzpre_t[:, None] * x_t[None, :]     (B, H, I)
    S.W_f_t = J_t[:, None] * S.W_f_tm1 + dc_dfpre_t[:, None] * x_t[None, :]     (B, H, I)
    S.w_z_t = J_t * S.w_z_tm1 + dc_dzpre_t * c_tm1      S.w_f_t likewise with dc_dfpre  (B, H)
    S.b_z_t = J_t * S.b_z_tm1 + dc_dzpre_t              S.b_f_t likewise                (B, H)

and the gradient is sum_t sum_b g_c[t, b] * S_t[b] with g_c the immediate gradient (Eq. 9).
Every trace is zeroed with the cell at an episode start (`reset_state`, Eq. 10).

The two operations every backend provides (`rtrl_ref.kernels.Backend`), whose NumPy references
are here: `trace_step_accumulate` (one step of the step form) and `segment_carried_pass` (the
part of the segment form, Eqs. 14-15, that touches the (B, H, I) traces). The drivers that use
them are in `rtrl_ref.rtrl`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from rtrl_ref.cell import CellCache
from rtrl_ref.params import ELSTMParams
from rtrl_ref.validate import check_array, check_memory


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
    check_memory("zero_traces", 2 * B * H * I * np.dtype(dtype).itemsize,
                 f"the 2 matrix traces of (B, H, I) = ({B}, {H}, {I}) {np.dtype(dtype)}", xp)
    W_z = xp.zeros((B, H, I), dtype)                                  # (B, H, I)
    W_f = xp.zeros((B, H, I), dtype)                                  # (B, H, I)
    return Traces(W_z, W_f, *(xp.zeros((B, H), dtype) for _ in range(4)))   # 4 x (B, H)


def zero_state(B: int, H: int, I: int, dtype=np.float32, xp=np) -> RTRLState:
    return RTRLState(xp.zeros((B, H), dtype), zero_traces(B, H, I, dtype, xp))   # c (B, H)


def zero_grads(H: int, I: int, dtype=np.float32, xp=np) -> ELSTMParams:
    return ELSTMParams(xp.zeros((H, I), dtype), xp.zeros((H, I), dtype),   # 2 x (H, I)
                       *(xp.zeros(H, dtype) for _ in range(4)))             # 4 x (H,)


def reset_state(state, reset_t):
    """Zero every field of `state` (an RTRLState or a Traces) for batch rows with reset_t True.

    The one reset function of the package: the cell and all six traces together (Eq. 10).
    """
    keep = ~reset_t                                                   # (B,)

    def mask(a):
        return a * keep.reshape(keep.shape + (1,) * (a.ndim - 1)).astype(a.dtype)

    if isinstance(state, RTRLState):
        return RTRLState(mask(state.c), Traces(*(mask(a) for a in state.traces)))
    return type(state)(*(mask(a) for a in state))


def check_traces(name: str, traces: Traces, B: int, H: int, I: int, dtype) -> Traces:
    """Type, shapes and dtype of every field; finiteness of the (B, H) fields only.

    The (B, H, I) matrices are not scanned for NaN/Inf: a scan reads 2 B H I numbers, a large
    share of what the trace operation itself moves, and a non-finite carried-in trace cannot go
    unnoticed anyway: it reaches the gradient (0 * NaN is NaN), which callers check.
    """
    if not isinstance(traces, Traces):
        raise ValueError(f"{name}: expected a Traces container, got {type(traces).__name__}")
    for field in ("W_z", "W_f"):
        check_array(f"{name}.{field}", getattr(traces, field), (("B", B), ("H", H), ("I", I)), dtype,
                    finite=False)
    for field in ("w_z", "w_f", "b_z", "b_f"):
        check_array(f"{name}.{field}", getattr(traces, field), (("B", B), ("H", H)), dtype)
    return traces


# ---------------------------------------------------------------------------------------------
# Step form (docs/derivation.md, Eqs. 7-10): NumPy reference


def trace_step(traces_tm1: Traces, cache: CellCache) -> Traces:
    """One step of the trace recursion, Eqs. 7-8 (traces already reset for this step)."""
    J = cache.dc_dctm1                                                # (B, H)
    dc_dzpre, dc_dfpre = cache.dc_dzpre, cache.dc_dfpre               # (B, H)
    x_t, c_tm1 = cache.x_t, cache.c_tm1                               # (B, I), (B, H)
    return Traces(
        W_z=J[:, :, None] * traces_tm1.W_z + dc_dzpre[:, :, None] * x_t[:, None, :],   # (B, H, I)
        W_f=J[:, :, None] * traces_tm1.W_f + dc_dfpre[:, :, None] * x_t[:, None, :],   # (B, H, I)
        w_z=J * traces_tm1.w_z + dc_dzpre * c_tm1,                                     # (B, H)
        w_f=J * traces_tm1.w_f + dc_dfpre * c_tm1,                                     # (B, H)
        b_z=J * traces_tm1.b_z + dc_dzpre,                                             # (B, H)
        b_f=J * traces_tm1.b_f + dc_dfpre,                                             # (B, H)
    )


def grads_from_traces(g_c_t, traces: Traces) -> ELSTMParams:
    """sum_b g_c_t[b] * S_t[b] for every parameter (Eq. 9): dL_t/dtheta through the whole history."""
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
# Segment form (docs/derivation.md, Eqs. 14-15): NumPy reference of the carried-trace pass


def segment_carried_pass(traces_in: Traces, coef_in, decay_in, u_z, u_f, x, c_tm1):
    """The part of the segment form that touches the carried-in traces (Eqs. 14-15).

    coef_in  (B, H)    Jeff_0 * lam_0: how the carried-in traces enter the gradient
    decay_in (B, H)    Jeff_0 * P_0: how the carried-in traces survive to the end of the unroll
    u_z, u_f (T, B, H) P_s * dc_dzpre_s and P_s * dc_dfpre_s
    x (T, B, I), c_tm1 (T, B, H)
    Returns (carried_grads: ELSTMParams, traces_out: Traces). Kernels may reuse `traces_in`'s
    memory for traces_out; this reference does not.
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
    u_sums = ((u_z * c_tm1).sum(0), (u_f * c_tm1).sum(0), u_z.sum(0), u_f.sum(0))   # 4 x (B, H)
    return carried_vector_pass((s_wz, s_wf, s_bz, s_bf), coef_in, decay_in, u_sums)


def carried_vector_pass(s_vec, coef_in, decay_in, u_sums):
    """Eqs. 14-15 for the four (B, H) traces, given u_sums = (sum_s u_z c_tm1, sum_s u_f c_tm1,
    sum_s u_z, sum_s u_f), each (B, H). Returns (4 gradients (H,), 4 traces out (B, H))."""
    grads = tuple((coef_in * s).sum(0) for s in s_vec)                # 4 x (H,)
    traces = tuple(decay_in * s + u for s, u in zip(s_vec, u_sums))   # 4 x (B, H)
    return grads, traces


__all__ = [
    "Traces", "RTRLState", "zero_traces", "zero_state", "zero_grads", "reset_state", "check_traces",
    "trace_step", "grads_from_traces", "trace_step_accumulate", "segment_carried_pass",
    "segment_vector_pass", "carried_vector_pass",
]
