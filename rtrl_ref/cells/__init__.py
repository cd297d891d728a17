"""Cells with diagonal (element-wise) recurrence, with exact RTRL (docs/derivation.md,
section 10, Eqs. 19-33 and 40-42). NumPy references through one small contract:

    interface   `Cell`, the contract (a NamedTuple of functions), and helpers shared by the cells
    drivers     forward, full BPTT and step-form RTRL for any `Cell`, with per-row resets
    segment     segment-form RTRL for any `Cell` (one BPTT pass and one trace update per segment)
    indrnn      IndRNN (Li et al., 2018), tanh            CELL = indrnn.CELL
    mingru      minGRU (Feng et al., 2024)                CELL = mingru.CELL
    lru         LRU (Orvieto et al., 2023), complex state CELL = lru.CELL
    elstm       the eLSTM (Irie et al., 2024) on its own  ELSTM_CELL = elstm.CELL
                code (rtrl_ref.cell, rtrl_ref.traces)

CELLS holds the IndRNN, minGRU and LRU: the agent's `--cell` choices are "elstm" (the dedicated eLSTM
core, output gate and kernels) plus CELLS, so ELSTM_CELL stays out of it. Through the drivers it gives
the dedicated eLSTM drivers' numbers; those remain the fast path.
"""

from rtrl_ref.cells import elstm, indrnn, lru, mingru
from rtrl_ref.cells.drivers import BPTTResult, RTRLResult, Trajectory, bptt, forward, rtrl_sequence, rtrl_step
from rtrl_ref.cells.interface import Cell
from rtrl_ref.cells.segment import rtrl_segment

CELLS = {cell.name: cell for cell in (indrnn.CELL, mingru.CELL, lru.CELL)}
ELSTM_CELL = elstm.CELL


def get_cell(name: str) -> Cell:
    """The Cell of a name in CELLS; ValueError otherwise."""
    if name not in CELLS:
        raise ValueError(f"cell: expected one of {tuple(CELLS)}, got {name!r}")
    return CELLS[name]


__all__ = ["CELLS", "ELSTM_CELL", "BPTTResult", "Cell", "RTRLResult", "Trajectory", "bptt", "forward", "get_cell",
           "rtrl_segment", "rtrl_sequence", "rtrl_step"]
