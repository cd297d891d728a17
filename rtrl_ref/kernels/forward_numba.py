"""eLSTM forward recurrence over a whole unroll (Numba), given the input pre-activations.

Reproduces `rtrl_ref.unroll.elstm_forward` (which calls `rtrl_ref.cell.cell_step` per step) once
the input GEMM of all T steps is done outside, `pre = x @ [W_z ; W_f]^T` (T, B, 2H):

    c_tm1    = keep_t * c_{t-1}                                  (reset mask)
    z_t      = tanh(pre_z + w_z * c_tm1 + b_z)
    f_t      = sigmoid(pre_f + w_f * c_tm1 + b_f) = (tanh((pre_f + ...) / 2) + 1) / 2
    c_t      = f_t * c_tm1 + (1 - f_t) * z_t
    dc_dzpre = (1 - f_t)(1 - z_t^2),  dc_dfpre = (c_tm1 - z_t) f_t (1 - f_t)
    dc_dctm1 = f_t + dc_dzpre * w_z + dc_dfpre * w_f

Serial: t outer, b and h inner (contiguous). No SVML here, so tanh is a scalar libm call; the
benchmark times this kernel against the per-step NumPy loop and uses the faster for BPTT.
"""

from __future__ import annotations

import numba
import numpy as np

from rtrl_ref.kernels.numba_config import JIT


@numba.njit(**JIT)
def forward_recurrence(pre, w_z, w_f, b_z, b_f, keep, c_0, one, half,
                       c_tm1_out, z_out, f_out, c_out, dzpre_out, dfpre_out, dctm1_out):
    """pre (T, B, 2H); w_*, b_* (H,); keep (T, B) 1/0; c_0 (B, H); one, half scalars of the dtype.

    Writes the seven (T, B, H) outputs (the fields of a CellCache, without x).
    """
    T, B, H2 = pre.shape
    H = H2 // 2
    for t in range(T):
        for b in range(B):
            k = keep[t, b]
            for h in range(H):
                c_prev = k * (c_0[b, h] if t == 0 else c_out[t - 1, b, h])
                z = np.tanh(pre[t, b, h] + w_z[h] * c_prev + b_z[h])
                f = half * (np.tanh(half * (pre[t, b, H + h] + w_f[h] * c_prev + b_f[h])) + one)
                dz = (one - f) * (one - z * z)
                df = (c_prev - z) * f * (one - f)
                c_tm1_out[t, b, h] = c_prev
                z_out[t, b, h] = z
                f_out[t, b, h] = f
                c_out[t, b, h] = f * c_prev + (one - f) * z
                dzpre_out[t, b, h] = dz
                dfpre_out[t, b, h] = df
                dctm1_out[t, b, h] = f + dz * w_z[h] + df * w_f[h]
