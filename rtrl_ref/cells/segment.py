"""Segment-form RTRL for any `Cell` (docs/derivation.md, section 10.6, Eqs. 40-42), NumPy.

Over a segment of T steps whose immediate gradients g_s (T, B, H) are all known, with lam the BPTT
adjoint inside the segment, Jeff_t = J_t * (1 - reset_t) and P_s = prod_{r=s+1..T-1} Jeff_r (0-based,
P_{T-1} = 1):

    gradient = in-segment BPTT gradient + sum_b < Jeff_0^* lam_0 [b], S_in[b] >          Eq. 40
    S_out    = (Jeff_0 * P_0) * S_in + sum_s P_s * D_s                                    Eq. 41
    sum_s P_s * D_s = sum_s (P_s * a_s)[:, :, None] * x_s[:, None, :]   (matrix fields)   Eq. 42

D_s = a_s x_s^T is the cell's `local_factors`, so the sum over s is B GEMMs (H, T) @ (T, I) per
matrix field: one pass over the (B, H, I) traces for the contraction of Eq. 40 and one for the decay
of Eq. 41, instead of the step form's several passes at every step. The result (gradient, state,
traces) is that of `rtrl_sequence` over the same segment, to round-off; consecutive calls continue
one another exactly. The step form stays the reference and the only form with an update after every
step.
"""

from __future__ import annotations

import numpy as np

from rtrl_ref.cells.drivers import RTRLResult, Trajectory, bptt, check_g_s, check_sequence, check_traces, forward
from rtrl_ref.cells.interface import Cell, add_grads, mask_rows, per_unit


def effective_jacobians(cell: Cell, traj: Trajectory, reset) -> np.ndarray:
    """Jeff_t = J_t * (1 - reset_t) for every step (Eq. 10): (T, B, H)."""
    return np.stack([mask_rows(cell.jacobian(cache), reset_t) for cache, reset_t in zip(traj.caches, reset)])


def survival(j_eff) -> tuple[np.ndarray, np.ndarray]:
    """P_s = prod_{r=s+1..T-1} Jeff_r (T, B, H), the factor by which a contribution of step s reaches the
    segment's end, and prod_{r=0..T-1} Jeff_r = Jeff_0 * P_0 (B, H), that of the carried-in traces."""
    P = np.empty_like(j_eff)                                          # (T, B, H)
    P[-1] = 1
    for s in range(j_eff.shape[0] - 2, -1, -1):
        P[s] = P[s + 1] * j_eff[s + 1]
    return P, j_eff[0] * P[0]                                         # (T, B, H), (B, H)


def outer_sum(u, x) -> np.ndarray:
    """sum_s u[s, b, :, None] * x[s, b, None, :] as B GEMMs (H, T) @ (T, I): u (T, B, H), x (T, B, I) real.
    A complex u takes two real GEMMs (x is real)."""
    x_b = np.ascontiguousarray(x.transpose(1, 0, 2))                  # (B, T, I)
    u_b = u.transpose(1, 2, 0)                                        # (B, H, T)
    if not np.iscomplexobj(u):
        return np.ascontiguousarray(u_b) @ x_b                        # (B, H, I)
    out = np.empty(u_b.shape[:2] + x_b.shape[2:], u.dtype)            # (B, H, I) complex
    out.real = np.ascontiguousarray(u_b.real) @ x_b
    out.imag = np.ascontiguousarray(u_b.imag) @ x_b
    return out


def carry_traces(cell: Cell, p, traj: Trajectory, x, j_eff, traces_in):
    """The traces at the segment's end (Eqs. 41-42) from the carried-in traces_in and the caches of `traj`."""
    P, decay_in = survival(j_eff)                                     # (T, B, H), (B, H)
    factors = [cell.local_factors(p, cache) for cache in traj.caches]
    out = []
    for k, (w, S_in) in enumerate(zip(p, traces_in)):
        u = P * np.stack([f[k] for f in factors])                     # (T, B, H) P_s * a_s (or P_s * D_s)
        inner = outer_sum(u, x) if w.ndim == 2 else u.sum(0)          # (B, H, I) or (B, H)
        out.append(per_unit(decay_in, S_in) * S_in + inner)
    return type(traces_in)(*out)


def rtrl_segment(cell: Cell, p, x, reset, g_s, s_0=None, traces=None) -> RTRLResult:
    """Segment-form RTRL over x (T, B, I): the exact gradient of sum_t <g_s[t], s_t> (g_s (T, B, H)) over
    the whole history since the last reset, the state and the traces after the last step, from the
    carried-in state s_0 and traces (zeros if None; never modified). Same result as `rtrl_sequence`."""
    T, B, _, H = check_sequence(cell, p, x, reset, s_0)
    check_g_s(cell, p, g_s, T, B, H)
    traces_in = cell.zero_traces(p, B) if traces is None else check_traces(cell, p, traces, B)
    traj = forward(cell, p, x, reset, s_0)
    inner = bptt(cell, p, traj, reset, g_s)                           # in-segment part; g_s0 = Jeff_0^* lam_0
    grads = add_grads(inner.grads, cell.grads_from_traces(inner.g_s0, traces_in))            # Eq. 40
    traces_out = carry_traces(cell, p, traj, x, effective_jacobians(cell, traj, reset), traces_in)   # Eq. 41
    return RTRLResult(grads, traj.s[-1], traces_out)
