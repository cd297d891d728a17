"""Train an R2AC agent: `python -m rtrl_ref.train --env atari:Breakout` (see --help).

One synchronous loop, CleanRL style: act for `unroll` steps in `num_envs` environments, then one
learner update on that unroll (V-trace actor-critic loss, hand-derived gradients, exact RTRL for
the eLSTM when --learner rtrl), RMSProp with a linearly decaying learning rate and a global
gradient-norm clip. Behaviour and target policy coincide (the update follows each unroll), so
the V-trace importance weights are 1; V-trace is kept so that the loss is the paper's. With
--actors N, N Ray actors act while the learner learns, and V-trace corrects their policy lag
(rtrl_ref/r2ac/distributed.py).

A run folder holds config.json (with the git revision), log.csv, curve.png and an atomic
checkpoint (checkpoint.npz, no pickle), written after the first update and then every
--checkpoint-minutes. Ctrl-C, SIGTERM and SIGHUP checkpoint and stop (exit status 128 + signal)
with the resume command printed; --resume RUN continues a run. The resolved configuration (and
the preset it came from) is printed when the run starts; --print-config prints it and stops,
--dry-run also runs every check (environment, stem, run folder) without training. --config
FILE.toml reads options (`lr = 6e-4`, `env = "gym:CartPole-v1"`, ...; flags given on the command
line win). User errors are one line on stderr with exit status 2, and create nothing.
The supervised copy task has its own entry point: `python -m rtrl_ref.copy_task`.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
import tomllib

from rtrl_ref.r2ac.cli import report
from rtrl_ref.r2ac.config import Config, build_parser, describe_config, make_config
from rtrl_ref.r2ac.distributed import train
from rtrl_ref.r2ac.loop import TrainingStopped, UsageError, check_start, report_stopped

PROG = "python -m rtrl_ref.train"
FIELDS = {f.name: f for f in dataclasses.fields(Config)}


def add_run_control(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options that are not part of a run's configuration."""
    group = parser.add_argument_group("run control (not stored in the run's config)")
    group.add_argument("--config", metavar="FILE.toml", default=None,
                       help="read options from a TOML file (keys as the flags, e.g. total_frames = 1_000_000); "
                            "flags on the command line win")
    group.add_argument("--print-config", action="store_true", help="print the resolved configuration and stop")
    group.add_argument("--dry-run", action="store_true",
                       help="print the configuration and run every check (environment, stem, run folder), "
                            "then stop without creating anything")
    return parser


def config_file_flags(path: str) -> list[str]:
    """A TOML file's options as command-line tokens (placed before the real flags, which then win)."""
    try:
        with open(path, "rb") as fh:
            table = tomllib.load(fh)
    except OSError as err:
        raise ValueError(f"--config {path}: cannot read it ({err.strerror})") from None
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"--config {path}: not valid TOML ({err})") from None
    tokens: list[str] = []
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in FIELDS:
            raise ValueError(f"--config {path}: unknown option {key!r} (options are the flags of --help, "
                             f"e.g. total_frames)")
        kind = FIELDS[name].type if isinstance(FIELDS[name].type, str) else FIELDS[name].type.__name__
        ok = {"bool": isinstance(value, bool), "int": isinstance(value, int) and not isinstance(value, bool),
              "float": isinstance(value, (int, float)) and not isinstance(value, bool),
              "str": isinstance(value, str)}[kind]
        if not ok:
            raise ValueError(f"--config {path}: option {key!r} expects a {kind}, got {value!r}")
        flag = "--" + name.replace("_", "-")
        if kind == "bool":
            tokens.append(flag if value else "--no-" + flag[2:])
        else:
            tokens += [flag, repr(value) if kind == "float" else str(value)]
    return tokens


def name_flag(message: str) -> str:
    """'seed: expected ...' -> '--seed: expected ...' (messages of the config name its fields)."""
    match = re.match(r"([a-z_]+(?:, [a-z_]+)*): ", message)
    if match and all(n in FIELDS for n in match.group(1).split(", ")):
        flags = ", ".join("--" + n.replace("_", "-") for n in match.group(1).split(", "))
        return flags + message[match.end(1):]
    return message


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    add_run_control(build_parser()).parse_args(argv)   # --help, unknown flags, bad choices: exit here (one line)
    control, rest = add_run_control(argparse.ArgumentParser(add_help=False)).parse_known_args(argv)
    try:
        tokens = config_file_flags(control.config) if control.config else []
        config = make_config(tokens + rest)
    except ValueError as err:
        return report(PROG, name_flag(str(err)))
    print(describe_config(config), flush=True)
    if control.print_config:
        return 0
    try:
        if control.dry_run:
            check_start(config)
            print("dry run: every check passed; nothing was created")
            return 0
        summary = train(config)
    except UsageError as err:
        return report(PROG, err)
    except ValueError as err:
        if not control.dry_run:
            raise
        return report(PROG, err)
    except TrainingStopped as stop:
        return report_stopped(stop)
    print(summary.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
