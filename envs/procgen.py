"""`procgen:<game>`: OpenAI ProcGen through procgen-gym's native batched engine.

    envs.make("procgen:chaser?distribution_mode=hard", num_envs=16, seed=0)
    envs.make("procgen:maze?distribution_mode=memory&num_levels=200", num_envs=16)

Observation: uint8 (3, 64, 64), RGB channels first. Actions: 15 (the engine's key combos).
Episodes restart inside the C engine: its step returns the new level's first frame together
with the old episode's last reward (SAME_STEP behaviour, although procgen-gym declares
NEXT_STEP; see envs/autoreset.py). Seeding: `seed` is the engine's `rand_seed`, which draws
the level of every episode of every env; `num_levels`/`start_level` restrict the level set.

procgen-gym wheels exist for CPython >= 3.13 only. The engine kills the whole process (no
exception) on an unsupported game/mode pair, so the pair is checked here first (table measured
with procgen-gym 0.1.1).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.autoreset import GymVectorAdapter
from envs.spec import Option

GAMES = ("bigfish", "bossfight", "caveflyer", "chaser", "climber", "coinrun", "dodgeball",
         "fruitbot", "heist", "jumper", "leaper", "maze", "miner", "ninja", "plunder",
         "starpilot")

# distribution_mode -> games that support it (easy and hard: all)
MODES: dict[str, tuple[str, ...]] = {
    "easy": GAMES,
    "hard": GAMES,
    "extreme": ("chaser", "dodgeball", "leaper", "starpilot"),
    "memory": ("caveflyer", "dodgeball", "heist", "jumper", "maze", "miner"),
    "exploration": ("caveflyer", "climber", "coinrun", "heist", "jumper", "leaper", "maze",
                    "ninja"),
}

OPTIONS = (
    Option("distribution_mode", "str", "hard", "level distribution (extreme, memory and "
           "exploration exist for some games only)", choices=tuple(MODES)),
    Option("num_levels", "int", 0, "number of distinct levels (0: unlimited)", low=0),
    Option("start_level", "int", 0, "first level seed of the level set", low=0),
    Option("use_sequential_levels", "bool", False, "go to the next level instead of ending "
           "the episode when a level is completed"),
    Option("paint_vel_info", "bool", False, "paint the agent's velocity in the frame"),
    Option("use_backgrounds", "bool", True, "draw background images"),
    Option("center_agent", "bool", True, "keep the camera on the agent"),
    Option("threads", "int", 0, "engine threads (0: step in the calling thread)", low=0),
)


def make(name: str, num_envs: int, seed: int | None, options: dict[str, Any],
         spec: str) -> GymVectorAdapter:
    """Build a ProcgenVecEnv of `num_envs` (see the module docstring)."""
    mode = options["distribution_mode"]
    if name not in GAMES:
        raise ValueError(f"{spec}: unknown ProcGen game {name!r}; known games: {list(GAMES)}")
    if name not in MODES[mode]:
        raise ValueError(f"{spec}: distribution_mode {mode!r} exists only for "
                         f"{list(MODES[mode])}, not for {name!r}")
    from procgen_gym import ProcgenVecEnv

    vec = ProcgenVecEnv(
        num_envs=num_envs, env_name=name, distribution_mode=mode,
        num_levels=options["num_levels"], start_level=options["start_level"],
        use_sequential_levels=options["use_sequential_levels"],
        paint_vel_info=options["paint_vel_info"], use_backgrounds=options["use_backgrounds"],
        center_agent=options["center_agent"], num_threads=options["threads"],
        rand_seed=seed,
    )

    def transform(obs: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(obs.transpose(0, 3, 1, 2))         # (B, 3, 64, 64)

    # The engine restarts episodes itself and returns the new first frame on the ending step:
    # it behaves like SAME_STEP whatever its metadata says.
    return GymVectorAdapter(vec, behaves_like="SameStep", num_actions=vec.single_action_space.n,
                            observation_shape=(3, 64, 64), observation_dtype=np.uint8,
                            transform_obs=transform, seed=None, spec=spec)
