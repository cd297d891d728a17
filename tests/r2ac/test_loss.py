"""The actor-critic loss: value of each part, finite-difference gradients, negative twins."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtrl_ref.r2ac.loss import actor_critic_loss
from verify.compare import assert_all_ok
from verify.fd import fd_check


def random_batch(seed, T, B, A):
    rng = np.random.default_rng(seed)
    logits = 2 * rng.standard_normal((T, B, A))                       # (T, B, A)
    values = rng.standard_normal((T, B))                              # (T, B)
    actions = rng.integers(0, A, (T, B))                              # (T, B)
    vs = rng.standard_normal((T, B))                                  # (T, B)
    pg_advantages = rng.standard_normal((T, B))                       # (T, B)
    return logits, values, actions, vs, pg_advantages


def loss_fd(batch, costs, grads=None):
    """fd_check of the total loss over logits and values against `grads` (default: the module's)."""
    logits, values, actions, vs, pg_advantages = batch

    def loss():
        return actor_critic_loss(logits, values, actions, vs, pg_advantages, **costs)[0].total

    grads = actor_critic_loss(*batch, **costs)[1] if grads is None else grads
    return fd_check("g", loss, dict(logits=logits, values=values),
                    dict(logits=grads.g_logits, values=grads.g_values))


COSTS = {  # each part alone, then the paper's mix
    "pg": dict(baseline_cost=0.0, entropy_cost=0.0),
    "baseline": dict(baseline_cost=0.5, entropy_cost=0.0),
    "entropy": dict(baseline_cost=0.0, entropy_cost=0.01),
    "paper": dict(baseline_cost=0.5, entropy_cost=0.01),
}


@given(seed=st.integers(0, 2**16), T=st.integers(1, 4), B=st.integers(1, 3), A=st.integers(2, 5),
       costs=st.sampled_from(sorted(COSTS)))
def test_loss_gradients_match_fd(seed, T, B, A, costs):
    batch = random_batch(seed, T, B, A)
    # without a baseline term g_values is zero by construction (verify/compare.py, structural zeros)
    assert_all_ok(loss_fd(batch, COSTS[costs]), f"T={T} B={B} A={A} costs={costs}")


@pytest.mark.parametrize("mistake", ["entropy_sign", "pg_sign", "baseline_without_cost"])
def test_loss_gradients_negative_twins(mistake):
    batch = random_batch(0, 3, 2, 4)
    costs = COSTS["paper"]

    def wrong_grads():
        if mistake == "entropy_sign":
            return actor_critic_loss(*batch, baseline_cost=0.5, entropy_cost=-0.01)[1]
        if mistake == "pg_sign":
            logits, values, actions, vs, pg_advantages = batch
            return actor_critic_loss(logits, values, actions, vs, -pg_advantages, **costs)[1]
        return actor_critic_loss(*batch, baseline_cost=1.0, entropy_cost=0.01)[1]

    checks = {c.name: c for c in loss_fd(batch, costs, wrong_grads())}
    wrong = "g.values" if mistake == "baseline_without_cost" else "g.logits"
    assert not checks[wrong].ok, checks[wrong].message()


def test_loss_parts_are_the_formulas():
    logits = np.log(np.array([[[0.5, 0.25, 0.25]]]))                 # (1, 1, 3) pi = (1/2, 1/4, 1/4)
    values = np.array([[1.0]])                                        # (1, 1)
    actions = np.array([[1]])                                         # (1, 1)
    vs = np.array([[3.0]])                                            # (1, 1)
    adv = np.array([[2.0]])                                           # (1, 1)
    parts, grads = actor_critic_loss(logits, values, actions, vs, adv, baseline_cost=0.5, entropy_cost=0.01)
    entropy = -(0.5 * np.log(0.5) + 2 * 0.25 * np.log(0.25))         # 1.5 log 2
    np.testing.assert_allclose(parts.pg, -np.log(0.25) * 2.0)         # -log pi(a) A
    np.testing.assert_allclose(parts.baseline, 0.5 * 0.5 * (3.0 - 1.0) ** 2)
    np.testing.assert_allclose(parts.entropy, -0.01 * entropy)
    np.testing.assert_allclose(parts.mean_entropy, entropy)
    np.testing.assert_allclose(parts.total, parts.pg + parts.baseline + parts.entropy)
    np.testing.assert_allclose(grads.g_values, [[0.5 * (1.0 - 3.0)]])


def test_loss_sums_over_time_and_batch():
    batch = random_batch(1, 3, 2, 4)
    whole, _ = actor_critic_loss(*batch)
    pieces = [actor_critic_loss(*(a[t:t + 1, b:b + 1] for a in batch))[0].total
              for t in range(3) for b in range(2)]
    np.testing.assert_allclose(whole.total, sum(pieces), rtol=1e-12)


def test_loss_float32_and_large_logits():
    logits, values, actions, vs, adv = random_batch(2, 2, 2, 3)
    logits = logits * 1000                                            # saturated softmax
    parts, grads = actor_critic_loss(*(a.astype(np.float32) if a.dtype.kind == "f" else a
                                       for a in (logits, values, actions, vs, adv)))
    assert np.isfinite(parts.total) and grads.g_logits.dtype == np.float32
    assert np.all(np.isfinite(grads.g_logits))


@pytest.mark.parametrize("bad, match", [
    (dict(actions=np.full((2, 2), 3)), r"actions: expected values in \[0, 3\)"),
    (dict(actions=np.zeros((2, 2), np.float64)), "actions: expected an integer dtype"),
    (dict(values=np.zeros((2, 3))), "values: expected shape"),
    (dict(vs=np.zeros((2, 2), np.float32)), "vs: expected dtype"),
])
def test_loss_rejects_bad_input(bad, match):
    names = ["logits", "values", "actions", "vs", "pg_advantages"]
    kwargs = dict(zip(names, random_batch(3, 2, 2, 3)))
    kwargs.update(bad)
    with pytest.raises(ValueError, match=match):
        actor_critic_loss(**kwargs)
