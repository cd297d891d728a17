"""Evaluate a checkpoint: `python -m rtrl_ref.evaluate RUN [--episodes N] [--greedy | --random]`.

Loads the run's config and checkpoint, plays N whole episodes in fresh environments (a seed
different from training's unless --seed says otherwise) and reports the mean and standard
deviation of the raw episode return. Every environment contributes its first episodes in turn
(not the first N to finish, which would favour short episodes). `--random` plays uniformly random actions on the run's
environment instead (no checkpoint needed): the random-policy return under the same protocol.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

import envs
from rtrl_ref.r2ac.config import read_config
from rtrl_ref.r2ac.core import get_learner
from rtrl_ref.r2ac.heads import sample_actions
from rtrl_ref.r2ac.loop import agent_spec, load_run_checkpoint
from rtrl_ref.r2ac.network import act, init_agent
from rtrl_ref.r2ac.optim import rmsprop_init


class Evaluation(NamedTuple):
    episodes: int
    mean: float
    std: float
    returns: list


def evaluate_run(run_dir: Path, episodes: int = 30, num_envs: int = 8, seed: int = 12345,
                 greedy: bool = False, max_steps: int = 1_000_000, random_policy: bool = False) -> Evaluation:
    config = read_config(run_dir)
    rng = np.random.default_rng(seed)
    # the first k episodes of every environment, k = ceil(episodes / num_envs): taking the first N
    # episodes to finish overall would favour short ones (in Breakout, low scores)
    k = -(-episodes // num_envs)
    per_env: list[list[float]] = [[] for _ in range(num_envs)]
    with envs.make(config.env, num_envs=num_envs, seed=seed) as env:
        spec = agent_spec(config, env)
        if not random_policy:
            like = init_agent(np.random.default_rng(0), spec)
            trees, _ = load_run_checkpoint(run_dir, like, rmsprop_init(like))
            params = trees["params"]
        obs, _ = env.reset()
        reward = np.zeros(num_envs, np.float32)                            # (B,)
        reset = np.ones(num_envs, bool)                                    # (B,)
        c = get_learner(config.learner).init_state(num_envs, spec.features + 1, config.hidden).c   # (B, H)
        for _ in range(max_steps):
            if random_policy:
                a = rng.integers(0, env.num_actions, num_envs)             # (B,)
            else:
                logits, _, c = act(spec, params, obs, reward, reset, c)
                a = logits.argmax(-1) if greedy else sample_actions(rng, logits)
            step = env.step(a)
            obs, reward, reset = step.obs, step.reward, step.reset
            for ep in step.episodes:
                per_env[ep.env].append(ep.score)
            if min(len(r) for r in per_env) >= k:
                break
    returns = [r[j] for j in range(k) for r in per_env if j < len(r)][:episodes]
    return Evaluation(len(returns), float(np.mean(returns)), float(np.std(returns)), returns)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rtrl_ref.evaluate", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("run", type=Path, help="run folder (with config.json and checkpoint.npz)")
    parser.add_argument("--episodes", type=int, default=30, help="episodes to play")
    parser.add_argument("--num-envs", type=int, default=8, help="environments played in parallel")
    parser.add_argument("--seed", type=int, default=12345, help="environment and sampling seed")
    policy = parser.add_mutually_exclusive_group()
    policy.add_argument("--greedy", action="store_true", help="take the most likely action instead of sampling")
    policy.add_argument("--random", action="store_true",
                        help="uniformly random actions on the run's environment (the random-policy baseline; "
                             "the checkpoint is not read)")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error(f"--episodes: expected >= 1, got {args.episodes}")
    try:
        ev = evaluate_run(args.run, args.episodes, args.num_envs, args.seed, args.greedy,
                          random_policy=args.random)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    what = "random policy" if args.random else ("greedy" if args.greedy else "sampled actions")
    print(f"{args.run} ({what}): {ev.episodes} episodes, return {ev.mean:.3f} +- {ev.std:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
