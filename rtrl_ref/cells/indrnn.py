"""IndRNN (Li et al., CVPR 2018) with tanh, through the cell interface (docs/derivation.md, Eqs. 20-23).

Forward, element-wise over H (u is a vector: each unit sees only its own past):
    h_t = tanh(W x_t + u * h_tm1 + b)
Local derivatives (all (B, H)):
    dh_dpre  = 1 - h_t^2                  dh_t / d(pre-activation)
    dh_dhtm1 = dh_dpre * u                J_t, the diagonal of dh_t / dh_tm1
Traces (S^W (B, H, I), S^u and S^b (B, H)):
    S^W_t = J_t * S^W_tm1 + dh_dpre x_t     S^u_t = J_t * S^u_tm1 + dh_dpre h_tm1     S^b_t = J_t * S^b_tm1 + dh_dpre

The activation is tanh: bounded (so long sequences with |u| > 1 stay finite) and smooth (so finite
differences check every entry). The paper's ReLU variant differs only in dh_dpre = [pre > 0] and
is not provided: its kink makes the finite-difference checks flaky at pre = 0.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from rtrl_ref.cells.interface import Cell, check_fields, check_sizes, contract, decay_add, expand_factors, traces_like


class IndRNNParams(NamedTuple):
    W: np.ndarray  # (H, I) input weights
    u: np.ndarray  # (H,)   element-wise recurrent weights
    b: np.ndarray  # (H,)


class IndRNNCache(NamedTuple):
    x_t: np.ndarray      # (B, I)
    h_tm1: np.ndarray    # (B, H) after the reset mask
    h_t: np.ndarray      # (B, H)
    dh_dpre: np.ndarray  # (B, H)
    dh_dhtm1: np.ndarray  # (B, H) J_t


def init(rng: np.random.Generator, I: int, H: int, dtype=np.float32) -> IndRNNParams:
    """W, b ~ U(+-1/sqrt(I)) (fan-in rule); u ~ U(0, 1), the paper's range for short memories."""
    dtype = check_sizes("indrnn.init", I, H, dtype)
    bound = 1.0 / np.sqrt(I)
    W = rng.uniform(-bound, bound, (H, I)).astype(dtype)             # (H, I)
    u = rng.uniform(0.0, 1.0, H).astype(dtype)                       # (H,)
    b = rng.uniform(-bound, bound, H).astype(dtype)                  # (H,)
    return IndRNNParams(W, u, b)


def with_memory_times(p: IndRNNParams, tau) -> IndRNNParams:
    """u = 1 - 1/tau (H,): a unit's state decays as u^k near h = 0 (tanh' = 1), so tau is its
    characteristic memory time in steps (the chrono option of the agent draws tau ~ U(2, T_max))."""
    return p._replace(u=(1.0 - 1.0 / np.asarray(tau)).astype(p.u.dtype))


def check_params(p: IndRNNParams, name: str = "params") -> tuple[int, int]:
    return check_fields(name, p, ("W",), ("u", "b"))


def zero_state(p: IndRNNParams, B: int):
    return np.zeros((B, p.W.shape[0]), p.W.dtype)                    # (B, H)


def step(p: IndRNNParams, x_t, h_tm1):
    """One step: returns (h_t (B, H), cache)."""
    h_t = np.tanh(x_t @ p.W.T + p.u * h_tm1 + p.b)                    # (B, H)
    dh_dpre = 1 - h_t * h_t                                           # (B, H)
    dh_dhtm1 = dh_dpre * p.u                                          # (B, H)
    return h_t, IndRNNCache(x_t, h_tm1, h_t, dh_dpre, dh_dhtm1)


def jacobian(cache: IndRNNCache):
    return cache.dh_dhtm1                                             # (B, H)


def zero_traces(p: IndRNNParams, B: int) -> IndRNNParams:
    return traces_like(p, B, p.W.dtype)                               # (B, H, I), (B, H), (B, H)


def local_factors(p: IndRNNParams, cache: IndRNNCache) -> IndRNNParams:
    """D_t factored (Eqs. 22, 42): W's row factor, and D_t of u and b."""
    d = cache.dh_dpre                                                 # (B, H)
    return IndRNNParams(W=d,                                          # (B, H) times x_t
                        u=d * cache.h_tm1,                            # (B, H)
                        b=d)                                          # (B, H)


def local_terms(p: IndRNNParams, cache: IndRNNCache) -> IndRNNParams:
    """D_t: the local partials of h_t with respect to each parameter row (Eq. 22)."""
    return expand_factors(p, local_factors(p, cache), cache.x_t)      # (B, H, I), (B, H), (B, H)


def trace_update(p: IndRNNParams, cache: IndRNNCache, traces: IndRNNParams) -> IndRNNParams:
    return decay_add(jacobian(cache), traces, local_terms(p, cache))


def grads_from_traces(g_h, traces: IndRNNParams) -> IndRNNParams:
    return contract(g_h, traces, IndRNNParams)


def step_backward(g_h, cache: IndRNNCache, p: IndRNNParams):
    """Backward of `step` for the total gradient g_h (B, H): (g_h_tm1 (B, H), g_x (B, I), grads)."""
    g_pre = g_h * cache.dh_dpre                                       # (B, H)
    grads = IndRNNParams(W=g_pre.T @ cache.x_t,                      # (H, I)
                         u=(g_pre * cache.h_tm1).sum(0),              # (H,)
                         b=g_pre.sum(0))                              # (H,)
    return g_pre * p.u, g_pre @ p.W, grads


CELL = Cell("indrnn", init, check_params, zero_state, step, jacobian, zero_traces, trace_update,
            grads_from_traces, step_backward, local_factors)
