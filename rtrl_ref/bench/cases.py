"""Benchmark inputs. Defaults are the paper's Atari/ProcGen sizes: B=32, H=256, I=257, T=50.

Values are chosen so that repeated in-place calls stay in the normal floating-point range (no
denormals, no overflow): step Jacobians J in [0.5, 1), small local derivatives.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from rtrl_ref.cell import CellCache
from rtrl_ref.params import ELSTMParams, init_elstm
from rtrl_ref.traces import Traces
from rtrl_ref.unroll import elstm_forward

SIZES = dict(B=32, H=256, I=257, T=50)
QUICK_SIZES = dict(B=4, H=32, I=33, T=10)


class StepCase(NamedTuple):
    traces: Traces
    cache: CellCache
    reset_t: np.ndarray    # (B,)
    g_c_t: np.ndarray      # (B, H)
    grads: ELSTMParams


class SegmentCase(NamedTuple):
    p: ELSTMParams
    x: np.ndarray          # (T, B, I)
    reset: np.ndarray      # (T, B)
    c_0: np.ndarray        # (B, H)
    g_c: np.ndarray        # (T, B, H)
    traces: Traces         # carried-in traces
    traj: CellCache        # forward trajectory (for the backward-only timings)


def random_traces(rng, B: int, H: int, I: int, dtype, scale: float = 0.1) -> Traces:
    def draw(*shape):
        return (scale * rng.standard_normal(shape)).astype(dtype)

    return Traces(draw(B, H, I), draw(B, H, I), draw(B, H), draw(B, H), draw(B, H), draw(B, H))


def step_case(B: int, H: int, I: int, dtype, seed: int = 0) -> StepCase:
    rng = np.random.default_rng(seed)

    def draw(*shape):
        return rng.standard_normal(shape).astype(dtype)

    J = rng.uniform(0.5, 1.0, (B, H)).astype(dtype)                   # (B, H)
    x_t = draw(B, I)                                                  # (B, I)
    cache = CellCache(x_t, draw(B, H), draw(B, H), draw(B, H), draw(B, H),
                      (0.1 * draw(B, H)).astype(dtype), (0.1 * draw(B, H)).astype(dtype), J)
    reset_t = np.zeros(B, bool)                                       # (B,)
    reset_t[0] = True
    grads = ELSTMParams(*(np.zeros_like(a[0]) for a in random_traces(rng, 1, H, I, dtype)))
    return StepCase(random_traces(rng, B, H, I, dtype), cache, reset_t,
                    (0.1 * draw(B, H)).astype(dtype), grads)


def segment_case(T: int, B: int, H: int, I: int, dtype, seed: int = 0) -> SegmentCase:
    rng = np.random.default_rng(seed)
    p = init_elstm(rng, I, H, dtype)
    x = rng.standard_normal((T, B, I)).astype(dtype)                  # (T, B, I)
    reset = np.zeros((T, B), bool)                                    # (T, B)
    reset[T // 2, 0] = True
    c_0 = (0.5 * rng.standard_normal((B, H))).astype(dtype)          # (B, H)
    g_c = (0.1 * rng.standard_normal((T, B, H))).astype(dtype)        # (T, B, H)
    _, traj = elstm_forward(p, x, reset, c_0, backend="numba")
    return SegmentCase(p, x, reset, c_0, g_c, random_traces(rng, B, H, I, dtype), traj)
