"""Policy and value heads on the eLSTM output h, and action sampling.

    logits = h @ W_pi.T + b_pi          (..., A)
    value  = h @ W_v.T + b_v            (...,)     (a Linear to one unit, squeezed)

Any leading dims: (N,), or (T, B). Fan-in uniform initialisation (layers.py).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from rtrl_ref.r2ac.layers import (
    LinearCache,
    LinearParams,
    check_linear,
    init_linear,
    linear,
    linear_backward,
    log_softmax,
)
from rtrl_ref.validate import check_array


class HeadsParams(NamedTuple):
    policy: LinearParams  # W (A, H), b (A,)
    value: LinearParams   # W (1, H), b (1,)


class HeadsCache(NamedTuple):
    h: LinearCache        # the input h (..., H), shared by both heads


def init_heads(rng: np.random.Generator, H: int, A: int, dtype=np.float32) -> HeadsParams:
    return HeadsParams(policy=init_linear(rng, H, A, dtype), value=init_linear(rng, H, 1, dtype))


def check_heads(p: HeadsParams, h=None) -> tuple[int, int]:
    """Validate the heads (and h (..., H) if given); returns (H, A)."""
    H, A = check_linear("params.policy", p.policy)
    check_array("params.value.W", p.value.W, (1, ("H", H)), p.policy.W.dtype)
    check_array("params.value.b", p.value.b, (1,), p.policy.W.dtype)
    if h is not None:
        check_array("h", h, (None,) * (getattr(h, "ndim", 1) - 1) + (("H", H),), p.policy.W.dtype,
                    finite=False)
    return H, A


def heads_forward(p: HeadsParams, h, validate: bool = True):
    """h (..., H) -> (logits (..., A), value (...,), cache)."""
    if validate:
        check_heads(p, h)
    logits, cache = linear(p.policy, h, validate=False)              # (..., A)
    value, _ = linear(p.value, h, validate=False)                    # (..., 1)
    return logits, value[..., 0], HeadsCache(cache)


def heads_backward(g_logits, g_value, cache: HeadsCache, p: HeadsParams):
    """Returns (g_h (..., H), grads: HeadsParams summed over leading dims)."""
    g_h_pi, g_policy = linear_backward(g_logits, cache.h, p.policy)  # (..., H)
    g_h_v, g_value_head = linear_backward(g_value[..., None], cache.h, p.value)  # (..., H)
    return g_h_pi + g_h_v, HeadsParams(g_policy, g_value_head)


def action_log_probs(logits, actions):
    """log pi(a | .) of the given int actions (...,) under logits (..., A) -> (...,)."""
    A = logits.shape[-1]
    actions = np.asarray(actions)
    if actions.shape != logits.shape[:-1] or actions.dtype.kind not in "iu":
        raise ValueError(f"actions: expected ints of shape {logits.shape[:-1]}, got "
                         f"{actions.dtype} of shape {actions.shape}")
    if actions.size and (actions.min() < 0 or actions.max() >= A):
        raise ValueError(f"actions: expected values in [0, {A}), got [{actions.min()}, {actions.max()}]")
    log_pi = log_softmax(logits)                                     # (..., A)
    return np.take_along_axis(log_pi, actions[..., None], axis=-1)[..., 0]  # (...,)


def sample_actions(rng: np.random.Generator, logits) -> np.ndarray:
    """One action per row of logits (..., A) from softmax(logits) (Gumbel-max) -> int64 (...,)."""
    gumbel = rng.gumbel(size=logits.shape)                           # (..., A)
    return np.argmax(logits + gumbel, axis=-1).astype(np.int64)      # (...,)
