"""Train an R2AC agent: `python -m rtrl_ref.train --env atari:Breakout` (see --help).

One synchronous loop, CleanRL style: act for `unroll` steps in `num_envs` environments, then one
learner update on that unroll (V-trace actor-critic loss, hand-derived gradients, exact RTRL for
the eLSTM when --learner rtrl), RMSProp with a linearly decaying learning rate and a global
gradient-norm clip. Behaviour and target policy coincide (the update follows each unroll), so
the V-trace importance weights are 1; V-trace is kept so that the loss is the paper's.

A run folder holds config.json (with the git revision), log.csv, curve.png and an atomic
checkpoint (checkpoint.npz + checkpoint.json, no pickle). --resume RUN continues a run.
The resolved configuration (and the preset it came from) is printed when the run starts.
The supervised copy task has its own entry point: `python -m rtrl_ref.copy_task`.
"""

from __future__ import annotations

import sys

from rtrl_ref.r2ac.config import build_parser, describe_config, make_config
from rtrl_ref.r2ac.loop import TrainingStopped, train


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    build_parser().parse_args(argv)                  # --help, unknown flags and bad choices exit here
    try:
        config = make_config(argv)
    except ValueError as err:
        print(f"python -m rtrl_ref.train: error: {err}", file=sys.stderr)
        return 2
    print(describe_config(config), flush=True)
    try:
        summary = train(config)
    except TrainingStopped as stop:
        print(f"\ntraining stopped: {stop}", file=sys.stderr)
        return stop.exit_code
    print(summary.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
