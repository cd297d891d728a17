"""Env-only throughput: `python -m envs.bench` prints a Markdown table of steps/s.

Each row makes the env, checks the shapes of one step, warms up, then times batched steps with
uniformly random actions (drawn beforehand) and reports the median over repeats of env steps per
second (B * steps / seconds) and the time of one batched step. All rows run in one process, one
after the other, so their ratios are comparable; absolute numbers move with the machine's load.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import envs

CASES = (
    ("atari:Breakout", 8),
    ("atari:Breakout?threads=1", 8),
    ("atari:Breakout?backend=python", 8),
    ("procgen:chaser", 16),
    ("procgen:chaser?threads=2", 16),
    ("memory:cue?delay=40", 16),
    ("memory:cue?delay=40", 256),
    ("gym:CartPole-v1", 8),
    ("popgym:RepeatPreviousEasy", 16),
)


def measure(spec: str, num_envs: int, steps: int, repeats: int) -> tuple[float, float]:
    """(median env steps per second, median milliseconds per batched step) of one env."""
    with envs.make(spec, num_envs=num_envs, seed=0) as env:
        obs, _ = env.reset()
        assert obs.shape == (num_envs, *env.observation_shape), spec
        rng = np.random.default_rng(0)
        actions = rng.integers(0, env.num_actions, size=(steps, num_envs))   # (T, B)
        step = env.step(actions[0])
        assert step.reward.shape == (num_envs,) and step.obs.shape == obs.shape, spec
        for t in range(min(steps, 50)):                                       # warm-up
            env.step(actions[t])
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            for t in range(steps):
                env.step(actions[t])
            seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    return num_envs * steps / median, 1e3 * median / steps


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="batched steps per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated families, e.g. atari,memory")
    args = parser.parse_args(argv)
    only = {f for f in args.only.split(",") if f}
    print("| spec | B | env steps/s | ms per batched step |")
    print("|---|---:|---:|---:|")
    for spec, num_envs in CASES:
        if only and spec.split(":")[0] not in only:
            continue
        try:
            rate, ms = measure(spec, num_envs, args.steps, args.repeats)
        except envs.MissingFamilyError as exc:
            print(f"| {spec} | {num_envs} | skipped: {str(exc).splitlines()[0][:60]} | |")
            continue
        print(f"| {spec} | {num_envs} | {rate:,.0f} | {ms:.3f} |", flush=True)


if __name__ == "__main__":
    main()
