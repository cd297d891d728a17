"""BPTT == central finite differences (float64), for every parameter, x_t and c_0.

The loss is non-linear in h_t (cross-entropy readout, verify.problem), resets included; the
property is verify.checks.check_bptt_fd.
"""

import pytest
from hypothesis import given, settings

from rtrl_ref import bptt
from verify import broken
from verify.checks import LIBRARY, check_bptt_fd
from verify.compare import assert_all_ok
from verify.mutants import reset_off_by_one
from verify.problem import bptt_grads, make_problem
from verify.strategies import describe, problems


@given(prob=problems(max_T=8, regimes=("normal", "forget_open", "forget_closed")))
@settings(max_examples=15)
def test_bptt_matches_finite_differences(prob):
    assert_all_ok(check_bptt_fd(prob, max_entries=6), describe(prob))


@pytest.mark.parametrize("regime", ["saturated", "forget_open", "forget_closed", "normal"])
@pytest.mark.parametrize("resets", ["first", "middle", "last", "every"])
def test_bptt_fd_edge_regimes(regime, resets):
    prob = make_problem(7, T=6, B=1, I=2, H=3, regime=regime, resets=resets)
    assert_all_ok(check_bptt_fd(prob, max_entries=4), f"{regime}, {resets}")


def test_fd_check_fails_on_jacobian_without_wz_term():
    """Negative twin: BPTT through the paper-v1 Jacobian disagrees with finite differences."""
    prob = make_problem(3, T=8, B=2, I=3, H=4, resets="none")
    rows = {c.name: c for c in check_bptt_fd(prob, LIBRARY._replace(problem_grads=broken.bptt_grads_no_wz_term),
                                             max_entries=6)}
    for name in ("p.W_z", "p.W_f", "p.w_z", "p.w_f", "p.b_z", "p.b_f", "c_0"):
        assert not rows[f"grad.{name}"].ok, f"wrong gradient passed: {rows[f'grad.{name}'].message()}"


def test_fd_check_fails_on_reset_off_by_one():
    """Negative twin: gradients that cross an episode boundary disagree with FD."""
    def late_reset_grads(prob):
        right = bptt_grads(prob)
        wrong = bptt(prob.p, right.traj, reset_off_by_one(prob.reset), right.g_c)
        return right._replace(grads=right.grads._replace(p=wrong.grads))

    prob = make_problem(4, T=8, B=2, I=3, H=4, resets="middle")
    rows = {c.name: c for c in check_bptt_fd(prob, LIBRARY._replace(problem_grads=late_reset_grads), max_entries=6)}
    assert not rows["grad.p.W_z"].ok and not rows["grad.p.b_f"].ok
