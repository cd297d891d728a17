"""minGRU (Feng et al., 2024, "Were RNNs all we needed?") through the cell interface
(docs/derivation.md, Eqs. 24-27).

Forward, gates from the input only:
    z_t      = sigmoid(W_z x_t + b_z)
    htilde_t = W_h x_t + b_h
    h_t      = (1 - z_t) * h_tm1 + z_t * htilde_t
Local derivatives (all (B, H)):
    dh_dzpre = (htilde_t - h_tm1) * z_t * (1 - z_t)     dh_t / d(pre-activation of z)
    dh_dhtil = z_t                                      dh_t / dhtilde_t
    dh_dhtm1 = 1 - z_t                                  J_t, the diagonal of dh_t / dh_tm1
Traces: S^{W_z}_t = J_t * S^{W_z}_tm1 + dh_dzpre x_t, S^{W_h}_t = J_t * S^{W_h}_tm1 + z_t x_t (B, H, I);
S^{b_z}, S^{b_h} the same with 1 for x_t (B, H). This is the paper's plain (not log-space) form.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from rtrl_ref.cells.interface import Cell, check_fields, check_sizes, contract, decay_add, expand_factors, traces_like
from rtrl_ref.xp import sigmoid


class MinGRUParams(NamedTuple):
    W_z: np.ndarray  # (H, I) input weights of the update gate z
    W_h: np.ndarray  # (H, I) input weights of the candidate htilde
    b_z: np.ndarray  # (H,)
    b_h: np.ndarray  # (H,)


class MinGRUCache(NamedTuple):
    x_t: np.ndarray       # (B, I)
    h_tm1: np.ndarray     # (B, H) after the reset mask
    z_t: np.ndarray       # (B, H)
    htilde_t: np.ndarray  # (B, H)
    h_t: np.ndarray       # (B, H)
    dh_dzpre: np.ndarray  # (B, H)
    dh_dhtm1: np.ndarray  # (B, H) J_t = 1 - z_t


def init(rng: np.random.Generator, I: int, H: int, dtype=np.float32) -> MinGRUParams:
    """Every tensor ~ U(+-1/sqrt(I)), the fan-in rule of a linear layer (the paper's nn.Linear)."""
    dtype = check_sizes("mingru.init", I, H, dtype)
    bound = 1.0 / np.sqrt(I)

    def draw(*shape):
        return rng.uniform(-bound, bound, shape).astype(dtype)

    return MinGRUParams(draw(H, I), draw(H, I), draw(H), draw(H))


def with_memory_times(p: MinGRUParams, tau) -> MinGRUParams:
    """b_z = -log(tau - 1) (H,): with small input weights z = sigmoid(b_z) = 1 / tau, so the state
    keeps 1 - z = 1 - 1/tau per step and tau is its characteristic memory time (the chrono option of
    the agent draws tau ~ U(2, T_max))."""
    tau = np.asarray(tau)
    return p._replace(b_z=(-np.log(tau - 1.0)).astype(p.b_z.dtype))


def check_params(p: MinGRUParams, name: str = "params") -> tuple[int, int]:
    return check_fields(name, p, ("W_z", "W_h"), ("b_z", "b_h"))


def zero_state(p: MinGRUParams, B: int):
    return np.zeros((B, p.W_z.shape[0]), p.W_z.dtype)                 # (B, H)


def step(p: MinGRUParams, x_t, h_tm1):
    """One step: returns (h_t (B, H), cache)."""
    z_t = sigmoid(x_t @ p.W_z.T + p.b_z)                              # (B, H)
    htilde_t = x_t @ p.W_h.T + p.b_h                                  # (B, H)
    h_t = (1 - z_t) * h_tm1 + z_t * htilde_t                          # (B, H)
    dh_dzpre = (htilde_t - h_tm1) * z_t * (1 - z_t)                   # (B, H)
    return h_t, MinGRUCache(x_t, h_tm1, z_t, htilde_t, h_t, dh_dzpre, 1 - z_t)


def jacobian(cache: MinGRUCache):
    return cache.dh_dhtm1                                             # (B, H)


def zero_traces(p: MinGRUParams, B: int) -> MinGRUParams:
    return traces_like(p, B, p.W_z.dtype)                             # 2 x (B, H, I), 2 x (B, H)


def local_factors(p: MinGRUParams, cache: MinGRUCache) -> MinGRUParams:
    """D_t factored (Eqs. 26, 42): the row factors of W_z, W_h, and D_t of b_z, b_h."""
    return MinGRUParams(W_z=cache.dh_dzpre,                           # (B, H) times x_t
                        W_h=cache.z_t,                                # (B, H) times x_t
                        b_z=cache.dh_dzpre,                           # (B, H)
                        b_h=cache.z_t)                                # (B, H)


def local_terms(p: MinGRUParams, cache: MinGRUCache) -> MinGRUParams:
    """D_t: the local partials of h_t with respect to each parameter row (Eq. 26)."""
    return expand_factors(p, local_factors(p, cache), cache.x_t)      # 2 x (B, H, I), 2 x (B, H)


def trace_update(p: MinGRUParams, cache: MinGRUCache, traces: MinGRUParams) -> MinGRUParams:
    return decay_add(jacobian(cache), traces, local_terms(p, cache))


def grads_from_traces(g_h, traces: MinGRUParams) -> MinGRUParams:
    return contract(g_h, traces, MinGRUParams)


def step_backward(g_h, cache: MinGRUCache, p: MinGRUParams):
    """Backward of `step` for the total gradient g_h (B, H): (g_h_tm1 (B, H), g_x (B, I), grads)."""
    g_zpre = g_h * cache.dh_dzpre                                     # (B, H)
    g_htilde = g_h * cache.z_t                                        # (B, H)
    grads = MinGRUParams(W_z=g_zpre.T @ cache.x_t,                   # (H, I)
                         W_h=g_htilde.T @ cache.x_t,                  # (H, I)
                         b_z=g_zpre.sum(0),                           # (H,)
                         b_h=g_htilde.sum(0))                         # (H,)
    g_x = g_zpre @ p.W_z + g_htilde @ p.W_h                           # (B, I)
    return g_h * cache.dh_dhtm1, g_x, grads


CELL = Cell("mingru", init, check_params, zero_state, step, jacobian, zero_traces, trace_update,
            grads_from_traces, step_backward, local_factors)
