"""Optimisers over parameter pytrees (tree.py): pure functions, new arrays out.

RMSProp as PyTorch's `torch.optim.RMSprop` (momentum 0, not centred; the paper's optimiser):

    v <- alpha v + (1 - alpha) g^2
    p <- p - lr g / (sqrt(v) + eps)            eps OUTSIDE the square root; v starts at 0

optionally with Adam's bias correction of v (step k = 1, 2, ... given by the caller):

    p <- p - lr g / (sqrt(v / (1 - alpha^k)) + eps)

Without it the first steps are too large: v_1 = (1 - alpha) g^2, so with a small eps update 1
moves every weight by lr / sqrt(1 - alpha) = 10 lr (alpha 0.99) in the direction of sign(g).

Adam with bias correction (Kingma & Ba 2015; as `torch.optim.Adam`, no weight decay), k = 1, 2, ...:

    m <- beta1 m + (1 - beta1) g,   v <- beta2 v + (1 - beta2) g^2
    p <- p - lr (m / (1 - beta1^k)) / (sqrt(v / (1 - beta2^k)) + eps)

Global gradient-norm clipping (as `torch.nn.utils.clip_grad_norm_`): with
n = sqrt(sum over all leaves of sum g^2), every leaf is scaled by min(1, max_norm / (n + 1e-6)).

Linear learning-rate decay to zero: lr_k = lr_0 (1 - min(frames, total) / total).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from rtrl_ref.r2ac.tree import tree_leaves, tree_map, tree_zeros_like


class RMSPropState(NamedTuple):
    square_avg: object       # pytree like params: v


class AdamState(NamedTuple):
    step: np.ndarray         # () int64: updates taken so far (k)
    m: object                # pytree like params
    v: object                # pytree like params


def _check_hyper(name: str, value: float, low: float, high: float, closed_low: bool = True) -> None:
    ok = (low <= value if closed_low else low < value) and value < high
    if not ok:
        raise ValueError(f"{name}: expected a value in {'[' if closed_low else '('}{low}, {high}), got {value!r}")


def rmsprop_init(params) -> RMSPropState:
    return RMSPropState(square_avg=tree_zeros_like(params))


def rmsprop_update(params, grads, state: RMSPropState, lr: float, alpha: float, eps: float,
                   step: int = 0) -> tuple[object, RMSPropState]:
    """One RMSProp step: returns (params, state). alpha: the squares' smoothing, eps: added outside
    the square root (no defaults: the training config holds them, the paper's are 0.99 and 0.01).
    step k >= 1: bias-correct v as the k-th update; step 0: no correction (PyTorch's RMSprop)."""
    _check_hyper("lr", lr, 0.0, np.inf)
    _check_hyper("alpha", alpha, 0.0, 1.0)
    _check_hyper("eps", eps, 0.0, np.inf)
    if step < 0:
        raise ValueError(f"step: expected an integer >= 0, got {step!r}")
    correction = 1.0 - alpha ** step if step else 1.0
    square_avg = tree_map(lambda v, g: alpha * v + (1 - alpha) * (g * g), state.square_avg, grads)
    new_params = tree_map(lambda p, g, v: p - lr * g / (np.sqrt(v / v.dtype.type(correction)) + eps),
                          params, grads, square_avg)
    return new_params, RMSPropState(square_avg)


def adam_init(params) -> AdamState:
    return AdamState(step=np.zeros((), np.int64), m=tree_zeros_like(params), v=tree_zeros_like(params))


def adam_update(params, grads, state: AdamState, lr: float, beta1: float = 0.9,
                beta2: float = 0.999, eps: float = 1e-8) -> tuple[object, AdamState]:
    """One Adam step: returns (params, state)."""
    _check_hyper("lr", lr, 0.0, np.inf)
    _check_hyper("beta1", beta1, 0.0, 1.0)
    _check_hyper("beta2", beta2, 0.0, 1.0)
    _check_hyper("eps", eps, 0.0, np.inf)
    k = int(state.step) + 1
    correction1 = 1 - beta1 ** k
    correction2 = 1 - beta2 ** k
    m = tree_map(lambda m, g: beta1 * m + (1 - beta1) * g, state.m, grads)
    v = tree_map(lambda v, g: beta2 * v + (1 - beta2) * (g * g), state.v, grads)
    new_params = tree_map(lambda p, m, v: p - lr * (m / correction1) / (np.sqrt(v / correction2) + eps),
                          params, m, v)
    return new_params, AdamState(np.array(k, np.int64), m, v)


def global_norm(grads) -> float:
    """sqrt of the sum of squares of every leaf, accumulated in float64."""
    return float(np.sqrt(sum(float(np.square(g, dtype=np.float64).sum()) for _, g in tree_leaves(grads))))


def clip_by_global_norm(grads, max_norm: float) -> tuple[object, float]:
    """Scale every leaf by min(1, max_norm / (norm + 1e-6)); returns (grads, norm before clipping)."""
    _check_hyper("max_norm", max_norm, 0.0, np.inf, closed_low=False)
    norm = global_norm(grads)
    if not np.isfinite(norm):
        raise ValueError(f"grads: expected a finite global norm, got {norm}")
    scale = min(1.0, max_norm / (norm + 1e-6))
    if scale == 1.0:
        return grads, norm
    return tree_map(lambda g: g * g.dtype.type(scale), grads), norm


def linear_decay(lr_0: float, frames: int, total: int) -> float:
    """lr_0 (1 - min(frames, total) / total): decays linearly to 0 at `total` frames."""
    if total <= 0 or frames < 0:
        raise ValueError(f"linear_decay: expected total > 0 and frames >= 0, got total={total}, frames={frames}")
    return lr_0 * (1 - min(frames, total) / total)
