"""Hypothesis strategies for gradient checks (requires the `test` extra).

They draw sizes, lengths, reset patterns, gate regimes and seeds, and include the regimes that
break sloppy code: saturated gates, f near 1 or 0, resets at the first, a middle and the last
step, every step, and B = 1.

Sizes cross every blocking boundary of the kernels: the per-step kernel updates four batch rows
per pass (rows 4..7 and a leftover row need B >= 9), blocks of units (H beyond a block, see
`block_bytes`), I of 1 and odd lengths, and the parallel variants with 1, 2 and 3 chunks
(`chunks`). The CI profile stays fast by weighting the draws (`weighted`: most examples small),
not by shrinking the ranges.

Reset patterns differ per batch row (`ROW_PATTERNS`): one row resetting while its neighbours do
not, all but one, alternating rows, independent per row; at T = 1 too.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from verify.problem import REGIMES, RESET_PATTERNS, Problem, make_problem, reset_mask

ROWS_PER_PASS = 4                      # batch rows per pass of the per-step kernel (step_numba)
MAX_B = 2 * ROWS_PER_PASS + 1          # 9: two full passes and a leftover row
ROW_PATTERNS = ("one_row", "all_but_one", "alternate", "per_row")
ALL_RESETS = RESET_PATTERNS + ROW_PATTERNS


def weighted(lo: int, hi: int, small: int, large_share: int = 4):
    """Integers in [lo, hi], one draw in `large_share` from the whole range, the rest in [lo, small]."""
    small = max(lo, min(small, hi))
    return st.one_of(*([st.integers(lo, small)] * (large_share - 1)), st.integers(lo, hi))


def row_reset_mask(rng: np.random.Generator, T: int, B: int, pattern: str) -> np.ndarray:
    """(T, B) bool mask whose rows differ: `pattern` one of ROW_PATTERNS (or RESET_PATTERNS)."""
    if pattern in RESET_PATTERNS:
        return reset_mask(rng, T, B, pattern)
    reset = np.zeros((T, B), bool)                                    # (T, B)
    steps = rng.integers(0, T, B)                                     # (B,) one step per row
    if pattern == "one_row":
        b = int(rng.integers(0, B))
        reset[steps[b], b] = True
    elif pattern == "all_but_one":
        b = int(rng.integers(0, B))
        reset[steps, np.arange(B)] = True
        reset[:, b] = False
    elif pattern == "alternate":
        reset[:, int(rng.integers(0, 2))::2] = rng.random((T, 1)) < 0.7
    elif pattern == "per_row":
        reset[:] = rng.random((T, B)) < 0.5
    else:
        raise ValueError(f"pattern: expected one of {ALL_RESETS}, got {pattern!r}")
    return reset


@st.composite
def reset_masks(draw, T: int, B: int, patterns=ALL_RESETS) -> np.ndarray:
    """A (T, B) reset mask of a drawn pattern (rows differ for the ROW_PATTERNS)."""
    pattern = draw(st.sampled_from(patterns), label="resets")
    seed = draw(st.integers(0, 2**31 - 1), label="reset seed")
    return row_reset_mask(np.random.default_rng(seed), T, B, pattern)


@st.composite
def problems(draw, max_T: int = 10, max_B: int = MAX_B, max_I: int = 5, max_H: int = 6,
             dtype=np.float64, regimes=REGIMES, resets=ALL_RESETS, min_T: int = 1) -> Problem:
    T = draw(weighted(min_T, max_T, min(max_T, max(min_T, 6))), label="T")
    B = draw(weighted(1, max_B, 3), label="B")
    I = draw(st.integers(1, max_I), label="I")
    H = draw(st.integers(1, max_H), label="H")
    regime = draw(st.sampled_from(regimes), label="regime")
    pattern = draw(st.sampled_from(resets), label="resets")
    seed = draw(st.integers(0, 2**31 - 1), label="seed")
    reset = row_reset_mask(np.random.default_rng(seed + 1), T, B, pattern)
    return make_problem(seed, T, B, I, H, dtype=dtype, regime=regime, resets=reset)


def kernel_sizes(max_B: int = MAX_B, max_H: int = 13, max_I: int = 9):
    """(B, H, I) for the kernel checks: B across both four-row passes and the leftover rows."""
    return st.tuples(weighted(1, max_B, 4), weighted(1, max_H, 6), st.integers(1, max_I))


def chunks():
    """How many chunks a parallel kernel splits its units into (forced, whatever the thread count)."""
    return st.sampled_from((1, 2, 3))


def block_bytes(I: int, itemsize: int):
    """A block budget giving blocks of 4 to 7 units (the kernels' minimum block is 4 units)."""
    return st.integers(4, 7).map(lambda units: units * I * itemsize)


def describe(prob: Problem) -> str:
    s = prob.sizes
    return f"T={s['T']} B={s['B']} I={s['I']} H={s['H']} resets={np.flatnonzero(prob.reset.ravel()).tolist()}"
