"""V-trace targets and policy-gradient advantages (Espeholt et al. 2018, IMPALA, Sec. 4.1;
docs/derivation.md, Eq. 17).

Time-major arrays (T, B). Index t is the transition x_t --a_t--> x_{t+1}:

    behaviour_logp[t]  log mu(a_t | x_t)   the actor's policy when it acted
    target_logp[t]     log pi(a_t | x_t)   the learner's current policy
    rewards[t]         r_t, the reward received for a_t (clipped by the caller)
    discounts[t]       gamma_t = gamma * (1 - done_{t+1}): zero when x_{t+1} starts a new episode,
                       so nothing after the episode end is bootstrapped into step t
    values[t]          V(x_t)
    bootstrap_value    V(x_T) (B,), the value of the state after the last transition

In torchbeast's rollout layout (entries 0..T, entry t pairing frame x_t with the reward and done
flag that arrived with it, as in the paper's code) this is rewards = reward[1:], done = done[1:],
values = baseline[:-1], bootstrap_value = baseline[T].

With rho_t = pi/mu (a_t | x_t), clipped weights

    rho_t^- = min(rho_bar, rho_t),    c_t = min(c_bar, rho_t),    delta_t = rho_t^- (r_t + gamma_t V(x_{t+1}) - V(x_t))

the V-trace target (IMPALA Eq. 1, with time-varying discounts; lambda = 1) is

    v_s = V(x_s) + sum_{t=s}^{T-1} (prod_{i=s}^{t-1} gamma_i c_i) delta_t

computed by the backward recursion  v_s - V(x_s) = delta_s + gamma_s c_s (v_{s+1} - V(x_{s+1})),
v_T = V(x_T). The policy-gradient advantage is

    A_s = min(pg_rho_bar, rho_s) (r_s + gamma_s v_{s+1} - V(x_s)).

All outputs are constants for the loss (no gradient flows through them).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from rtrl_ref.validate import check_array, check_float_dtype


class VTraceReturns(NamedTuple):
    vs: np.ndarray              # (T, B) V-trace value targets
    pg_advantages: np.ndarray   # (T, B) policy-gradient advantages


def check_vtrace_inputs(behaviour_logp, target_logp, rewards, discounts, values, bootstrap_value,
                        rho_bar: float, c_bar: float, pg_rho_bar: float) -> tuple[int, int]:
    check_array("values", values, (("T", None), ("B", None)))
    dtype = check_float_dtype("values", values)
    T, B = values.shape
    for name, a in (("behaviour_logp", behaviour_logp), ("target_logp", target_logp),
                    ("rewards", rewards), ("discounts", discounts)):
        check_array(name, a, (("T", T), ("B", B)), dtype)
    check_array("bootstrap_value", bootstrap_value, (("B", B),), dtype)
    if np.any(discounts < 0) or np.any(discounts > 1):
        raise ValueError(f"discounts: expected values in [0, 1], got [{discounts.min()}, {discounts.max()}]")
    for name, bar in (("rho_bar", rho_bar), ("c_bar", c_bar), ("pg_rho_bar", pg_rho_bar)):
        if not bar > 0:
            raise ValueError(f"{name}: expected a positive truncation level, got {bar!r}")
    return T, B


def vtrace(behaviour_logp, target_logp, rewards, discounts, values, bootstrap_value,
           rho_bar: float = 1.0, c_bar: float = 1.0, pg_rho_bar: float = 1.0) -> VTraceReturns:
    """V-trace targets vs (T, B) and advantages (T, B) by the backward recursion."""
    T, B = check_vtrace_inputs(behaviour_logp, target_logp, rewards, discounts, values,
                               bootstrap_value, rho_bar, c_bar, pg_rho_bar)
    rho = np.exp(target_logp - behaviour_logp)                       # (T, B)
    rho_clipped = np.minimum(rho_bar, rho)                           # (T, B)
    c = np.minimum(c_bar, rho)                                       # (T, B)
    values_tp1 = np.concatenate([values[1:], bootstrap_value[None]])  # (T, B) V(x_{t+1})
    delta = rho_clipped * (rewards + discounts * values_tp1 - values)  # (T, B)
    vs_minus_v = np.zeros((T, B), values.dtype)                      # (T, B)
    acc = np.zeros(B, values.dtype)                                  # (B,) v_{t+1} - V(x_{t+1})
    for t in reversed(range(T)):
        acc = delta[t] + discounts[t] * c[t] * acc                   # (B,)
        vs_minus_v[t] = acc
    vs = values + vs_minus_v                                         # (T, B)
    vs_tp1 = np.concatenate([vs[1:], bootstrap_value[None]])         # (T, B) v_{t+1}
    pg_advantages = np.minimum(pg_rho_bar, rho) * (rewards + discounts * vs_tp1 - values)  # (T, B)
    return VTraceReturns(vs, pg_advantages)

