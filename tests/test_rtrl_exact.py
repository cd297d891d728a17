"""RTRL (step form, segment form) == BPTT == dense naive reference, to round-off.

Each property is a verify.checks function; the tests draw the problems and assert the rows.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtrl_ref import bptt, tbptt
from verify import checks
from verify.broken import mutant_drivers
from verify.compare import assert_all_ok, assert_detected, assert_fields_close, tolerance
from verify.mutants import MUTANTS
from verify.problem import bptt_grads, make_problem
from verify.strategies import describe, problems

EXACT64 = tolerance("exact", np.float64)


@given(prob=problems())
def test_rtrl_step_form_equals_bptt(prob):
    assert_all_ok(checks.check_rtrl_step(prob), describe(prob))


@given(prob=problems())
def test_rtrl_segment_form_equals_bptt(prob):
    assert_all_ok(checks.check_rtrl_segment(prob), describe(prob))


@given(prob=problems(max_H=4, max_I=3, max_T=6))
@settings(max_examples=10)
def test_dense_reference_equals_rtrl_and_confirms_sparsity(prob):
    assert_all_ok(checks.check_dense(prob), describe(prob))


@given(prob=problems(min_T=4, max_T=14), n_cuts=st.integers(1, 3), data=st.data())
def test_segment_form_equals_step_form_over_consecutive_segments(prob, n_cuts, data):
    """Carrying traces over several unrolls: gradients and carried-out traces agree."""
    T = prob.x.shape[0]
    cuts = data.draw(st.lists(st.integers(1, T - 1), min_size=n_cuts, max_size=n_cuts), label="cuts")
    assert_all_ok(checks.check_rtrl_segment(prob, cuts), f"cuts {sorted(set(cuts))} ({describe(prob)})")


@given(prob=problems(min_T=3, resets=("none",)), data=st.data())
def test_splitting_at_a_reset_equals_two_independent_runs(prob, data):
    split = data.draw(st.integers(1, prob.x.shape[0] - 1), label="split")
    assert_all_ok(checks.check_reset_split(prob, split), f"split {split} ({describe(prob)})")


@given(prob=problems())
def test_batch_rows_are_independent(prob):
    assert_all_ok(checks.check_batch_rows(prob), describe(prob))


def test_batch_row_check_fails_when_a_row_leaks_into_its_neighbour():
    """Negative twin: row 0's input leaking into row 1 (BPTT and the step form) must fail."""
    from verify import broken

    prob = make_problem(8, T=5, B=3, I=3, H=4, resets="random")
    rows = checks.check_batch_rows(prob, broken.row_leak_drivers())
    failed = {c.name.split(" (")[0].split(".")[0] for c in rows if not c.ok}
    assert {"bptt grad", "g_x", "rtrl grad", "rtrl traces"} <= failed, failed


@given(prob=problems(), extra=st.integers(0, 3), mode=st.sampled_from(["window", "unroll"]))
def test_tbptt_with_window_at_least_T_equals_bptt(prob, extra, mode):
    k = prob.x.shape[0] + extra
    assert_all_ok(checks.check_tbptt_full_window(prob, k, mode), f"k={k} {mode} ({describe(prob)})")


@pytest.mark.parametrize("mode", ["window", "unroll"])
@pytest.mark.parametrize("k", [1, 3, 6])
def test_tbptt_with_short_window_is_biased(mode, k):
    assert_all_ok(checks.check_tbptt_bias(0, 12, k, mode=mode), f"k={k} {mode}")


def long_memory_problem(T=12, seed=0):
    """f near 1 and a loss only at the last step: the gradient needs inputs from step 0."""
    prob = make_problem(seed, T=T, B=2, I=3, H=4, regime="forget_open", resets="none")
    back = bptt_grads(prob)
    g_c = np.zeros_like(back.g_c)
    g_c[-1] = back.g_c[-1]
    return prob, back, g_c


def test_tbptt_window_gives_no_input_gradient_beyond_k_steps():
    prob, back, g_c = long_memory_problem()
    full = bptt(prob.p, back.traj, prob.reset, g_c)
    for k in (1, 3, 6):
        trunc = tbptt(prob.p, back.traj, prob.reset, g_c, k=k, mode="window")
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
        total = checks.add_trees(total, part)
    assert_fields_close("window tbptt vs per-loss truncation", trunc.grads, total, EXACT64)


@given(prob=problems(dtype=np.float32, max_T=40, max_H=6, max_I=5))
def test_float32_rtrl_agrees_with_float32_bptt(prob):
    """Same forward pass, two exact gradient formulas, float32 round-off only."""
    assert_all_ok(checks.check_rtrl_step(prob), describe(prob))
    assert_all_ok(checks.check_rtrl_segment(prob), describe(prob))


@given(prob=problems(dtype=np.float32, max_T=12, max_H=6, max_I=5,
                     regimes=("normal", "forget_open", "forget_closed")))
def test_float32_rtrl_agrees_with_float64_bptt(prob):
    """float32 step and segment forms stay within the float32 tolerance of the float64 gradient.

    Saturated gates are left out: there the float32 forward pass itself is ill-conditioned
    (measured relative errors up to 1e-3 against float64), which is not a gradient error.
    """
    assert_all_ok(checks.check_float32_vs_float64(prob), describe(prob))


# ---------------------------------------------------------------------------------------------
# negative twins


@pytest.mark.parametrize("form", ["step", "segment"])
@pytest.mark.parametrize("mutant", MUTANTS)
def test_rtrl_check_fails_on_mutants(form, mutant):
    """Each deliberately wrong gradient fails the RTRL == BPTT check (and, for the reset mistakes,
    the carried-trace comparison of the segment check)."""
    prob = make_problem(2, T=10, B=2, I=3, H=4, resets="middle")
    wrong = mutant_drivers(mutant, prob.p)
    if form == "step":
        assert_detected(checks.check_rtrl_step(prob, wrong), mutant)
        return
    rows = checks.check_rtrl_segment(prob, (), wrong)
    assert_detected([c for c in rows if c.name.startswith("grad")], mutant)
    if mutant != "drop_wz_term":
        assert_detected([c for c in rows if c.name.startswith("final trace")], mutant)


def test_split_check_fails_without_a_reset_at_the_split():
    """Without a reset at the split the two runs are not independent."""
    assert_detected(checks.check_split(make_problem(5, T=8, B=2, I=3, H=4, resets="none"), 4))


def test_dense_check_fails_on_the_papers_v1_jacobian():
    """RTRL with the Jacobian lacking dc_dzpre * w_z against the dense reference."""
    prob = make_problem(6, T=6, B=2, I=3, H=3, resets="none")
    assert_detected(checks.check_dense(prob, mutant_drivers("drop_wz_term", prob.p)))


def test_tbptt_checks_fail_on_wrong_truncation():
    from verify import broken

    untruncated = checks.check_tbptt_bias(0, 12, 3, drivers=checks.LIBRARY._replace(tbptt=broken.tbptt_untruncated))
    assert_detected([c for c in untruncated if c.relation == ">="], "bias of a TBPTT that does not truncate")
    prob = make_problem(1, T=6, B=2, I=3, H=4, resets="none")
    off_by_one = checks.LIBRARY._replace(tbptt=broken.tbptt_off_by_one)
    assert_detected(checks.check_tbptt_full_window(prob, 6, "window", off_by_one), "window of k - 1 steps")


def test_dense_reference_on_a_saturated_problem_with_cancellation():
    """A case hypothesis once drew (saturated gates, T=1 B=2 I=1 H=1): the W_z and b_z traces are
    about 1e-6 of the container's largest trace and carry its round-off (1e-16 absolute), which the
    float64 container floor excuses; a real error in those small tensors (0.1% of them) is still
    caught."""
    from rtrl_ref.params import ELSTMParams, OutGateParams
    from verify.compare import compare_fields
    from verify.dense import dense_rtrl
    from verify.problem import Problem

    p = ELSTMParams(W_z=np.array([[-2.63351618]]), W_f=np.array([[4.26089771]]), w_z=np.array([-2.00194389]),
                    w_f=np.array([3.51960979]), b_z=np.array([5.97426517]), b_f=np.array([4.70884246]))
    prob = Problem(p=p, q=OutGateParams(W_o=np.array([[0.30026762, -0.86782271]]), b_o=np.array([0.67418395])),
                   V=np.array([[0.43537501, -0.49477097, 1.36089397]]), x=np.array([[[0.51358116], [-1.61876021]]]),
                   reset=np.array([[False, False]]), c_0=np.array([[0.77761475], [0.11683139]]), y=np.array([[1, 2]]))
    assert_all_ok(checks.check_dense(prob), describe(prob))
    back = bptt_grads(prob)
    dense = dense_rtrl(prob.p, prob.x, prob.reset, back.g_c, prob.c_0)
    res = checks.LIBRARY.rtrl_sequence(back.traj, prob.reset, back.g_c, None, backend="numpy")
    wrong = res.grads._replace(W_z=res.grads.W_z * (1 + 1e-3))                # negative twin
    assert not all(c.ok for c in compare_fields("grad", wrong, dense.grads, tolerance("exact", np.float64)))
