"""A small fake of `deepmind_lab.Lab` that follows its documented Python API, for tests.

    envs.make("dmlab:rooms_watermaze", num_envs=2, lab_factory=FakeLab,
              config={"fakeEpisodeFrames": "10"})

It checks its inputs the way the real engine does (action: np.intc array of 7; step, reset and
observations in the right state) and makes everything the adapter must get right visible in
the RGB_INTERLEAVED frame (H, W, 3):

    red    every pixel: frames played in this episode (mod 256), so repeats can be counted
    green  every pixel: the episode seed (mod 256), so seeding can be checked
    blue   row 0, columns 0..6: the last action vector + 128, so the action mapping can be read
           back; blue column w of row 1 holds w (mod 256), so a transposed layout shows

Reward per frame: MOVE_BACK_FORWARD (+1 forward, -1 backward) plus 10 when FIRE is pressed.
Config keys (strings, like every Lab config): width, height (default 320x240 like the real
Lab), fakeEpisodeFrames (default 30), and for the reliability tests fakeFailToLoad ("1": the
constructor raises, as the real Lab does for a level it cannot load), fakeCrashAfterSteps and
fakeHangAfterSteps (the process exits with code 3, or sleeps, at that step() call).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

ACTION_NAMES = ("LOOK_LEFT_RIGHT_PIXELS_PER_FRAME", "LOOK_DOWN_UP_PIXELS_PER_FRAME",
                "STRAFE_LEFT_RIGHT", "MOVE_BACK_FORWARD", "FIRE", "JUMP", "CROUCH")
ACTION_BOUNDS = ((-512, 512), (-512, 512), (-1, 1), (-1, 1), (0, 1), (0, 1), (0, 1))
OBSERVATION_NAMES = ("RGB_INTERLEAVED", "RGB")


class FakeLab:
    """Stand-in for deepmind_lab.Lab(level, observations, config={}, renderer='software')."""

    def __init__(self, level: str, observations: list[str], config: dict[str, str] | None = None,
                 renderer: str = "software") -> None:
        config = dict(config or {})
        for name in observations:
            if name not in OBSERVATION_NAMES:
                raise ValueError(f"FakeLab: unknown observation {name!r}")
        if renderer not in ("software", "hardware"):
            raise ValueError(f"FakeLab: unknown renderer {renderer!r}")
        if not all(isinstance(v, str) for v in config.values()):
            raise TypeError("FakeLab: config values must be strings, like deepmind_lab's")
        if config.get("fakeFailToLoad") == "1":
            raise ValueError(f"FakeLab: cannot load level {level!r}")
        self.level, self.observation_names = level, list(observations)
        self.width = int(config.get("width", "320"))
        self.height = int(config.get("height", "240"))
        self.episode_frames = int(config.get("fakeEpisodeFrames", "30"))
        self.crash_after = int(config.get("fakeCrashAfterSteps", "-1"))
        self.hang_after = int(config.get("fakeHangAfterSteps", "-1"))
        self._running = False
        self._frame = 0
        self._seed = 0
        self._calls = 0
        self._last_action = np.zeros(7, dtype=np.intc)                       # (7,)

    def reset(self, episode: int = -1, seed: int | None = None) -> None:
        self._seed = 0 if seed is None else int(seed)
        self._frame = 0
        self._running = True
        self._last_action = np.zeros(7, dtype=np.intc)                       # (7,)

    def step(self, action: np.ndarray, num_steps: int = 1) -> float:
        self._calls += 1
        if self._calls == self.crash_after:
            os._exit(3)
        if self._calls == self.hang_after:
            time.sleep(3600)
        if not self._running:
            raise RuntimeError("FakeLab: step() on a finished episode; call reset() first")
        if not isinstance(action, np.ndarray) or action.dtype != np.intc or action.shape != (7,):
            raise ValueError(f"FakeLab: action must be an np.intc array of shape (7,), got "
                             f"{getattr(action, 'dtype', type(action))} {np.shape(action)}")
        reward = 0.0
        for _ in range(num_steps):
            self._frame += 1
            reward += float(action[3]) + 10.0 * float(action[4])
            if self._frame >= self.episode_frames:
                self._running = False
                break
        self._last_action = action.copy()
        return reward

    def is_running(self) -> bool:
        return self._running

    def observations(self) -> dict[str, np.ndarray]:
        if not self._running:
            raise RuntimeError("FakeLab: observations() outside an episode")
        frame = np.zeros((self.height, self.width, 3), dtype=np.uint8)      # (H, W, 3)
        frame[:, :, 0] = self._frame % 256
        frame[:, :, 1] = self._seed % 256
        frame[0, :7, 2] = (self._last_action.astype(np.int64) + 128) % 256
        frame[1, :, 2] = np.arange(self.width) % 256
        out = {}
        for name in self.observation_names:
            out[name] = frame if name == "RGB_INTERLEAVED" else frame.transpose(2, 0, 1)
        return out

    def num_steps(self) -> int:
        return self._frame

    def action_spec(self) -> list[dict[str, Any]]:
        return [{"name": n, "min": lo, "max": hi} for n, (lo, hi) in zip(ACTION_NAMES,
                                                                         ACTION_BOUNDS)]

    def observation_spec(self) -> list[dict[str, Any]]:
        return [{"name": "RGB_INTERLEAVED", "dtype": np.uint8,
                 "shape": (self.height, self.width, 3)},
                {"name": "RGB", "dtype": np.uint8, "shape": (3, self.height, self.width)}]

    def close(self) -> None:
        self._running = False
