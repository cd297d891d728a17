"""V-trace: the recursion against the defining sums, the on-policy n-step case, negative twins."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtrl_ref.r2ac.vtrace import vtrace
from verify.checks import check_vtrace
from verify.compare import assert_all_ok, assert_detected, compare, tolerance
from verify.vtrace import vtrace_slow_reference

EXACT = tolerance("exact", np.float64)


def random_unroll(seed, T, B, gamma=0.9, p_done=0.2, log_rho_scale=1.0):
    """Inputs of one unroll; discounts are 0 where the next step starts a new episode."""
    rng = np.random.default_rng(seed)
    behaviour_logp = -rng.uniform(0.1, 3.0, (T, B))                  # (T, B)
    target_logp = behaviour_logp + log_rho_scale * rng.uniform(-1.5, 1.5, (T, B))  # (T, B)
    rewards = rng.uniform(-1, 1, (T, B))                              # (T, B)
    discounts = gamma * (rng.uniform(size=(T, B)) >= p_done)          # (T, B)
    values = rng.standard_normal((T, B))                              # (T, B)
    bootstrap_value = rng.standard_normal(B)                          # (B,)
    return behaviour_logp, target_logp, rewards, discounts, values, bootstrap_value


bars = st.sampled_from([1.0, 0.5, 2.0, np.inf])


@given(seed=st.integers(0, 2**16), T=st.integers(1, 12), B=st.integers(1, 4),
       p_done=st.sampled_from([0.0, 0.2, 0.6]), rho_bar=bars, c_bar=bars, pg_rho_bar=bars)
def test_vtrace_matches_the_defining_sums(seed, T, B, p_done, rho_bar, c_bar, pg_rho_bar):
    inputs = random_unroll(seed, T, B, p_done=p_done)
    bars_kw = dict(rho_bar=rho_bar, c_bar=c_bar, pg_rho_bar=pg_rho_bar)
    assert_all_ok(check_vtrace(vtrace, inputs, **bars_kw), f"T={T} B={B} bars={bars_kw}")


def test_vtrace_defaults_truncate_every_ratio_at_one():
    """Called without bars, vtrace truncates rho, c and the advantages' rho at 1 (Eq. 17,
    rho-bar = c-bar = 1): importance ratios between 1 and 2 are where another default shows."""
    inputs = random_unroll(3, T=6, B=3, p_done=0.0, log_rho_scale=0.4)
    rho = np.exp(inputs[1] - inputs[0])                              # (T, B)
    assert np.any((rho > 1) & (rho < 2))
    assert_all_ok(check_vtrace(vtrace, inputs), "defaults vs the defining sums with bars of 1")
    clip_at_one = vtrace_slow_reference(*inputs, rho_bar=1.0, c_bar=1.0, pg_rho_bar=1.0)
    got = vtrace(*inputs)
    assert compare("vs", got.vs, clip_at_one.vs, EXACT).ok and compare(
        "pg_advantages", got.pg_advantages, clip_at_one.pg_advantages, EXACT).ok


def test_vtrace_accepts_discounts_in_the_closed_unit_interval():
    """gamma = 1 (undiscounted) and 0 (episode end) are valid discounts; outside [0, 1] is refused."""
    inputs = list(random_unroll(4, T=5, B=2, gamma=1.0, p_done=0.3))
    assert inputs[3].max() == 1.0 and inputs[3].min() == 0.0
    assert_all_ok(check_vtrace(vtrace, inputs), "discounts of exactly 0 and 1")
    for bad in (1.0 + 1e-9, -1e-9):
        inputs[3] = np.full_like(inputs[3], bad)
        with pytest.raises(ValueError, match=r"discounts: expected values in \[0, 1\]"):
            vtrace(*inputs)


def test_vtrace_negative_twin_c_not_clipped():
    """The same check fails when the traces' c is left unclipped (c_bar = inf instead of 1)."""
    inputs = random_unroll(0, T=6, B=3, p_done=0.0, log_rho_scale=1.0)

    def vtrace_c_unclipped(*args, **bars):
        return vtrace(*args, **{**bars, "c_bar": np.inf})

    assert_detected(check_vtrace(vtrace_c_unclipped, inputs))


def test_vtrace_negative_twin_rho_not_clipped_in_advantages():
    inputs = random_unroll(1, T=4, B=2)

    def vtrace_rho_unclipped(*args, **bars):
        return vtrace(*args, **{**bars, "pg_rho_bar": np.inf})

    rows = {c.name: c for c in check_vtrace(vtrace_rho_unclipped, inputs)}
    assert not rows["pg_advantages"].ok


def test_slow_reference_rejects_bad_shapes():
    inputs = list(random_unroll(2, T=3, B=2))
    inputs[5] = np.zeros(3)                                           # bootstrap_value (B + 1,)
    with pytest.raises(ValueError, match=r"bootstrap_value: expected shape \(B=2,\), got \(3,\)"):
        vtrace_slow_reference(*inputs)


def n_step_returns(rewards, discounts, bootstrap_value):
    """G_s = r_s + g_s r_{s+1} + g_s g_{s+1} r_{s+2} + ... + (g_s ... g_{T-1}) V(x_T), forwards."""
    T, B = rewards.shape
    returns = np.zeros((T, B))                                        # (T, B)
    for s in range(T):
        scale = np.ones(B)                                            # (B,) product of discounts so far
        for t in range(s, T):
            returns[s] += scale * rewards[t]
            scale = scale * discounts[t]
        returns[s] += scale * bootstrap_value
    return returns


@given(seed=st.integers(0, 2**16), T=st.integers(1, 10), B=st.integers(1, 3),
       p_done=st.sampled_from([0.0, 0.3]))
def test_on_policy_vtrace_is_the_n_step_return(seed, T, B, p_done):
    behaviour_logp, _, rewards, discounts, values, bootstrap_value = random_unroll(seed, T, B, p_done=p_done)
    out = vtrace(behaviour_logp, behaviour_logp, rewards, discounts, values, bootstrap_value)
    G = n_step_returns(rewards, discounts, bootstrap_value)           # (T, B)
    c = compare("vs (on-policy)", out.vs, G, EXACT)
    assert c.ok, c.message()
    G_tp1 = np.concatenate([G[1:], bootstrap_value[None]])            # (T, B)
    c = compare("pg_advantages (on-policy)", out.pg_advantages, rewards + discounts * G_tp1 - values, EXACT)
    assert c.ok, c.message()


def test_on_policy_negative_twin_wrong_discount_alignment():
    """Using the discount of the previous step (an off-by-one in the done alignment) fails."""
    behaviour_logp, _, rewards, discounts, values, bootstrap_value = random_unroll(3, 8, 2, p_done=0.3)
    shifted = np.concatenate([np.full((1, 2), 0.9), discounts[:-1]])  # (T, B)
    out = vtrace(behaviour_logp, behaviour_logp, rewards, shifted, values, bootstrap_value)
    assert not compare("vs", out.vs, n_step_returns(rewards, discounts, bootstrap_value), EXACT).ok


def test_episode_end_stops_bootstrapping():
    """With discounts[t] = 0 the target at t is r_t alone, whatever comes after."""
    T, B = 5, 1
    rewards = np.arange(1.0, T + 1)[:, None]                          # (T, B)
    discounts = np.full((T, B), 0.5)                                  # (T, B)
    discounts[2] = 0.0                                                # x_3 starts a new episode
    zeros = np.zeros((T, B))                                          # (T, B)
    out = vtrace(zeros, zeros, rewards, discounts, zeros, np.array([10.0]))
    np.testing.assert_allclose(out.vs[2, 0], 3.0)
    np.testing.assert_allclose(out.vs[1, 0], 2.0 + 0.5 * 3.0)
    np.testing.assert_allclose(out.vs[4, 0], 5.0 + 0.5 * 10.0)


def test_float32_dtype_is_kept():
    inputs = [a.astype(np.float32) for a in random_unroll(4, 6, 2)]
    out = vtrace(*inputs)
    assert out.vs.dtype == out.pg_advantages.dtype == np.float32
    ref = vtrace(*[a.astype(np.float64) for a in inputs])
    assert compare("vs float32", out.vs, ref.vs, 1e-5).ok


@pytest.mark.parametrize("bad, match", [
    (dict(rewards=np.zeros((3, 2))), "rewards: expected shape"),
    (dict(bootstrap_value=np.zeros(3)), "bootstrap_value: expected shape"),
    (dict(discounts=np.full((4, 2), 1.5)), "discounts: expected values in"),
    (dict(values=np.zeros((4, 2), np.float32)), "expected dtype"),
    (dict(c_bar=0.0), "c_bar"),
])
def test_vtrace_rejects_bad_input(bad, match):
    names = ["behaviour_logp", "target_logp", "rewards", "discounts", "values", "bootstrap_value"]
    kwargs = dict(zip(names, random_unroll(5, 4, 2)))
    kwargs.update(bad)
    with pytest.raises(ValueError, match=match):
        vtrace(**kwargs)
