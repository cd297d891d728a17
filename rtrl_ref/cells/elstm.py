"""The eLSTM (Irie et al., ICLR 2024) as a `Cell` of the interface (docs/derivation.md, Eqs. 1-10 and 19).

The state is the cell c_t (B, H); the output gate (Eq. 4) stays outside, as in the agent. Every field is
the dedicated eLSTM code, not a second derivation:

    step               rtrl_ref.cell.cell_step (Eqs. 1-6); the cache is its CellCache
    jacobian           cache.dc_dctm1 = f_t + dc_dzpre * w_z + dc_dfpre * w_f (Eq. 6)
    trace_update       rtrl_ref.traces.trace_step (Eqs. 7-8)
    grads_from_traces  rtrl_ref.traces.grads_from_traces (Eq. 9)
    step_backward      rtrl_ref.cell.cell_step_backward (Eqs. 12-13 for one step)
    local_factors      D_t of Eqs. 7-8 factored (Eq. 42): W_z, W_f have the row factors dc_dzpre,
                       dc_dfpre (times x_t); w_z, w_f are dc_dzpre * c_tm1, dc_dfpre * c_tm1; b_z, b_f
                       are dc_dzpre, dc_dfpre

Traces follow the contract: ELSTMParams with a leading B, the fields of rtrl_ref.traces.Traces in the
same order (`Traces(*traces)` converts without a copy). Through the generic drivers this cell gives the
dedicated implementation's numbers (tests/test_cells_elstm.py); the dedicated drivers (rtrl_ref.bptt,
rtrl_ref.rtrl and their Numba and CuPy kernels) remain the fast path.
"""

from __future__ import annotations

import numpy as np

from rtrl_ref.cell import CellCache, cell_step, cell_step_backward
from rtrl_ref.cells.interface import Cell, check_sizes
from rtrl_ref.params import ELSTMParams, init_elstm
from rtrl_ref.traces import Traces, trace_step
from rtrl_ref.traces import grads_from_traces as elstm_grads_from_traces
from rtrl_ref.traces import zero_traces as elstm_zero_traces
from rtrl_ref.xp import array_module


def init(rng: np.random.Generator, I: int, H: int, dtype=np.float32) -> ELSTMParams:
    """The paper's initialisation (`rtrl_ref.params.init_elstm`: every tensor ~ N(0, 0.1^2))."""
    return init_elstm(rng, I, H, check_sizes("elstm.init", I, H, dtype))


def check_params(p: ELSTMParams, name: str = "params") -> tuple[int, int]:
    """ELSTMParams with consistent shapes and one float dtype (`ELSTMParams.validate`); returns (H, I)."""
    if not isinstance(p, ELSTMParams):
        raise ValueError(f"{name}: expected ELSTMParams, got {type(p).__name__}")
    return p.validate(name).sizes


def zero_state(p: ELSTMParams, B: int):
    xp = array_module(p.W_z)
    return xp.zeros((B, p.W_z.shape[0]), p.W_z.dtype)                 # (B, H)


def step(p: ELSTMParams, x_t, c_tm1):
    """One step: returns (c_t (B, H), CellCache)."""
    return cell_step(p, x_t, c_tm1)


def jacobian(cache: CellCache):
    return cache.dc_dctm1                                             # (B, H)


def zero_traces(p: ELSTMParams, B: int) -> ELSTMParams:
    H, I = p.W_z.shape
    return ELSTMParams(*elstm_zero_traces(B, H, I, p.W_z.dtype, array_module(p.W_z)))   # 2 x (B, H, I), 4 x (B, H)


def local_factors(p: ELSTMParams, cache: CellCache) -> ELSTMParams:
    """D_t of Eqs. 7-8 factored (Eq. 42): the row factors of W_z, W_f, and D_t of w_z, w_f, b_z, b_f."""
    return ELSTMParams(W_z=cache.dc_dzpre,                            # (B, H) times x_t
                       W_f=cache.dc_dfpre,                            # (B, H) times x_t
                       w_z=cache.dc_dzpre * cache.c_tm1,              # (B, H)
                       w_f=cache.dc_dfpre * cache.c_tm1,              # (B, H)
                       b_z=cache.dc_dzpre,                            # (B, H)
                       b_f=cache.dc_dfpre)                            # (B, H)


def trace_update(p: ELSTMParams, cache: CellCache, traces: ELSTMParams) -> ELSTMParams:
    """S_t = J_t * S_tm1 + D_t for the six traces (Eqs. 7-8), by `rtrl_ref.traces.trace_step`."""
    return ELSTMParams(*trace_step(Traces(*traces), cache))


def grads_from_traces(g_c, traces: ELSTMParams) -> ELSTMParams:
    """sum_b g_c[b] * S[b] for every parameter (Eq. 9), by `rtrl_ref.traces.grads_from_traces`."""
    return elstm_grads_from_traces(g_c, Traces(*traces))


def step_backward(g_c, cache: CellCache, p: ELSTMParams):
    """Backward of `step` for the total gradient g_c (B, H): (g_c_tm1 (B, H), g_x (B, I), grads)."""
    return cell_step_backward(g_c, cache, p)


CELL = Cell("elstm", init, check_params, zero_state, step, jacobian, zero_traces, trace_update,
            grads_from_traces, step_backward, local_factors)
