"""A small but complete eLSTM problem: the thing every gradient check differentiates.

    c_t = eLSTM(x_t, c_tm1)  (docs/derivation.md, Eq. 1-3; resets as in Eq. 10)
    h_t = sigmoid(W_o [x_t; c_t] + b_o) * c_t
    L   = sum_{t, b} cross_entropy(softmax(h_t @ V), y_t)          (non-linear in h_t)

`bptt_grads` differentiates it by hand: readout -> output gate (`immediate_g_c`) -> full BPTT.
It returns the immediate gradients g_c as well, which is all RTRL needs.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from rtrl_ref.bptt import BPTTResult, bptt
from rtrl_ref.out_gate import immediate_g_c, out_gate
from rtrl_ref.params import ELSTMParams, OutGateParams, init_out_gate
from rtrl_ref.unroll import elstm_forward

REGIMES = ("normal", "saturated", "forget_open", "forget_closed")
RESET_PATTERNS = ("none", "first", "middle", "last", "random", "every")


class Problem(NamedTuple):
    p: ELSTMParams
    q: OutGateParams
    V: np.ndarray        # (H, K) readout weights
    x: np.ndarray        # (T, B, I)
    reset: np.ndarray    # (T, B) bool
    c_0: np.ndarray      # (B, H)
    y: np.ndarray        # (T, B) int targets in [0, K)

    @property
    def sizes(self) -> dict:
        T, B, I = self.x.shape
        return dict(T=T, B=B, I=I, H=self.p.W_z.shape[0], K=self.V.shape[1])


class ProblemGrads(NamedTuple):
    p: ELSTMParams
    q: OutGateParams
    V: np.ndarray        # (H, K)
    x: np.ndarray        # (T, B, I)
    c_0: np.ndarray      # (B, H)


def reset_mask(rng: np.random.Generator, T: int, B: int, pattern: str) -> np.ndarray:
    """(T, B) bool reset mask of a named pattern (the first row of B is always `pattern`)."""
    reset = np.zeros((T, B), bool)                                    # (T, B)
    if pattern == "none":
        pass
    elif pattern == "first":
        reset[0] = True
    elif pattern == "middle":
        reset[T // 2] = True
    elif pattern == "last":
        reset[T - 1] = True
    elif pattern == "random":
        reset[:] = rng.random((T, B)) < 0.2
    elif pattern == "every":
        reset[:] = True
    else:
        raise ValueError(f"pattern: expected one of {RESET_PATTERNS}, got {pattern!r}")
    return reset


def make_problem(seed: int, T: int, B: int, I: int, H: int, K: int = 3, dtype=np.float64,
                 regime: str = "normal", resets: str | np.ndarray = "random") -> Problem:
    """A random problem; `regime` stresses the gates (saturated, f near 1, f near 0)."""
    if regime not in REGIMES:
        raise ValueError(f"regime: expected one of {REGIMES}, got {regime!r}")
    rng = np.random.default_rng(seed)
    std = {"normal": 0.5, "saturated": 3.0, "forget_open": 0.5, "forget_closed": 0.5}[regime]

    def draw(*shape):
        return std * rng.standard_normal(shape)

    b_f = draw(H) + {"forget_open": 6.0, "forget_closed": -6.0}.get(regime, 0.0)
    p = ELSTMParams(draw(H, I), draw(H, I), draw(H), draw(H), draw(H), b_f).astype(dtype)
    q = init_out_gate(rng, I, H, np.float64)
    q = OutGateParams(2.0 * q.W_o, 2.0 * q.b_o).astype(dtype)
    V = rng.standard_normal((H, K)).astype(dtype)                      # (H, K)
    x = rng.standard_normal((T, B, I)).astype(dtype)                   # (T, B, I)
    reset = resets if isinstance(resets, np.ndarray) else reset_mask(rng, T, B, resets)
    c_0 = (0.5 * rng.standard_normal((B, H))).astype(dtype)            # (B, H)
    y = rng.integers(0, K, (T, B))                                     # (T, B)
    return Problem(p, q, V, x, reset, c_0, y)


def readout_loss(h, V, y):
    """L = sum cross_entropy(softmax(h @ V), y); returns (L, g_h (T, B, H), g_V (H, K))."""
    logits = h @ V                                                     # (T, B, K)
    logits = logits - logits.max(-1, keepdims=True)
    log_z = np.log(np.exp(logits).sum(-1, keepdims=True))              # (T, B, 1)
    log_p = logits - log_z                                             # (T, B, K)
    onehot = np.eye(V.shape[1], dtype=h.dtype)[y]                      # (T, B, K)
    loss = -(onehot * log_p).sum()
    g_logits = np.exp(log_p) - onehot                                  # (T, B, K)
    g_h = g_logits @ V.T                                               # (T, B, H)
    g_V = h.reshape(-1, h.shape[-1]).T @ g_logits.reshape(-1, V.shape[1])   # (H, K)
    return loss, g_h, g_V


def loss(prob: Problem) -> float:
    """Forward pass only (what finite differences evaluate)."""
    c, _ = elstm_forward(prob.p, prob.x, prob.reset, prob.c_0)
    h, _ = out_gate(prob.q, prob.x, c)
    return float(readout_loss(h, prob.V, prob.y)[0])


class Backward(NamedTuple):
    loss: float
    grads: ProblemGrads
    g_c: np.ndarray      # (T, B, H) immediate gradients, the input of RTRL
    traj: object         # CellCache of the forward pass
    bptt: BPTTResult


def bptt_grads(prob: Problem) -> Backward:
    """Hand-derived gradients of `loss` by full BPTT."""
    c, traj = elstm_forward(prob.p, prob.x, prob.reset, prob.c_0)
    h, gate_cache = out_gate(prob.q, prob.x, c)
    L, g_h, g_V = readout_loss(h, prob.V, prob.y)
    g_c, g_x_gate, g_q = immediate_g_c(g_h, gate_cache, prob.q)
    back = bptt(prob.p, traj, prob.reset, g_c)
    grads = ProblemGrads(back.grads, g_q, g_V, back.g_x + g_x_gate, back.g_c0)
    return Backward(float(L), grads, g_c, traj, back)
