"""The output gate and the boundary between head gradients and RTRL.

    o_t = sigmoid(W_o [x_t ; c_t] + b_o),   h_t = o_t * c_t     (no tanh on c_t; docs/derivation.md, Eq. 4)

The gate reads the *new* cell c_t, so it sits outside the recurrence: its backward gives the
immediate gradient g_c = dL_t/dc_t (Eq. 11, through o_t and h_t at the same step only), which is what
RTRL multiplies with the traces. Any leading dimensions: (B, ...) or (T, B, ...).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from rtrl_ref.params import OutGateParams
from rtrl_ref.xp import array_module, sigmoid


class OutGateCache(NamedTuple):
    xc: np.ndarray   # (..., I + H) the gate's input [x_t ; c_t]
    o_t: np.ndarray  # (..., H)
    c_t: np.ndarray  # (..., H)


def out_gate(q: OutGateParams, x_t, c_t):
    """Returns (h_t (..., H), cache)."""
    xp = array_module(x_t)
    xc = xp.concatenate([x_t, c_t], axis=-1)                         # (..., I + H)
    o_t = sigmoid(xc @ q.W_o.T + q.b_o)                              # (..., H)
    h_t = o_t * c_t                                                  # (..., H)
    return h_t, OutGateCache(xc, o_t, c_t)


def immediate_g_c(g_h, cache: OutGateCache, q: OutGateParams):
    """Backward of `out_gate` for g_h = dL/dh_t (..., H).

    Returns (g_c (..., H) the immediate gradient into c_t, g_x (..., I) through the gate,
    grads: OutGateParams summed over leading dims).
    """
    H = q.W_o.shape[0]
    I = q.W_o.shape[1] - H
    g_opre = g_h * cache.c_t * cache.o_t * (1 - cache.o_t)           # (..., H)
    g_xc = g_opre @ q.W_o                                            # (..., I + H)
    g_c = g_h * cache.o_t + g_xc[..., I:]                            # (..., H)
    g_x = g_xc[..., :I]                                              # (..., I)
    g_opre_2d = g_opre.reshape(-1, H)                                # (N, H)
    grads = OutGateParams(
        W_o=g_opre_2d.T @ cache.xc.reshape(-1, I + H),               # (H, I + H)
        b_o=g_opre_2d.sum(0),                                        # (H,)
    )
    return g_c, g_x, grads
