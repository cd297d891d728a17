"""Command-line plumbing shared by the entry points: one-line user errors with exit status 2.

Every CLI of the application reports a user error (a bad flag, a bad file, a run folder that
cannot be used) as a single line `PROG: error: MESSAGE` on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys

EXIT_USAGE = 2


class UsageError(ValueError):
    """A user error the command reports in one line (exit status 2)."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block): `PROG: error: MESSAGE`, exit status 2."""

    def error(self, message: str):
        fail(self.prog, message)


def report(prog: str, message) -> int:
    """Print `PROG: error: MESSAGE` (one line) on stderr; returns the exit status 2."""
    text = " ".join(str(message).split())          # one line, whatever the message held
    try:
        print(f"{prog}: error: {text}", file=sys.stderr, flush=True)
    except OSError:                                 # stderr gone (a closed terminal)
        pass
    return EXIT_USAGE


def fail(prog: str, message) -> None:
    """`report`, then exit with status 2."""
    raise SystemExit(report(prog, message))


def flag_of(field: str) -> str:
    """The command-line flag of a config field: total_frames -> --total-frames."""
    return "--" + field.replace("_", "-")
