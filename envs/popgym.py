"""`popgym:<Task>`: memory tasks of the POPGym benchmark (Morad et al., ICLR 2023).

    envs.make("popgym:RepeatPreviousEasy", num_envs=16, seed=0)

Tasks exposed, each at POPGym's documented levels Easy, Medium and Hard (e.g.
RepeatPreviousEasy: one deck, repeat the suit seen 4 cards ago; Medium: 2 decks, 32 ago; Hard:
3 decks, 64 ago): RepeatPrevious, RepeatFirst, Autoencode, CountRecall, HigherLower,
PositionOnlyCartPole, VelocityOnlyCartPole, NoisyPositionOnlyCartPole. All have discrete
actions and need no previous-action input.

Observation: float32 (I,), POPGym's observation flattened (discrete parts one-hot, Box parts
as they are, via gymnasium's `flatten_space`). Rewards are POPGym's, scaled so that an
episode's return lies in [-1, 1] (random play scores about 0 on the card tasks).
"""

from __future__ import annotations

from typing import Any

from envs.autoreset import GymVectorAdapter
from envs.gym import vector_obs_env
from envs.spec import Option

TASKS = ("RepeatPrevious", "RepeatFirst", "Autoencode", "CountRecall", "HigherLower",
         "PositionOnlyCartPole", "VelocityOnlyCartPole", "NoisyPositionOnlyCartPole")
LEVELS = ("Easy", "Medium", "Hard")

OPTIONS = (
    Option("autoreset", "str", "same_step", "autoreset mode of the underlying gymnasium vector "
           "env; every mode gives the same stream", choices=("same_step", "next_step",
                                                             "disabled")),
)


def make(name: str, num_envs: int, seed: int | None, options: dict[str, Any],
         spec: str) -> GymVectorAdapter:
    """Build `num_envs` copies of a POPGym task (see the module docstring)."""
    known = [task + level for task in TASKS for level in LEVELS]
    if name not in known:
        raise ValueError(f"{spec}: unknown or unsupported POPGym task {name!r}; "
                         f"supported: {known}")
    import popgym.envs
    from gymnasium.wrappers import FlattenObservation

    task = getattr(popgym.envs, name)
    return vector_obs_env([lambda: FlattenObservation(task())] * num_envs, seed=seed, spec=spec,
                          autoreset=options["autoreset"])
