"""Hypothesis strategies for gradient checks (requires the `test` extra).

They draw sizes, lengths, reset patterns, gate regimes and seeds, and include the regimes that
break sloppy code: saturated gates, f near 1 or 0, resets at the first, a middle and the last
step, every step, and B = 1.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from verify.problem import REGIMES, RESET_PATTERNS, Problem, make_problem


@st.composite
def problems(draw, max_T: int = 10, max_B: int = 3, max_I: int = 4, max_H: int = 5,
             dtype=np.float64, regimes=REGIMES, resets=RESET_PATTERNS, min_T: int = 1) -> Problem:
    T = draw(st.integers(min_T, max_T), label="T")
    B = draw(st.integers(1, max_B), label="B")
    I = draw(st.integers(1, max_I), label="I")
    H = draw(st.integers(1, max_H), label="H")
    regime = draw(st.sampled_from(regimes), label="regime")
    pattern = draw(st.sampled_from(resets), label="resets")
    seed = draw(st.integers(0, 2**31 - 1), label="seed")
    return make_problem(seed, T, B, I, H, dtype=dtype, regime=regime, resets=pattern)


def describe(prob: Problem) -> str:
    s = prob.sizes
    return f"T={s['T']} B={s['B']} I={s['I']} H={s['H']} resets={int(prob.reset.sum())}"
