"""Backpropagation through time for the eLSTM: full (adjoint form) and truncated.

With g_c[t] = dL_t/dc_t the immediate gradients (T, B, H) (docs/derivation.md, Eq. 11) and the
effective diagonal Jacobian Jeff_t = J_t * (1 - reset_t) (Eq. 10), the adjoint (total gradient
into c_t, Eq. 12) is

    lam_{T-1} = g_c[T-1],     lam_t = g_c[t] + Jeff_{t+1} * lam_{t+1}

and, because `cell_step_backward` is linear in its upstream gradient, every parameter gradient,
the input gradients g_x (T, B, I) and g_c0 are one call of it on the whole trajectory with lam
(one GEMM over all T*B rows per weight matrix, Eq. 13). `bptt(..., backend=...)` runs this on
a backend's `bptt_unroll` when it has one (numba: a compiled adjoint sweep + the same GEMMs).

Truncated BPTT(k) (Eq. 16), two conventions:
  - "window": the loss at step s flows back through steps s, s-1, ..., s-k+1 only;
  - "unroll": the sequence is cut into unrolls of k steps; gradients never cross a cut
    (the R2AC `tbptt` learner; its state is still carried across the cut).
Both equal full BPTT when k >= T.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from rtrl_ref.cell import CellCache, cell_step_backward
from rtrl_ref.kernels import Backend, get_backend
from rtrl_ref.params import ELSTMParams
from rtrl_ref.validate import check_array, check_reset
from rtrl_ref.xp import array_module


class BPTTResult(NamedTuple):
    grads: ELSTMParams   # summed over T and B
    g_x: np.ndarray      # (T, B, I) dL/dx_t through the eLSTM
    g_c0: np.ndarray     # (B, H) dL/dc_0 (before the reset mask of step 0)
    lam: np.ndarray      # (T, B, H) the adjoint actually used (total gradient into c_t)


def effective_jacobian(traj: CellCache, reset):
    """Jeff_t = J_t * (1 - reset_t), (T, B, H)."""
    return traj.dc_dctm1 * (~reset)[..., None]                        # (T, B, H)


def check_upstream(traj: CellCache, reset, g_c):
    T, B, H = traj.c_t.shape
    check_reset("reset", reset, (("T", T), ("B", B)))
    check_array("g_c", g_c, (("T", T), ("B", B), ("H", H)), traj.c_t.dtype)


def adjoint(traj: CellCache, reset, g_c, cut=None):
    """lam (T, B, H): lam_t = g_c[t] + Jeff_{t+1} * lam_{t+1}, not crossing steps with cut[t].

    cut (T,) bool, optional: cut[t] = True stops the gradient flowing from step t into t-1.
    """
    xp = array_module(g_c)
    T = g_c.shape[0]
    j_eff = effective_jacobian(traj, reset)                           # (T, B, H)
    lam = xp.empty_like(g_c)                                          # (T, B, H)
    lam[T - 1] = g_c[T - 1]
    for t in range(T - 2, -1, -1):
        if cut is not None and cut[t + 1]:
            lam[t] = g_c[t]
        else:
            lam[t] = g_c[t] + j_eff[t + 1] * lam[t + 1]
    return lam


def window_adjoint(traj: CellCache, reset, g_c, k: int):
    """Truncated adjoint (T, B, H): lam_t = sum_{d<k} g_c[t+d] * prod_{r=t+1..t+d} Jeff_r."""
    xp = array_module(g_c)
    T = g_c.shape[0]
    j_eff = effective_jacobian(traj, reset)                           # (T, B, H)
    lam = g_c.copy()                                                  # (T, B, H) d = 0
    flow = xp.ones_like(g_c)                                          # (T, B, H) prod of Jeff
    for d in range(1, min(k, T)):
        flow = flow[: T - d] * j_eff[d:]                              # (T-d, B, H)
        lam[: T - d] += g_c[d:] * flow
    return lam


def backward_from_adjoint(p: ELSTMParams, traj: CellCache, reset, lam) -> BPTTResult:
    g_c_tm1, g_x, grads = cell_step_backward(lam, traj, p)            # (T, B, H), (T, B, I)
    g_c0 = g_c_tm1[0] * (~reset[0])[:, None]                          # (B, H)
    return BPTTResult(grads, g_x, g_c0, lam)


def bptt(p: ELSTMParams, traj: CellCache, reset, g_c, backend: str | Backend = "numpy") -> BPTTResult:
    """Full BPTT gradient of sum_t L_t given the immediate gradients g_c (T, B, H)."""
    be = get_backend(backend)
    check_upstream(traj, reset, g_c)
    if be.bptt_unroll is not None:
        return BPTTResult(*be.bptt_unroll(p, traj, reset, g_c))
    return backward_from_adjoint(p, traj, reset, adjoint(traj, reset, g_c))


def tbptt(p: ELSTMParams, traj: CellCache, reset, g_c, k: int, mode: str = "window") -> BPTTResult:
    """Truncated BPTT with window k (see the module docstring for the two modes)."""
    check_upstream(traj, reset, g_c)
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k: expected an integer >= 1, got {k!r}")
    if mode == "window":
        lam = window_adjoint(traj, reset, g_c, int(k))
    elif mode == "unroll":
        T = g_c.shape[0]
        cut = (np.arange(T) % k) == 0                                 # (T,)
        lam = adjoint(traj, reset, g_c, cut=cut)
    else:
        raise ValueError(f"mode: expected 'window' or 'unroll', got {mode!r}")
    return backward_from_adjoint(p, traj, reset, lam)
