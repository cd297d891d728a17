"""Breakout under the paper's protocol: is the ball served after every lost life, and how often is it in play?

    python scripts/breakout_serve_check.py --steps 20000            # random policy, python chain
    python scripts/breakout_serve_check.py --steps 20000 --json out.json

Steps `atari:Breakout` (the python wrapper chain, which presses FIRE at every episode start) with
random actions and reads Breakout's RAM after every agent step: byte 101 is the ball's vertical
position, 0 while no ball is on the screen (measured: 0 after a reset until FIRE, non-zero from
the frame after FIRE). It reports, over all environments:

- lives lost, and how many new episodes (after a lost life or a new game) started with the ball
  in play, i.e. FIRE was pressed and took effect before the agent saw the episode's first frame;
- the fraction of agent steps with the ball in play;

A served ball in every new episode and in play on nearly every step means the agent never has to
learn to press FIRE itself; a low fraction would mean steps wasted waiting for a serve.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import envs

BALL_Y = 101                   # Breakout RAM byte: ball height, 0 while no ball is on the screen


def serve_check(steps: int, num_envs: int = 8, seed: int = 0, spec: str = "atari:Breakout") -> dict:
    env = envs.make(spec, num_envs=num_envs, seed=seed)
    if not hasattr(env, "_games"):
        raise SystemExit("needs the python chain (atari:Breakout?backend=python, the paper protocol's default)")
    rng = np.random.default_rng(seed)
    env.reset()
    in_play = episodes = served = lives_lost = games = 0
    for _ in range(steps):
        actions = rng.integers(0, env.num_actions, num_envs)
        step = env.step(actions)
        for b, game in enumerate(env._games):
            ball = int(game.ale.getRAM()[BALL_Y] != 0)
            in_play += ball
            if step.reset[b]:
                episodes += 1
                served += ball
        games += len(step.episodes)
    lives_lost = episodes - games
    env.close()
    return dict(agent_steps=steps * num_envs, episodes=episodes, games=games, lives_lost=lives_lost,
                episodes_starting_with_ball_in_play=served,
                agent_steps_without_ball=steps * num_envs - in_play, ball_in_play_fraction=in_play / (steps * num_envs))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000, help="agent steps per environment")
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--env", default="atari:Breakout", help="the Breakout spec (e.g. ?fire_reset=false to see "
                        "what the check reports without FIRE)")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args(argv)
    result = serve_check(args.steps, args.num_envs, args.seed, args.env)
    for key, value in result.items():
        print(f"{key:40s} {value:.4g}" if isinstance(value, float) else f"{key:40s} {value}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
