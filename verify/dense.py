"""A deliberately naive dense RTRL reference (tests only; H <= 8).

It assumes nothing about the eLSTM's structure. It keeps the full influence matrix
M_t = dc_t / dtheta of shape (B, H, P), P = 2*H*I + 4*H (every parameter, every unit), and runs

    M_t = Jc_t @ M_tm1 + Jtheta_t          (M_tm1 zeroed at a reset)

with the dense immediate Jacobians Jc_t = dc_t/dc_tm1 (B, H, H) and Jtheta_t = dc_t/dtheta
(B, H, P) obtained by complex-step differentiation of `cell_step` (exact to round-off, no
subtractive cancellation; no element-wise shortcut, no hand-derived derivative). It confirms that
the off-diagonal blocks the fast code drops are zero, and gives a third, independent gradient.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from rtrl_ref.cell import cell_step
from rtrl_ref.params import ELSTMParams

STEP = 1e-30   # complex step
MAX_H = 8


def flatten(p: ELSTMParams) -> np.ndarray:
    return np.concatenate([a.ravel() for a in p])                     # (P,)


def unflatten(v: np.ndarray, H: int, I: int) -> ELSTMParams:
    shapes = [(H, I), (H, I), (H,), (H,), (H,), (H,)]
    parts, k = [], 0
    for shape in shapes:
        n = int(np.prod(shape))
        parts.append(v[..., k:k + n].reshape(v.shape[:-1] + shape))
        k += n
    return ELSTMParams(*parts)


class DenseResult(NamedTuple):
    grads: ELSTMParams       # sum_t sum_b g_c[t, b] @ M_t[b]
    influence: np.ndarray    # (B, H, P) M after the last step
    max_offdiag: float       # largest |dc_t[h]/dtheta| over entries of other units' parameters


def offdiagonal_mask(H: int, I: int) -> np.ndarray:
    """(H, P) True where parameter entry j belongs to a unit other than h."""
    owner = unflatten(np.arange(2 * H * I + 4 * H), H, I)
    mask = np.ones((H, 2 * H * I + 4 * H), bool)                       # (H, P)
    for field in owner:
        rows = field.reshape(H, -1)                                   # (H, n_per_unit)
        for h in range(H):
            mask[h, rows[h]] = False
    return mask


def dense_rtrl(p: ELSTMParams, x: np.ndarray, reset: np.ndarray, g_c: np.ndarray,
               c_0: np.ndarray | None = None) -> DenseResult:
    """Gradient of sum_t <g_c[t], c_t> by dense forward-mode RTRL; float64 only."""
    H, I = p.W_z.shape
    T, B, _ = x.shape
    if H > MAX_H:
        raise ValueError(f"dense_rtrl: expected H <= {MAX_H} (the dense reference is O(H^2 P)), got H={H}")
    if x.dtype != np.float64:
        raise ValueError(f"dense_rtrl: expected float64 inputs, got {x.dtype}")
    theta = flatten(p)                                                 # (P,)
    P = theta.size
    c_tm1 = np.zeros((B, H)) if c_0 is None else c_0.copy()            # (B, H)
    M = np.zeros((B, H, P))                                            # (B, H, P)
    grad = np.zeros(P)                                                 # (P,)
    offdiag = offdiagonal_mask(H, I)                                   # (H, P)
    max_offdiag = 0.0
    for t in range(T):
        keep = (~reset[t])[:, None]                                    # (B, 1)
        c_tm1 = c_tm1 * keep                                           # (B, H)
        M = M * keep[:, :, None]                                       # (B, H, P)
        J_theta = np.zeros((B, H, P))                                  # (B, H, P)
        for j in range(P):
            theta_c = theta.astype(np.complex128)
            theta_c[j] += 1j * STEP
            c_c, _ = cell_step(unflatten(theta_c, H, I), x[t].astype(np.complex128), c_tm1.astype(np.complex128))
            J_theta[:, :, j] = c_c.imag / STEP
        J_c = np.zeros((B, H, H))                                      # (B, H, H)
        for k in range(H):
            c_pert = c_tm1.astype(np.complex128)
            c_pert[:, k] += 1j * STEP
            c_c, _ = cell_step(unflatten(theta.astype(np.complex128), H, I), x[t].astype(np.complex128), c_pert)
            J_c[:, :, k] = c_c.imag / STEP
        M = J_c @ M + J_theta                                          # (B, H, P)
        max_offdiag = max(max_offdiag, float(np.abs(M[:, offdiag]).max(initial=0.0)))
        grad += np.einsum("bh,bhp->p", g_c[t], M)
        c_tm1, _ = cell_step(p, x[t], c_tm1)
    return DenseResult(unflatten(grad, H, I), M, max_offdiag)
