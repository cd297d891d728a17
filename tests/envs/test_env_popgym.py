"""`popgym:<Task>`: the contract on the memory tasks, an exact memory policy, seeding."""

import numpy as np
import pytest

pytest.importorskip("popgym")

import envs


@pytest.mark.parametrize("task, obs_size, num_actions, length", [
    ("RepeatPreviousEasy", 4, 4, 51), ("AutoencodeEasy", 6, 4, 103),
    ("CountRecallEasy", 4, 27, 51), ("PositionOnlyCartPoleEasy", 2, 2, None)])
def test_popgym_tasks_follow_the_contract(contract, task, obs_size, num_actions, length):
    with envs.make(f"popgym:{task}", num_envs=3, seed=0) as env:
        assert (env.observation_shape, env.num_actions) == ((obs_size,), num_actions)
        stream = contract.run(env, steps=120)
        contract.bad_actions(env)
    if length is not None:
        assert {ep.length for _, ep in stream.episodes} == {length}
    assert all(-1.0 - 1e-6 <= ep.score <= 1.0 + 1e-6 for _, ep in stream.episodes)


def test_repeat_previous_memory_policy_scores_exactly_one():
    """Answer the suit seen k = 4 observations ago: POPGym's optimum, return 1.0. This pins
    the one-hot observation layout and the reward alignment of the adapter."""
    k, B = 4, 2
    with envs.make("popgym:RepeatPreviousEasy", num_envs=B, seed=3) as env:
        obs, _ = env.reset()
        history = [obs.argmax(1)]                         # suits seen in the current episode
        scores = []
        for _ in range(2 * 51):
            # (episodes are aligned across envs: all have 51 steps)
            actions = history[-k] if len(history) >= k else np.zeros(B, np.int64)
            step = env.step(actions)
            scores += [ep.score for ep in step.episodes]
            history = [step.obs.argmax(1)] if step.reset.all() else history + [
                step.obs.argmax(1)]
    np.testing.assert_allclose(scores, [1.0] * 4, rtol=1e-5)


def test_popgym_seeding(contract):
    a, b = contract.same_stream(lambda: envs.make("popgym:AutoencodeEasy", num_envs=2, seed=4),
                                120)
    contract.assert_same_stream(a, b, "popgym:AutoencodeEasy seed 4")


def test_unknown_popgym_task_lists_the_supported_ones():
    with pytest.raises(ValueError, match=r"unknown or unsupported POPGym task 'Battleship"
                                         r"Easy'; supported: \['RepeatPreviousEasy'"):
        envs.make("popgym:BattleshipEasy")
