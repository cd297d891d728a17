"""BPTT == central finite differences (float64), for every parameter, x_t and c_0.

The loss is non-linear in h_t (cross-entropy readout, verify.problem), resets included.
"""

import numpy as np
import pytest
from hypothesis import given, settings

from rtrl_ref.bptt import bptt
from verify.compare import tolerance
from verify.fd import check_against_fd
from verify.mutants import drop_wz_term
from verify.problem import ProblemGrads, bptt_grads, loss, make_problem
from verify.strategies import describe, problems

TOL = tolerance("fd", np.float64)


def fd_checks(prob, grads: ProblemGrads, max_entries=6, seed=0):
    """One FD comparison per named tensor of the problem."""
    rng = np.random.default_rng(seed)
    f = lambda: loss(prob)
    tensors = [(f"p.{k}", getattr(prob.p, k), getattr(grads.p, k)) for k in prob.p._fields]
    tensors += [(f"q.{k}", getattr(prob.q, k), getattr(grads.q, k)) for k in prob.q._fields]
    tensors += [("V", prob.V, grads.V), ("x", prob.x, grads.x), ("c_0", prob.c_0, grads.c_0)]
    return [check_against_fd(name, f, a, g, TOL, max_entries=max_entries, rng=rng) for name, a, g in tensors]


def informative(c):
    """A check is informative if the FD reference is not numerically zero."""
    return c.max_abs > 0 or not c.vacuous


@given(prob=problems(max_T=8, regimes=("normal", "forget_open", "forget_closed")))
@settings(max_examples=15)
def test_bptt_matches_finite_differences(prob):
    back = bptt_grads(prob)
    for c in fd_checks(prob, back.grads):
        # a tensor whose true gradient is zero (e.g. c_0 of a row reset at step 0) must be
        # exactly zero in the analytic gradient as well
        if c.vacuous:
            assert c.max_abs < 1e-9, f"{c.message()} ({describe(prob)})"
        else:
            assert c.ok, f"{c.message()} ({describe(prob)})"


@pytest.mark.parametrize("regime", ["saturated", "forget_open", "forget_closed", "normal"])
@pytest.mark.parametrize("resets", ["first", "middle", "last", "every"])
def test_bptt_fd_edge_regimes(regime, resets):
    prob = make_problem(7, T=6, B=1, I=2, H=3, regime=regime, resets=resets)
    back = bptt_grads(prob)
    for c in fd_checks(prob, back.grads, max_entries=4):
        assert c.ok or (c.vacuous and c.max_abs < 1e-9), f"{c.message()} ({regime}, {resets})"


def test_fd_check_fails_on_jacobian_without_wz_term():
    """Negative twin: BPTT through the paper-v1 Jacobian disagrees with finite differences."""
    prob = make_problem(3, T=8, B=2, I=3, H=4, resets="none")
    back = bptt_grads(prob)
    wrong = bptt(prob.p, drop_wz_term(prob.p, back.traj), prob.reset, back.g_c)
    wrong_grads = back.grads._replace(p=wrong.grads, c_0=wrong.g_c0)
    checks = {c.name: c for c in fd_checks(prob, wrong_grads)}
    for name in ("p.W_z", "p.W_f", "p.w_z", "p.w_f", "p.b_z", "p.b_f", "c_0"):
        assert not checks[name].ok, f"wrong gradient passed: {checks[name].message()}"


def test_fd_check_fails_on_reset_off_by_one():
    """Negative twin: gradients that cross an episode boundary disagree with FD."""
    from verify.mutants import reset_off_by_one

    prob = make_problem(4, T=8, B=2, I=3, H=4, resets="middle")
    back = bptt_grads(prob)
    wrong = bptt(prob.p, back.traj, reset_off_by_one(prob.reset), back.g_c)
    checks = {c.name: c for c in fd_checks(prob, back.grads._replace(p=wrong.grads))}
    assert not checks["p.W_z"].ok and not checks["p.b_f"].ok
