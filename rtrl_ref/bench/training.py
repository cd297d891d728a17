"""Training throughput of the three learners, side by side in one process.

    python -m rtrl_ref.bench.training --env atari:Breakout --frames 3000 --rounds 3

Each round trains `rtrl`, `tbptt` and `feedforward` (same model, unroll and seed) for the same
number of frames, in turn, and steps the environment alone with random actions for the same
number of frames; the median frames/s over rounds and the ratios are printed and written as JSON.
The agent's share of wall time is 1 - (env-only time / training time).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def env_only_fps(env_spec: str, num_envs: int, frames: int, seed: int) -> float:
    import envs

    rng = np.random.default_rng(seed)
    with envs.make(env_spec, num_envs=num_envs, seed=seed) as env:
        env.reset()
        start = time.perf_counter()
        for _ in range(max(1, frames // num_envs)):
            env.step(rng.integers(0, env.num_actions, num_envs))
        return (frames // num_envs) * num_envs / (time.perf_counter() - start)


def learner_fps(env_spec: str, learner: str, frames: int, extra: list[str], seed: int) -> float:
    from rtrl_ref.r2ac.config import make_config
    from rtrl_ref.r2ac.loop import train

    with tempfile.TemporaryDirectory() as tmp:
        config = make_config(["--env", env_spec, "--learner", learner, "--total-frames", str(frames),
                              "--run-dir", tmp, "--no-progress", "--seed", str(seed),
                              "--checkpoint-minutes", "1000", *extra])
        summary = train(config)
    return summary.frames / summary.seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rtrl_ref.bench.training", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--env", default="atari:Breakout", help="environment spec")
    parser.add_argument("--frames", type=int, default=3000, help="frames per learner per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median reported)")
    parser.add_argument("--out", type=Path, default=None, help="JSON output file")
    args, extra = parser.parse_known_args(argv)
    from rtrl_ref.r2ac.config import make_config

    num_envs = make_config(["--env", args.env, *extra]).num_envs
    learners = ("rtrl", "tbptt", "feedforward")
    fps: dict[str, list[float]] = {k: [] for k in learners + ("env_only",)}
    for r in range(args.rounds):
        for learner in learners:
            fps[learner].append(learner_fps(args.env, learner, args.frames, extra, seed=r))
        fps["env_only"].append(env_only_fps(args.env, num_envs, args.frames, seed=r))
    med = {k: float(np.median(v)) for k, v in fps.items()}
    result = dict(env=args.env, frames=args.frames, rounds=args.rounds, extra_flags=extra, fps=fps,
                  median_fps=med, rtrl_over_tbptt=med["rtrl"] / med["tbptt"],
                  agent_share_of_wall_time={k: 1 - med[k] / med["env_only"] for k in learners})
    for k in learners:
        print(f"{k:12s} {med[k]:8.1f} frames/s   agent share of wall time {result['agent_share_of_wall_time'][k]:.0%}")
    print(f"{'env only':12s} {med['env_only']:8.1f} frames/s")
    print(f"rtrl / tbptt throughput: {result['rtrl_over_tbptt']:.2f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
