"""The eLSTM forward pass over one unroll with the input GEMM of all T steps done at once.

Reproduces `rtrl_ref.unroll.elstm_forward`'s reference loop (`rtrl_ref.cell.cell_step` per step,
docs/derivation.md Eqs. 1-6 with the reset of Eq. 10): the input pre-activations of every step
come from one GEMM over T*B rows, pre = x @ [W_z ; W_f]^T (T, B, 2H); then per step, on (B, H)
arrays,

    c_tm1    = keep_t * c_{t-1}
    z_t      = tanh(pre_z + w_z * c_tm1 + b_z),   f_t = sigmoid(pre_f + w_f * c_tm1 + b_f)
    c_t      = f_t * c_tm1 + (1 - f_t) * z_t = f_t * (c_tm1 - z_t) + z_t
    dc_dzpre = (1 - f_t)(1 - z_t^2),  dc_dfpre = (c_tm1 - z_t) f_t (1 - f_t)
    dc_dctm1 = f_t + dc_dzpre * w_z + dc_dfpre * w_f

written into preallocated (T, B, H) arrays. The element-wise step stays NumPy code (its tanh is
vectorised); a compiled Numba recurrence with scalar tanh was slower at the paper's sizes
(see docs/performance.md), so the numba backend uses this function as its `forward_unroll`.
"""

from __future__ import annotations

import numpy as np

from rtrl_ref.cell import CellCache
from rtrl_ref.params import ELSTMParams
from rtrl_ref.xp import sigmoid


def forward_unroll(p: ELSTMParams, x, reset, c_0) -> CellCache:
    """x (T, B, I), reset (T, B), c_0 (B, H), validated by the driver -> trajectory cache."""
    T, B, I = x.shape
    H = p.W_z.shape[0]
    dt = x.dtype
    W = np.concatenate([p.W_z, p.W_f])                                # (2H, I)
    pre = (x.reshape(T * B, I) @ W.T).reshape(T, B, 2 * H)            # (T, B, 2H)
    keep = (~reset).astype(dt)[:, :, None]                            # (T, B, 1)
    c_tm1_all, z_all, f_all, c_all, dzpre_all, dfpre_all, dctm1_all = (
        np.empty((T, B, H), dt) for _ in range(7))                    # 7 x (T, B, H)
    c_prev = c_0
    for t in range(T):
        c_tm1 = np.multiply(c_prev, keep[t], out=c_tm1_all[t])        # (B, H)
        z_t = np.tanh(pre[t, :, :H] + p.w_z * c_tm1 + p.b_z, out=z_all[t])    # (B, H)
        f_t = sigmoid(pre[t, :, H:] + p.w_f * c_tm1 + p.b_f)          # (B, H)
        f_all[t] = f_t
        c_minus_z = c_tm1 - z_t                                       # (B, H)
        np.multiply(f_t, c_minus_z, out=c_all[t])
        c_all[t] += z_t
        one_minus_f = 1 - f_t                                         # (B, H)
        np.multiply(one_minus_f, 1 - z_t * z_t, out=dzpre_all[t])
        np.multiply(c_minus_z * f_t, one_minus_f, out=dfpre_all[t])
        np.multiply(dzpre_all[t], p.w_z, out=dctm1_all[t])
        dctm1_all[t] += f_t + dfpre_all[t] * p.w_f
        c_prev = c_all[t]
    return CellCache(x, c_tm1_all, z_all, f_all, c_all, dzpre_all, dfpre_all, dctm1_all)
