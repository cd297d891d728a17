"""Generic NumPy drivers for any `Cell` (rtrl_ref.cells.interface): forward, full BPTT and step-form RTRL.

With g_s (T, B, H) the immediate gradients (dL_t/ds_t through step t's own loss only) and resets as
in docs/derivation.md, Eq. 10 (reset[t, b]: s_tm1 and every trace of row b zeroed before step t):

    forward        s_t = step(x_t, s_tm1)                                            Eq. 19
    bptt           lam_t = g_s[t] + (backward of step t+1 applied to lam_{t+1}),   the parameter
                   gradient is the sum of every step's backward applied to lam_t      Eq. 19
    rtrl_sequence  S_t = J_t * S_tm1 + D_t, gradient sum_t sum_b <g_s[t, b], S_t[b]>  Eq. 19

Both give the gradient of sum_t <g_s[t], s_t> with the g_s held fixed (<g, s> = Re(conj(g) s) for a
complex state), i.e. of the loss when g_s is its immediate gradient. `rtrl_sequence` runs the forward
itself, one `rtrl_step` at a time, as an online learner would; it carries the state and the traces in
and out, so consecutive calls continue one another exactly.

The online step has two backends (`step_function`): "numpy", `rtrl_step` below (the reference), and
"numba", the fused kernel of rtrl_ref.kernels.cells_numba (reset, forward and trace update in one
compiled call, in place, for the IndRNN, minGRU and LRU) with a compiled gradient contraction.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from rtrl_ref.cells.interface import Cell, add_grads, mask_rows
from rtrl_ref.validate import check_array, check_reset


class Trajectory(NamedTuple):
    s: np.ndarray    # (T, B, H) the states s_t
    caches: tuple    # T caches of `cell.step`, in time order


class BPTTResult(NamedTuple):
    grads: tuple       # the params' type, summed over T and B
    g_x: np.ndarray    # (T, B, I) dL/dx_t
    g_s0: np.ndarray   # (B, H) dL/ds_0 (the carried-in state, before the reset mask of step 0)
    lam: np.ndarray    # (T, B, H) the adjoint (total gradient into s_t)


class RTRLResult(NamedTuple):
    grads: tuple       # the params' type: the exact gradient over the whole history since the last reset
    s: np.ndarray      # (B, H) the state after the last step (carry it into the next call)
    traces: tuple      # the traces after the last step (carry them into the next call)


def check_sequence(cell: Cell, p, x, reset, s_0=None) -> tuple[int, int, int, int]:
    """Validate a sequence against the cell's parameters; returns (T, B, I, H)."""
    H, I = cell.check_params(p, "params")
    dtype = p[0].dtype
    check_array("x", x, (("T", None), ("B", None), ("I", I)), dtype)
    T, B = x.shape[:2]
    if T < 1 or B < 1:
        raise ValueError(f"x: expected T >= 1 and B >= 1, got shape {tuple(x.shape)}")
    check_reset("reset", reset, (("T", T), ("B", B)))
    if s_0 is not None:
        check_array("s_0", s_0, (("B", B), ("H", H)), cell.zero_state(p, 1).dtype)
    return T, B, I, H


def check_g_s(cell: Cell, p, g_s, T: int, B: int, H: int):
    return check_array("g_s", g_s, (("T", T), ("B", B), ("H", H)), cell.zero_state(p, 1).dtype)


def check_traces(cell: Cell, p, traces, B: int):
    """Traces of the params' type, each field (B, ...) of the cell's zero traces' shape and dtype."""
    like = cell.zero_traces(p, B)
    if not isinstance(traces, type(like)):
        raise ValueError(f"traces: expected a {type(like).__name__}, got {type(traces).__name__}")
    for field, a, want in zip(like._fields, traces, like):
        check_array(f"traces.{field}", a, want.shape, want.dtype)
    return traces


def forward(cell: Cell, p, x, reset, s_0=None) -> Trajectory:
    """Run the cell over x (T, B, I) from s_0 (B, H) (zeros if None), resets as in Eq. 10."""
    T, B, _, _ = check_sequence(cell, p, x, reset, s_0)
    s_tm1 = cell.zero_state(p, B) if s_0 is None else s_0             # (B, H)
    states, caches = [], []
    for t in range(T):
        s_tm1, cache = cell.step(p, x[t], mask_rows(s_tm1, reset[t]))
        states.append(s_tm1)
        caches.append(cache)
    return Trajectory(np.stack(states), tuple(caches))                # s (T, B, H)


def bptt(cell: Cell, p, traj: Trajectory, reset, g_s) -> BPTTResult:
    """Full BPTT of sum_t <g_s[t], s_t> through the cell's `step_backward`, resets included."""
    T, B, H = traj.s.shape
    check_reset("reset", reset, (("T", T), ("B", B)))
    check_g_s(cell, p, g_s, T, B, H)
    lam = np.empty_like(g_s)                                          # (T, B, H)
    g_x = [None] * T
    carry = np.zeros_like(g_s[0])                                     # (B, H) gradient from step t+1
    grads = None
    for t in range(T - 1, -1, -1):
        lam[t] = g_s[t] + carry
        g_s_tm1, g_x[t], step_grads = cell.step_backward(lam[t], traj.caches[t], p)
        carry = mask_rows(g_s_tm1, reset[t])                          # (B, H) no gradient across a reset
        grads = add_grads(grads, step_grads)
    return BPTTResult(grads, np.stack(g_x), carry, lam)


def reset_traces(traces, reset_t):
    """Zero every trace of the rows with reset_t True (Eq. 10)."""
    return type(traces)(*(mask_rows(a, reset_t) for a in traces))


def rtrl_step(cell: Cell, p, x_t, reset_t, s_tm1, traces):
    """One online step: reset, forward, trace update. Returns (s_t (B, H), traces_t, cache)."""
    s_t, cache = cell.step(p, x_t, mask_rows(s_tm1, reset_t))
    return s_t, cell.trace_update(p, cache, reset_traces(traces, reset_t)), cache


STEP_BACKENDS = ("numpy", "numba")


class OnlineStep(NamedTuple):
    step: Callable         # (p, x_t, reset_t, s_tm1, traces) -> (s_t, traces_t, local)
    accumulate: Callable   # (grads, g_s_t, traces) -> grads + sum_b <g_s_t[b], traces[b]> (None: from zero)
    in_place: bool         # step overwrites s_tm1 and traces, accumulate overwrites grads


def step_function(cell: Cell, p, B: int, backend: str = "numpy") -> OnlineStep:
    """The online step of a backend for B rows: "numpy" is `rtrl_step` (new arrays; local is the
    cell's cache) and `grads_from_traces`; "numba" the fused kernel of rtrl_ref.kernels.cells_numba
    (in place; local is its work buffer, allocated here once) and its compiled contraction."""
    if backend == "numpy":
        def accumulate(grads, g_s_t, traces):
            return add_grads(grads, cell.grads_from_traces(g_s_t, traces))

        return OnlineStep(functools.partial(rtrl_step, cell), accumulate, False)
    if backend == "numba":
        from rtrl_ref.kernels import cells_numba  # imported when asked for: compiles on first use

        return OnlineStep(*cells_numba.online_step(cell, p, B))
    raise ValueError(f"backend: expected one of {STEP_BACKENDS}, got {backend!r}")


def rtrl_sequence(cell: Cell, p, x, reset, g_s, s_0=None, traces=None, backend: str = "numpy") -> RTRLResult:
    """Step-form RTRL over x (T, B, I): the exact gradient of sum_t <g_s[t], s_t> (g_s (T, B, H)),
    from the carried-in state s_0 and traces (zeros if None; never modified), each step through
    `step_function(cell, p, B, backend)`."""
    T, B, _, H = check_sequence(cell, p, x, reset, s_0)
    check_g_s(cell, p, g_s, T, B, H)
    online = step_function(cell, p, B, backend)
    traces = cell.zero_traces(p, B) if traces is None else check_traces(cell, p, traces, B)
    s = cell.zero_state(p, B) if s_0 is None else s_0                 # (B, H)
    if online.in_place:                                               # on copies, never the caller's
        s, traces = s.copy(), type(traces)(*(a.copy() for a in traces))
    grads = None
    for t in range(T):
        s, traces, _ = online.step(p, x[t], reset[t], s, traces)
        grads = online.accumulate(grads, g_s[t], traces)
    return RTRLResult(grads, s, traces)
