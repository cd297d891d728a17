"""Evaluate a checkpoint: `python -m rtrl_ref.evaluate RUN [--episodes N] [--greedy | --random]`.

Loads the run's config and checkpoint, plays N whole episodes in fresh environments (a seed
different from training's unless --seed says otherwise) and reports the mean and standard
deviation of the raw episode return. Every environment contributes its first episodes in turn
(not the first N to finish, which would favour short episodes). `--random` plays uniformly random
actions on the run's environment instead (no checkpoint needed): the random-policy return under
the same protocol. `--record DIR` writes each of environment 0's episodes as an animated GIF (or
MP4 with --video-format mp4) of its observations, with imageio (the `video` extra).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

import envs
from rtrl_ref.r2ac.checkpoint import load_run_checkpoint
from rtrl_ref.r2ac.cli import ArgumentParser, report
from rtrl_ref.r2ac.config import read_config
from rtrl_ref.r2ac.core import get_learner
from rtrl_ref.r2ac.heads import sample_actions
from rtrl_ref.r2ac.network import act, agent_spec, init_agent
from rtrl_ref.r2ac.optim import rmsprop_init


class Evaluation(NamedTuple):
    episodes: int
    mean: float
    std: float
    returns: list


def observation_frame(obs: np.ndarray) -> np.ndarray:
    """One observation as an 8-bit image (Y, X): the newest channel of a pixel stack, or a vector
    drawn as a row of grey cells (value range [-1, 1] -> [0, 255]), 16 pixels per entry."""
    if obs.ndim == 3:                                                      # (C, Y, X) uint8
        frame = obs[-1]
        return frame if frame.dtype == np.uint8 else np.clip(frame * 255, 0, 255).astype(np.uint8)
    v = np.clip((np.asarray(obs, np.float32).reshape(-1) + 1) * 127.5, 0, 255).astype(np.uint8)   # (I,)
    return np.repeat(np.repeat(v[None, :], 16, axis=0), 16, axis=1)       # (16, 16 I)


class Recorder:
    """Collects environment 0's observations and writes one file per finished episode."""

    def __init__(self, out: Path, fmt: str = "gif", fps: int = 15, limit: int = 10):
        try:
            import imageio.v2 as imageio
        except ImportError:
            raise ValueError("--record: needs the imageio package (pip install 'rtrl_ref[video]')") from None
        if fmt == "mp4":
            try:
                import imageio_ffmpeg  # noqa: F401
            except ImportError:
                raise ValueError("--video-format mp4: needs imageio-ffmpeg (pip install imageio-ffmpeg); "
                                 "GIFs need nothing more") from None
        self.imageio, self.out, self.fmt, self.fps, self.limit = imageio, Path(out), fmt, fps, limit
        self.frames: list[np.ndarray] = []
        self.written: list[Path] = []

    def add(self, obs: np.ndarray, reset: bool) -> None:
        if reset and self.frames:
            self._write()
        if len(self.written) < self.limit:
            self.frames.append(observation_frame(obs))

    def _write(self) -> None:
        if len(self.written) < self.limit:
            self.out.mkdir(parents=True, exist_ok=True)
            file = self.out / f"episode-{len(self.written):03d}.{self.fmt}"
            if self.fmt == "gif":
                self.imageio.mimsave(file, self.frames, duration=1000 / self.fps, loop=0)
            else:
                self.imageio.mimsave(file, self.frames, fps=self.fps, macro_block_size=1)
            self.written.append(file)
        self.frames = []


def evaluate_policy(config, spec, params, episodes: int, num_envs: int = 0, seed: int = 12345,
                    greedy: bool = False, max_steps: int = 1_000_000, random_policy: bool = False,
                    progress: bool = False, recorder: Recorder | None = None) -> Evaluation:
    """Play `episodes` episodes of config.env with `params` (or random actions) in fresh environments."""
    num_envs = num_envs or min(episodes, config.num_envs)
    if episodes < 1 or num_envs < 1:
        raise ValueError(f"episodes, num_envs: expected integers >= 1, got {episodes} and {num_envs}")
    rng = np.random.default_rng(seed)
    # the first k episodes of every environment, k = ceil(episodes / num_envs): taking the first N
    # episodes to finish overall would favour short ones (in Breakout, low scores)
    k = -(-episodes // num_envs)
    per_env: list[list[float]] = [[] for _ in range(num_envs)]
    bar = _bar(episodes) if progress else None
    with envs.make(config.env, num_envs=num_envs, seed=seed) as env:
        obs, _ = env.reset()
        reward = np.zeros(num_envs, np.float32)                            # (B,)
        reset = np.ones(num_envs, bool)                                    # (B,)
        c = get_learner(config.learner, config.cell, config.layers).init_state(
            num_envs, spec.features + 1, config.hidden).c                  # (B, H), or (B, L, H) for L layers
        for _ in range(max_steps):
            if recorder is not None:
                recorder.add(obs[0], bool(reset[0]))
            if random_policy:
                a = rng.integers(0, env.num_actions, num_envs)             # (B,)
            else:
                logits, _, c = act(spec, params, obs, reward, reset, c)
                a = logits.argmax(-1) if greedy else sample_actions(rng, logits)
            step = env.step(a)
            obs, reward, reset = step.obs, step.reward, step.reset
            for ep in step.episodes:
                per_env[ep.env].append(ep.score)
            if bar is not None and step.episodes:                         # redraws as tqdm paces them
                bar.update(min(episodes, sum(min(len(r), k) for r in per_env)) - bar.n)
            if min(len(r) for r in per_env) >= k:
                break
        if recorder is not None:
            recorder.add(obs[0], True)                                     # the last episode's file
    if bar is not None:
        bar.close()
    returns = [r[j] for j in range(k) for r in per_env if j < len(r)][:episodes]
    return Evaluation(len(returns), float(np.mean(returns)), float(np.std(returns)), returns)


def _bar(total: int):
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="episode", desc="evaluating", file=sys.stderr, dynamic_ncols=True)


def evaluate_run(run_dir: Path, episodes: int = 30, num_envs: int = 8, seed: int = 12345,
                 greedy: bool = False, max_steps: int = 1_000_000, random_policy: bool = False,
                 progress: bool = False, recorder: Recorder | None = None) -> Evaluation:
    """Evaluate a run folder's checkpoint (or, with random_policy, random actions on its environment)."""
    if episodes < 1 or num_envs < 1:
        raise ValueError(f"episodes, num_envs: expected integers >= 1, got {episodes} and {num_envs}")
    config = read_config(run_dir)
    with envs.make(config.env, num_envs=1, seed=seed) as probe:
        spec = agent_spec(config, probe)
    params = None
    if not random_policy:
        like = init_agent(np.random.default_rng(0), spec)
        trees, _ = load_run_checkpoint(run_dir, like, rmsprop_init(like))
        params = trees["params"]
    return evaluate_policy(config, spec, params, episodes, num_envs, seed, greedy, max_steps, random_policy,
                           progress, recorder)


def main(argv=None) -> int:
    prog = "python -m rtrl_ref.evaluate"
    parser = ArgumentParser(prog=prog, description=__doc__.splitlines()[0],
                            formatter_class=_Formatter, epilog=__doc__.split("\n", 2)[2])
    parser.add_argument("run", type=Path, help="run folder (with config.json and checkpoint.npz)")
    parser.add_argument("--episodes", type=int, default=30, help="episodes to play")
    parser.add_argument("--num-envs", type=int, default=8, help="environments played in parallel")
    parser.add_argument("--seed", type=int, default=12345, help="environment and sampling seed")
    policy = parser.add_mutually_exclusive_group()
    policy.add_argument("--greedy", action="store_true", help="take the most likely action instead of sampling")
    policy.add_argument("--random", action="store_true",
                        help="uniformly random actions on the run's environment (the random-policy baseline; "
                             "the checkpoint is not read)")
    parser.add_argument("--record", type=Path, default=None, metavar="DIR",
                        help="write environment 0's episodes as videos into DIR (imageio)")
    parser.add_argument("--video-format", choices=("gif", "mp4"), default="gif", help="format of --record")
    parser.add_argument("--max-videos", type=int, default=10, help="episodes --record writes at most")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                        help="show a progress bar on stderr")
    args = parser.parse_args(argv)
    for flag, value, low in (("--episodes", args.episodes, 1), ("--num-envs", args.num_envs, 1),
                             ("--seed", args.seed, 0), ("--max-videos", args.max_videos, 1)):
        if value < low:
            return report(prog, f"{flag} {value}: expected an integer >= {low}")
    try:
        recorder = Recorder(args.record, args.video_format, limit=args.max_videos) if args.record else None
        ev = evaluate_run(args.run, args.episodes, args.num_envs, args.seed, args.greedy,
                          random_policy=args.random, progress=args.progress, recorder=recorder)
    except (ValueError, ImportError) as err:
        return report(prog, err)
    what = "random policy" if args.random else ("greedy" if args.greedy else "sampled actions")
    print(f"{args.run} ({what}): {ev.episodes} episodes, return {ev.mean:.3f} +- {ev.std:.3f}")
    if recorder is not None:
        print(f"wrote {len(recorder.written)} videos to {args.record}")
    return 0


class _Formatter(argparse.ArgumentDefaultsHelpFormatter,
                 argparse.RawDescriptionHelpFormatter):
    """Defaults in --help, and the epilog's line breaks kept."""


if __name__ == "__main__":
    sys.exit(main())
