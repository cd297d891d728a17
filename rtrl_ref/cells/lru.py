"""The LRU (Orvieto et al., ICML 2023) in a simple form: a complex diagonal linear recurrence, through
the cell interface (docs/derivation.md, Eqs. 28-33).

Forward, element-wise over H, with real parameters nu, theta (H,) and B_re, B_im (H, I):
    lam     = exp(-exp(nu) + i exp(theta))           |lam| = exp(-exp(nu)) < 1 for every real nu
    gamma   = sqrt(1 - |lam|^2)                      normalisation, a function of nu (not a parameter)
    u_t     = (B_re + i B_im) x_t                    (B, H) complex
    h_t     = lam * h_tm1 + gamma * u_t              (B, H) complex
The state h_t is complex; the output the LRU reads out, Re(C h_t) + D x_t, is outside the
recurrence (as the eLSTM's output gate), so it is left to the consumer: a loss that reads y_t = Re(h_t)
gives g_h = dL/dy_t + 0i. Convention (Eq. 29): g_h = dL/dRe(h) + i dL/dIm(h), and a trace
S^p = dRe(h)/dp + i dIm(h)/dp for a real parameter p, so that dL/dp = Re(conj(g_h) * S^p).

Local derivatives ((H,), broadcast over B):
    dlam_dnu    = -exp(nu) * lam          dlam_dtheta = i exp(theta) * lam
    dgamma_dnu  = exp(nu) * |lam|^2 / gamma
    J_t         = lam                     (complex multiplication by lam is C-linear in h_tm1)
Traces (complex): S^nu_t = lam S^nu_tm1 + dlam_dnu h_tm1 + dgamma_dnu u_t, S^theta_t = lam S^theta_tm1
+ dlam_dtheta h_tm1 (B, H); S^{B_re}_t = lam S^{B_re}_tm1 + gamma x_t and S^{B_im} likewise with
i gamma x_t (B, H, I). The BPTT adjoint runs through conj(lam): g_h_tm1 = conj(lam) * g_h.

Differences from the paper's LRU, for a small exact reference: gamma is tied to nu (the paper trains
its log separately, initialised to this value), and there is no C, D nor MLP around the recurrence.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from rtrl_ref.cells.interface import (
    Cell,
    check_fields,
    check_sizes,
    contract,
    decay_add,
    expand_factors,
    real_inner,
    traces_like,
)


class LRUParams(NamedTuple):
    nu: np.ndarray     # (H,)   log of the decay rate: |lam| = exp(-exp(nu))
    theta: np.ndarray  # (H,)   log of the phase: arg(lam) = exp(theta)
    B_re: np.ndarray   # (H, I) real part of the input matrix
    B_im: np.ndarray   # (H, I) imaginary part of the input matrix


class LRUCache(NamedTuple):
    x_t: np.ndarray          # (B, I) real
    h_tm1: np.ndarray        # (B, H) complex, after the reset mask
    u_t: np.ndarray          # (B, H) complex, (B_re + i B_im) x_t
    h_t: np.ndarray          # (B, H) complex
    lam: np.ndarray          # (H,) complex, J_t for every row
    gamma: np.ndarray        # (H,) real
    dlam_dnu: np.ndarray     # (H,) complex
    dlam_dtheta: np.ndarray  # (H,) complex
    dgamma_dnu: np.ndarray   # (H,) real


def state_dtype(dtype) -> np.dtype:
    """complex64 for float32 parameters, complex128 for float64."""
    return np.result_type(np.dtype(dtype), np.complex64)


def init(rng: np.random.Generator, I: int, H: int, dtype=np.float32, r_min: float = 0.5,
         r_max: float = 0.99, max_phase: float = 2 * np.pi) -> LRUParams:
    """The paper's ring initialisation: |lam| uniform on the ring r_min <= |lam| <= r_max (by area),
    arg(lam) ~ U(0, max_phase); B_re, B_im ~ N(0, 1 / (2 I))."""
    dtype = check_sizes("lru.init", I, H, dtype)
    if not 0 < r_min < r_max < 1:
        raise ValueError(f"r_min, r_max: expected 0 < r_min < r_max < 1, got r_min={r_min}, r_max={r_max}")
    if not max_phase > 0:
        raise ValueError(f"max_phase: expected a number > 0, got {max_phase!r}")
    radius_sq = rng.uniform(r_min**2, r_max**2, H)                    # (H,) |lam|^2
    nu = np.log(-0.5 * np.log(radius_sq))                             # (H,) exp(-2 exp(nu)) = |lam|^2
    theta = np.log(max_phase * (1.0 - rng.random(H)))                 # (H,) phase in (0, max_phase]
    scale = 1.0 / np.sqrt(2 * I)
    B_re = scale * rng.standard_normal((H, I))                        # (H, I)
    B_im = scale * rng.standard_normal((H, I))                        # (H, I)
    return LRUParams(*(a.astype(dtype) for a in (nu, theta, B_re, B_im)))


def with_memory_times(p: LRUParams, tau) -> LRUParams:
    """|lam| = 1 - 1/tau (H,), the phase kept: nu = log(-log(1 - 1/tau)) (|lam| = exp(-exp(nu))), so
    tau is each unit's characteristic memory time (the chrono option of the agent draws
    tau ~ U(2, T_max))."""
    tau = np.asarray(tau, dtype=np.float64)
    return p._replace(nu=np.log(-np.log1p(-1.0 / tau)).astype(p.nu.dtype))


def check_params(p: LRUParams, name: str = "params") -> tuple[int, int]:
    return check_fields(name, p, ("B_re", "B_im"), ("nu", "theta"))


def zero_state(p: LRUParams, B: int):
    return np.zeros((B, p.nu.shape[0]), state_dtype(p.nu.dtype))      # (B, H) complex


def step(p: LRUParams, x_t, h_tm1):
    """One step: returns (h_t (B, H) complex, cache)."""
    cdtype = state_dtype(p.nu.dtype)
    decay = np.exp(p.nu)                                              # (H,) exp(nu)
    phase = np.exp(p.theta)                                           # (H,) exp(theta)
    lam = np.exp(-decay + 1j * phase).astype(cdtype)                  # (H,)
    gamma = np.sqrt(-np.expm1(-2 * decay))                            # (H,) sqrt(1 - |lam|^2)
    u_t = (x_t @ p.B_re.T + 1j * (x_t @ p.B_im.T)).astype(cdtype)     # (B, H)
    h_t = lam * h_tm1 + gamma * u_t                                   # (B, H)
    dlam_dnu = -decay * lam                                           # (H,)
    dlam_dtheta = 1j * phase * lam                                    # (H,)
    dgamma_dnu = decay * np.exp(-2 * decay) / gamma                   # (H,)
    return h_t, LRUCache(x_t, h_tm1, u_t, h_t, lam, gamma, dlam_dnu, dlam_dtheta, dgamma_dnu)


def jacobian(cache: LRUCache):
    return np.broadcast_to(cache.lam, cache.h_tm1.shape)             # (B, H)


def zero_traces(p: LRUParams, B: int) -> LRUParams:
    return traces_like(p, B, state_dtype(p.nu.dtype))                # 2 x (B, H), 2 x (B, H, I) complex


def local_factors(p: LRUParams, cache: LRUCache) -> LRUParams:
    """D_t factored (Eqs. 31, 42), complex: D_t of nu, theta, and the row factors gamma, i gamma of B_re, B_im."""
    gamma = np.broadcast_to(cache.gamma, cache.h_t.shape).astype(cache.h_t.dtype)          # (B, H)
    return LRUParams(nu=cache.dlam_dnu * cache.h_tm1 + cache.dgamma_dnu * cache.u_t,         # (B, H)
                     theta=cache.dlam_dtheta * cache.h_tm1,                                  # (B, H)
                     B_re=gamma,                                                             # (B, H) times x_t
                     B_im=1j * gamma)                                                        # (B, H) times x_t


def local_terms(p: LRUParams, cache: LRUCache) -> LRUParams:
    """D_t: the local partials of h_t with respect to each parameter row (Eq. 31), complex."""
    return expand_factors(p, local_factors(p, cache), cache.x_t)      # 2 x (B, H), 2 x (B, H, I)


def trace_update(p: LRUParams, cache: LRUCache, traces: LRUParams) -> LRUParams:
    return decay_add(jacobian(cache), traces, local_terms(p, cache))


def grads_from_traces(g_h, traces: LRUParams) -> LRUParams:
    return contract(g_h, traces, LRUParams)


def step_backward(g_h, cache: LRUCache, p: LRUParams):
    """Backward of `step` for the total gradient g_h (B, H) complex (Eq. 29 convention):
    (g_h_tm1 (B, H) complex, g_x (B, I) real, grads (real))."""
    g_re = cache.gamma * g_h.real                                     # (B, H) dL/d(B_re x_t)
    g_im = cache.gamma * g_h.imag                                     # (B, H) dL/d(B_im x_t)
    local_nu = cache.dlam_dnu * cache.h_tm1 + cache.dgamma_dnu * cache.u_t    # (B, H)
    grads = LRUParams(nu=real_inner(g_h, local_nu).sum(0),                      # (H,)
                      theta=real_inner(g_h, cache.dlam_dtheta * cache.h_tm1).sum(0),   # (H,)
                      B_re=g_re.T @ cache.x_t,                                  # (H, I)
                      B_im=g_im.T @ cache.x_t)                                  # (H, I)
    g_x = g_re @ p.B_re + g_im @ p.B_im                                         # (B, I)
    return np.conj(cache.lam) * g_h, g_x, grads


CELL = Cell("lru", init, check_params, zero_state, step, jacobian, zero_traces, trace_update,
            grads_from_traces, step_backward, local_factors)
