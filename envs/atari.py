"""`atari:<Game>`: Atari 2600 games through ale-py's native `AtariVectorEnv` (C++ threads).

    envs.make("atari:Breakout", num_envs=8, seed=0)                 # the paper's protocol
    envs.make("atari:MsPacman?protocol=machado", num_envs=8)        # Machado et al. (2018)

Game names: CamelCase as in gym ids (Breakout, MsPacman, Qbert, SpaceInvaders) or ALE's
snake_case ROM ids (ms_pacman). Observation: uint8 (frame_stack, size, size), channels first,
oldest frame first; with grayscale=false (3 * frame_stack, size, size), RGB per frame.
Actions: the game's minimal action set (Breakout 4, MsPacman 9, Qbert 6, Gravitar and
Seaquest 18) unless full_action_space. Rewards are the raw game score (never clipped here).

Protocols (every setting is passed to ale-py explicitly: its defaults differ from gymnasium's
make_vec: sticky actions, reward clipping on and int32 rewards):

    paper    (default; torchbeast/IMPALA, `<Game>NoFrameskip-v4` chain) no sticky actions, up to
             30 no-op starts, FIRE on reset where the game has it, a lost life ends the
             learning episode (`reset`), the game score is reported per whole game
    machado  sticky actions 0.25, no life-loss episodes, no no-op starts, no FIRE on reset

Shared by both: frame skip 4 with the max over the last two frames, 84x84 grayscale
(cv2 INTER_AREA), a stack of 4, at most 108000 emulator frames (30 min) per game.

Backends: `native` (ale-py's C++ engine, faster; the default of the machado protocol) and
`python` (the paper's wrapper chain reproduced step by step, envs/atari_chain.py; the default
of the paper protocol, because only it presses FIRE after a lost life). The native engine differs from the
chain in four ways: after a lost life the game simply goes on (the chain takes one no-op step
and presses FIRE), so in Breakout the native agent must press FIRE itself to serve the next
ball; no-op starts are drawn from [0, noop_max - 1] minus the FIRE frame (chain: [1, noop_max]);
the frame stack starts with zero frames at a new game (chain: copies of the first frame, also
after a lost life); gray levels come from ALE's palette (chain: cv2 RGB2GRAY of the RGB frame).
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import re
from typing import Any

import numpy as np

from envs.autoreset import GymVectorAdapter
from envs.base import BatchedEnv, MissingFamilyError
from envs.spec import Option

PROTOCOLS: dict[str, dict[str, Any]] = {
    # the paper's protocol needs FIRE after a lost life, which only the python chain does
    "paper": {"sticky": 0.0, "episodic_life": True, "noop_max": 30, "fire_reset": True,
              "backend": "python"},
    "machado": {"sticky": 0.25, "episodic_life": False, "noop_max": 0, "fire_reset": False,
                "backend": "native"},
}

OPTIONS = (
    Option("protocol", "str", "paper", "preset for sticky, episodic_life, noop_max and "
           "fire_reset (each can still be set)", choices=tuple(PROTOCOLS)),
    Option("sticky", "float", None, "probability of repeating the previous action per frame",
           low=0.0, high=1.0),
    Option("episodic_life", "bool", None, "a lost life ends the learning episode (reset flag)"),
    Option("noop_max", "int", None, "at most this many no-op frames at the start of a game",
           low=0),
    Option("fire_reset", "bool", None, "press FIRE when a game starts, if the game has FIRE "
           "(python backend: also after a lost life)"),
    Option("frame_skip", "int", 4, "emulator frames per agent step (action repeat)", low=1),
    Option("frame_stack", "int", 4, "number of stacked frames in an observation", low=1),
    Option("size", "int", 84, "observation height and width in pixels", low=8),
    Option("grayscale", "bool", True, "grayscale frames (else RGB)"),
    Option("full_action_space", "bool", False, "all 18 actions instead of the minimal set"),
    Option("max_frames", "int", 108_000, "emulator frames after which a game is truncated",
           low=1),
    Option("threads", "int", 0, "C++ worker threads (0: one per core, at most num_envs)", low=0),
    Option("backend", "str", None, "native: ale-py's C++ vector env; python: the paper's "
           "wrapper chain, exact but slower (envs/atari_chain.py); default: python for the "
           "paper protocol, native for machado", choices=("native", "python")),
)


def rom_id(name: str) -> str:
    """ALE ROM id of a game name: 'MsPacman' or 'ms_pacman' -> 'ms_pacman'."""
    return name if name.islower() else re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def make(name: str, num_envs: int, seed: int | None, options: dict[str, Any],
         spec: str) -> BatchedEnv:
    """Build `num_envs` copies of an Atari game (see the module docstring)."""
    from ale_py import roms

    game = rom_id(name)
    known = roms.get_all_rom_ids()
    if game not in known:
        close = difflib.get_close_matches(game, known, n=3)
        raise ValueError(f"{spec}: unknown Atari game {name!r} (ROM id {game!r}); "
                         f"close matches: {close}; all ROM ids: ale_py.roms.get_all_rom_ids()")
    settings = {**PROTOCOLS[options["protocol"]],
                **{k: v for k, v in options.items() if v is not None}}
    if settings["backend"] == "python":
        if importlib.util.find_spec("cv2") is None:
            raise MissingFamilyError(f"{spec}: backend=python needs opencv; install with: "
                                     "pip install 'rtrl_ref[atari]'  (opencv-python-headless)")
        from envs.atari_chain import AtariChainEnv

        return AtariChainEnv(game, num_envs, seed, settings, spec)
    return AtariEnv(game, num_envs, seed, settings, spec)


class AtariEnv(GymVectorAdapter):
    """ale-py's AtariVectorEnv in SAME_STEP mode, with life-loss episodes and whole-game stats."""

    def __init__(self, game: str, num_envs: int, seed: int | None, settings: dict[str, Any],
                 spec: str) -> None:
        from ale_py.vector_env import AtariVectorEnv

        threads = settings["threads"] or min(num_envs, os.cpu_count() or 1)
        vec = AtariVectorEnv(
            game, num_envs,
            batch_size=0, num_threads=threads, thread_affinity_offset=-1,
            max_num_frames_per_episode=settings["max_frames"],
            repeat_action_probability=settings["sticky"],
            full_action_space=settings["full_action_space"], continuous=False,
            autoreset_mode="SameStep",
            img_height=settings["size"], img_width=settings["size"],
            grayscale=settings["grayscale"], stack_num=settings["frame_stack"],
            frameskip=settings["frame_skip"], maxpool=True, noop_max=settings["noop_max"],
            # life_loss_info flags a lost life as terminated while the game goes on; ale-py's
            # own episodic_life would restart the whole game at every lost life instead.
            episodic_life=False, life_loss_info=settings["episodic_life"],
            reward_clipping=False, use_fire_reset=settings["fire_reset"],
        )
        stack, size = settings["frame_stack"], settings["size"]
        if settings["grayscale"]:
            shape = (stack, size, size)

            def transform(obs: np.ndarray) -> np.ndarray:
                return obs                                            # (B, stack, H, W)
        else:
            shape = (3 * stack, size, size)

            def transform(obs: np.ndarray) -> np.ndarray:
                chw = obs.transpose(0, 1, 4, 2, 3)                    # (B, stack, 3, H, W)
                return np.ascontiguousarray(chw).reshape((len(obs),) + shape)  # (B, 3*stack, H, W)

        super().__init__(vec, behaves_like="SameStep", num_actions=vec.single_action_space.n,
                         observation_shape=shape, observation_dtype=np.uint8,
                         transform_obs=transform, seed=seed, spec=spec)
        self.game = game
        self.settings = settings
        self._episode_frame = np.zeros(num_envs, dtype=np.int64)    # (B,) frames into the game

    def _reset(self) -> tuple[np.ndarray, dict[str, Any]]:
        if self._seed is not None:        # one seed per env (ALE's RNG and the no-op RNG)
            children = np.random.SeedSequence(self._seed).spawn(self.num_envs)
            seeds = np.array([c.generate_state(1)[0] % 2**31 for c in children])  # (B,)
            obs, info = self._vec.reset(seed=seeds)
            obs = self._transform(obs)
        else:
            obs, info = super()._reset()
        self._episode_frame = np.asarray(info["episode_frame_number"], dtype=np.int64)  # (B,)
        return obs, info

    def _episode_ended(self, ended: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        # A reset that restarted the game (game over or max_frames) sets the game's frame
        # counter back to its no-op start; a lost life leaves it running.
        frame = np.asarray(info["episode_frame_number"], dtype=np.int64)    # (B,)
        new_game = ended & (frame < self._episode_frame)                     # (B,)
        self._episode_frame = frame
        return new_game
