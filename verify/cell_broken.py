"""Deliberately wrong gradients of the IndRNN, minGRU and LRU: the negative twins of verify.cell_checks.

Each is a real mistake of docs/derivation.md, section 10, fed to the check in place of the shipped
code; the check must then fail (the audit's "negative twins" family shows that it does).

    wrong_backward(name)          a cell whose step_backward drops a term (the BPTT under check):
                                  IndRNN g_h_tm1 = u g (tanh' dropped, Eq. 23), minGRU g_h_tm1 = g
                                  (-z_t dropped from J_t, Eq. 27), LRU the dgamma_dnu u_t term of
                                  dL/dnu dropped (gamma held constant, Eq. 33)
    rtrl_dropped_term(backend)    step-form RTRL whose trace update drops one local term:
                                  IndRNN dh_dpre h_tm1 (S^u, Eq. 22), minGRU z_t x_t (S^{W_h}, Eq. 26),
                                  LRU dgamma_dnu u_t (S^nu, Eq. 31)
    rtrl_no_trace_reset(backend)  step-form RTRL that resets the state but not the traces (Eq. 10)
    rtrl_traces_not_carried(backend)  step-form RTRL that starts every call from zero traces

The RTRL twins wrap the backend's own online step (rtrl_ref.cells.drivers.step_function): for
"numba" that is the compiled kernel, so a twin is the kernel with that bug. A dropped term is
subtracted from the trace after every step, which gives exactly the recursion without it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rtrl_ref.cells import get_cell
from rtrl_ref.cells.drivers import RTRLResult, step_function
from rtrl_ref.cells.interface import Cell, mask_rows
from rtrl_ref.xp import sigmoid

BUGS = {
    "indrnn": "tanh' dropped from J_t in the backward (g_h_tm1 = u g)",
    "mingru": "-z_t dropped from J_t in the backward (g_h_tm1 = g)",
    "lru": "gamma held constant in the backward (dL/dnu without dgamma_dnu u_t)",
}
DROPPED = {
    "indrnn": "S^u without dh_dpre h_tm1",
    "mingru": "S^W_h without z_t x_t",
    "lru": "S^nu without dgamma_dnu u_t",
}


def wrong_backward(name: str) -> Cell:
    """The cell `name` with the step_backward mistake of BUGS[name]."""
    cell = get_cell(name)

    def step_backward(g, cache, p):
        g_tm1, g_x, grads = cell.step_backward(g, cache, p)
        if name == "indrnn":
            return g * p.u, g_x, grads                                # (B, H) tanh' dropped
        if name == "mingru":
            return g, g_x, grads                                      # (B, H) J_t = 1
        missing = (np.conj(g) * cache.dgamma_dnu * cache.u_t).real.sum(0)   # (H,)
        return g_tm1, g_x, grads._replace(nu=grads.nu - missing)

    return cell._replace(step_backward=step_backward)


def dropped_term(cell: Cell, p, x_t, h_tm1, h_t):
    """The local term of DROPPED[cell.name] at one step: (field, (B, H[, I]) array)."""
    if cell.name == "indrnn":
        return "u", (1 - h_t * h_t) * h_tm1                           # (B, H)
    if cell.name == "mingru":
        z_t = sigmoid(x_t @ p.W_z.T + p.b_z)                          # (B, H)
        return "W_h", z_t[:, :, None] * x_t[:, None, :]               # (B, H, I)
    decay = np.exp(p.nu)                                              # (H,)
    gamma = np.sqrt(-np.expm1(-2 * decay))                            # (H,)
    u_t = x_t @ p.B_re.T + 1j * (x_t @ p.B_im.T)                      # (B, H)
    return "nu", decay * np.exp(-2 * decay) / gamma * u_t             # (B, H)


def online(backend: str, wrong_step: Callable, carry_traces: bool = True) -> Callable:
    """rtrl_sequence's loop, each step through wrong_step(step, cell, p, x_t, reset_t, s, traces),
    where `step` is the backend's own online step. Same signature as rtrl_sequence."""
    def run(cell, p, x, reset, g_s, s_0=None, traces=None):
        T, B = x.shape[:2]
        steps = step_function(cell, p, B, backend)
        s = cell.zero_state(p, B) if s_0 is None else s_0.copy()      # (B, H)
        if traces is None or not carry_traces:
            traces = cell.zero_traces(p, B)
        else:
            traces = type(traces)(*(a.copy() for a in traces))
        grads = None
        for t in range(T):
            s, traces = wrong_step(steps.step, cell, p, x[t], reset[t], s, traces)
            grads = steps.accumulate(grads, g_s[t], traces)
        return RTRLResult(grads, s, traces)

    return run


def _dropping(step, cell, p, x_t, reset_t, s, traces):
    h_tm1 = mask_rows(s, reset_t)                                     # (B, H) a copy: numba overwrites s
    s, traces, _ = step(p, x_t, reset_t, s, traces)
    field, term = dropped_term(cell, p, x_t, h_tm1, s)
    getattr(traces, field)[...] -= term.astype(getattr(traces, field).dtype)
    return s, traces


def _not_resetting(step, cell, p, x_t, reset_t, s, traces):
    s, traces, _ = step(p, x_t, np.zeros_like(reset_t), mask_rows(s, reset_t), traces)
    return s, traces


def _plain(step, cell, p, x_t, reset_t, s, traces):
    s, traces, _ = step(p, x_t, reset_t, s, traces)
    return s, traces


def rtrl_dropped_term(backend: str = "numpy") -> Callable:
    return online(backend, _dropping)


def rtrl_no_trace_reset(backend: str = "numpy") -> Callable:
    return online(backend, _not_resetting)


def rtrl_traces_not_carried(backend: str = "numpy") -> Callable:
    return online(backend, _plain, carry_traces=False)
