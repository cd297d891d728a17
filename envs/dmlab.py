"""`dmlab:<level>`: DeepMind Lab through its own Python API, one Lab per worker process.

    envs.make("dmlab:rooms_watermaze", num_envs=8, seed=0)
    envs.make("dmlab:rooms_select_nonmatching_object", num_envs=8, lab_factory=FakeLab)

Written against the documented `deepmind_lab` API: `Lab(level, observations, config,
renderer)`, `reset(seed=)`, `step(action, num_steps)`, `observations()`, `is_running()`,
`close()`. IMPALA's conventions (Espeholt et al. 2018, scalable_agent): the 9-action set below,
96x72 RGB frames, action repeat 4 (the summed reward of the 4 frames), and a fresh episode seed
drawn per episode from the worker's own generator. Level names: the DMLab-30 names (prefixed
with `contributed/dmlab30/`), or any level path containing a '/'.

Observation: uint8 (3, height, width) = (3, 72, 96), RGB channels first. Actions: 9.

deepmind_lab has no wheel on the package registries; `make` fails with build instructions
(INSTALL below, docs/envs.md) when it is missing. Real DMLab runs have not been made in this
project: the adapter is tested against `envs.dmlab_fake.FakeLab`, which follows the API above.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np

from envs.base import BatchedEnv, EpisodeTracker, MissingFamilyError, StepResult
from envs.spec import Option
from envs.workers import SAFE_START_METHODS, InProcessPool, ProcessPool

INSTALL = """\
deepmind_lab is not installed, and no wheel of it exists on the package registries: build it
from source (Linux, Bazel; https://github.com/google-deepmind/lab/blob/master/docs/users/build.md):

    git clone https://github.com/google-deepmind/lab && cd lab
    # point Bazel at this Python (python_system.bzl / PYTHON_BIN_PATH), then:
    bazel build -c opt --python_version=PY3 //python/pip_package:build_pip_package
    ./bazel-bin/python/pip_package/build_pip_package /tmp/dmlab_pkg
    pip install /tmp/dmlab_pkg/deepmind_lab-*.whl

or, on Python >= 3.13 with Podman or Docker: pip install dmlab-gym && dmlab-gym build
(builds deepmind_lab in a container and installs it). DMLab-30 psychlab levels also need the
brady_konkle_oliva2008 dataset (option dataset_path). Details: docs/envs.md."""

DMLAB30 = (
    "rooms_collect_good_objects_train", "rooms_collect_good_objects_test",
    "rooms_exploit_deferred_effects_train", "rooms_exploit_deferred_effects_test",
    "rooms_select_nonmatching_object", "rooms_watermaze", "rooms_keys_doors_puzzle",
    "language_select_described_object", "language_select_located_object",
    "language_execute_random_task", "language_answer_quantitative_question",
    "lasertag_one_opponent_small", "lasertag_three_opponents_small",
    "lasertag_one_opponent_large", "lasertag_three_opponents_large",
    "natlab_fixed_large_map", "natlab_varying_map_regrowth", "natlab_varying_map_randomized",
    "skymaze_irreversible_path_hard", "skymaze_irreversible_path_varied",
    "psychlab_arbitrary_visuomotor_mapping", "psychlab_continuous_recognition",
    "psychlab_sequential_comparison", "psychlab_visual_search",
    "explore_object_locations_small", "explore_object_locations_large",
    "explore_obstructed_goals_small", "explore_obstructed_goals_large",
    "explore_goal_locations_small", "explore_goal_locations_large",
    "explore_object_rewards_few", "explore_object_rewards_many",
)

# IMPALA's action set; columns: LOOK_LEFT_RIGHT_PIXELS_PER_FRAME, LOOK_DOWN_UP_PIXELS_PER_FRAME,
# STRAFE_LEFT_RIGHT, MOVE_BACK_FORWARD, FIRE, JUMP, CROUCH
ACTION_SET = np.array([
    [0, 0, 0, 1, 0, 0, 0],      # forward
    [0, 0, 0, -1, 0, 0, 0],     # backward
    [0, 0, -1, 0, 0, 0, 0],     # strafe left
    [0, 0, 1, 0, 0, 0, 0],      # strafe right
    [-20, 0, 0, 0, 0, 0, 0],    # look left
    [20, 0, 0, 0, 0, 0, 0],     # look right
    [-20, 0, 0, 1, 0, 0, 0],    # look left + forward
    [20, 0, 0, 1, 0, 0, 0],     # look right + forward
    [0, 0, 0, 0, 1, 0, 0],      # fire
], dtype=np.intc)               # (A, 7)

OBSERVATION = "RGB_INTERLEAVED"

OPTIONS = (
    Option("width", "int", 96, "frame width in pixels", low=1),
    Option("height", "int", 72, "frame height in pixels", low=1),
    Option("action_repeat", "int", 4, "engine frames per agent step (rewards summed)", low=1),
    Option("renderer", "str", "software", "Lab renderer", choices=("software", "hardware")),
    Option("dataset_path", "str", "", "path of the brady_konkle_oliva2008 dataset (psychlab)"),
    Option("processes", "bool", True, "one Lab per worker process (false: all in this process)"),
    Option("start_method", "str", "spawn", "how worker processes start (never fork)",
           choices=SAFE_START_METHODS),
    Option("timeout", "float", 300.0, "seconds to wait for a worker's step before WorkerError "
           "(starting a worker, which compiles the level, may take up to 600 s)", low=0.1),
    Option("config", "object", None, "extra Lab config entries (dict of str; keyword only)"),
    Option("lab_factory", "object", None, "callable(level, observations, config, renderer) "
           "returning a Lab; default deepmind_lab.Lab (keyword only; picklable for processes)"),
)


def level_path(name: str, spec: str = "dmlab") -> str:
    """Lab level path of a spec name: DMLab-30 names get `contributed/dmlab30/`."""
    if "/" in name:
        return name
    if name in DMLAB30:
        return f"contributed/dmlab30/{name}"
    raise ValueError(f"{spec}: unknown DMLab level {name!r}; expected a DMLab-30 name "
                     f"{list(DMLAB30)} or a level path containing '/'")


def real_lab(level: str, observations: list[str], config: dict[str, str],
             renderer: str) -> Any:
    """deepmind_lab.Lab, imported where it runs (in the worker process)."""
    import deepmind_lab

    return deepmind_lab.Lab(level, observations, config=config, renderer=renderer)


class LabRunner:
    """One Lab with IMPALA's conventions: action set, repeat, per-episode seeds, SAME_STEP."""

    def __init__(self, level: str, seed: int | None, *, width: int, height: int,
                 action_repeat: int, renderer: str, config: dict[str, str],
                 lab_factory: Callable[..., Any]) -> None:
        self.action_repeat = action_repeat
        self._rng = np.random.default_rng(seed)
        self._lab = lab_factory(level, [OBSERVATION],
                                {"width": str(width), "height": str(height), **config}, renderer)

    def reset(self) -> np.ndarray:
        """Start an episode with a seed from this runner's generator; first obs (3, H, W)."""
        self._lab.reset(seed=int(self._rng.integers(0, 2**31 - 1)))
        return self._observe()

    def step(self, action: int) -> tuple[np.ndarray, float, bool]:
        """Repeat one action; (obs, summed reward, obs starts a new episode)."""
        reward = float(self._lab.step(ACTION_SET[action], num_steps=self.action_repeat))
        if self._lab.is_running():
            return self._observe(), reward, False
        return self.reset(), reward, True

    def _observe(self) -> np.ndarray:
        frame = self._lab.observations()[OBSERVATION]                   # (H, W, 3)
        return np.ascontiguousarray(frame.transpose(2, 0, 1))            # (3, H, W)

    def close(self) -> None:
        self._lab.close()


def make(name: str, num_envs: int, seed: int | None, options: dict[str, Any],
         spec: str) -> DMLabEnv:
    """Build `num_envs` Labs on level `name` (see the module docstring)."""
    path = level_path(name, spec)
    lab_factory = options["lab_factory"]
    if lab_factory is None:
        if importlib.util.find_spec("deepmind_lab") is None:
            raise MissingFamilyError(f"{spec}: {INSTALL}")
        lab_factory = real_lab
    elif not callable(lab_factory):
        raise ValueError(f"{spec}: option 'lab_factory' expects a callable, got {lab_factory!r}")
    config = options["config"] or {}
    if not isinstance(config, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                               for k, v in config.items()):
        raise ValueError(f"{spec}: option 'config' expects a dict of str to str, got {config!r}")
    if options["dataset_path"]:
        config = {"datasetPath": options["dataset_path"], **config}
    return DMLabEnv(path, num_envs, seed, lab_factory=lab_factory, config=config,
                    options=options, spec=spec)


class DMLabEnv(BatchedEnv):
    """B LabRunners, in worker processes (default) or in this process."""

    def __init__(self, level: str, num_envs: int, seed: int | None, *,
                 lab_factory: Callable[..., Any], config: dict[str, str],
                 options: dict[str, Any], spec: str) -> None:
        super().__init__()
        self.spec = spec
        self.num_envs = num_envs
        self.num_actions = len(ACTION_SET)
        self.observation_shape = (3, options["height"], options["width"])
        self.observation_dtype = np.dtype(np.uint8)
        worker_seeds = [int(s.generate_state(1)[0])
                        for s in np.random.SeedSequence(seed).spawn(num_envs)]
        factories = [functools.partial(
            LabRunner, level, worker_seed, width=options["width"], height=options["height"],
            action_repeat=options["action_repeat"], renderer=options["renderer"],
            config=config, lab_factory=lab_factory) for worker_seed in worker_seeds]
        if options["processes"]:
            self._pool = ProcessPool(factories, start_method=options["start_method"],
                                     timeout=options["timeout"], name="dmlab")
        else:
            self._pool = InProcessPool(factories)
        self._tracker = EpisodeTracker(num_envs)

    def _reset(self) -> tuple[np.ndarray, dict[str, Any]]:
        frames = self._call("reset", [()] * self.num_envs)
        return np.stack(frames), {}                                       # (B, 3, H, W)

    def _step(self, actions: np.ndarray) -> StepResult:
        results = self._call("step", [(int(a),) for a in actions])
        obs = np.stack([frame for frame, _, _ in results])                # (B, 3, H, W)
        reward = np.array([r for _, r, _ in results], dtype=np.float32)   # (B,)
        reset = np.array([first for _, _, first in results], dtype=bool)  # (B,)
        return StepResult(obs, reward, reset, self._tracker.update(reward, reset))

    def _call(self, method: str, args: list[tuple]) -> list[Any]:
        try:
            return self._pool.call(method, args)
        except BaseException:
            self.close()
            raise

    def _close(self) -> None:
        self._pool.close()
