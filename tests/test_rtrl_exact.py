"""RTRL (step form, segment form) == BPTT == dense naive reference, to round-off."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtrl_ref import bptt, rtrl_segment, rtrl_sequence, tbptt
from rtrl_ref.rtrl import Traces
from verify.compare import assert_close, assert_fields_close, compare_fields, tolerance
from verify.dense import dense_rtrl
from verify.mutants import MUTANTS, mutate
from verify.problem import bptt_grads, make_problem
from verify.strategies import describe, problems

EXACT64 = tolerance("exact", np.float64)


def assert_fields_close_or_zero(prefix, a, b, tol):
    """Like assert_fields_close, but a field whose reference is exactly zero must match exactly."""
    assert_fields_close(prefix, a, b, tol, allow_zero=tuple(b._fields))


@given(prob=problems())
def test_rtrl_step_form_equals_bptt(prob):
    back = bptt_grads(prob)
    result = rtrl_sequence(back.traj, prob.reset, back.g_c)
    assert_fields_close_or_zero(f"rtrl step vs bptt ({describe(prob)})", result.grads, back.grads.p, EXACT64)


@given(prob=problems())
def test_rtrl_segment_form_equals_bptt(prob):
    back = bptt_grads(prob)
    result = rtrl_segment(prob.p, back.traj, prob.reset, back.g_c)
    assert_fields_close_or_zero(f"rtrl segment vs bptt ({describe(prob)})", result.grads, back.grads.p, EXACT64)


@given(prob=problems(max_H=4, max_I=3, max_T=6))
@settings(max_examples=10)
def test_dense_reference_equals_rtrl_and_confirms_sparsity(prob):
    back = bptt_grads(prob)
    dense = dense_rtrl(prob.p, prob.x, prob.reset, back.g_c, prob.c_0)
    result = rtrl_sequence(back.traj, prob.reset, back.g_c)
    assert dense.max_offdiag == 0.0, f"off-diagonal influence {dense.max_offdiag} ({describe(prob)})"
    assert_fields_close_or_zero(f"dense vs rtrl ({describe(prob)})", dense.grads, result.grads, EXACT64)
    assert_fields_close_or_zero(f"dense vs bptt ({describe(prob)})", dense.grads, back.grads.p, EXACT64)


def test_dense_influence_matches_traces():
    """The diagonal blocks of the dense influence matrix are the RTRL traces."""
    from verify.dense import unflatten

    prob = make_problem(11, T=9, B=2, I=3, H=4, resets="middle")
    back = bptt_grads(prob)
    dense = dense_rtrl(prob.p, prob.x, prob.reset, back.g_c, prob.c_0)
    traces = rtrl_sequence(back.traj, prob.reset, back.g_c).traces
    M = unflatten(dense.influence, 4, 3)          # fields (B, H, H, I) / (B, H, H)
    idx = np.arange(4)
    diag = Traces(M.W_z[:, idx, idx], M.W_f[:, idx, idx], *(f[:, idx, idx] for f in M[2:]))
    assert_fields_close("dense diagonal vs traces", diag, traces, EXACT64)


@given(prob=problems(min_T=4, max_T=14), n_cuts=st.integers(1, 3), data=st.data())
def test_segment_form_equals_step_form_over_consecutive_segments(prob, n_cuts, data):
    """Carrying traces over several unrolls: gradients and carried-out traces agree."""
    T = prob.x.shape[0]
    cuts = sorted(set(data.draw(st.lists(st.integers(1, T - 1), min_size=n_cuts, max_size=n_cuts), label="cuts")))
    back = bptt_grads(prob)
    step = rtrl_sequence(back.traj, prob.reset, back.g_c)
    traces, total = None, None
    for a, b in zip([0] + cuts, cuts + [T]):
        seg_traj = type(back.traj)(*(f[a:b] for f in back.traj))
        seg = rtrl_segment(prob.p, seg_traj, prob.reset[a:b], back.g_c[a:b], traces)
        traces = seg.traces
        total = seg.grads if total is None else type(seg.grads)(*(u + v for u, v in zip(total, seg.grads)))
    assert_fields_close_or_zero(f"segments {cuts} vs step ({describe(prob)})", total, step.grads, EXACT64)
    assert_fields_close_or_zero(f"segment traces vs step traces ({describe(prob)})", traces, step.traces, EXACT64)


@given(prob=problems(min_T=3, resets=("none",)), data=st.data())
def test_splitting_at_a_reset_equals_two_independent_runs(prob, data):
    T = prob.x.shape[0]
    s = data.draw(st.integers(1, T - 1), label="split")
    reset = prob.reset.copy()
    reset[s] = True
    whole = bptt_grads(prob._replace(reset=reset))
    first = bptt_grads(prob._replace(x=prob.x[:s], reset=reset[:s], y=prob.y[:s]))
    second = bptt_grads(prob._replace(x=prob.x[s:], reset=reset[s:], y=prob.y[s:]))
    total = type(first.grads.p)(*(a + b for a, b in zip(first.grads.p, second.grads.p)))
    assert_fields_close_or_zero("split at reset", total, whole.grads.p, EXACT64)
    assert abs(first.loss + second.loss - whole.loss) <= 1e-12 * abs(whole.loss)
    r = rtrl_sequence(whole.traj, reset, whole.g_c)
    assert_fields_close_or_zero("rtrl over a reset vs two runs", r.grads, total, EXACT64)


@given(prob=problems(resets=("random", "none")))
def test_batch_rows_are_independent(prob):
    back = bptt_grads(prob)
    B = prob.x.shape[1]
    rows = [bptt_grads(prob._replace(x=prob.x[:, b:b + 1], reset=prob.reset[:, b:b + 1],
                                     c_0=prob.c_0[b:b + 1], y=prob.y[:, b:b + 1])) for b in range(B)]
    total = type(back.grads.p)(*(sum(fields) for fields in zip(*(r.grads.p for r in rows))))
    assert_fields_close_or_zero("sum of single rows vs batch", total, back.grads.p, EXACT64)
    g_x_rows = np.concatenate([r.grads.x for r in rows], axis=1)
    assert_close("g_x rows vs batch", g_x_rows, back.grads.x, EXACT64)


@given(prob=problems(), extra=st.integers(0, 3), mode=st.sampled_from(["window", "unroll"]))
def test_tbptt_with_window_at_least_T_equals_bptt(prob, extra, mode):
    back = bptt_grads(prob)
    T = prob.x.shape[0]
    trunc = tbptt(prob.p, back.traj, prob.reset, back.g_c, k=T + extra, mode=mode)
    assert_fields_close_or_zero(f"tbptt(k={T + extra}) vs bptt", trunc.grads, back.grads.p, EXACT64)
    assert_close("tbptt g_x vs bptt", trunc.g_x, back.bptt.g_x, EXACT64)


def long_memory_problem(T=12, seed=0):
    """f near 1 and a loss only at the last step: the gradient needs inputs from step 0."""
    prob = make_problem(seed, T=T, B=2, I=3, H=4, regime="forget_open", resets="none")
    back = bptt_grads(prob)
    g_c = np.zeros_like(back.g_c)
    g_c[-1] = back.g_c[-1]
    return prob, back, g_c


@pytest.mark.parametrize("mode", ["window", "unroll"])
def test_tbptt_with_short_window_is_biased(mode):
    prob, back, g_c = long_memory_problem()
    full = bptt(prob.p, back.traj, prob.reset, g_c)
    for k in (1, 3, 6):
        trunc = tbptt(prob.p, back.traj, prob.reset, g_c, k=k, mode=mode)
        results = compare_fields(f"tbptt(k={k})", trunc.grads, full.grads, 1e-3)
        assert not any(c.ok for c in results), [c.message() for c in results]
        # window: inputs more than k steps before the loss get no gradient at all
        if mode == "window":
            assert np.all(trunc.g_x[: 12 - k] == 0) and np.any(full.g_x[: 12 - k] != 0)


def test_tbptt_window_equals_per_loss_truncated_backprop():
    """Window mode == summing, for each loss step s, BPTT over steps s-k+1..s only."""
    prob, back, _ = long_memory_problem(T=9, seed=5)
    k = 3
    trunc = tbptt(prob.p, back.traj, prob.reset, back.g_c, k=k, mode="window")
    total = None
    for s in range(9):
        g_c = np.zeros_like(back.g_c)
        g_c[s] = back.g_c[s]
        lo = max(0, s - k + 1)
        sub = type(back.traj)(*(f[lo:s + 1] for f in back.traj))
        part = bptt(prob.p, sub, prob.reset[lo:s + 1], g_c[lo:s + 1]).grads
        total = part if total is None else type(part)(*(a + b for a, b in zip(total, part)))
    assert_fields_close("window tbptt vs per-loss truncation", trunc.grads, total, EXACT64)


@pytest.mark.parametrize("form", ["step", "segment"])
@pytest.mark.parametrize("mutant", MUTANTS)
def test_rtrl_check_fails_on_mutants(form, mutant):
    """Negative twins: each deliberately wrong gradient fails the RTRL == BPTT check."""
    prob = make_problem(2, T=10, B=2, I=3, H=4, resets="middle")
    back = bptt_grads(prob)
    traj, reset = mutate(mutant, prob.p, back.traj, prob.reset)
    if form == "step":
        wrong = rtrl_sequence(traj, reset, back.g_c).grads
    else:
        wrong = rtrl_segment(prob.p, traj, reset, back.g_c).grads
    results = compare_fields("mutant", wrong, back.grads.p, EXACT64)
    assert not all(c.ok for c in results), f"{mutant} passed the {form}-form check"


@pytest.mark.parametrize("mutant", ["no_trace_reset", "reset_off_by_one"])
def test_segment_trace_check_fails_on_reset_mutants(mutant):
    """Negative twin for the carried-trace comparison of the segment test."""
    prob = make_problem(2, T=10, B=2, I=3, H=4, resets="middle")
    back = bptt_grads(prob)
    right = rtrl_sequence(back.traj, prob.reset, back.g_c).traces
    _, reset = mutate(mutant, prob.p, back.traj, prob.reset)
    wrong = rtrl_segment(prob.p, back.traj, reset, back.g_c).traces
    assert not all(c.ok for c in compare_fields("traces", wrong, right, EXACT64))


@given(prob=problems(dtype=np.float32, max_T=40, max_H=6, max_I=5))
def test_float32_rtrl_agrees_with_float32_bptt(prob):
    """Same forward pass, two exact gradient formulas, float32 round-off only."""
    tol = tolerance("exact", np.float32)
    back32 = bptt_grads(prob)
    step = rtrl_sequence(back32.traj, prob.reset, back32.g_c)
    seg = rtrl_segment(prob.p, back32.traj, prob.reset, back32.g_c)
    assert_fields_close_or_zero("float32 step vs float32 bptt", step.grads, back32.grads.p, tol)
    assert_fields_close_or_zero("float32 segment vs float32 bptt", seg.grads, back32.grads.p, tol)


@given(prob=problems(dtype=np.float32, max_T=12, max_H=6, max_I=5,
                     regimes=("normal", "forget_open", "forget_closed")))
def test_float32_rtrl_agrees_with_float64_bptt(prob):
    """float32 step and segment forms stay within the float32 tolerance of the float64 gradient.

    Saturated gates are left out: there the float32 forward pass itself is ill-conditioned
    (measured relative errors up to 1e-3 against float64), which is not a gradient error.
    """
    tol = tolerance("vs_float64", np.float32)
    back32 = bptt_grads(prob)
    prob64 = prob._replace(p=prob.p.astype(np.float64), q=prob.q.astype(np.float64),
                           V=prob.V.astype(np.float64), x=prob.x.astype(np.float64),
                           c_0=prob.c_0.astype(np.float64))
    back64 = bptt_grads(prob64)
    step = rtrl_sequence(back32.traj, prob.reset, back32.g_c)
    seg = rtrl_segment(prob.p, back32.traj, prob.reset, back32.g_c)
    assert step.grads.W_z.dtype == np.float32 and seg.traces.W_z.dtype == np.float32
    assert_fields_close_or_zero("float32 step vs float64 bptt", step.grads, back64.grads.p, tol)
    assert_fields_close_or_zero("float32 segment vs float64 bptt", seg.grads, back64.grads.p, tol)


def test_split_check_fails_without_a_reset_at_the_split():
    """Negative twin of the split test: without a reset at s the two runs are not independent."""
    prob = make_problem(5, T=8, B=2, I=3, H=4, resets="none")
    whole = bptt_grads(prob)
    first = bptt_grads(prob._replace(x=prob.x[:4], reset=prob.reset[:4], y=prob.y[:4]))
    second = bptt_grads(prob._replace(x=prob.x[4:], reset=prob.reset[4:], y=prob.y[4:]))
    total = type(first.grads.p)(*(a + b for a, b in zip(first.grads.p, second.grads.p)))
    assert not all(c.ok for c in compare_fields("split without reset", total, whole.grads.p, EXACT64))


def test_dense_check_fails_on_the_papers_v1_jacobian():
    """Negative twin of the dense comparison: RTRL with the Jacobian lacking gz * w_z."""
    prob = make_problem(6, T=6, B=2, I=3, H=3, resets="none")
    back = bptt_grads(prob)
    dense = dense_rtrl(prob.p, prob.x, prob.reset, back.g_c, prob.c_0)
    traj, reset = mutate("drop_wz_term", prob.p, back.traj, prob.reset)
    wrong = rtrl_sequence(traj, reset, back.g_c)
    assert not all(c.ok for c in compare_fields("dense vs wrong rtrl", dense.grads, wrong.grads, EXACT64))

