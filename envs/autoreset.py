"""One autoreset semantics for every gymnasium vector environment.

Gymnasium vector envs restart finished episodes in one of three ways (`AutoresetMode`):

    SAME_STEP  the terminating step already returns the new episode's first observation
    NEXT_STEP  the terminating step returns the episode's last observation; the *next* step is a
               dummy (action ignored, reward 0) that returns the new episode's first observation
    DISABLED   nothing restarts by itself; the caller resets finished envs (`reset_mask`)

Our contract (envs/base.py) is SAME_STEP: on the step that ends an episode, `reward` is the
episode's last reward and `obs` is already the first observation of the next episode, flagged
by `reset`. NEXT_STEP and DISABLED envs are brought to it by resetting the finished envs at
once with `reset(options={"reset_mask": ended})`, which also cancels NEXT_STEP's dummy step, so no
step of the stream is ever a dummy.

The mode is the one the env *behaves* with, given by the caller, not read from metadata:
procgen-gym declares NEXT_STEP but behaves like SAME_STEP (its C engine restarts levels itself;
gymnasium's episode statistics then report lengths one short).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from envs.base import BatchedEnv, EpisodeTracker, StepResult


def _autoreset_modes():
    from gymnasium.vector import AutoresetMode
    return AutoresetMode


class GymVectorAdapter(BatchedEnv):
    """A gymnasium `VectorEnv` with Discrete actions, brought to the contract of envs/base.py.

    `behaves_like` is the AutoresetMode the vector env really follows. `transform_obs` maps the
    env's batched observation to ours (layout, dtype). `seed` is passed to the first reset.
    Subclasses may override `_episode_ended` when a reset does not end a whole episode (Atari's
    life-loss episodes).
    """

    def __init__(self, vector_env: Any, *, behaves_like: Any, num_actions: int,
                 observation_shape: tuple[int, ...], observation_dtype: Any,
                 transform_obs: Callable[[Any], np.ndarray], seed: int | None, spec: str,
                 action_offset: int = 0) -> None:
        super().__init__()
        modes = _autoreset_modes()
        self._vec = vector_env
        self._mode = modes(behaves_like)
        self._transform = transform_obs
        self._seed = seed
        self._action_offset = action_offset     # Discrete(n, start=k): our action a is a + k
        self.spec = spec
        self.num_envs = int(vector_env.num_envs)
        self.num_actions = int(num_actions)
        self.observation_shape = tuple(observation_shape)
        self.observation_dtype = np.dtype(observation_dtype)
        self._tracker = EpisodeTracker(self.num_envs)

    def _reset(self) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self._vec.reset(seed=self._seed)
        return self._transform(obs), info

    def _step(self, actions: np.ndarray) -> StepResult:
        obs, reward, terminated, truncated, info = self._vec.step(actions + self._action_offset)
        ended = np.logical_or(terminated, truncated)                      # (B,)
        if self._mode != _autoreset_modes().SAME_STEP and ended.any():
            first_obs, _ = self._vec.reset(options={"reset_mask": ended.copy()})
            obs = np.where(_expand(ended, np.ndim(obs)), first_obs, obs)  # (B, ...)
        reward = np.asarray(reward, dtype=np.float32)                     # (B,)
        episodes = self._tracker.update(reward, self._episode_ended(ended, info))
        return StepResult(self._transform(obs), reward, ended, episodes)

    def _episode_ended(self, ended: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """Which resets (B,) also end a whole episode for the statistics: all of them here."""
        return ended

    def _close(self) -> None:
        self._vec.close()


def _expand(mask: np.ndarray, ndim: int) -> np.ndarray:
    return mask.reshape(mask.shape + (1,) * (ndim - 1))
