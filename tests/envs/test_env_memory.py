"""Built-in memory tasks: the true copy task generator and the `memory:cue` RL task."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import envs
from envs.memory import (
    BLANK,
    copy_task_accuracy,
    copy_task_accuracy_by_length,
    copy_task_batch,
    copy_task_longest_solved,
)


@given(batch=st.integers(1, 9), max_len=st.integers(1, 12), data=st.data(),
       seed=st.integers(0, 2**32 - 1))
def test_copy_task_is_a_true_copy_task(batch, max_len, data, seed):
    min_len = data.draw(st.integers(1, max_len), label="min_len")
    b = copy_task_batch(np.random.default_rng(seed), batch, max_len, min_len)
    T = 2 * max_len
    assert b.inputs.shape == (T, batch, 3) and b.inputs.dtype == np.float32
    assert b.targets.shape == b.mask.shape == (T, batch) and b.targets.dtype == np.int64
    np.testing.assert_array_equal(b.inputs.sum(-1), 1.0, err_msg="inputs are one-hot")
    symbols = b.inputs.argmax(-1)                                        # (T, B)
    for j, L in enumerate(b.lengths):
        assert min_len <= L <= max_len
        bits = symbols[:L, j]
        assert np.all(bits < 2), f"sequence {j}: pattern holds bits only"
        assert np.all(symbols[L:, j] == BLANK), f"sequence {j}: blanks after the pattern"
        np.testing.assert_array_equal(np.flatnonzero(b.mask[:, j]), np.arange(L, 2 * L))
        np.testing.assert_array_equal(b.targets[L:2 * L, j], bits, err_msg=f"recall {j}")
        assert np.all(b.targets[~b.mask[:, j], j] == BLANK)


def test_copy_task_counts_both_bit_values():
    """Guard against the original code's quirk (target bit "1" ignored)."""
    b = copy_task_batch(np.random.default_rng(0), 64, 20)
    counted = b.targets[b.mask]
    assert set(np.unique(counted)) == {0, 1}
    assert 0.4 < counted.mean() < 0.6


def test_copy_task_accuracy_scores_masked_steps_only():
    b = copy_task_batch(np.random.default_rng(1), 4, 6)
    assert copy_task_accuracy(b.targets, b) == (1.0, 1.0)
    noisy = np.where(b.mask, b.targets, 0)                 # wrong blanks do not count
    assert copy_task_accuracy(noisy, b) == (1.0, 1.0)
    wrong = b.targets.copy()
    t, j = np.argwhere(b.mask)[0]
    wrong[t, j] = 1 - wrong[t, j]
    symbol_acc, sequence_acc = copy_task_accuracy(wrong, b)
    assert symbol_acc == pytest.approx(1 - 1 / b.mask.sum())
    assert sequence_acc == pytest.approx(3 / 4)
    with pytest.raises(ValueError, match=r"predictions: expected shape"):
        copy_task_accuracy(wrong[:-1], b)


def test_copy_task_accuracy_by_length_blames_the_length_of_the_wrong_sequence():
    b = copy_task_batch(np.random.default_rng(2), 40, 5)
    counts = {n: int((b.lengths == n).sum()) for n in np.unique(b.lengths)}
    assert copy_task_accuracy_by_length(b.targets, b) == {n: (k, 1.0) for n, k in counts.items()}
    noisy = np.where(b.mask, b.targets, 0)                 # wrong blanks do not count
    assert copy_task_accuracy_by_length(noisy, b) == {n: (k, 1.0) for n, k in counts.items()}
    wrong = b.targets.copy()
    j = int(np.flatnonzero(b.lengths == b.lengths.max())[0])
    t = int(np.flatnonzero(b.mask[:, j])[-1])              # the last recall step of a longest sequence
    wrong[t, j] = 1 - wrong[t, j]
    by_length = copy_task_accuracy_by_length(wrong, b)
    n = int(b.lengths[j])
    assert by_length[n] == (counts[n], pytest.approx(1 - 1 / counts[n]))
    assert all(acc == 1.0 for m, (_, acc) in by_length.items() if m != n)
    assert sum(k * acc for k, acc in by_length.values()) / len(b.lengths) == pytest.approx(
        copy_task_accuracy(wrong, b)[1])
    with pytest.raises(ValueError, match=r"predictions: expected shape"):
        copy_task_accuracy_by_length(wrong[:-1], b)


def test_copy_task_longest_solved_stops_below_the_first_wrong_length():
    b = copy_task_batch(np.random.default_rng(3), 60, 6)
    assert set(b.lengths) == set(range(1, 7))
    assert copy_task_longest_solved(b.targets, b) == 6
    for n in (1, 4, 6):
        wrong = b.targets.copy()
        j = int(np.flatnonzero(b.lengths == n)[0])
        t = int(np.flatnonzero(b.mask[:, j])[0])           # its first recall step
        wrong[t, j] = 1 - wrong[t, j]
        assert copy_task_longest_solved(wrong, b) == n - 1


def test_copy_task_rejects_bad_lengths():
    with pytest.raises(ValueError, match=r"min_len <= max_len"):
        copy_task_batch(np.random.default_rng(0), 2, 3, min_len=4)


def test_cue_task_follows_the_contract(contract):
    with envs.make("memory:cue?delay=5&cues=3", num_envs=8, seed=0) as env:
        assert (env.num_actions, env.observation_shape) == (3, (5,))
        stream = contract.run(env, steps=100)
        contract.bad_actions(env)
    assert {ep.length for _, ep in stream.episodes} == {7}


def test_cue_task_observations_rewards_and_resets_step_by_step():
    delay, K = 3, 4
    with envs.make(f"memory:cue?delay={delay}&cues={K}", num_envs=5, seed=3) as env:
        obs, _ = env.reset()
        for _episode in range(3):
            cue = obs[:, :K].argmax(1)                                   # (B,)
            np.testing.assert_array_equal(obs[:, K:], [[1, 0]] * 5, err_msg="cue flag only")
            for _ in range(delay):
                step = env.step(cue)
                assert not step.reset.any() and not step.reward.any()
                np.testing.assert_array_equal(step.obs[:, :K].sum(1), 1.0)   # a distractor
                np.testing.assert_array_equal(step.obs[:, K:], 0.0)
            step = env.step(cue)
            np.testing.assert_array_equal(step.obs, np.eye(K + 2)[[K + 1] * 5])  # the query
            wrong = (cue + 1 + np.arange(5) % (K - 1)) % K
            choice = np.where(np.arange(5) < 3, cue, wrong)               # envs 3, 4 err
            step = env.step(choice)
            np.testing.assert_array_equal(step.reward, [1, 1, 1, 0, 0])
            assert step.reset.all()
            assert [ep.score for ep in step.episodes] == [1, 1, 1, 0, 0]
            obs = step.obs


def test_cue_task_optimal_and_random_returns():
    K, B, steps = 2, 64, 12 * 20
    with envs.make("memory:cue?delay=10", num_envs=B, seed=0) as env:
        obs, _ = env.reset()
        cue = obs[:, :K].argmax(1)
        remembered, scores = cue, []
        for _ in range(steps):                          # the memory policy: answer the cue
            step = env.step(remembered)
            scores += [ep.score for ep in step.episodes]
            remembered = np.where(step.reset, step.obs[:, :K].argmax(1), remembered)
        assert scores and np.mean(scores) == 1.0
    with envs.make("memory:cue?delay=10", num_envs=B, seed=1) as env:
        env.reset()
        rng = np.random.default_rng(0)
        scores = [ep.score for _ in range(steps)
                  for ep in env.step(rng.integers(0, K, B)).episodes]
        assert abs(np.mean(scores) - 1 / K) < 4 * np.sqrt(0.25 / len(scores))


def test_cue_task_seeding(contract):
    a, b = contract.same_stream(lambda: envs.make("memory:cue?delay=4", num_envs=4, seed=9), 60)
    contract.assert_same_stream(a, b, "memory:cue seed 9")
