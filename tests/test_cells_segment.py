"""Segment-form RTRL for the IndRNN, minGRU and LRU (rtrl_ref/cells/segment.py; docs/derivation.md,
section 10.6, Eqs. 40-42): segment form == step form == full BPTT over consecutive segments, with
negative twins that drop the carried-in traces' contribution or forget a reset inside a segment.

A sequence is cut into drawn segment lengths (1 included); each call carries the state and traces of
the one before. The loss is verify.cell_checks' (it reads every state non-linearly).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtrl_ref.cells import CELLS, RTRLResult, bptt, forward, rtrl_segment, rtrl_sequence
from rtrl_ref.cells.interface import add_grads, expand_factors
from rtrl_ref.cells.segment import carry_traces, effective_jacobians, outer_sum, survival
from verify.cell_checks import CELL_REGIMES, CellProblem, as_real, loss_and_g, make_cell_problem
from verify.compare import Comparison, assert_all_ok, assert_detected, compare_fields, judge, measure, tolerance
from verify.strategies import ALL_RESETS, row_reset_mask

CELL_NAMES = tuple(CELLS)
DTYPES = (np.float64, np.float32)
PROPERTY = settings(derandomize=True, deadline=None, max_examples=200)
TWINS = settings(derandomize=True, deadline=None, max_examples=40)


def random_traces(prob: CellProblem, seed: int):
    """Carried-in traces of the problem's cell, every entry ~ N(0, 1) (both parts for a complex state)."""
    rng = np.random.default_rng(seed)
    like = prob.cell.zero_traces(prob.p, prob.x.shape[1])
    out = []
    for a in like:
        S = rng.standard_normal(a.shape)
        if np.iscomplexobj(a):
            S = S + 1j * rng.standard_normal(a.shape)
        out.append(S.astype(a.dtype))
    return type(like)(*out)


def realify(tree):
    return type(tree)(*(as_real(a) for a in tree))


def run_segments(segment: Callable, prob: CellProblem, g_s, lengths, traces_in) -> RTRLResult:
    """`segment` over consecutive slices of `lengths` steps, carrying the state and traces; gradients summed."""
    s, traces, total, start = prob.s_0, traces_in, None, 0
    for n in lengths:
        stop = start + n
        res = segment(prob.cell, prob.p, prob.x[start:stop], prob.reset[start:stop], g_s[start:stop], s, traces)
        s, traces, total, start = res.s, res.traces, add_grads(total, res.grads), stop
    return RTRLResult(total, s, traces)


def check_segment(prob: CellProblem, lengths, traces_in, segment: Callable = rtrl_segment) -> list[Comparison]:
    """Segments (carried-in traces_in) vs one step-form call: gradient, final state, final traces; and
    segments from zero traces vs full BPTT over the whole sequence. tolerance('exact', dtype)."""
    tol = tolerance("exact", prob.x.dtype)
    traj = forward(prob.cell, prob.p, prob.x, prob.reset, prob.s_0)
    _, g_s = loss_and_g(prob, traj.s)
    got = run_segments(segment, prob, g_s, lengths, traces_in)
    step = rtrl_sequence(prob.cell, prob.p, prob.x, prob.reset, g_s, prob.s_0, traces_in)
    from_zero = run_segments(segment, prob, g_s, lengths, None)
    full = bptt(prob.cell, prob.p, traj, prob.reset, g_s)
    return (compare_fields("vs step: grad", got.grads, step.grads, tol)
            + compare_fields("vs step: traces", realify(got.traces), realify(step.traces), tol)
            + judge([measure("vs step: state", as_real(got.s), as_real(step.s), tol)])
            + compare_fields("vs BPTT: grad", from_zero.grads, full.grads, tol))


@st.composite
def segment_cases(draw, dtype, regimes=CELL_REGIMES, min_T: int = 1):
    """(problem, segment lengths, carried-in traces): sizes, lengths (1 included), per-row resets, regimes."""
    name = draw(st.sampled_from(CELL_NAMES), label="cell")
    lengths = draw(st.lists(st.integers(1, 5), min_size=1, max_size=4), label="segment lengths")
    if sum(lengths) < min_T:
        lengths = lengths + [min_T - sum(lengths)]
    T = sum(lengths)
    B = draw(st.integers(1, 5), label="B")
    H = draw(st.integers(1, 6), label="H")
    I = draw(st.integers(1, 4), label="I")
    pattern = draw(st.sampled_from(ALL_RESETS + ("rows",)), label="resets")
    regime = draw(st.sampled_from(regimes), label="regime")
    seed = draw(st.integers(0, 2**31 - 1), label="seed")
    resets = "rows" if pattern == "rows" else row_reset_mask(np.random.default_rng(seed + 1), T, B, pattern)
    prob = make_cell_problem(name, seed, T, B, I, H, np.dtype(dtype).name, regime, resets)
    return prob, lengths, random_traces(prob, seed + 2)


def describe(prob: CellProblem, lengths) -> str:
    T, B, I = prob.x.shape
    return (f"{prob.cell.name} {prob.x.dtype} segments={list(lengths)} B={B} I={I} H={prob.s_0.shape[1]} "
            f"resets={np.argwhere(prob.reset).tolist()}")


# ---------------------------------------------------------------------------------------------
# segment form == step form == full BPTT

@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_segment_matches_step_and_bptt(dtype):
    @PROPERTY
    @given(case=segment_cases(dtype))
    def prop(case):
        prob, lengths, traces_in = case
        assert_all_ok(check_segment(prob, lengths, traces_in), describe(prob, lengths))

    prop()


@pytest.mark.parametrize("name", CELL_NAMES)
def test_one_row_resets_inside_a_segment(name):
    """Row 0 resets in the middle of the second segment, row 1 never, row 2 at a segment's first step."""
    T, B = 9, 3
    reset = np.zeros((T, B), bool)                                    # (T, B)
    reset[5, 0] = True
    reset[7, 2] = True
    prob = make_cell_problem(name, 11, T, B, 3, 4, "float64", "normal", reset)
    lengths = [3, 4, 1, 1]
    assert_all_ok(check_segment(prob, lengths, random_traces(prob, 12)), describe(prob, lengths))


def test_segment_does_not_modify_its_inputs():
    prob = make_cell_problem("lru", 5, 4, 2, 3, 3, "float64")
    traj = forward(prob.cell, prob.p, prob.x, prob.reset, prob.s_0)
    _, g_s = loss_and_g(prob, traj.s)
    traces_in = random_traces(prob, 6)
    kept = [a.copy() for a in (*traces_in, prob.s_0)]
    rtrl_segment(prob.cell, prob.p, prob.x, prob.reset, g_s, prob.s_0, traces_in)
    for before, after in zip(kept, (*traces_in, prob.s_0)):
        np.testing.assert_array_equal(after, before, err_msg="rtrl_segment modified a carried-in array")


@pytest.mark.parametrize("name", CELL_NAMES)
def test_factors_rebuild_the_local_terms(name):
    """Eq. 42: expand_factors(local_factors) == the trace update from zero traces (D_t), every field."""
    prob = make_cell_problem(name, 3, 2, 3, 4, 5, "float64")
    traj = forward(prob.cell, prob.p, prob.x, prob.reset, prob.s_0)
    zero = prob.cell.zero_traces(prob.p, 3)
    for t, cache in enumerate(traj.caches):
        got = expand_factors(prob.p, prob.cell.local_factors(prob.p, cache), prob.x[t])
        want = prob.cell.trace_update(prob.p, cache, zero)
        assert_all_ok(compare_fields(f"D_{t}", realify(got), realify(want), 1e-15), name)


def test_outer_sum_and_survival_by_hand():
    """outer_sum against a loop; survival's products written out for T = 3."""
    rng = np.random.default_rng(0)
    u = rng.standard_normal((3, 2, 4)) + 1j * rng.standard_normal((3, 2, 4))      # (T, B, H)
    x = rng.standard_normal((3, 2, 5))                                               # (T, B, I)
    want = sum(u[s][:, :, None] * x[s][:, None, :] for s in range(3))               # (B, H, I)
    np.testing.assert_allclose(outer_sum(u, x), want, rtol=1e-14, atol=1e-14, err_msg="outer_sum complex")
    np.testing.assert_allclose(outer_sum(u.real, x), want.real, rtol=1e-14, atol=1e-14, err_msg="outer_sum real")
    j = np.array([[[2.0]], [[3.0]], [[5.0]]])                         # (T, B, H) = (3, 1, 1)
    P, decay = survival(j)
    np.testing.assert_array_equal(P[:, 0, 0], [15.0, 5.0, 1.0], err_msg="P_s")
    np.testing.assert_array_equal(decay, [[30.0]], err_msg="prod Jeff")


# ---------------------------------------------------------------------------------------------
# negative twins: each must fail check_segment

def drop_carried(cell, p, x, reset, g_s, s_0=None, traces=None) -> RTRLResult:
    """Wrong: Eq. 40 without the carried-in part (the traces still advance correctly)."""
    traces_in = cell.zero_traces(p, x.shape[1]) if traces is None else traces
    traj = forward(cell, p, x, reset, s_0)
    inner = bptt(cell, p, traj, reset, g_s)
    return RTRLResult(inner.grads, traj.s[-1],
                      carry_traces(cell, p, traj, x, effective_jacobians(cell, traj, reset), traces_in))


def forget_reset(cell, p, x, reset, g_s, s_0=None, traces=None) -> RTRLResult:
    """Wrong: Eq. 41 with J_t for Jeff_t, so the traces survive a reset inside the segment."""
    traces_in = cell.zero_traces(p, x.shape[1]) if traces is None else traces
    traj = forward(cell, p, x, reset, s_0)
    inner = bptt(cell, p, traj, reset, g_s)
    j = np.stack([cell.jacobian(cache) for cache in traj.caches])     # (T, B, H) J_t, resets ignored
    return RTRLResult(add_grads(inner.grads, cell.grads_from_traces(inner.g_s0, traces_in)), traj.s[-1],
                      carry_traces(cell, p, traj, x, j, traces_in))


@st.composite
def twin_cases(draw, dtype):
    """Cases where both twins are wrong by construction: T >= 2, row b0 keeps its carried-in traces at
    step 0 (Eq. 40's term is non-zero) and row b1 resets at the last step (Eq. 41's mask matters); the
    normal regime, whose J_t are not near 0."""
    prob, lengths, traces_in = draw(segment_cases(dtype, regimes=("normal",), min_T=2))
    T, B = prob.reset.shape
    b0 = draw(st.integers(0, B - 1), label="row keeping its traces")
    b1 = draw(st.integers(0, B - 1), label="row resetting at the end")
    reset = prob.reset.copy()
    reset[0, b0] = False
    reset[T - 1, b1] = True
    return prob._replace(reset=reset), lengths, traces_in


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("twin", [drop_carried, forget_reset], ids=lambda f: f.__name__)
def test_negative_twins_fail(twin, dtype):
    @TWINS
    @given(case=twin_cases(dtype))
    def prop(case):
        prob, lengths, traces_in = case
        assert_all_ok(check_segment(prob, lengths, traces_in), describe(prob, lengths))
        assert_detected(check_segment(prob, lengths, traces_in, twin), f"{twin.__name__}: {describe(prob, lengths)}")

    prop()
