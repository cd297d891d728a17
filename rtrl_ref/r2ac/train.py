"""Train an R2AC agent: `python -m rtrl_ref.train --env atari:Breakout` (see --help).

One synchronous loop, CleanRL style: act for `unroll` steps in `num_envs` environments, then one
learner update on that unroll (V-trace actor-critic loss, hand-derived gradients, exact RTRL for
the eLSTM when --learner rtrl), RMSProp with a linearly decaying learning rate and a global
gradient-norm clip. Behaviour and target policy coincide (the update follows each unroll), so
the V-trace importance weights are 1; V-trace is kept so that the loss is the paper's.

A run folder holds config.json (with the git revision), log.csv, curve.png and an atomic
checkpoint (checkpoint.npz + checkpoint.json, no pickle). --resume RUN continues a run.
"""

from __future__ import annotations

import sys

from rtrl_ref.r2ac.config import build_parser, make_config


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    parser.parse_args(argv)
    try:
        config = make_config(argv)
    except ValueError as err:
        parser.error(str(err))
    if config.env.split("?")[0] == "memory:copy":
        return train_copy_task(config)
    from rtrl_ref.r2ac.loop import TrainingStopped, train

    try:
        summary = train(config)
    except TrainingStopped as stop:
        print(f"\ntraining stopped: {stop}", file=sys.stderr)
        return stop.exit_code
    print(summary.describe())
    return 0


def train_copy_task(config) -> int:
    """`--env memory:copy?max_len=L`: the supervised copy task, fully online RTRL (step form, Adam).

    Uses --hidden, --num-envs (sequences per batch), --lr (Adam), --seed, --backend, and
    --total-frames as the budget in time steps over all sequences.
    """
    from envs.spec import parse_spec
    from rtrl_ref.r2ac.copy_online import train_copy

    spec = parse_spec(config.env)
    unknown = sorted(set(spec.options) - {"max_len"})
    if unknown:
        raise SystemExit(f"error: env memory:copy: unknown options {unknown}; known: ['max_len']")
    max_len = int(spec.options.get("max_len", 5))
    budget = max(1, config.total_frames // (2 * max_len))
    r = train_copy(max_len, config.hidden, config.num_envs, config.lr, 1.0, budget,
                   seed=config.seed, backend=config.backend, progress=config.progress)
    print(f"copy task L<={r.max_len}, H={r.hidden}: sequence accuracy {r.sequence_accuracy:.3f}, "
          f"symbol accuracy {r.symbol_accuracy:.3f}, {r.sequences} sequences, {r.seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
