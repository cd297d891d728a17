"""`atari:<Game>?backend=python`: the paper's Atari wrapper chain, step by step, in Python.

The order of the baselines/torchbeast chain on `<Game>NoFrameskip-v4` (as in the paper's Atari experiments),
over one `ale_py.ALEInterface` per environment:

    NoopReset      a game starts with 1..noop_max single-frame no-ops (drawn per game)
    MaxAndSkip     one agent step = frame_skip frames of the action, rewards summed, the
                   observation is the max of the last two frames
    EpisodicLife   a lost life ends the learning episode; the next episode then starts with one
                   no-op step instead of a new game (the game goes on)
    FireReset      every episode start (new game or lost life) presses FIRE for one step and
                   action 2 for another, in games whose action 1 is FIRE
    WarpFrame      RGB -> gray (cv2 RGB2GRAY), resized to size x size (cv2 INTER_AREA)
    FrameStack     the last frame_stack frames; an episode start fills the stack with its frame

Rewards of the steps made inside a reset (no-op, FIRE, action 2) are dropped, as in the chain.
A game also ends after max_frames emulator frames. Unlike baselines' MaxAndSkip, a step cut
short by the end of a game max-pools the last two frames it really saw (not a stale buffer).
It is exact but 1.3x (bench run) to 2x slower than the native engine (envs/atari.py lists the
differences of the two).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.base import BatchedEnv, EpisodeTracker, StepResult


class AtariChain:
    """One game behind the chain above; `step` gives (obs, reward, reset, game_over)."""

    def __init__(self, game: str, seed: int, settings: dict[str, Any]) -> None:
        import cv2
        from ale_py import Action, ALEInterface, LoggerMode, roms

        ALEInterface.setLoggerMode(LoggerMode.Error)
        self._cv2 = cv2
        self.ale = ALEInterface()
        self.ale.setInt("random_seed", seed % 2**31)
        self.ale.setFloat("repeat_action_probability", settings["sticky"])
        self.ale.loadROM(str(roms.get_rom_path(game)))
        self.actions = (self.ale.getLegalActionSet() if settings["full_action_space"]
                        else self.ale.getMinimalActionSet())
        self.noop, self.settings = Action.NOOP, settings
        self.fire_reset = (settings["fire_reset"] and len(self.actions) >= 3
                           and self.actions[1] == Action.FIRE)
        self._rng = np.random.default_rng(seed)
        height, width = self.ale.getScreenDims()
        self._screens = np.zeros((2, height, width, 3), dtype=np.uint8)    # last two frames
        size, stack = settings["size"], settings["frame_stack"]
        channels = 1 if settings["grayscale"] else 3
        self._stack = np.zeros((stack, channels, size, size), dtype=np.uint8)  # ring buffer
        self._newest = 0
        self.lives = 0

    # -- the chain ----------------------------------------------------------------------------
    def reset(self) -> np.ndarray:
        """Start a new game (NoopReset, then FireReset); the first observation."""
        return self._start_episode(self._new_game())

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool]:
        frame, reward, game_over, life_lost = self._skip(self.actions[action])
        if not (game_over or life_lost):
            return self._push(frame), reward, False, False
        if not game_over:
            frame, _, game_over, _ = self._skip(self.noop)   # EpisodicLife's no-op "reset"
        if game_over:
            frame = self._new_game()
        return self._start_episode(frame), reward, True, game_over

    def _new_game(self) -> np.ndarray:
        """NoopReset: a new game after 1..noop_max no-op frames; its current frame."""
        self.ale.reset_game()
        noops = int(self._rng.integers(1, self.settings["noop_max"] + 1)) \
            if self.settings["noop_max"] else 0
        for _ in range(noops):
            self.ale.act(self.noop)
            if self.ale.game_over():
                self.ale.reset_game()
        self.lives = self.ale.lives()
        self.ale.getScreenRGB(self._screens[1])
        return self._screens[1]

    def _start_episode(self, frame: np.ndarray) -> np.ndarray:
        """FireReset (a new game if the game ends meanwhile), then fill the frame stack."""
        if self.fire_reset:
            for action in (self.actions[1], self.actions[2]):
                frame, _, game_over, _ = self._skip(action)
                if game_over:
                    frame = self._new_game()
        self._stack[:] = self._warp(frame)
        return self._observation()

    def _skip(self, action: Any) -> tuple[np.ndarray, float, bool, bool]:
        """MaxAndSkip + EpisodicLife: (max-pooled frame, reward, game over, life lost)."""
        reward, skip = 0.0, self.settings["frame_skip"]
        seen = 0
        for _ in range(skip):
            reward += self.ale.act(action)
            self.ale.getScreenRGB(self._screens[seen % 2])
            seen += 1
            game_over = (self.ale.game_over()
                         or self.ale.getEpisodeFrameNumber() >= self.settings["max_frames"])
            if game_over:
                break
        frame = (self._screens[0] if seen == 1                              # (210, 160, 3)
                 else np.maximum(self._screens[0], self._screens[1]))
        lives = self.ale.lives()
        life_lost = self.settings["episodic_life"] and 0 < lives < self.lives
        self.lives = lives
        if seen % 2 == 1:                              # keep the newest frame in slot 1
            self._screens[1] = self._screens[0]
        return frame, reward, game_over, life_lost

    def _warp(self, frame: np.ndarray) -> np.ndarray:
        size = (self.settings["size"], self.settings["size"])
        if self.settings["grayscale"]:
            gray = self._cv2.cvtColor(frame, self._cv2.COLOR_RGB2GRAY)      # (210, 160)
            return self._cv2.resize(gray, size, interpolation=self._cv2.INTER_AREA)[None]
        rgb = self._cv2.resize(frame, size, interpolation=self._cv2.INTER_AREA)  # (H, W, 3)
        return rgb.transpose(2, 0, 1)                                        # (3, H, W)

    def _push(self, frame: np.ndarray) -> np.ndarray:
        self._newest = (self._newest + 1) % len(self._stack)
        self._stack[self._newest] = self._warp(frame)
        return self._observation()

    def _observation(self) -> np.ndarray:
        order = (self._newest + 1 + np.arange(len(self._stack))) % len(self._stack)  # oldest first
        return self._stack[order].reshape(-1, *self._stack.shape[2:])    # (stack * C, H, W)

    def close(self) -> None:
        pass


class AtariChainEnv(BatchedEnv):
    """B AtariChains stepped in a Python loop (same options and layout as envs.atari)."""

    def __init__(self, game: str, num_envs: int, seed: int | None, settings: dict[str, Any],
                 spec: str) -> None:
        super().__init__()
        self.spec, self.game, self.settings = spec, game, settings
        seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(num_envs)]
        self._games = [AtariChain(game, s, settings) for s in seeds]
        channels = 1 if settings["grayscale"] else 3
        self.num_envs = num_envs
        self.num_actions = len(self._games[0].actions)
        self.observation_shape = (channels * settings["frame_stack"], settings["size"],
                                  settings["size"])
        self.observation_dtype = np.dtype(np.uint8)
        self._tracker = EpisodeTracker(num_envs)

    def _reset(self) -> tuple[np.ndarray, dict[str, Any]]:
        return np.stack([g.reset() for g in self._games]), {}            # (B, C, H, W)

    def _step(self, actions: np.ndarray) -> StepResult:
        results = [g.step(int(a)) for g, a in zip(self._games, actions)]
        obs = np.stack([r[0] for r in results])                           # (B, C, H, W)
        reward = np.array([r[1] for r in results], dtype=np.float32)      # (B,)
        reset = np.array([r[2] for r in results], dtype=bool)             # (B,)
        game_over = np.array([r[3] for r in results], dtype=bool)         # (B,)
        return StepResult(obs, reward, reset, self._tracker.update(reward, game_over))

    def _close(self) -> None:
        self._games = []
