"""Backward sweeps over one unroll (Numba): the BPTT adjoint and the segment-form coefficients.

Reproduce `rtrl_ref.bptt.adjoint` + the element-wise part of `rtrl_ref.cell.cell_step_backward`
(docs/derivation.md, Eqs. 12-13), and the coefficient part of `rtrl_ref.rtrl.rtrl_segment`
(Eqs. 14-15). With Jeff_t = keep_t * J_t (Eq. 10):

    lam_{T-1} = g_c[T-1],   lam_t = g_c[t] + Jeff_{t+1} lam_{t+1}
    g_pre[t]  = [lam_t dc_dzpre_t ; lam_t dc_dfpre_t]                    (T, B, 2H) for one GEMM
    g_vec     = [sum lam dc_dzpre c_tm1, sum lam dc_dfpre c_tm1, sum lam dc_dzpre, sum lam dc_dfpre]

and, for the segment form only, P_s = prod_{r=s+1..T-1} Jeff_r:

    V[b, s, :H] = P_s dc_dzpre_s,   V[b, s, H:] = P_s dc_dfpre_s         (B, T, 2H)
    coef_in = Jeff_0 lam_0,   decay_in = Jeff_0 P_0                          (B, H)
    u_sums  = [sum_s u_z c_tm1, sum_s u_f c_tm1, sum_s u_z, sum_s u_f]       (4, B, H)

One sweep backwards over t, b next, and for each (t, b) a few short loops over the H units that
LLVM vectorises (one loop touching every array exceeds its alias-check budget and stays scalar).
V keeps H innermost, so every write is contiguous; V[b].T is the (2H, T) operand of element b's
carried-pass GEMM (`segment_numba.carry_traces`), which BLAS reads as a transposed matrix. The
segment sweep keeps Jeff_{t+1} lam_{t+1} and P_t in coef_in and decay_in as it goes: after step
t = 0 they hold exactly those outputs. Timings: docs/performance.md.

`bptt_unroll` is the numba backend's `bptt_unroll` (the adjoint sweep + the two GEMMs of Eq. 13).
"""

from __future__ import annotations

import numba
import numpy as np

from rtrl_ref.cell import CellCache
from rtrl_ref.kernels.numba_config import JIT
from rtrl_ref.params import ELSTMParams


@numba.njit(**JIT)
def _accumulate_sums(s0, s1, s2, s3, a_z, a_f, c):
    """s0 += a_z c,  s1 += a_f c,  s2 += a_z,  s3 += a_f   (rows of H)."""
    for h in range(c.shape[0]):
        z = a_z[h]
        f = a_f[h]
        s0[h] += z * c[h]
        s1[h] += f * c[h]
        s2[h] += z
        s3[h] += f


@numba.njit(**JIT)
def bptt_adjoint(g_c, keep, c_tm1, dc_dzpre, dc_dfpre, dc_dctm1, lam, g_pre, g_vec):
    """g_c, c_tm1, dc_dzpre, dc_dfpre, dc_dctm1 (T, B, H); keep (T, B). Writes lam (T, B, H),
    g_pre (T, B, 2H) and g_vec (4, H) (zeroed here)."""
    T, B, H = g_c.shape
    g_vec[:] = 0
    for t in range(T - 1, -1, -1):
        for b in range(B):
            lam_t = lam[t, b]
            g_c_t = g_c[t, b]
            if t < T - 1:
                k_next = keep[t + 1, b]
                J_next = dc_dctm1[t + 1, b]
                lam_next = lam[t + 1, b]
                for h in range(H):
                    lam_t[h] = g_c_t[h] + k_next * J_next[h] * lam_next[h]
            else:
                lam_t[:] = g_c_t
            g_zpre = g_pre[t, b, :H]
            g_fpre = g_pre[t, b, H:]
            dz = dc_dzpre[t, b]
            df = dc_dfpre[t, b]
            for h in range(H):
                g_zpre[h] = lam_t[h] * dz[h]
                g_fpre[h] = lam_t[h] * df[h]
            _accumulate_sums(g_vec[0], g_vec[1], g_vec[2], g_vec[3], g_zpre, g_fpre, c_tm1[t, b])


@numba.njit(**JIT)
def segment_coefficients(g_c, keep, c_tm1, dc_dzpre, dc_dfpre, dc_dctm1, one,
                         lam, g_pre, g_vec, V, coef_in, decay_in, u_sums):
    """As `bptt_adjoint` (lam (T, B, H), g_pre, g_vec), plus the segment form's V (B, T, 2H),
    coef_in, decay_in (B, H) and u_sums (4, B, H). Every output is overwritten."""
    T, B, H = g_c.shape
    g_vec[:] = 0
    u_sums[:] = 0
    coef_in[:] = 0                                                    # Jeff_{t+1} lam_{t+1}
    decay_in[:] = one                                                 # P_t
    for t in range(T - 1, -1, -1):
        for b in range(B):
            k = keep[t, b]
            lamJ = coef_in[b]
            P = decay_in[b]
            g_c_t = g_c[t, b]
            lam_t = lam[t, b]
            for h in range(H):                                        # a short loop of its own
                lam_t[h] = g_c_t[h] + lamJ[h]
            J = dc_dctm1[t, b]
            dz = dc_dzpre[t, b]
            df = dc_dfpre[t, b]
            g_zpre = g_pre[t, b, :H]
            g_fpre = g_pre[t, b, H:]
            u_z = V[b, t, :H]
            u_f = V[b, t, H:]
            for h in range(H):
                l = lam_t[h]
                p = P[h]
                j = k * J[h]
                lamJ[h] = j * l
                P[h] = p * j
                g_zpre[h] = l * dz[h]
                g_fpre[h] = l * df[h]
                u_z[h] = p * dz[h]
                u_f[h] = p * df[h]
            c = c_tm1[t, b]
            _accumulate_sums(g_vec[0], g_vec[1], g_vec[2], g_vec[3], g_zpre, g_fpre, c)
            _accumulate_sums(u_sums[0, b], u_sums[1, b], u_sums[2, b], u_sums[3, b], u_z, u_f, c)


def stacked_weights(p: ELSTMParams) -> np.ndarray:
    """[W_z ; W_f], (2H, I): one GEMM serves both gates."""
    return np.concatenate([p.W_z, p.W_f])                             # (2H, I)


def contiguous_cache(traj: CellCache) -> CellCache:
    """The trajectory's arrays as C-contiguous arrays (no copy when they already are)."""
    return CellCache(*(np.ascontiguousarray(a) for a in traj))


def input_gemms(p: ELSTMParams, x, g_pre):
    """Eq. 13's GEMMs over all T*B rows: ([G_Wz ; G_Wf] (2H, I), g_x (T, B, I))."""
    T, B, H2 = g_pre.shape
    I = x.shape[-1]
    g_pre_2d = g_pre.reshape(T * B, H2)                               # (TB, 2H)
    G = g_pre_2d.T @ x.reshape(T * B, I)                              # (2H, I)
    g_x = (g_pre_2d @ stacked_weights(p)).reshape(T, B, I)            # (T, B, I)
    return G, g_x


def bptt_unroll(p: ELSTMParams, traj: CellCache, reset, g_c):
    """Full BPTT over one unroll (Eqs. 12-13): (grads, g_x (T, B, I), g_c0 (B, H), lam (T, B, H)).

    Inputs already validated by the driver (`rtrl_ref.bptt.bptt`)."""
    traj = contiguous_cache(traj)
    g_c = np.ascontiguousarray(g_c)
    T, B, H = g_c.shape
    dt = g_c.dtype
    keep = (~reset).astype(dt)                                        # (T, B)
    lam = np.empty((T, B, H), dt)                                     # (T, B, H)
    g_pre = np.empty((T, B, 2 * H), dt)                               # (T, B, 2H)
    g_vec = np.empty((4, H), dt)                                      # (4, H)
    bptt_adjoint(g_c, keep, traj.c_tm1, traj.dc_dzpre, traj.dc_dfpre, traj.dc_dctm1, lam, g_pre, g_vec)
    G, g_x = input_gemms(p, traj.x_t, g_pre)
    g_c0 = lam[0] * traj.dc_dctm1[0] * keep[0][:, None]              # (B, H)
    return ELSTMParams(G[:H], G[H:], *g_vec), g_x, g_c0, lam
