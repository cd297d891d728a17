"""The actor-critic loss of R2AC/IMPALA (docs/derivation.md, Eq. 18), summed over time and batch.

With pi = softmax(logits) (T, B, A), taken actions a (T, B), and the V-trace outputs vs and
pg_advantages treated as constants:

    pg_loss       = - sum_{t,b} log pi(a_t) A_t
    baseline_loss = baseline_cost * 0.5 * sum_{t,b} (vs_t - V_t)^2
    entropy_loss  = entropy_cost * sum_{t,b} sum_a pi_a log pi_a      (minus the entropy)
    loss          = pg_loss + baseline_loss + entropy_loss

Gradients (onehot(a) the indicator of the taken action, E = sum_a pi_a log pi_a):

    d pg_loss / d logits       = - A_t (onehot(a_t) - pi)
    d entropy_loss / d logits  = entropy_cost * pi (log pi - E)
    d baseline_loss / d V      = baseline_cost * (V_t - vs_t)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from rtrl_ref.r2ac.layers import log_softmax
from rtrl_ref.validate import check_array, check_float_dtype


class LossParts(NamedTuple):
    total: float
    pg: float
    baseline: float
    entropy: float          # entropy_cost * sum(-entropy)
    mean_entropy: float     # average policy entropy per step (for logging)
    pg_logit_grad: float    # norm of d pg_loss / d logits (the advantage-weighted part of g_logits)
    entropy_logit_grad: float  # norm of d entropy_loss / d logits: above pg_logit_grad, entropy wins


class LossGrads(NamedTuple):
    g_logits: np.ndarray    # (T, B, A)
    g_values: np.ndarray    # (T, B)


def check_loss_inputs(logits, values, actions, vs, pg_advantages) -> tuple[int, int, int]:
    check_array("logits", logits, (("T", None), ("B", None), ("A", None)))
    dtype = check_float_dtype("logits", logits)
    T, B, A = logits.shape
    check_array("values", values, (("T", T), ("B", B)), dtype)
    check_array("vs", vs, (("T", T), ("B", B)), dtype)
    check_array("pg_advantages", pg_advantages, (("T", T), ("B", B)), dtype)
    check_array("actions", actions, (("T", T), ("B", B)), finite=False)
    if np.dtype(actions.dtype).kind not in "iu":
        raise ValueError(f"actions: expected an integer dtype, got {np.dtype(actions.dtype)}")
    if actions.size and (actions.min() < 0 or actions.max() >= A):
        raise ValueError(f"actions: expected values in [0, {A}), got [{actions.min()}, {actions.max()}]")
    return T, B, A


def actor_critic_loss(logits, values, actions, vs, pg_advantages, baseline_cost: float = 0.5,
                      entropy_cost: float = 0.01) -> tuple[LossParts, LossGrads]:
    """The loss, its parts, and its gradients w.r.t. logits (T, B, A) and values (T, B)."""
    T, B, A = check_loss_inputs(logits, values, actions, vs, pg_advantages)
    log_pi = log_softmax(logits)                                     # (T, B, A)
    pi = np.exp(log_pi)                                              # (T, B, A)
    onehot = np.zeros_like(logits)                                   # (T, B, A)
    np.put_along_axis(onehot, actions[..., None], 1, axis=-1)
    log_pi_a = (log_pi * onehot).sum(-1)                             # (T, B)
    neg_entropy = (pi * log_pi).sum(-1)                              # (T, B) E_t = sum_a pi log pi
    pg_loss = -float((log_pi_a * pg_advantages).sum())
    baseline_loss = baseline_cost * 0.5 * float(((vs - values) ** 2).sum())
    entropy_loss = entropy_cost * float(neg_entropy.sum())
    g_pg = -pg_advantages[..., None] * (onehot - pi)                 # (T, B, A)
    g_entropy = entropy_cost * pi * (log_pi - neg_entropy[..., None])  # (T, B, A)
    g_logits = g_pg + g_entropy                                      # (T, B, A)
    g_values = baseline_cost * (values - vs)                         # (T, B)
    parts = LossParts(pg_loss + baseline_loss + entropy_loss, pg_loss, baseline_loss, entropy_loss,
                      -float(neg_entropy.mean()), float(np.linalg.norm(g_pg)), float(np.linalg.norm(g_entropy)))
    return parts, LossGrads(g_logits.astype(logits.dtype, copy=False),
                            g_values.astype(values.dtype, copy=False))
