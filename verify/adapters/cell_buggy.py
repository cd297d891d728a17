"""Deliberately wrong cell candidates: verify.adapters.cell_numpy with one bug of its BUGS each.

Each is a candidate of the verify.oracle.check_callable protocol, `fn(case) -> {name: array}`, so the
checker can run it on the golden cell cases and must fail it, naming the first diverging trace and
its step (tests/test_cells_oracle.py):

    python -m verify.oracle check cell-lru-basic-f64 --adapter verify.adapters.cell_buggy:lru_gamma_constant

    indrnn_J_is_u        IndRNN traces decay with u, not (1 - h_t^2) u: trace_W diverges at t=1
    mingru_J_is_z        minGRU traces decay with z_t, not 1 - z_t: trace_W_z diverges at t=1
    lru_gamma_constant   LRU S^nu without dgamma_dnu u_t: trace_nu diverges at t=0
    no_trace_reset       a reset zeroes the state, not the traces: the first trace diverges at the
                         first reset after step 0, in the row that resets
"""

from __future__ import annotations

from functools import partial

from verify.adapters.cell_numpy import BUGS, candidate

BUGGY = {name: partial(candidate, bug=name) for name in BUGS}

indrnn_J_is_u = BUGGY["indrnn_J_is_u"]
mingru_J_is_z = BUGGY["mingru_J_is_z"]
lru_gamma_constant = BUGGY["lru_gamma_constant"]
no_trace_reset = BUGGY["no_trace_reset"]
