"""Every gymnasium autoreset mode is normalised to one stream, asserted step by step."""

import numpy as np
import pytest

gymnasium = pytest.importorskip("gymnasium")
from gymnasium import spaces  # noqa: E402
from gymnasium.vector import AutoresetMode, SyncVectorEnv  # noqa: E402
from gymnasium.wrappers import TimeLimit  # noqa: E402

from envs.autoreset import GymVectorAdapter  # noqa: E402


class Countdown(gymnasium.Env):
    """Deterministic toy env: obs [episode, t]; reward 100 * episode + 10 * t + action.

    Episodes end after `length` steps by termination, or never (`length=None`: a TimeLimit
    truncates them). The episode counter runs across resets, so every observation and reward
    of the stream is unique and tells where it came from.
    """

    observation_space = spaces.Box(0, 1000, (2,), np.float32)
    action_space = spaces.Discrete(2)

    def __init__(self, length=None):
        self.length, self.episode, self.t = length, -1, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode, self.t = self.episode + 1, 0
        return np.array([self.episode, 0], np.float32), {}

    def step(self, action):
        self.t += 1
        reward = 100.0 * self.episode + 10.0 * self.t + int(action)
        terminated = self.t == self.length
        return np.array([self.episode, self.t], np.float32), reward, terminated, False, {}


def toy_stream(mode, behaves_like=None):
    """Env 0 terminates after 2 steps; env 1 is truncated by a TimeLimit after 3."""
    vec = SyncVectorEnv([lambda: Countdown(2), lambda: TimeLimit(Countdown(), 3)],
                        autoreset_mode=mode)
    env = GymVectorAdapter(vec, behaves_like=behaves_like or mode, num_actions=2,
                           observation_shape=(2,), observation_dtype=np.float32,
                           transform_obs=lambda obs: np.asarray(obs, np.float32), seed=0,
                           spec=f"toy:{mode}")
    with env:
        obs, _ = env.reset()
        steps = [env.step(np.array([t % 2, 1])) for t in range(7)]
    return obs, steps


# The one stream every mode must give. Step k (1-based) takes actions [(k-1) % 2, 1].
EXPECTED_OBS = [  # [[env 0], [env 1]] after reset and after each of the 7 steps
    [[0, 0], [0, 0]],
    [[0, 1], [0, 1]],
    [[1, 0], [0, 2]],      # env 0 ended: first obs of its episode 1
    [[1, 1], [1, 0]],      # env 1 truncated: first obs of its episode 1
    [[2, 0], [1, 1]],
    [[2, 1], [1, 2]],
    [[3, 0], [2, 0]],
    [[3, 1], [2, 1]],
]
EXPECTED_REWARD = [[10, 11], [21, 21], [110, 31], [121, 111], [210, 121], [221, 131],
                   [310, 211]]
EXPECTED_RESET = [[0, 0], [1, 0], [0, 1], [1, 0], [0, 0], [1, 1], [0, 0]]
EXPECTED_EPISODES = {1: [(0, 31.0, 2)], 2: [(1, 63.0, 3)], 3: [(0, 231.0, 2)],
                     5: [(0, 431.0, 2), (1, 363.0, 3)]}


@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP,
                                  AutoresetMode.DISABLED])
def test_every_autoreset_mode_gives_the_same_exact_stream(mode):
    obs, steps = toy_stream(mode)
    np.testing.assert_array_equal(obs, EXPECTED_OBS[0], err_msg=f"{mode}: reset obs")
    for k, step in enumerate(steps):
        np.testing.assert_array_equal(step.obs, EXPECTED_OBS[k + 1], err_msg=f"{mode}: obs {k}")
        np.testing.assert_array_equal(step.reward, EXPECTED_REWARD[k],
                                      err_msg=f"{mode}: reward {k}")
        np.testing.assert_array_equal(step.reset, np.array(EXPECTED_RESET[k], bool),
                                      err_msg=f"{mode}: reset {k}")
        assert [tuple(ep) for ep in step.episodes] == EXPECTED_EPISODES.get(k, []), (mode, k)


def test_mislabelled_next_step_env_shows_the_dummy_step():
    """Negative twin: a NEXT_STEP env taken for SAME_STEP (the procgen trap, reversed) breaks
    the stream: the ending step shows the old episode's last obs without a usable reset, and
    the next step is a dummy with reward 0 whose action is ignored."""
    _, steps = toy_stream(AutoresetMode.NEXT_STEP, behaves_like=AutoresetMode.SAME_STEP)
    np.testing.assert_array_equal(steps[1].obs[0], [0, 2])       # last obs, not the first
    assert steps[2].reward[0] == 0.0                             # the dummy step
    observed = np.array([s.obs for s in steps])                  # (T, B, 2)
    assert not np.array_equal(observed, np.array(EXPECTED_OBS[1:]))
