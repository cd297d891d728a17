"""Deliberately wrong gradients: every verification check must fail on them.

Each mutant reproduces a real mistake:
  drop_wz_term     the diagonal Jacobian without the dc_dzpre * w_z term
                   (the form printed in the paper's first arXiv version)
  no_trace_reset   the cell is reset at an episode start but the RTRL traces are not
  reset_off_by_one the traces are reset one step too late
They return inputs for the unmodified drivers (rtrl_sequence, rtrl_segment, bptt), so the
code under test is the shipped code fed with the mistake.
"""

from __future__ import annotations

import numpy as np

from rtrl_ref.cell import CellCache
from rtrl_ref.params import ELSTMParams

MUTANTS = ("drop_wz_term", "no_trace_reset", "reset_off_by_one")


def drop_wz_term(p: ELSTMParams, traj: CellCache) -> CellCache:
    """Trajectory whose Jacobian J_t lacks dc_dzpre * w_z."""
    return traj._replace(dc_dctm1=traj.dc_dctm1 - traj.dc_dzpre * p.w_z)   # (T, B, H)


def no_trace_reset(reset: np.ndarray) -> np.ndarray:
    """Reset mask seen by the trace recursion when traces are never reset."""
    return np.zeros_like(reset)                                             # (T, B)


def reset_off_by_one(reset: np.ndarray) -> np.ndarray:
    """Reset mask shifted one step later."""
    late = np.zeros_like(reset)                                             # (T, B)
    late[1:] = reset[:-1]
    return late


def mutate(name: str, p: ELSTMParams, traj: CellCache, reset: np.ndarray):
    """(traj, reset) as seen by a gradient routine that has mistake `name`."""
    if name == "drop_wz_term":
        return drop_wz_term(p, traj), reset
    if name == "no_trace_reset":
        return traj, no_trace_reset(reset)
    if name == "reset_off_by_one":
        return traj, reset_off_by_one(reset)
    raise ValueError(f"mutant: expected one of {MUTANTS}, got {name!r}")
