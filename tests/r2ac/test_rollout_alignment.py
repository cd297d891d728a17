"""Rewards, discounts and resets reach V-trace aligned with the actions that caused them.

A scripted environment logs, for every step it takes, the action it received, the reward it gave and
whether that step ended the episode. Two consecutive rollouts from `collect_rollout`, turned into
V-trace inputs by `step_rewards_and_discounts` (the learner's own code), must agree with that log:
r_t is the reward answering action t, gamma_t is 0 exactly where action t ended an episode, and
the bootstrap step of one rollout is the first step of the next. A rollout shifted by one step
(the classic off-by-one) is caught by the same check.
"""

import numpy as np

from envs.base import BatchedEnv, EpisodeTracker, StepResult
from rtrl_ref.r2ac.config import make_config
from rtrl_ref.r2ac.loop import EnvOutput, Rollout, collect_rollout, step_rewards_and_discounts
from rtrl_ref.r2ac.network import agent_spec, init_agent

EPISODE_LENGTHS = (3, 5, 7)          # per environment: different lengths give per-row reset patterns


class ScriptedEnv(BatchedEnv):
    """Env b ends its episodes every EPISODE_LENGTHS[b] steps; the reward of a step is unique
    (1000 b + 10 k + action); obs = [b, step within the episode] as floats."""

    def __init__(self):
        super().__init__()
        self.num_envs, self.num_actions = len(EPISODE_LENGTHS), 3
        self.observation_shape, self.observation_dtype = (2,), np.dtype(np.float32)
        self.k = np.zeros(self.num_envs, np.int64)       # (B,) steps taken so far
        self.log = []                                    # per step: (actions, reward, ended), each (B,)
        self._tracker = EpisodeTracker(self.num_envs)

    def _obs(self):
        lengths = np.array(EPISODE_LENGTHS)
        return np.stack([np.arange(self.num_envs), self.k % lengths], axis=1).astype(np.float32)

    def _reset(self):
        return self._obs(), {}

    def _step(self, actions):
        reward = (1000 * np.arange(self.num_envs) + 10 * self.k + actions).astype(np.float32)
        self.k += 1
        ended = self.k % np.array(EPISODE_LENGTHS) == 0
        self.log.append((actions.copy(), reward, ended))
        return StepResult(self._obs(), reward, ended, self._tracker.update(reward, ended))

    def _close(self):
        pass


def alignment_errors(rollout: Rollout, log: list, first_step: int, rewards, discounts, gamma: float) -> list[str]:
    """Every place where V-trace's inputs disagree with what the environment did."""
    errors = []
    T = rollout.actions.shape[0]
    for t in range(T):
        actions, reward, ended = log[first_step + t]
        if not np.array_equal(rollout.actions[t], actions):
            errors.append(f"t={t}: actions differ from those the environment received")
        if not np.array_equal(rewards[t], reward):
            errors.append(f"t={t}: r_t {rewards[t]} is not the reward of action t {reward}")
        if not np.array_equal(discounts[t], np.where(ended, 0.0, gamma).astype(np.float32)):
            errors.append(f"t={t}: gamma_t {discounts[t]} does not stop where action t ended an episode {ended}")
        if not np.array_equal(rollout.reset[t + 1], ended):
            errors.append(f"t={t}: reset[t + 1] {rollout.reset[t + 1]} != episode ended {ended}")
    return errors


def _rollouts(T=4, count=3):
    env = ScriptedEnv()
    config = make_config(["--env", "memory:cue?delay=2", "--num-envs", "3", "--unroll", str(T), "--hidden", "4",
                          "--stem", "identity", "--backend", "numpy"])
    spec = agent_spec(config, env)._replace(obs_shape=(2,), features=2, num_actions=3)
    rng = np.random.default_rng(0)
    params = init_agent(rng, spec)
    obs, _ = env.reset()
    last = EnvOutput(obs, np.zeros(3, np.float32), np.ones(3, bool))
    c = np.zeros((3, 4), np.float32)
    rollouts = []
    for _ in range(count):
        rollout, last, _ = collect_rollout(env, spec, params, rng, last, c, T)
        rollouts.append(rollout)
    return env, rollouts


def test_rewards_discounts_and_resets_align_with_the_actions_that_caused_them():
    gamma, T = 0.99, 4
    env, rollouts = _rollouts(T)
    for i, rollout in enumerate(rollouts):
        rewards, discounts = step_rewards_and_discounts(rollout, reward_clip=1e6, discount=gamma)
        assert alignment_errors(rollout, env.log, i * T, rewards, discounts, gamma) == []
        if i:                                        # the bootstrap step is the next rollout's first
            previous = rollouts[i - 1]
            assert np.array_equal(previous.obs[T], rollout.obs[0])
            assert np.array_equal(previous.reset[T], rollout.reset[0])
    assert any(ended.any() for _, _, ended in env.log)        # episodes did end inside the rollouts
    assert not all(ended.all() == ended.any() for _, _, ended in env.log)   # rows reset at different steps


def test_a_rollout_shifted_by_one_step_is_caught():
    gamma, T = 0.99, 4
    env, rollouts = _rollouts(T)
    rollout = rollouts[1]
    shifted = rollout._replace(reward=np.roll(rollout.reward, 1, axis=0), reset=np.roll(rollout.reset, 1, axis=0))
    rewards, discounts = step_rewards_and_discounts(shifted, reward_clip=1e6, discount=gamma)
    errors = alignment_errors(shifted, env.log, T, rewards, discounts, gamma)
    assert any("r_t" in e for e in errors) and any("gamma_t" in e for e in errors)
