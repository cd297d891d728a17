"""The backend object: which implementation each piece of the library drivers runs.

See `rtrl_ref.kernels` (the package docstring) for the contract of every field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple


class Backend(NamedTuple):
    """One backend: two required trace operations and three optional whole-unroll pieces.

    A field that is None means: the driver runs its own array-module reference code for that
    piece (the NumPy reference, which also runs on CuPy arrays).
    """

    name: str
    trace_step_accumulate: Callable          # (traces, cache, reset_t, g_c_t, grads) -> (traces_t, grads)
    segment_carried_pass: Callable           # (traces_in, coef_in, decay_in, u_z, u_f, x, c_tm1) -> (grads, traces_out)
    traces_in_place: bool = False            # the two operations above reuse the traces they are given
    forward_unroll: Callable | None = None   # (p, x, reset, c_0) -> CellCache with a leading T axis
    bptt_unroll: Callable | None = None      # (p, traj, reset, g_c) -> (grads, g_x, g_c0, lam)
    segment_unroll: Callable | None = None   # (p, traj, reset, g_c, traces_in)
    #                                          -> (inner_grads, g_x, g_c0, lam, carried_grads, traces_out)
