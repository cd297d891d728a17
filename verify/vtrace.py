"""The slow V-trace reference: the defining sums of docs/derivation.md, Eq. 17, written literally.

    v_s = V(x_s) + sum_{t=s}^{T-1} (prod_{i=s}^{t-1} gamma_i c_i) rho_t^- (r_t + gamma_t V(x_{t+1}) - V(x_t))
    A_s = min(pg_rho_bar, rho_s) (r_s + gamma_s v_{s+1} - V(x_s)),   v_T = V(x_T)

with rho_t = pi/mu (a_t | x_t), rho_t^- = min(rho_bar, rho_t), c_i = min(c_bar, rho_i). One scalar
at a time, O(T^2 B): the fast recursion of the application is checked against it
(verify.checks.check_vtrace).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class VTraceTargets(NamedTuple):
    vs: np.ndarray             # (T, B) targets v_s
    pg_advantages: np.ndarray  # (T, B) policy-gradient advantages


def vtrace_slow_reference(behaviour_logp, target_logp, rewards, discounts, values, bootstrap_value,
                          rho_bar: float = 1.0, c_bar: float = 1.0, pg_rho_bar: float = 1.0) -> VTraceTargets:
    """Time-major (T, B) inputs as the application's vtrace; bootstrap_value V(x_T) is (B,)."""
    T, B = np.shape(rewards)
    for name, a in (("behaviour_logp", behaviour_logp), ("target_logp", target_logp),
                    ("discounts", discounts), ("values", values)):
        if np.shape(a) != (T, B):
            raise ValueError(f"{name}: expected shape (T={T}, B={B}), got {np.shape(a)}")
    if np.shape(bootstrap_value) != (B,):
        raise ValueError(f"bootstrap_value: expected shape (B={B},), got {np.shape(bootstrap_value)}")
    vs = np.zeros((T, B))                                             # (T, B)
    pg_advantages = np.zeros((T, B))                                  # (T, B)

    def V(t, b):
        return float(values[t, b]) if t < T else float(bootstrap_value[b])

    for b in range(B):
        rho = [float(np.exp(target_logp[t, b] - behaviour_logp[t, b])) for t in range(T)]
        for s in range(T):
            total = V(s, b)
            for t in range(s, T):
                weight = 1.0
                for i in range(s, t):
                    weight *= float(discounts[i, b]) * min(c_bar, rho[i])
                delta_t = min(rho_bar, rho[t]) * (float(rewards[t, b])
                                                  + float(discounts[t, b]) * V(t + 1, b) - V(t, b))
                total += weight * delta_t
            vs[s, b] = total
        for s in range(T):
            v_next = vs[s + 1, b] if s + 1 < T else float(bootstrap_value[b])
            pg_advantages[s, b] = min(pg_rho_bar, rho[s]) * (float(rewards[s, b])
                                                             + float(discounts[s, b]) * v_next - V(s, b))
    dtype = np.asarray(values).dtype
    return VTraceTargets(vs.astype(dtype), pg_advantages.astype(dtype))
