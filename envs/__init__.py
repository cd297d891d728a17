"""Batched environments for rtrl_ref, made from one spec string.

    import envs
    with envs.make("atari:Breakout", num_envs=8, seed=0) as env:
        obs, info = env.reset()                       # obs (B, 4, 84, 84) uint8; all resets True
        for _ in range(1000):
            step = env.step(actions)                  # actions: int array (B,) in [0, A)
            step.obs, step.reward, step.reset         # (B, ...), (B,) float32, (B,) bool
            for ep in step.episodes:                  # EpisodeStats(env, score, length)
                log(ep.score, ep.length)

Families (spec `family:name[?key=value&...]`, options also as keyword arguments of `make`):

    atari:<Game>       ALE games (Breakout, MsPacman, ...), the paper's protocol by default
    procgen:<game>     ProcGen (chaser, maze, ...); Python >= 3.13 (procgen-gym wheels)
    dmlab:<level>      DeepMind Lab (DMLab-30 names); needs a source build of deepmind_lab
    gym:<id>           Gymnasium vector-observation envs (CartPole-v1, ...), `hide` for POMDPs
    popgym:<Task>      POPGym memory tasks (RepeatPreviousEasy, AutoencodeMedium, ...)
    minigrid:<name>    MiniGrid gridworlds (MemoryS7, ..., any MiniGrid-<name>-v<k>), one-hot
                       symbolic partial view
    memory:<task>      built-in NumPy memory tasks (`cue`); the supervised copy task is
                       `envs.memory.copy_task_batch`

The contract, the same for every family (envs/base.py):
- `reset()` once, then `step(actions) -> StepResult(obs, reward, reset, episodes)`.
- `reset[b]` True means obs[b] is the first observation of a new episode: zero the recurrent
  state and RTRL traces of env b before processing it (docs/derivation.md, Eq. 10). The reward that arrives with
  a reset is the last reward of the episode that just ended (raw; clipping is the learner's).
- Episode statistics (`EpisodeStats(env, score, length)`) are raw and per whole episode; for
  Atari, per whole game even when lost lives end the learning episodes.
- `num_envs` (B), `num_actions` (A), `observation_shape`, `observation_dtype`: pixels are uint8
  channels first (C, H, W); vectors are float32 (I,).
- Same spec and seed: same first observations and episode sequence (see docs/envs.md for the
  engines' limits). Bad specs, options and actions raise ValueError naming the argument; a
  missing optional package raises `MissingFamilyError` (an ImportError) saying how to install it.

Dimension alphabet: B environments, T time, I input features, A actions.
Full documentation: docs/envs.md.
"""

from __future__ import annotations

import importlib
import importlib.util
import numbers
from typing import Any

from envs.base import BatchedEnv, EpisodeStats, MissingFamilyError, StepResult
from envs.spec import Spec, parse_spec, resolve_options

__all__ = ["make", "parse_spec", "Spec", "BatchedEnv", "StepResult", "EpisodeStats",
           "MissingFamilyError", "FAMILIES"]

# family -> (module in this package, importable modules it needs)
FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "atari": ("envs.atari", ("gymnasium", "ale_py")),
    "procgen": ("envs.procgen", ("gymnasium", "procgen_gym")),
    "dmlab": ("envs.dmlab", ()),              # checks deepmind_lab itself (a fake may be given)
    "gym": ("envs.gym", ("gymnasium",)),
    "popgym": ("envs.popgym", ("gymnasium", "popgym")),
    "minigrid": ("envs.minigrid", ("gymnasium", "minigrid")),
    "memory": ("envs.memory", ()),
}


def make(spec: str, num_envs: int = 1, seed: int | None = 0, **options: Any) -> BatchedEnv:
    """Make a batched environment of `num_envs` copies from a spec string (see module doc).

    `seed` (int >= 0, or None for an unseeded run) fixes the first observations and the episode
    sequence. Options come from the spec's query string or from keyword arguments, not both.
    """
    parsed = parse_spec(spec)
    if parsed.family not in FAMILIES:
        raise ValueError(f"spec: unknown family {parsed.family!r} in {spec!r}; "
                         f"known families: {sorted(FAMILIES)}")
    if not _is_int(num_envs) or num_envs < 1:
        raise ValueError(f"num_envs: expected an integer >= 1, got {num_envs!r}")
    if seed is not None and (not _is_int(seed) or seed < 0):
        raise ValueError(f"seed: expected an integer >= 0 or None, got {seed!r}")
    module_name, needs = FAMILIES[parsed.family]
    family = _import_family(parsed.family, module_name, needs)
    resolved = resolve_options(family.OPTIONS, parsed.options, options, where=spec)
    return family.make(parsed.name, int(num_envs), None if seed is None else int(seed),
                       resolved, spec)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _import_family(family: str, module_name: str, needs: tuple[str, ...]) -> Any:
    missing = [m for m in needs if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingFamilyError(f"family {family!r} needs {missing}, which are not installed. "
                                 f"Install with: {_INSTALL_HINTS[family]}")
    return importlib.import_module(module_name)


_INSTALL_HINTS = {
    "atari": "pip install 'rtrl_ref[atari]'  (gymnasium, ale-py with its ROMs)",
    "procgen": "pip install 'rtrl_ref[procgen]' on Python >= 3.13 (procgen-gym has wheels for "
               "CPython 3.13+ only; use scripts/setup.sh, which picks Python 3.13)",
    "gym": "pip install 'rtrl_ref[gym]'  (gymnasium)",
    "popgym": "pip install 'rtrl_ref[popgym]'  (gymnasium, popgym)",
    "minigrid": "pip install 'rtrl_ref[minigrid]'  (gymnasium, minigrid)",
}
