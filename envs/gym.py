"""`gym:<id>`: Gymnasium environments with vector observations and discrete actions.

    envs.make("gym:CartPole-v1", num_envs=8, seed=0)
    envs.make("gym:CartPole-v1?hide=1,3", num_envs=8)      # POMDP: no cart or pole velocity

Observation: float32 (B, I), the env's 1-D Box observation with the `hide` features removed.
Episodes that end by a time limit (truncation) are resets like terminations; the final
observation of a truncated episode is not kept (IMPALA-style learners do not bootstrap there).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from envs.autoreset import GymVectorAdapter
from envs.base import MissingFamilyError
from envs.spec import Option

OPTIONS = (
    Option("hide", "ints", (), "indices of observation features to remove, making a POMDP "
           "(CartPole: 0 cart position, 1 cart velocity, 2 pole angle, 3 pole angular velocity)",
           low=0),
    Option("autoreset", "str", "same_step", "autoreset mode of the underlying gymnasium vector "
           "env; every mode gives the same stream (tests use this)",
           choices=("same_step", "next_step", "disabled")),
)

_MODES = {"same_step": "SameStep", "next_step": "NextStep", "disabled": "Disabled"}


def make(name: str, num_envs: int, seed: int | None, options: dict[str, Any],
         spec: str) -> GymVectorAdapter:
    """Build `num_envs` copies of the registered gymnasium env `name` (see module docstring)."""
    import gymnasium

    try:
        gymnasium.spec(name)
    except gymnasium.error.Error as exc:
        raise ValueError(f"{spec}: unknown gymnasium environment id {name!r} ({exc})") from None
    try:
        return vector_obs_env([lambda: gymnasium.make(name)] * num_envs, seed=seed, spec=spec,
                              autoreset=options["autoreset"], hide=options["hide"])
    except gymnasium.error.DependencyNotInstalled as exc:   # e.g. Box2D envs
        raise MissingFamilyError(f"{spec}: {exc}") from None


def vector_obs_env(env_fns: list[Callable[[], Any]], *, seed: int | None, spec: str,
                   autoreset: str = "same_step", hide: tuple[int, ...] = ()) -> GymVectorAdapter:
    """Vectorise single gymnasium envs (1-D Box or flattened observations, Discrete actions)."""
    from gymnasium import spaces
    from gymnasium.vector import SyncVectorEnv

    vec = SyncVectorEnv(env_fns, autoreset_mode=_MODES[autoreset])
    try:
        obs_space, act_space = vec.single_observation_space, vec.single_action_space
        if not isinstance(act_space, spaces.Discrete):
            raise ValueError(f"{spec}: needs a Discrete action space, the env has {act_space}")
        if not isinstance(obs_space, spaces.Box) or len(obs_space.shape) != 1:
            raise ValueError(f"{spec}: needs a 1-D vector observation (Box of shape (I,)), the "
                             f"env has {obs_space}")
        num_features = obs_space.shape[0]
        bad = [i for i in hide if i >= num_features]
        if bad or len(set(hide)) >= num_features:
            raise ValueError(f"{spec}: option 'hide' expects distinct indices in "
                             f"[0, {num_features - 1}] that leave at least one feature, "
                             f"got {list(hide)}")
    except Exception:
        vec.close()
        raise
    keep = np.setdiff1d(np.arange(num_features), np.asarray(hide, dtype=np.int64))  # (I,)

    def transform(obs: np.ndarray) -> np.ndarray:
        return np.asarray(obs, dtype=np.float32)[:, keep]                  # (B, I)

    adapter = GymVectorAdapter(vec, behaves_like=_MODES[autoreset], num_actions=int(act_space.n),
                               observation_shape=(len(keep),), observation_dtype=np.float32,
                               transform_obs=transform, seed=seed, spec=spec,
                               action_offset=int(act_space.start))
    return adapter
