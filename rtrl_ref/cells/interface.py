"""The contract of a recurrent cell with diagonal (element-wise) recurrence, and helpers shared by the cells.

A cell maps (x_t (B, I), s_tm1 (B, H)) to s_t (B, H) such that unit h of s_t reads only s_tm1[h] and
only row h of every parameter (docs/derivation.md, Eq. 19). Then the state Jacobian ds_t/ds_tm1 is a
diagonal J_t (B, H), and the RTRL trace of a parameter is as small as the parameter itself:

    S_t = J_t * S_tm1 + D_t            (B, H, I) for a matrix (H, I), (B, H) for a vector (H,)

with D_t the local partial of s_t (the cell's `trace_update`), and the gradient of sum_t <g_s[t], s_t>
is sum_t sum_b <g_s[t, b], S_t[b]> (`grads_from_traces`). A cell's state may be complex (the LRU); then
<g, s> = Re(conj(g) s) and g_s = dL/dRe(s) + i dL/dIm(s) (Eq. 29). Parameters are always real.

The fields of `Cell` (each a plain function of arrays; `rtrl_ref.cells.drivers` runs any cell):

    name                str
    init                (rng, I, H, dtype) -> params (a NamedTuple of real arrays (H, I) or (H,))
    check_params        (params, name) -> (H, I); ValueError naming the bad field otherwise
    zero_state          (params, B) -> s (B, H) of zeros in the state's dtype
    step                (params, x_t (B, I), s_tm1 (B, H)) -> (s_t (B, H), cache with the local derivatives)
    jacobian            (cache) -> J_t (B, H), the diagonal of ds_t/ds_tm1
    zero_traces         (params, B) -> traces: a NamedTuple of the params' type, each field with a leading B
    trace_update        (params, cache, traces_tm1) -> traces_t (traces already reset for this step)
    grads_from_traces   (g_s (B, H), traces) -> grads (the params' type), summed over B
    step_backward       (g_s (B, H), cache, params) -> (g_s_tm1 (B, H), g_x (B, I), grads summed over B)
    local_factors       (params, cache) -> D_t factored (Eq. 42), the params' type in the state's dtype: for a
                        matrix field (H, I) the (B, H) row factor a_t with D_t = a_t[:, :, None] * x_t[:, None, :],
                        for a vector field (H,) D_t itself (B, H) (`expand_factors` rebuilds D_t)

Resets are the drivers' business (Eq. 10): before step t, s_tm1 and every trace of a row with
reset[t, b] are zeroed, and no gradient flows from step t into s_tm1 of that row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from rtrl_ref.validate import check_array, check_float_dtype


class Cell(NamedTuple):
    """One cell with diagonal recurrence (see the module docstring for every field's contract)."""

    name: str
    init: Callable               # (rng, I, H, dtype) -> params
    check_params: Callable       # (params, name) -> (H, I)
    zero_state: Callable         # (params, B) -> s (B, H)
    step: Callable               # (params, x_t, s_tm1) -> (s_t, cache)
    jacobian: Callable           # (cache) -> J_t (B, H)
    zero_traces: Callable        # (params, B) -> traces
    trace_update: Callable       # (params, cache, traces_tm1) -> traces_t
    grads_from_traces: Callable  # (g_s, traces) -> grads
    step_backward: Callable      # (g_s, cache, params) -> (g_s_tm1, g_x, grads)
    local_factors: Callable      # (params, cache) -> D_t factored: (B, H) per field


def check_fields(name: str, p, matrices: tuple[str, ...], vectors: tuple[str, ...]) -> tuple[int, int]:
    """Check a params NamedTuple: `matrices` (H, I), `vectors` (H,), one real float dtype. Returns (H, I)."""
    if not isinstance(p, tuple) or not hasattr(p, "_fields"):
        raise ValueError(f"{name}: expected a params NamedTuple, got {type(p).__name__}")
    first = matrices[0]
    check_array(f"{name}.{first}", getattr(p, first), (("H", None), ("I", None)))
    H, I = getattr(p, first).shape
    dtype = check_float_dtype(f"{name}.{first}", getattr(p, first))
    for field in matrices[1:]:
        check_array(f"{name}.{field}", getattr(p, field), (("H", H), ("I", I)), dtype)
    for field in vectors:
        check_array(f"{name}.{field}", getattr(p, field), (("H", H),), dtype)
    return H, I


def check_sizes(where: str, I: int, H: int, dtype) -> np.dtype:
    """The arguments every `init` takes: I >= 1, H >= 1, float32 or float64."""
    if I < 1 or H < 1:
        raise ValueError(f"{where}: expected I >= 1 and H >= 1, got I={I}, H={H}")
    if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype: expected float32 or float64, got {np.dtype(dtype)}")
    return np.dtype(dtype)


def traces_like(p, B: int, dtype):
    """Zero traces for params `p`: every field (H, ...) becomes (B, H, ...) of `dtype`."""
    return type(p)(*(np.zeros((B,) + a.shape, dtype) for a in p))


def per_unit(J, a):
    """J (B, H) broadcast against a trace field a (B, H) or (B, H, I)."""
    return J.reshape(J.shape + (1,) * (a.ndim - J.ndim))


def decay_add(J, traces_tm1, local):
    """S_t = J_t * S_tm1 + D_t for every field (Eq. 19): traces_tm1 and local are of one NamedTuple type."""
    return type(traces_tm1)(*(per_unit(J, S) * S + D for S, D in zip(traces_tm1, local)))


def expand_factors(p, factors, x_t):
    """D_t from `local_factors` (Eq. 42): a matrix field's (B, H) factor a_t becomes a_t[:, :, None] *
    x_t[:, None, :] (B, H, I); a vector field's factor is D_t itself (B, H)."""
    return type(factors)(*(a[:, :, None] * x_t[:, None, :] if w.ndim == 2 else a for w, a in zip(p, factors)))


def real_inner(g, a):
    """Re(conj(g) * a) element-wise: g * a for real arrays (the real inner product of Eq. 29)."""
    if np.iscomplexobj(g) or np.iscomplexobj(a):
        return (np.conj(g) * a).real
    return g * a


def contract(g_s, traces, params_type):
    """sum_b <g_s[b], S[b]> for every field (Eq. 19): (H, I) for a matrix trace, (H,) for a vector trace."""
    return params_type(*(real_inner(per_unit(g_s, S), S).sum(0) for S in traces))


def mask_rows(a, reset_t):
    """a (B, ...) with the rows b where reset_t[b] is True set to zero (Eq. 10)."""
    keep = ~reset_t                                                   # (B,)
    return a * keep.reshape(keep.shape + (1,) * (a.ndim - 1)).astype(a.real.dtype)


def add_grads(a, b):
    """Field-wise sum of two gradients (a may be None)."""
    return b if a is None else type(a)(*(u + v for u, v in zip(a, b)))
