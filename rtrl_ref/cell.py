"""One eLSTM step and its backward pass, with the local derivatives RTRL reuses.

Forward (docs/derivation.md, Eqs. 1-3), element-wise over H:
    z_t = tanh(W_z x_t + w_z * c_tm1 + b_z)
    f_t = sigmoid(W_f x_t + w_f * c_tm1 + b_f)
    c_t = f_t * c_tm1 + (1 - f_t) * z_t
Local derivatives (Eqs. 5-6, all of shape (..., H)):
    dc_dzpre = (1 - f_t) * (1 - z_t^2)                    dc_t / d(pre-activation of z)
    dc_dfpre = (c_tm1 - z_t) * f_t * (1 - f_t)            dc_t / d(pre-activation of f)
    dc_dctm1 = f_t + dc_dzpre * w_z + dc_dfpre * w_f      diagonal of dc_t / dc_tm1

Both functions accept any leading dimensions: (B, ...) for one step, or (T, B, ...) for a whole
trajectory, in which case `cell_step_backward` sums parameter gradients over T and B in one GEMM.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from rtrl_ref.params import ELSTMParams
from rtrl_ref.xp import array_module, sigmoid


class CellCache(NamedTuple):
    """What one step (or a stack of steps) leaves for the backward pass and for RTRL."""

    x_t: np.ndarray       # (..., I) input
    c_tm1: np.ndarray     # (..., H) previous cell, after the reset mask
    z_t: np.ndarray       # (..., H)
    f_t: np.ndarray       # (..., H)
    c_t: np.ndarray       # (..., H)
    dc_dzpre: np.ndarray  # (..., H)
    dc_dfpre: np.ndarray  # (..., H)
    dc_dctm1: np.ndarray  # (..., H) diagonal Jacobian J_t


def cell_step(p: ELSTMParams, x_t, c_tm1):
    """One eLSTM step: returns (c_t, cache). x_t (..., I), c_tm1 (..., H)."""
    z_t = np.tanh(x_t @ p.W_z.T + p.w_z * c_tm1 + p.b_z)            # (..., H)
    f_t = sigmoid(x_t @ p.W_f.T + p.w_f * c_tm1 + p.b_f)            # (..., H)
    c_t = f_t * c_tm1 + (1 - f_t) * z_t                              # (..., H)
    dc_dzpre = (1 - f_t) * (1 - z_t * z_t)                           # (..., H)
    dc_dfpre = (c_tm1 - z_t) * f_t * (1 - f_t)                       # (..., H)
    dc_dctm1 = f_t + dc_dzpre * p.w_z + dc_dfpre * p.w_f             # (..., H)
    return c_t, CellCache(x_t, c_tm1, z_t, f_t, c_t, dc_dzpre, dc_dfpre, dc_dctm1)


def cell_step_backward(g_c, cache: CellCache, p: ELSTMParams):
    """Backward of `cell_step` for the total gradient g_c = dL/dc_t (..., H).

    Returns (g_c_tm1 (..., H), g_x (..., I), grads: ELSTMParams summed over leading dims).
    Linear in g_c, so a whole trajectory's parameter gradient is one call with the adjoint.
    """
    H, I = p.W_z.shape
    g_zpre = g_c * cache.dc_dzpre                                    # (..., H)
    g_fpre = g_c * cache.dc_dfpre                                    # (..., H)
    g_c_tm1 = g_c * cache.dc_dctm1                                   # (..., H)
    g_zpre_2d = g_zpre.reshape(-1, H)                                # (N, H)
    g_fpre_2d = g_fpre.reshape(-1, H)                                # (N, H)
    # as 2-D GEMMs over all N rows: a (T, B, H) @ (H, I) product would run as T GEMMs of B rows
    g_x = (g_zpre_2d @ p.W_z + g_fpre_2d @ p.W_f).reshape(g_c.shape[:-1] + (I,))   # (..., I)
    x_2d = cache.x_t.reshape(-1, I)                                  # (N, I)
    c_tm1_2d = cache.c_tm1.reshape(-1, H)                            # (N, H)
    grads = ELSTMParams(
        W_z=g_zpre_2d.T @ x_2d,                                      # (H, I)
        W_f=g_fpre_2d.T @ x_2d,                                      # (H, I)
        w_z=(g_zpre_2d * c_tm1_2d).sum(0),                           # (H,)
        w_f=(g_fpre_2d * c_tm1_2d).sum(0),                           # (H,)
        b_z=g_zpre_2d.sum(0),                                        # (H,)
        b_f=g_fpre_2d.sum(0),                                        # (H,)
    )
    return g_c_tm1, g_x, grads


def stack_caches(caches: list[CellCache]) -> CellCache:
    """Stack per-step caches into one trajectory cache with a leading T axis."""
    xp = array_module(caches[0].x_t)
    return CellCache(*(xp.stack(fields) for fields in zip(*caches)))


def cache_at(traj: CellCache, t: int) -> CellCache:
    """Step t of a trajectory cache."""
    return CellCache(*(a[t] for a in traj))
