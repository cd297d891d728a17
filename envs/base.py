"""The batched-environment contract shared by every family.

One stream of B environments. `reset()` is called once and gives the first observation of every
environment (every reset flag is True at that step). Each `step(actions)` then gives, per env b:

    obs[b]     the observation the next action is chosen from; when reset[b] is True it is the
               first observation of a new episode (the previous episode ended with this step)
    reward[b]  the raw reward of the action just taken (float32; it belongs to the episode that
               action was taken in, so on a reset step it is the last reward of the old episode)
    reset[b]   True when obs[b] starts a new episode: the recurrent state and the RTRL traces are
               zeroed before obs[b] is processed (docs/derivation.md, Eq. 10)

plus `episodes`: one `EpisodeStats` for every episode that ended in this step, with its raw
(unclipped) undiscounted score and its length in agent steps. For Atari with life-loss episodes
`reset` marks every lost life while `episodes` reports whole games.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, NamedTuple

import numpy as np


class MissingFamilyError(ImportError):
    """An optional package of an environment family is not installed; the message says how."""


class EpisodeStats(NamedTuple):
    """One finished episode: which env, its raw score (sum of rewards) and length (agent steps)."""

    env: int
    score: float
    length: int


class StepResult(NamedTuple):
    """What `BatchedEnv.step` returns (see the module docstring for the meaning of each field)."""

    obs: np.ndarray                       # (B, *observation_shape) observation_dtype
    reward: np.ndarray                    # (B,) float32 raw reward of the action just taken
    reset: np.ndarray                     # (B,) bool: obs is the first of a new episode
    episodes: tuple[EpisodeStats, ...]    # episodes that finished in this step


class BatchedEnv(ABC):
    """B environments stepped together; use as a context manager so they are always closed.

    Attributes set by every family: `num_envs` (B), `num_actions` (A, discrete actions
    0..A-1), `observation_shape`, `observation_dtype` (uint8 pixels channels first, or
    float32 vectors), `spec` (the spec string it was made from).
    """

    num_envs: int
    num_actions: int
    observation_shape: tuple[int, ...]
    observation_dtype: np.dtype
    spec: str = ""

    def __init__(self) -> None:
        self._started = False
        self._closed = False

    def reset(self) -> tuple[np.ndarray, dict[str, Any]]:
        """Start every environment; return (obs (B, ...), info). Allowed once per env object."""
        if self._closed:
            raise RuntimeError(f"{self.spec}: reset() on a closed environment")
        if self._started:
            raise RuntimeError(f"{self.spec}: reset() starts the stream once; episodes then "
                               "restart by themselves (make a new env to start over)")
        self._started = True
        obs, info = self._reset()
        return obs, info

    def step(self, actions: Any) -> StepResult:
        """Apply one integer action per environment; see the module docstring for the result."""
        if self._closed:
            raise RuntimeError(f"{self.spec}: step() on a closed environment")
        if not self._started:
            raise RuntimeError(f"{self.spec}: call reset() before step()")
        return self._step(check_actions(actions, self.num_envs, self.num_actions))

    def close(self) -> None:
        """Release engines, threads and worker processes; safe to call more than once."""
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> BatchedEnv:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: modules may already be gone
            pass

    @abstractmethod
    def _reset(self) -> tuple[np.ndarray, dict[str, Any]]: ...

    @abstractmethod
    def _step(self, actions: np.ndarray) -> StepResult: ...

    @abstractmethod
    def _close(self) -> None: ...


def check_actions(actions: Any, num_envs: int, num_actions: int) -> np.ndarray:
    """Validate one integer action per environment and return them as an int64 array (B,)."""
    arr = np.asarray(actions)                                                # (B,)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"actions: expected an integer array of shape ({num_envs},), "
                         f"got dtype {arr.dtype}")
    if arr.shape != (num_envs,):
        raise ValueError(f"actions: expected shape ({num_envs},), got {arr.shape}")
    if num_envs and (arr.min() < 0 or arr.max() >= num_actions):
        raise ValueError(f"actions: expected values in [0, {num_actions - 1}], "
                         f"got min {arr.min()} and max {arr.max()}")
    return arr.astype(np.int64, copy=False)                                  # (B,)


class EpisodeTracker:
    """Running raw score and length of the current episode of each of B environments."""

    def __init__(self, num_envs: int) -> None:
        self.score = np.zeros(num_envs, dtype=np.float64)     # (B,)
        self.length = np.zeros(num_envs, dtype=np.int64)      # (B,)

    def update(self, reward: np.ndarray, ended: np.ndarray) -> tuple[EpisodeStats, ...]:
        """Add this step's rewards; report and restart the episodes that `ended` (B,) here."""
        self.score += reward
        self.length += 1
        finished = tuple(EpisodeStats(int(b), float(self.score[b]), int(self.length[b]))
                         for b in np.flatnonzero(ended))
        self.score[ended] = 0.0
        self.length[ended] = 0
        return finished
