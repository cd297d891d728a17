"""rtrl_ref: exact real-time recurrent learning (RTRL) for the element-wise LSTM (eLSTM).

A framework-free reference implementation (NumPy; Numba on CPU; CuPy on GPU) of the eLSTM of
Irie, Gopalakrishnan & Schmidhuber (ICLR 2024), its exact RTRL gradient in two forms (step and
segment), full and truncated BPTT, and a minimal real-time recurrent actor-critic (R2AC).

Dimension alphabet, used in every shape comment of the package:

    B  batch (or number of environments)
    T  time steps
    I  input features of the eLSTM (its x_t)
    H  hidden units (cells) of the eLSTM
    A  actions

Traces of an input-weight matrix are (B, H, I); of a vector parameter (B, H).

Modules, one block of the derivation each:

    params      ELSTMParams, OutGateParams and the paper's initialisation
    cell        one eLSTM step and its backward (any leading dims)
    out_gate    o_t = sigmoid(W_o [x_t; c_t] + b_o), h_t = o_t * c_t, and the immediate gradient g_c
    unroll      the forward pass over T steps with a per-step reset mask
    bptt        full BPTT (adjoint form) and truncated BPTT (sliding window or unroll cut)
    traces      RTRL traces (containers) and the NumPy reference of the trace operations
    rtrl        RTRL drivers: the step form and the segment form
    kernels     the backend interface (numpy reference, numba, cupy): `Backend`, `get_backend`
"""

from rtrl_ref.bptt import BPTTResult, adjoint, bptt, tbptt
from rtrl_ref.cell import CellCache, cell_step, cell_step_backward
from rtrl_ref.kernels import Backend, get_backend
from rtrl_ref.out_gate import OutGateCache, immediate_g_c, out_gate
from rtrl_ref.params import ELSTMParams, OutGateParams, init_elstm, init_out_gate
from rtrl_ref.rtrl import RTRLResult, SegmentResult, rtrl_segment, rtrl_sequence
from rtrl_ref.traces import (
    RTRLState,
    Traces,
    grads_from_traces,
    reset_state,
    trace_step,
    zero_state,
    zero_traces,
)
from rtrl_ref.unroll import elstm_forward

__all__ = [
    "ELSTMParams", "OutGateParams", "init_elstm", "init_out_gate",
    "CellCache", "cell_step", "cell_step_backward",
    "OutGateCache", "out_gate", "immediate_g_c",
    "elstm_forward",
    "BPTTResult", "adjoint", "bptt", "tbptt",
    "RTRLState", "Traces", "grads_from_traces", "reset_state", "rtrl_segment", "rtrl_sequence",
    "trace_step", "zero_state", "zero_traces",
    "RTRLResult", "SegmentResult", "Backend", "get_backend",
]
