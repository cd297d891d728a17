"""Backward sweeps over one unroll (Numba): the BPTT adjoint and the segment-form coefficients.

Reproduce `rtrl_ref.bptt.adjoint` + the element-wise part of `rtrl_ref.cell.cell_step_backward`,
and the coefficient part of `rtrl_ref.rtrl.rtrl_segment`. With Jeff_t = keep_t * J_t:

    lam_{T-1} = g_c[T-1],   lam_t = g_c[t] + Jeff_{t+1} lam_{t+1}
    g_pre[t]  = [lam_t dc_dzpre_t ; lam_t dc_dfpre_t]                    (T, B, 2H) for one GEMM
    g_vec     = [sum lam dc_dzpre c_tm1, sum lam dc_dfpre c_tm1, sum lam dc_dzpre, sum lam dc_dfpre]

and, for the segment form only, P_s = prod_{r=s+1..T-1} Jeff_r:

    U[b, :H, s] = P_s dc_dzpre_s,   U[b, H:, s] = P_s dc_dfpre_s          (B, 2H, T)
    coef_in = Jeff_0 lam_0,   decay_in = Jeff_0 P_0                          (B, H)
    u_sums  = [sum_s u_z c_tm1, sum_s u_f c_tm1, sum_s u_z, sum_s u_f]       (4, B, H)

One sweep backwards over t; b and h inner (contiguous reads). lam and P live in (B, H) buffers.
"""

from __future__ import annotations

import numba

from rtrl_ref.kernels.numba_config import JIT


@numba.njit(**JIT)
def bptt_adjoint(g_c, keep, c_tm1, dzpre, dfpre, dctm1, lam, g_pre, g_vec):
    """g_c, c_tm1, dzpre, dfpre, dctm1 (T, B, H); keep (T, B). Writes lam (T, B, H),
    g_pre (T, B, 2H) and g_vec (4, H) (zeroed here)."""
    T, B, H = g_c.shape
    g_vec[:] = 0
    for t in range(T - 1, -1, -1):
        for b in range(B):
            for h in range(H):
                l = g_c[t, b, h]
                if t < T - 1:
                    l += keep[t + 1, b] * dctm1[t + 1, b, h] * lam[t + 1, b, h]
                lam[t, b, h] = l
                gz = l * dzpre[t, b, h]
                gf = l * dfpre[t, b, h]
                g_pre[t, b, h] = gz
                g_pre[t, b, H + h] = gf
                g_vec[0, h] += gz * c_tm1[t, b, h]
                g_vec[1, h] += gf * c_tm1[t, b, h]
                g_vec[2, h] += gz
                g_vec[3, h] += gf


@numba.njit(**JIT)
def segment_coefficients(g_c, keep, c_tm1, dzpre, dfpre, dctm1, one,
                         lam, P, g_pre, g_vec, U, coef_in, decay_in, u_sums):
    """As `bptt_adjoint`, plus the segment form's U (B, 2H, T), coef_in, decay_in (B, H) and
    u_sums (4, B, H). lam, P (B, H) are work buffers (the adjoint is not kept over T)."""
    T, B, H = g_c.shape
    g_vec[:] = 0
    u_sums[:] = 0
    for t in range(T - 1, -1, -1):
        for b in range(B):
            k = keep[t, b]
            for h in range(H):
                if t == T - 1:
                    l = g_c[t, b, h]
                    p = one
                else:
                    l = g_c[t, b, h] + keep[t + 1, b] * dctm1[t + 1, b, h] * lam[b, h]
                    p = P[b, h]
                dz = dzpre[t, b, h]
                df = dfpre[t, b, h]
                c = c_tm1[t, b, h]
                gz = l * dz
                gf = l * df
                g_pre[t, b, h] = gz
                g_pre[t, b, H + h] = gf
                g_vec[0, h] += gz * c
                g_vec[1, h] += gf * c
                g_vec[2, h] += gz
                g_vec[3, h] += gf
                u_z = p * dz
                u_f = p * df
                U[b, h, t] = u_z
                U[b, H + h, t] = u_f
                u_sums[0, b, h] += u_z * c
                u_sums[1, b, h] += u_f * c
                u_sums[2, b, h] += u_z
                u_sums[3, b, h] += u_f
                j_eff = k * dctm1[t, b, h]
                lam[b, h] = l
                P[b, h] = p * j_eff
                if t == 0:
                    coef_in[b, h] = j_eff * l
                    decay_in[b, h] = j_eff * p
