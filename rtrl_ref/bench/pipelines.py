"""Fast CPU pipelines for one unroll, built from the kernels: what the benchmark times.

Both learners get the same building blocks, so the comparison is like with like:

    forward      pre = x @ [W_z ; W_f]^T (one GEMM over T*B rows), then the element-wise recurrence
                 (`forward_numba.forward_recurrence`, or a per-step NumPy loop: whichever is faster)
    bptt         adjoint sweep (`adjoint_numba.bptt_adjoint`), weight-gradient GEMM
                 g_pre^T @ x (2H x TB) @ (TB x I), input-gradient GEMM g_pre @ [W_z ; W_f]
    rtrl         segment form (DESIGN.md section 2): coefficient sweep
                 (`adjoint_numba.segment_coefficients`), the same two GEMMs, and the carried-trace
                 pass (`segment_numba.carry_traces`: one (2H x T) @ (T x I) GEMM per batch element)
    step loop    T calls of the fused per-step kernel (the step form)

Each returns what the library's reference returns (checked in `rtrl_ref.bench.checks`).
"""

from __future__ import annotations

import numpy as np

from rtrl_ref.cell import CellCache, cache_at
from rtrl_ref.kernels.adjoint_numba import bptt_adjoint, segment_coefficients
from rtrl_ref.kernels.forward_numba import forward_recurrence
from rtrl_ref.kernels.segment_numba import carry_traces
from rtrl_ref.params import ELSTMParams
from rtrl_ref.rtrl import Traces
from rtrl_ref.xp import sigmoid


def stacked_weights(p: ELSTMParams) -> np.ndarray:
    return np.ascontiguousarray(np.concatenate([p.W_z, p.W_f]))      # (2H, I)


def keep_mask(reset) -> np.ndarray:
    return (~reset).astype(np.float64)                                # (T, B)


def forward_numba(p: ELSTMParams, W, x, keep, c_0) -> CellCache:
    """One input GEMM, then the Numba recurrence; returns the trajectory cache."""
    T, B, I = x.shape
    H = p.W_z.shape[0]
    dt = x.dtype
    pre = (x.reshape(T * B, I) @ W.T).reshape(T, B, 2 * H)            # (T, B, 2H)
    out = [np.empty((T, B, H), dt) for _ in range(7)]                 # 7 x (T, B, H)
    forward_recurrence(pre, p.w_z, p.w_f, p.b_z, p.b_f, keep.astype(dt), c_0,
                       dt.type(1), dt.type(0.5), *out)
    return CellCache(x, *out)


def forward_numpy(p: ELSTMParams, W, x, keep, c_0) -> CellCache:
    """One input GEMM, then a per-step NumPy loop over (B, H) (SIMD tanh, T Python steps)."""
    T, B, I = x.shape
    H = p.W_z.shape[0]
    dt = x.dtype
    pre = (x.reshape(T * B, I) @ W.T).reshape(T, B, 2 * H)            # (T, B, 2H)
    out = [np.empty((T, B, H), dt) for _ in range(7)]                 # 7 x (T, B, H)
    c_tm1_all, z_all, f_all, c_all, dz_all, df_all, j_all = out
    keep = keep.astype(dt)
    c_prev = c_0
    for t in range(T):
        c_tm1 = c_prev * keep[t][:, None]                             # (B, H)
        z_t = np.tanh(pre[t, :, :H] + p.w_z * c_tm1 + p.b_z)           # (B, H)
        f_t = sigmoid(pre[t, :, H:] + p.w_f * c_tm1 + p.b_f)           # (B, H)
        c_tm1_all[t] = c_tm1
        z_all[t] = z_t
        f_all[t] = f_t
        np.multiply(f_t, c_tm1 - z_t, out=c_all[t])
        c_all[t] += z_t
        np.multiply(1 - f_t, 1 - z_t * z_t, out=dz_all[t])
        np.multiply((c_tm1 - z_t) * f_t, 1 - f_t, out=df_all[t])
        np.multiply(dz_all[t], p.w_z, out=j_all[t])
        j_all[t] += f_t + df_all[t] * p.w_f
        c_prev = c_all[t]
    return CellCache(x, *out)


def _vec_grads(G, g_vec, H) -> ELSTMParams:
    return ELSTMParams(G[:H], G[H:], g_vec[0], g_vec[1], g_vec[2], g_vec[3])


def bptt_backward(W, traj: CellCache, keep, g_c):
    """Full BPTT over the unroll from its trajectory: (grads, g_x (T, B, I), lam (T, B, H))."""
    T, B, H = g_c.shape
    I = traj.x_t.shape[-1]
    dt = g_c.dtype
    lam = np.empty((T, B, H), dt)                                     # (T, B, H)
    g_pre = np.empty((T, B, 2 * H), dt)                               # (T, B, 2H)
    g_vec = np.empty((4, H), dt)                                      # (4, H)
    bptt_adjoint(g_c, keep.astype(dt), traj.c_tm1, traj.dc_dzpre, traj.dc_dfpre, traj.dc_dctm1,
                 lam, g_pre, g_vec)
    g_pre_2d = g_pre.reshape(T * B, 2 * H)                            # (TB, 2H)
    G = g_pre_2d.T @ traj.x_t.reshape(T * B, I)                       # (2H, I)
    g_x = (g_pre_2d @ W).reshape(T, B, I)                             # (T, B, I)
    return _vec_grads(G, g_vec, H), g_x, lam


def rtrl_backward(W, traj: CellCache, keep, g_c, traces: Traces, parallel: bool = False,
                  input_grad: bool = True):
    """Segment-form exact RTRL over the unroll: (grads, g_x, traces_out); traces updated in place.

    input_grad=False skips the input-gradient GEMM (g_x is None): the same outputs as the step
    form (gradients and traces), for a like-for-like comparison with the step loop."""
    T, B, H = g_c.shape
    I = traj.x_t.shape[-1]
    dt = g_c.dtype
    g_pre = np.empty((T, B, 2 * H), dt)                               # (T, B, 2H)
    g_vec = np.empty((4, H), dt)                                      # (4, H)
    V = np.empty((B, T, 2 * H), dt)                                   # (B, T, 2H) [u_z, u_f]
    coef_in = np.empty((B, H), dt)                                    # (B, H)
    decay_in = np.empty((B, H), dt)                                   # (B, H)
    u_sums = np.empty((4, B, H), dt)                                  # (4, B, H)
    segment_coefficients(g_c, keep.astype(dt), traj.c_tm1, traj.dc_dzpre, traj.dc_dfpre,
                         traj.dc_dctm1, dt.type(1), g_pre, g_vec, V, coef_in, decay_in, u_sums)
    g_pre_2d = g_pre.reshape(T * B, 2 * H)                            # (TB, 2H)
    G = g_pre_2d.T @ traj.x_t.reshape(T * B, I)                       # (2H, I)
    g_x = (g_pre_2d @ W).reshape(T, B, I) if input_grad else None     # (T, B, I)
    G_Wz, G_Wf = carry_traces(traces.W_z, traces.W_f, coef_in, decay_in, V.transpose(0, 2, 1),
                              traj.x_t, parallel)
    G[:H] += G_Wz
    G[H:] += G_Wf
    S = traces
    grads = ELSTMParams(
        G[:H], G[H:],
        g_vec[0] + (coef_in * S.w_z).sum(0),                          # (H,)
        g_vec[1] + (coef_in * S.w_f).sum(0),                          # (H,)
        g_vec[2] + (coef_in * S.b_z).sum(0),                          # (H,)
        g_vec[3] + (coef_in * S.b_f).sum(0),                          # (H,)
    )
    traces_out = Traces(S.W_z, S.W_f,
                        decay_in * S.w_z + u_sums[0],                 # (B, H)
                        decay_in * S.w_f + u_sums[1],                 # (B, H)
                        decay_in * S.b_z + u_sums[2],                 # (B, H)
                        decay_in * S.b_f + u_sums[3])                 # (B, H)
    return grads, g_x, traces_out


def step_loop(step_kernel, traj: CellCache, reset, g_c, traces: Traces, grads: ELSTMParams):
    """T calls of a fused per-step kernel (step form); traces and grads updated in place."""
    for t in range(g_c.shape[0]):
        traces, grads = step_kernel(traces, cache_at(traj, t), reset[t], g_c[t], grads)
    return grads, traces
