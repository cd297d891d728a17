"""The agent's recurrent core: eLSTM + output gate, for each learner of the R2AC comparison.

    learner      eLSTM gradient                               carried across unrolls
    rtrl         exact RTRL, segment form (never truncated)    c and the six traces
    tbptt        BPTT inside the unroll, cut at its start      c (no gradient through it)
    feedforward  no recurrence: h = x                          nothing

The gradient that reaches the core input x_t (and so the stem), `stem_grad`:
    tbptt        through the eLSTM inside the unroll (the paper's choice for the vision stem)
    immediate    through step t only (output gate + one eLSTM step, no recurrence)
    frozen       none

An unroll covers T loss steps plus one bootstrap step: x is (T + 1, B, I); the loss gradient
g_h covers the first T steps; the state carried out is the state after step T - 1, so the
bootstrap step is processed again as step 0 of the next unroll (as in IMPALA's rollouts).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from rtrl_ref.bptt import bptt
from rtrl_ref.cell import CellCache, cell_step, cell_step_backward
from rtrl_ref.out_gate import OutGateCache, immediate_g_c, out_gate
from rtrl_ref.params import ELSTMParams, OutGateParams, init_elstm, init_out_gate
from rtrl_ref.rtrl import Traces, rtrl_segment, zero_traces
from rtrl_ref.unroll import elstm_forward

LEARNERS = ("rtrl", "tbptt", "feedforward")
STEM_GRADS = ("tbptt", "immediate", "frozen")


class CoreParams(NamedTuple):
    elstm: ELSTMParams
    gate: OutGateParams


class CoreState(NamedTuple):
    c: np.ndarray              # (B, H) cell after the last loss step
    traces: Traces | None      # RTRL traces (rtrl learner only)


class CoreCache(NamedTuple):
    traj: CellCache            # stacked over T + 1 steps
    gate: OutGateCache


def check_learner(learner: str, stem_grad: str = "tbptt"):
    if learner not in LEARNERS:
        raise ValueError(f"learner: expected one of {LEARNERS}, got {learner!r}")
    if stem_grad not in STEM_GRADS:
        raise ValueError(f"stem_grad: expected one of {STEM_GRADS}, got {stem_grad!r}")


def init_core(rng: np.random.Generator, I: int, H: int, dtype=np.float32, forget_bias: float = 0.0) -> CoreParams:
    return CoreParams(init_elstm(rng, I, H, dtype, forget_bias=forget_bias), init_out_gate(rng, I, H, dtype))


def core_out_features(learner: str, I: int, H: int) -> int:
    """Width of h, the input of the heads."""
    return I if learner == "feedforward" else H


def init_state(learner: str, B: int, I: int, H: int, dtype=np.float32) -> CoreState:
    traces = zero_traces(B, H, I, dtype) if learner == "rtrl" else None
    return CoreState(np.zeros((B, H), dtype), traces)


def reset_c(c, reset_t):
    """Zero the cell of batch rows starting a new episode (the traces are reset inside RTRL)."""
    return c * (~reset_t)[:, None].astype(c.dtype)                       # (B, H)


def core_step(learner: str, params: CoreParams, x_t, reset_t, c_tm1):
    """Acting: one step, no gradient bookkeeping. Returns (h_t (B, H or I), c_t (B, H))."""
    if learner == "feedforward":
        return x_t, c_tm1
    c_t, _ = cell_step(params.elstm, x_t, reset_c(c_tm1, reset_t))
    h_t, _ = out_gate(params.gate, x_t, c_t)
    return h_t, c_t


def core_forward(learner: str, params: CoreParams, x, reset, state: CoreState):
    """Learning: the unroll's forward pass. x (T + 1, B, I) -> (h (T + 1, B, .), cache)."""
    if learner == "feedforward":
        return x, None
    c, traj = elstm_forward(params.elstm, x, reset, state.c)
    h, gate_cache = out_gate(params.gate, x, c)
    return h, CoreCache(traj, gate_cache)


class CoreBackward(NamedTuple):
    grads: CoreParams | None   # None for feedforward
    g_x: np.ndarray | None     # (T, B, I) gradient into the core input; None if stem frozen
    state: CoreState           # carried into the next unroll


def core_backward(learner: str, stem_grad: str, params: CoreParams, cache: CoreCache, reset, g_h,
                  state_in: CoreState, backend: str = "numpy") -> CoreBackward:
    """Gradients of the unroll's loss given g_h = dL/dh_t for the T loss steps (T, B, .)."""
    if learner == "feedforward":
        g_x = None if stem_grad == "frozen" else g_h
        return CoreBackward(None, g_x, state_in)
    T = g_h.shape[0]
    traj = CellCache(*(a[:T] for a in cache.traj))
    gate = OutGateCache(*(a[:T] for a in cache.gate))
    g_c, g_x_gate, g_gate = immediate_g_c(g_h, gate, params.gate)         # (T, B, H), (T, B, I)
    if learner == "rtrl":
        seg = rtrl_segment(params.elstm, traj, reset[:T], g_c, state_in.traces, backend=backend)
        g_elstm, inner, traces_out = seg.grads, seg.bptt, seg.traces
    else:
        inner = bptt(params.elstm, traj, reset[:T], g_c)
        g_elstm, traces_out = inner.grads, None
    if stem_grad == "tbptt":
        g_x = inner.g_x + g_x_gate                                         # (T, B, I)
    elif stem_grad == "immediate":
        g_x = cell_step_backward(g_c, traj, params.elstm)[1] + g_x_gate    # (T, B, I)
    else:
        g_x = None
    state_out = CoreState(traj.c_t[T - 1], traces_out)
    return CoreBackward(CoreParams(g_elstm, g_gate), g_x, state_out)
