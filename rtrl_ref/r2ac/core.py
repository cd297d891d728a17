"""The agent's recurrent core (eLSTM + output gate, or a cell of rtrl_ref.cells) and the registries
of cores and learners.

A learner decides how the eLSTM gets its gradient and what is carried across unrolls:

    learner      eLSTM gradient                                      carried across unrolls
    rtrl         exact RTRL, segment form (docs/derivation.md,       c and the six traces
                 Eqs. 14-15), never truncated
    tbptt        BPTT inside the unroll, cut at its start (Eq. 16)   c (no gradient through it)
    feedforward  no recurrence: h = x                                nothing

Each learner is one `Learner` of named functions, collected in `LEARNERS` (like the stems in
stems.py); `get_learner(name)` looks one up, so no module branches on learner names.

The gradient that reaches the core input x_t (and so the stem) is chosen by `stem_grad`,
collected in `STEM_GRADS`:

    tbptt        through the eLSTM inside the unroll (the paper's choice for the vision stem)
    immediate    through step t only (output gate + one eLSTM step, no recurrence)
    frozen       none

An unroll covers T loss steps plus one bootstrap step: x is (T + 1, B, I); the loss gradient
g_h covers the first T steps; the state carried out is the state after step T - 1, so the
bootstrap step is processed again as step 0 of the next unroll (as in IMPALA's rollouts).
The immediate gradient g_c (Eq. 11) is the boundary between the heads and the eLSTM gradient.

Other cores (`CORES`, looked up by `get_core(cell)`; `get_learner(name, cell)` gives a core's learner):
a cell with diagonal recurrence of rtrl_ref.cells (docs/derivation.md, section 10) replaces the
eLSTM and its output gate. The heads read y_t = Re(s_t) (s_t itself for a real state), so the
immediate gradient into the state is g_s = g_h (+ 0i, Eq. 29). The learners keep their meaning,
through the cells' NumPy drivers (the --backend kernels are the eLSTM's):

    learner      cell gradient                                       carried across unrolls
    rtrl         exact RTRL, step form (Eq. 19), never truncated     s and the cell's traces
    tbptt        BPTT inside the unroll, cut at its start            s (no gradient through it)
    feedforward  the same learner as for the eLSTM (no core)         nothing

and so do the stem gradients (`CELL_STEM_GRADS`): tbptt = the in-unroll BPTT's input gradient,
immediate = one cell step's backward from g_s[t], frozen = none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from rtrl_ref import Traces, rtrl_segment, zero_traces
from rtrl_ref.bptt import bptt
from rtrl_ref.cell import CellCache, cell_step, cell_step_backward
from rtrl_ref.cells import CELLS, BPTTResult, Cell, Trajectory, rtrl_sequence
from rtrl_ref.cells import bptt as cell_bptt
from rtrl_ref.cells import forward as cell_forward
from rtrl_ref.cells.interface import mask_rows
from rtrl_ref.out_gate import OutGateCache, immediate_g_c, out_gate
from rtrl_ref.params import ELSTMParams, OutGateParams, init_elstm, init_out_gate
from rtrl_ref.unroll import elstm_forward


class CoreParams(NamedTuple):
    elstm: ELSTMParams
    gate: OutGateParams


class CoreState(NamedTuple):
    c: np.ndarray              # (B, H) eLSTM cell (or the cell's state s, complex for the LRU) after the last loss step
    traces: Traces | None      # RTRL traces (rtrl learner only; the cell's traces for a cell core)


class CoreCache(NamedTuple):
    traj: CellCache            # stacked over T + 1 steps
    gate: OutGateCache


class CoreBackward(NamedTuple):
    grads: CoreParams | None   # None for feedforward
    g_x: np.ndarray | None     # (T, B, I) gradient into the core input; None if the stem is frozen
    state: CoreState           # carried into the next unroll


def init_core(rng: np.random.Generator, I: int, H: int, dtype=np.float32, forget_bias: float = 0.0,
              forget_init: str = "constant", chrono_T_max: float = 100.0) -> CoreParams:
    elstm = init_elstm(rng, I, H, dtype, forget_bias=forget_bias, forget_init=forget_init,
                       chrono_T_max=chrono_T_max)
    return CoreParams(elstm, init_out_gate(rng, I, H, dtype))


def reset_c(c, reset_t):
    """Zero the cell of batch rows starting a new episode (Eq. 10; the traces are reset inside RTRL)."""
    return c * (~reset_t)[:, None].astype(c.dtype)                       # (B, H)


# ----------------------------------------------------------------------------- stem gradients

class StemGrad(NamedTuple):
    """How the loss reaches the core input x_t. `through_cell` is None when the stem is frozen."""

    name: str
    through_cell: Callable | None   # (inner: BPTTResult, g_c (T, B, H), traj, p) -> g_x (T, B, I)


def _through_unroll(inner, g_c, traj: CellCache, p: ELSTMParams):
    """In-unroll BPTT's input gradient (Eq. 13): the recurrence is followed back to the unroll start."""
    return inner.g_x                                                     # (T, B, I)


def _through_one_step(inner, g_c, traj: CellCache, p: ELSTMParams):
    """One eLSTM step's input gradient from the immediate g_c (Eq. 11): no recurrence."""
    return cell_step_backward(g_c, traj, p)[1]                           # (T, B, I)


STEM_GRADS: dict[str, StemGrad] = {
    "tbptt": StemGrad("tbptt", _through_unroll),
    "immediate": StemGrad("immediate", _through_one_step),
    "frozen": StemGrad("frozen", None),
}


def get_stem_grad(name: str) -> StemGrad:
    if name not in STEM_GRADS:
        raise ValueError(f"stem_grad: expected one of {tuple(STEM_GRADS)}, got {name!r}")
    return STEM_GRADS[name]


# ----------------------------------------------------------------------------- learners

class Learner(NamedTuple):
    """One way of training the core. Every learner has the same functions:

        out_features(I, H) -> width of h, the input of the heads
        init_state(B, I, H, dtype=np.float32) -> CoreState
        step(params, x_t (B, I), reset_t (B,), c_tm1 (B, H)) -> (h_t, c_t)        acting, no caches
        forward(params, x (T + 1, B, I), reset (T + 1, B), state, backend) -> (h (T + 1, B, .), cache)
        backward(stem_grad: StemGrad, params, cache, reset (T + 1, B), g_h (T, B, .), state_in, backend)
            -> CoreBackward
    """

    name: str
    out_features: Callable
    init_state: Callable
    step: Callable
    forward: Callable
    backward: Callable


def _cell_width(I: int, H: int) -> int:
    return H


def _input_width(I: int, H: int) -> int:
    return I


def _cell_state(B: int, I: int, H: int, dtype=np.float32) -> CoreState:
    return CoreState(np.zeros((B, H), dtype), None)                      # c (B, H)


def _cell_and_traces_state(B: int, I: int, H: int, dtype=np.float32) -> CoreState:
    return CoreState(np.zeros((B, H), dtype), zero_traces(B, H, I, dtype))  # c (B, H), traces (B, H, I)


def _elstm_step(params: CoreParams, x_t, reset_t, c_tm1):
    c_t, _ = cell_step(params.elstm, x_t, reset_c(c_tm1, reset_t))      # (B, H)
    h_t, _ = out_gate(params.gate, x_t, c_t)                             # (B, H)
    return h_t, c_t


def _elstm_unroll(params: CoreParams, x, reset, state: CoreState, backend="numpy"):
    c, traj = elstm_forward(params.elstm, x, reset, state.c, backend=backend)   # (T + 1, B, H)
    h, gate_cache = out_gate(params.gate, x, c)                          # (T + 1, B, H)
    return h, CoreCache(traj, gate_cache)


def _rtrl_gradient(p: ELSTMParams, traj: CellCache, reset, g_c, state_in: CoreState, backend):
    """Exact gradient over the whole past: segment-form RTRL (Eqs. 14-15), traces carried out.

    The learner owns the carried-in traces (nothing reads them after this call), so the driver may
    overwrite their memory with the carried-out ones.
    """
    seg = rtrl_segment(p, traj, reset, g_c, state_in.traces, backend=backend, overwrite_traces=True)
    return seg.grads, seg.bptt, seg.traces


def _tbptt_gradient(p: ELSTMParams, traj: CellCache, reset, g_c, state_in: CoreState, backend):
    """BPTT inside the unroll (Eqs. 12-13), cut at its start (Eq. 16): nothing carried but c."""
    inner = bptt(p, traj, reset, g_c, backend=backend)
    return inner.grads, inner, None


def _recurrent_backward(elstm_gradient: Callable):
    """The backward of an eLSTM learner whose eLSTM gradient comes from `elstm_gradient`."""

    def backward(stem_grad: StemGrad, params: CoreParams, cache: CoreCache, reset, g_h,
                 state_in: CoreState, backend="numpy") -> CoreBackward:
        T = g_h.shape[0]
        traj = CellCache(*(a[:T] for a in cache.traj))                   # the T loss steps
        gate = OutGateCache(*(a[:T] for a in cache.gate))
        g_c, g_x_gate, g_gate = immediate_g_c(g_h, gate, params.gate)    # (T, B, H), (T, B, I)
        g_elstm, inner, traces_out = elstm_gradient(params.elstm, traj, reset[:T], g_c, state_in, backend)
        g_x = None
        if stem_grad.through_cell is not None:
            g_x = stem_grad.through_cell(inner, g_c, traj, params.elstm) + g_x_gate   # (T, B, I)
        state_out = CoreState(traj.c_t[T - 1], traces_out)
        return CoreBackward(CoreParams(g_elstm, g_gate), g_x, state_out)

    return backward


def _identity_step(params: CoreParams, x_t, reset_t, c_tm1):
    return x_t, c_tm1


def _identity_unroll(params: CoreParams, x, reset, state: CoreState, backend="numpy"):
    return x, None


def _identity_backward(stem_grad: StemGrad, params: CoreParams, cache, reset, g_h,
                       state_in: CoreState, backend="numpy") -> CoreBackward:
    g_x = None if stem_grad.through_cell is None else g_h                # (T, B, I)
    return CoreBackward(None, g_x, state_in)


LEARNERS: dict[str, Learner] = {
    "rtrl": Learner("rtrl", _cell_width, _cell_and_traces_state, _elstm_step, _elstm_unroll,
                    _recurrent_backward(_rtrl_gradient)),
    "tbptt": Learner("tbptt", _cell_width, _cell_state, _elstm_step, _elstm_unroll,
                     _recurrent_backward(_tbptt_gradient)),
    "feedforward": Learner("feedforward", _input_width, _cell_state, _identity_step, _identity_unroll,
                           _identity_backward),
}


# ----------------------------------------------------------------------------- cell cores

class CellUnrollCache(NamedTuple):
    x: np.ndarray              # (T + 1, B, I) the core input (the rtrl learner's step form runs on it)
    traj: Trajectory           # s (T + 1, B, H) and the T + 1 step caches


def readout(s):
    """y = Re(s), what the heads read of a cell's state: s itself when it is real. (..., H)"""
    return s.real


def state_gradient(g_h, s):
    """dL/ds for a loss that reads y = Re(s): g_h + 0i in Eq. 29's convention dL/dRe(s) + i dL/dIm(s). (..., H)"""
    return g_h.astype(s.dtype)


def shape_params(cell: Cell, I: int, H: int, dtype):
    """Parameters with the cell's shapes and dtypes, for its zero state and traces (values unused)."""
    return cell.init(np.random.default_rng(0), I, H, dtype)


def _cell_init(cell: Cell) -> Callable:
    def init(rng: np.random.Generator, I: int, H: int, dtype=np.float32, **elstm_options):
        """The cell's own initialisation; the eLSTM's forget-gate options do not apply."""
        return cell.init(rng, I, H, dtype)

    return init


def _cell_init_state(cell: Cell, with_traces: bool) -> Callable:
    def init_state(B: int, I: int, H: int, dtype=np.float32) -> CoreState:
        p = shape_params(cell, I, H, dtype)
        return CoreState(cell.zero_state(p, B), cell.zero_traces(p, B) if with_traces else None)   # s (B, H)

    return init_state


def _cell_step(cell: Cell) -> Callable:
    def step(params, x_t, reset_t, s_tm1):
        s_t, _ = cell.step(params, x_t, mask_rows(s_tm1, reset_t))       # (B, H)
        return readout(s_t), s_t

    return step


def _cell_unroll(cell: Cell) -> Callable:
    def forward(params, x, reset, state: CoreState, backend="numpy"):
        traj = cell_forward(cell, params, x, reset, state.c)            # s (T + 1, B, H)
        return readout(traj.s), CellUnrollCache(x, traj)

    return forward


def _cell_rtrl_gradient(cell: Cell, p, x, reset, traj: Trajectory, g_s, state_in: CoreState):
    """Exact gradient over the whole past: step-form RTRL (Eq. 19) from the carried-in state and
    traces, both carried out. Returns (grads, in-unroll BPTT (not run: None), state out)."""
    run = rtrl_sequence(cell, p, x, reset, g_s, state_in.c, state_in.traces)
    return run.grads, None, CoreState(run.s, run.traces)


def _cell_tbptt_gradient(cell: Cell, p, x, reset, traj: Trajectory, g_s, state_in: CoreState):
    """BPTT inside the unroll, cut at its start: nothing carried but s."""
    inner = cell_bptt(cell, p, traj, reset, g_s)
    return inner.grads, inner, CoreState(traj.s[-1], None)


def _cell_through_unroll(cell: Cell, p, traj: Trajectory, reset, g_s, inner: BPTTResult | None):
    """In-unroll BPTT's input gradient: the recurrence is followed back to the unroll start."""
    if inner is None:
        inner = cell_bptt(cell, p, traj, reset, g_s)
    return inner.g_x                                                     # (T, B, I)


def _cell_through_one_step(cell: Cell, p, traj: Trajectory, reset, g_s, inner: BPTTResult | None):
    """One cell step's input gradient from the immediate g_s[t]: no recurrence."""
    return np.stack([cell.step_backward(g_t, cache, p)[1] for g_t, cache in zip(g_s, traj.caches)])   # (T, B, I)


# The stem gradients of a cell core, by the names of STEM_GRADS (each applies to every cell).
CELL_STEM_GRADS: dict[str, Callable | None] = {
    "tbptt": _cell_through_unroll,
    "immediate": _cell_through_one_step,
    "frozen": None,
}


def _cell_backward(cell: Cell, cell_gradient: Callable) -> Callable:
    """The backward of a cell learner whose cell gradient comes from `cell_gradient`."""

    def backward(stem_grad: StemGrad, params, cache: CellUnrollCache, reset, g_h, state_in: CoreState,
                 backend="numpy") -> CoreBackward:
        T = g_h.shape[0]
        traj = Trajectory(cache.traj.s[:T], cache.traj.caches[:T])      # the T loss steps
        g_s = state_gradient(g_h, traj.s)                                # (T, B, H)
        grads, inner, state_out = cell_gradient(cell, params, cache.x[:T], reset[:T], traj, g_s, state_in)
        through_cell = CELL_STEM_GRADS[stem_grad.name]
        g_x = None if through_cell is None else through_cell(cell, params, traj, reset[:T], g_s, inner)
        return CoreBackward(grads, g_x, state_out)

    return backward


# ----------------------------------------------------------------------------- cores

class Core(NamedTuple):
    """One recurrent core: its parameters' initialisation and the learners that train it.

        init(rng, I, H, dtype, forget_bias=, forget_init=, chrono_T_max=) -> params
        learners: a Learner for every name of LEARNERS
    """

    name: str
    init: Callable
    learners: dict[str, Learner]


def cell_core(cell: Cell) -> Core:
    """The core made of a cell of rtrl_ref.cells alone (see the module docstring)."""
    step, forward = _cell_step(cell), _cell_unroll(cell)
    learners = {
        "rtrl": Learner("rtrl", _cell_width, _cell_init_state(cell, True), step, forward,
                        _cell_backward(cell, _cell_rtrl_gradient)),
        "tbptt": Learner("tbptt", _cell_width, _cell_init_state(cell, False), step, forward,
                         _cell_backward(cell, _cell_tbptt_gradient)),
        "feedforward": LEARNERS["feedforward"],
    }
    return Core(cell.name, _cell_init(cell), learners)


CORES: dict[str, Core] = {"elstm": Core("elstm", init_core, LEARNERS),
                          **{name: cell_core(cell) for name, cell in CELLS.items()}}


def get_core(name: str) -> Core:
    if name not in CORES:
        raise ValueError(f"cell: expected one of {tuple(CORES)}, got {name!r}")
    return CORES[name]


def get_learner(name: str, cell: str = "elstm") -> Learner:
    """The learner `name` of the core `cell` (the eLSTM's by default)."""
    if name not in LEARNERS:
        raise ValueError(f"learner: expected one of {tuple(LEARNERS)}, got {name!r}")
    return get_core(cell).learners[name]
