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
through the cells' drivers (with --backend numba the rtrl learner's steps run the cells' fused kernels of
rtrl_ref.kernels.cells_numba; the forward and the BPTT stay NumPy):

    learner      cell gradient                                       carried across unrolls
    rtrl         exact RTRL, step form (Eq. 19), never truncated     s and the cell's traces
    tbptt        BPTT inside the unroll, cut at its start            s (no gradient through it)
    feedforward  the same learner as for the eLSTM (no core)         nothing

and so do the stem gradients (`CELL_STEM_GRADS`): tbptt = the in-unroll BPTT's input gradient,
immediate = one cell step's backward from g_s[t], frozen = none.

Stacked eLSTM cores (`get_core("elstm", layers)`, `get_learner(name, "elstm", layers)` for layers L > 1;
docs/derivation.md, section 11, Eqs. 34-39): L eLSTM layers of H cells, layer 1 reads x_t, layer l > 1 the
cell of layer l - 1 at the same step, and the output gate reads x_t and the top layer's cell. The carried
cells are one array c (B, L, H). Through the NumPy reference rtrl_ref.stacked (--backend does not apply):

    learner      stack gradient                                      carried across unrolls
    rtrl         exact stacked RTRL, step form (Eqs. 35-37): own     c and every trace, the dense
                 traces and dense cross-layer traces, never cut      cross-layer ones included
    tbptt        stacked BPTT inside the unroll (Eq. 38), cut at     c (no gradient through it)
                 its start
    feedforward  the same learner as for the eLSTM (no core)         nothing

Stem gradients (`STACKED_STEM_GRADS`): tbptt = the in-unroll stacked BPTT's input gradient, immediate =
one step's backward down the layers (no recurrence), frozen = none.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from rtrl_ref import Traces, rtrl_segment, zero_traces
from rtrl_ref.bptt import bptt
from rtrl_ref.cell import CellCache, cell_step, cell_step_backward
from rtrl_ref.cells import CELLS, BPTTResult, Cell, Trajectory, indrnn, lru, mingru, rtrl_sequence
from rtrl_ref.cells import bptt as cell_bptt
from rtrl_ref.cells import forward as cell_forward
from rtrl_ref.cells.interface import mask_rows
from rtrl_ref.out_gate import OutGateCache, immediate_g_c, out_gate
from rtrl_ref.params import ELSTMParams, OutGateParams, init_elstm, init_out_gate
from rtrl_ref.stacked import (
    StackedState,
    init_stacked,
    stacked_bptt,
    stacked_forward,
    stacked_rtrl_sequence,
    zero_stacked_state,
)
from rtrl_ref.unroll import elstm_forward


class CoreParams(NamedTuple):
    elstm: ELSTMParams
    gate: OutGateParams


class CoreState(NamedTuple):
    c: np.ndarray              # (B, H) eLSTM cell (or the cell's state s, complex for the LRU; (B, L, H) for L stacked
                               # eLSTM layers) after the last loss step
    traces: Traces | None      # RTRL traces (rtrl learner only; the cell's traces for a cell core, StackedTraces
                               # for a stack)


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


def cell_width(I: int, H: int) -> int:
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
    "rtrl": Learner("rtrl", cell_width, _cell_and_traces_state, _elstm_step, _elstm_unroll,
                    _recurrent_backward(_rtrl_gradient)),
    "tbptt": Learner("tbptt", cell_width, _cell_state, _elstm_step, _elstm_unroll,
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


# the other cells' initialisations: their own, or chrono (their recurrence set from memory times tau (H,))
CELL_INITS = ("own", "chrono")
MEMORY_TIMES = {"indrnn": indrnn.with_memory_times, "lru": lru.with_memory_times, "mingru": mingru.with_memory_times}


def _cell_init(cell: Cell) -> Callable:
    def init(rng: np.random.Generator, I: int, H: int, dtype=np.float32, cell_init: str = "own",
             chrono_T_max: float = 100.0, **elstm_options):
        """The cell's own initialisation (cell_init "own"), or with "chrono" its recurrence then set so
        that the units' memory times are tau ~ U(2, chrono_T_max), the eLSTM's chrono distribution
        (the cells' with_memory_times). The eLSTM's forget-gate options do not apply."""
        if cell_init not in CELL_INITS:
            raise ValueError(f"cell_init: expected one of {CELL_INITS}, got {cell_init!r}")
        p = cell.init(rng, I, H, dtype)
        if cell_init == "chrono":
            if not chrono_T_max > 2:
                raise ValueError(f"chrono_T_max: expected a number > 2, got {chrono_T_max!r}")
            p = MEMORY_TIMES[cell.name](p, rng.uniform(2.0, chrono_T_max, H))     # tau (H,)
        return p

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


def _cell_rtrl_gradient(cell: Cell, p, x, reset, traj: Trajectory, g_s, state_in: CoreState, backend="numpy"):
    """Exact gradient over the whole past: step-form RTRL (Eq. 19) from the carried-in state and
    traces, both carried out; with backend numba each step is the cell's fused kernel
    (rtrl_ref.kernels.cells_numba), else the NumPy reference. Returns (grads, in-unroll BPTT (not
    run: None), state out)."""
    step_backend = "numba" if backend == "numba" else "numpy"
    run = rtrl_sequence(cell, p, x, reset, g_s, state_in.c, state_in.traces, backend=step_backend)
    return run.grads, None, CoreState(run.s, run.traces)


def _cell_tbptt_gradient(cell: Cell, p, x, reset, traj: Trajectory, g_s, state_in: CoreState, backend="numpy"):
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
        grads, inner, state_out = cell_gradient(cell, params, cache.x[:T], reset[:T], traj, g_s, state_in, backend)
        through_cell = CELL_STEM_GRADS[stem_grad.name]
        g_x = None if through_cell is None else through_cell(cell, params, traj, reset[:T], g_s, inner)
        return CoreBackward(grads, g_x, state_out)

    return backward


# ----------------------------------------------------------------------------- stacked eLSTM cores

class StackedCoreParams(NamedTuple):
    elstm: tuple               # L x ELSTMParams: layer 1 reads x_t (B, I), layer l > 1 the cell of layer l - 1
    gate: OutGateParams        # reads x_t and the top layer's cell


class StackedTraces(NamedTuple):
    """A stack's RTRL traces: rtrl_ref.stacked.StackedState without the cells (CoreState.c holds them)."""

    own: tuple                 # L x Traces: S^{l,l}, element-wise (B, H, I_l) and (B, H)
    cross: tuple               # L tuples: cross[l][k] = S^{l,k} (CrossTraces, dense (B, H, H, I_k)) for k < l


class StackedCoreCache(NamedTuple):
    x: np.ndarray              # (T + 1, B, I) the core input (stacked RTRL's step form runs on it)
    trajs: tuple               # L x CellCache, each stacked over T + 1 steps
    gate: OutGateCache


def layer_cells(c) -> tuple:
    """The L cells (B, H) of a stack's carried cells c (B, L, H)."""
    return tuple(c[:, l] for l in range(c.shape[1]))


def _stacked_init(L: int) -> Callable:
    def init(rng: np.random.Generator, I: int, H: int, dtype=np.float32, forget_bias: float = 0.0,
             forget_init: str = "constant", chrono_T_max: float = 100.0) -> StackedCoreParams:
        elstm = init_stacked(rng, I, [H] * L, dtype, forget_bias=forget_bias, forget_init=forget_init,
                             chrono_T_max=chrono_T_max)
        return StackedCoreParams(elstm, init_out_gate(rng, I, H, dtype))

    return init


def _stacked_init_state(L: int, with_traces: bool) -> Callable:
    def init_state(B: int, I: int, H: int, dtype=np.float32) -> CoreState:
        c = np.zeros((B, L, H), dtype)                                   # (B, L, H)
        if not with_traces:
            return CoreState(c, None)
        zero = zero_stacked_state(init_stacked(np.random.default_rng(0), I, [H] * L, dtype), B)   # shapes only
        return CoreState(c, StackedTraces(zero.own, zero.cross))

    return init_state


def _stacked_step(params: StackedCoreParams, x_t, reset_t, c_tm1):
    cells, u_t = [], x_t                                                 # u_t (B, I_l): layer l's input
    for l, p in enumerate(params.elstm):
        u_t, _ = cell_step(p, u_t, reset_c(c_tm1[:, l], reset_t))       # (B, H)
        cells.append(u_t)
    h_t, _ = out_gate(params.gate, x_t, u_t)                             # (B, H)
    return h_t, np.stack(cells, axis=1)                                  # (B, L, H)


def _stacked_unroll(params: StackedCoreParams, x, reset, state: CoreState, backend="numpy"):
    trajs = stacked_forward(params.elstm, x, reset, layer_cells(state.c))   # L x CellCache over T + 1 steps
    h, gate_cache = out_gate(params.gate, x, trajs[-1].c_t)              # (T + 1, B, H)
    return h, StackedCoreCache(x, trajs, gate_cache)


def _stacked_rtrl_gradient(params: tuple, x, trajs, reset, g_c, state_in: CoreState):
    """Exact gradient over the whole past: stacked RTRL, step form (Eqs. 35-37), from the carried-in cells and
    traces (own and cross), all carried out. Returns (grads, in-unroll BPTT (not run: None), state out)."""
    run = stacked_rtrl_sequence(params, x, reset, g_c, StackedState(layer_cells(state_in.c), *state_in.traces))
    return run.grads, None, CoreState(np.stack(run.state.c, axis=1), StackedTraces(run.state.own, run.state.cross))


def _stacked_tbptt_gradient(params: tuple, x, trajs, reset, g_c, state_in: CoreState):
    """Stacked BPTT inside the unroll (Eq. 38), cut at its start: nothing carried but the cells."""
    inner = stacked_bptt(params, trajs, reset, g_c)
    return inner.grads, inner, CoreState(np.stack([traj.c_t[-1] for traj in trajs], axis=1), None)


def _stacked_through_unroll(params: tuple, trajs, reset, g_c, inner):
    """In-unroll stacked BPTT's input gradient: every layer's recurrence followed back to the unroll start."""
    if inner is None:
        inner = stacked_bptt(params, trajs, reset, g_c)
    return inner.g_x                                                     # (T, B, I)


def _stacked_through_one_step(params: tuple, trajs, reset, g_c, inner):
    """One step's backward from the top layer's immediate g_c[t] down the layers at the same step (no
    recurrence): layer l's input gradient is the immediate gradient of layer l - 1."""
    g = g_c[-1]                                                          # (T, B, H)
    for p, traj in zip(reversed(params), reversed(trajs)):
        g = cell_step_backward(g, traj, p)[1]                           # (T, B, I_l)
    return g


# The stem gradients of a stacked core, by the names of STEM_GRADS.
STACKED_STEM_GRADS: dict[str, Callable | None] = {
    "tbptt": _stacked_through_unroll,
    "immediate": _stacked_through_one_step,
    "frozen": None,
}


def _stacked_backward(stack_gradient: Callable) -> Callable:
    """The backward of a stacked learner whose stack gradient comes from `stack_gradient`."""

    def backward(stem_grad: StemGrad, params: StackedCoreParams, cache: StackedCoreCache, reset, g_h,
                 state_in: CoreState, backend="numpy") -> CoreBackward:
        T = g_h.shape[0]
        trajs = tuple(CellCache(*(a[:T] for a in traj)) for traj in cache.trajs)   # the T loss steps
        gate = OutGateCache(*(a[:T] for a in cache.gate))
        g_top, g_x_gate, g_gate = immediate_g_c(g_h, gate, params.gate)  # (T, B, H), (T, B, I)
        g_c = (None,) * (len(trajs) - 1) + (g_top,)                      # the heads read the top layer only
        grads, inner, state_out = stack_gradient(params.elstm, cache.x[:T], trajs, reset[:T], g_c, state_in)
        through = STACKED_STEM_GRADS[stem_grad.name]
        g_x = None
        if through is not None:
            g_x = through(params.elstm, trajs, reset[:T], g_c, inner) + g_x_gate   # (T, B, I)
        return CoreBackward(StackedCoreParams(grads, g_gate), g_x, state_out)

    return backward


@functools.cache
def stacked_core(L: int) -> Core:
    """The core of L > 1 stacked eLSTM layers and an output gate (see the module docstring)."""
    learners = {
        "rtrl": Learner("rtrl", cell_width, _stacked_init_state(L, True), _stacked_step, _stacked_unroll,
                        _stacked_backward(_stacked_rtrl_gradient)),
        "tbptt": Learner("tbptt", cell_width, _stacked_init_state(L, False), _stacked_step, _stacked_unroll,
                         _stacked_backward(_stacked_tbptt_gradient)),
        "feedforward": LEARNERS["feedforward"],
    }
    return Core(f"elstm x {L}", _stacked_init(L), learners)


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
        "rtrl": Learner("rtrl", cell_width, _cell_init_state(cell, True), step, forward,
                        _cell_backward(cell, _cell_rtrl_gradient)),
        "tbptt": Learner("tbptt", cell_width, _cell_init_state(cell, False), step, forward,
                         _cell_backward(cell, _cell_tbptt_gradient)),
        "feedforward": LEARNERS["feedforward"],
    }
    return Core(cell.name, _cell_init(cell), learners)


CORES: dict[str, Core] = {"elstm": Core("elstm", init_core, LEARNERS),
                          **{name: cell_core(cell) for name, cell in CELLS.items()}}


def get_core(name: str, layers: int = 1) -> Core:
    """The core `name`; with layers L > 1, the stack of L eLSTM layers (cell elstm only)."""
    if name not in CORES:
        raise ValueError(f"cell: expected one of {tuple(CORES)}, got {name!r}")
    if isinstance(layers, bool) or not isinstance(layers, (int, np.integer)) or layers < 1:
        raise ValueError(f"layers: expected an integer >= 1, got {layers!r}")
    if layers == 1:
        return CORES[name]
    if name != "elstm":
        raise ValueError(f"layers: expected 1 with cell {name} (only elstm layers stack), got {layers}")
    return stacked_core(int(layers))


def get_learner(name: str, cell: str = "elstm", layers: int = 1) -> Learner:
    """The learner `name` of the core `cell` (the eLSTM's by default) with `layers` layers."""
    if name not in LEARNERS:
        raise ValueError(f"learner: expected one of {tuple(LEARNERS)}, got {name!r}")
    return get_core(cell, layers).learners[name]
