"""`minigrid:<name>`: MiniGrid gridworlds (Chevalier-Boisvert et al.), the memory tasks first.

    envs.make("minigrid:MemoryS7", num_envs=16, seed=0)
    envs.make("minigrid:MemoryS13?actions=3", num_envs=16)       # left, right, forward only
    envs.make("minigrid:DoorKey-5x5", num_envs=8)                # any MiniGrid-<name>-v<k> id

Names: any registered `MiniGrid-<name>-v<k>` id by its short name `<name>` (the highest
version), or by its full id. The memory tasks are MemoryS7, MemoryS9, MemoryS11, MemoryS13,
MemoryS13Random and MemoryS17Random: the agent sees an object (key or ball) in a small room,
walks down a hallway out of its sight and must step next to the matching one of two objects at
the end. Stepping next to the wrong one ends the episode with reward 0.

Observation: float32 (V * V * 20 + 4,), (984,) for the default view V = 7. It is the agent's
partial, egocentric symbolic view (MiniGrid's `image`: V x V cells of object, colour and state
indices, in MiniGrid's (x, y) cell order), each cell's three indices one-hot (object 11, colour
6, state 3: 20 values per cell), then the agent's direction one-hot (4). One-hot, not the raw
indices: the indices are categories (key = 5 is not "more" than door = 4), so a linear stem on
raw indices would impose an order and scale that mean nothing, while one-hot inputs give every
category its own weights at the cost of a wider (sparse, 3 ones per cell) first layer. The
mission string is dropped (it is constant for the memory tasks).

Actions: MiniGrid's standard set of 7 (0 left, 1 right, 2 forward, 3 pickup, 4 drop, 5 toggle,
6 done). Option `actions=3` keeps only left, right and forward: the memory tasks are solved by
moving alone (pickup, drop, toggle and done change nothing there), so the smaller set removes
useless actions from exploration; it is off by default to keep MiniGrid's standard task.

Rewards: MiniGrid's, 1 - 0.9 * step_count / max_steps on success, else 0 (max_steps is
5 * size^2 for the memory tasks, e.g. 245 for MemoryS7). Episodes that hit max_steps are
truncated, and count as resets like terminations (see envs/gym.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.autoreset import GymVectorAdapter
from envs.base import MissingFamilyError
from envs.gym import vector_obs_env
from envs.spec import Option

MEMORY_TASKS = ("MemoryS7", "MemoryS9", "MemoryS11", "MemoryS13", "MemoryS13Random",
                "MemoryS17Random")
NUM_OBJECTS, NUM_COLOURS, NUM_STATES, NUM_DIRECTIONS = 11, 6, 3, 4
CELL_FEATURES = NUM_OBJECTS + NUM_COLOURS + NUM_STATES        # 20 one-hot values per cell
ACTION_SETS = (3, 7)

OPTIONS = (
    Option("actions", "int", 7, "7: MiniGrid's standard action set; 3: left, right and forward "
           "only (enough for the memory tasks)", low=3, high=7),
    Option("autoreset", "str", "same_step", "autoreset mode of the underlying gymnasium vector "
           "env; every mode gives the same stream", choices=("same_step", "next_step",
                                                             "disabled")),
)

_PREFIX = "MiniGrid-"


def make(name: str, num_envs: int, seed: int | None, options: dict[str, Any],
         spec: str) -> GymVectorAdapter:
    """Build `num_envs` copies of a MiniGrid env with one-hot symbolic observations."""
    if options["actions"] not in ACTION_SETS:
        raise ValueError(f"{spec}: option 'actions' expects one of {list(ACTION_SETS)}, "
                         f"got {options['actions']!r}")
    import gymnasium
    import minigrid  # noqa: F401  (registers the MiniGrid-* ids with gymnasium)

    env_id = known_ids(gymnasium).get(name, name if name.startswith(_PREFIX) else None)
    if env_id is None or env_id not in gymnasium.registry:
        raise ValueError(f"{spec}: unknown MiniGrid environment {name!r}; known: "
                         f"{sorted(known_ids(gymnasium), key=_memory_first)}")

    def make_one() -> Any:
        return one_hot_env(gymnasium.make(env_id), num_actions=options["actions"])

    try:
        return vector_obs_env([make_one] * num_envs, seed=seed, spec=spec,
                              autoreset=options["autoreset"])
    except gymnasium.error.DependencyNotInstalled as exc:   # e.g. the WFC envs
        raise MissingFamilyError(f"{spec}: {exc}") from None


def known_ids(gymnasium: Any) -> dict[str, str]:
    """Short name -> registered id, for every `MiniGrid-<name>-v<k>` (highest k wins)."""
    best: dict[str, tuple[int, str]] = {}
    for env_id in gymnasium.registry:
        if env_id.startswith(_PREFIX):
            short, _, version = env_id[len(_PREFIX):].rpartition("-v")
            if short and version.isdigit() and int(version) >= best.get(short, (-1, ""))[0]:
                best[short] = (int(version), env_id)
    return {short: env_id for short, (_, env_id) in best.items()}


def _memory_first(short: str) -> tuple[int, str]:
    return (MEMORY_TASKS.index(short) if short in MEMORY_TASKS else len(MEMORY_TASKS), short)


def one_hot_symbolic(image: np.ndarray, direction: int) -> np.ndarray:
    """Encode MiniGrid's (V, V, 3) index image and direction as a float32 (V * V * 20 + 4,)."""
    num_cells = image.shape[0] * image.shape[1]
    offsets = np.array([0, NUM_OBJECTS, NUM_OBJECTS + NUM_COLOURS])              # (3,)
    cell_starts = np.arange(num_cells)[:, None] * CELL_FEATURES                   # (V*V, 1)
    hot = cell_starts + offsets + image.reshape(num_cells, 3)                     # (V*V, 3)
    x = np.zeros(num_cells * CELL_FEATURES + NUM_DIRECTIONS, dtype=np.float32)    # (I,)
    x[hot.ravel()] = 1.0
    x[num_cells * CELL_FEATURES + int(direction)] = 1.0
    return x


def one_hot_env(env: Any, num_actions: int = 7) -> Any:
    """Wrap one MiniGrid env: the one-hot symbolic observation of the module docstring.

    With `num_actions=3` the action space is Discrete(3): MiniGrid's actions 0, 1 and 2 (left,
    right, forward) keep their numbers, so actions pass through unchanged.
    """
    from gymnasium import spaces
    from gymnasium.wrappers import TransformAction, TransformObservation

    view = env.observation_space["image"].shape                                  # (V, V, 3)
    size = view[0] * view[1] * CELL_FEATURES + NUM_DIRECTIONS

    def observation(obs: dict[str, Any]) -> np.ndarray:
        return one_hot_symbolic(obs["image"], obs["direction"])                  # (I,)

    env = TransformObservation(env, observation, spaces.Box(0.0, 1.0, (size,), np.float32))
    if num_actions != env.action_space.n:
        env = TransformAction(env, int, spaces.Discrete(num_actions))
    return env
