"""Learning curves: `python -m rtrl_ref.plot RUN [RUN ...] [--out curve.png]`.

Several runs go on one figure (mean episode return of the last 100 episodes against frames).
Each curve is labelled by what differs between the runs' configurations (env, learner, lr, or any
other field), one colour per setting. Runs of one setting that differ only in their seed are drawn
as their mean with a shaded band (min-max, or the standard error with --band se). `--label`
names the runs yourself (runs with the same label form one setting), `--smooth` smooths each run
(a window of N log rows, or an exponential moving average `ema:0.9`), `--baseline` draws a
reference return (e.g. the random policy's, from `python -m rtrl_ref.evaluate RUN --random`).
Points averaged over fewer than --min-episodes finished episodes are drawn dotted.
An empty or malformed log.csv is an error naming the file.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

from rtrl_ref.r2ac.cli import ArgumentParser, report
from rtrl_ref.r2ac.config import Config, read_config
from rtrl_ref.r2ac.runs import read_log

# fields that do not change what a run learns (or only its length): never used as labels
NOT_A_SETTING = {"run_dir", "run_name", "resume", "progress", "checkpoint_minutes", "log_every", "blas_threads",
                 "total_frames", "tensorboard", "eval_every", "eval_episodes", "preset", "exp_name", "backend"}


class Curve(NamedTuple):
    run: Path
    config: Config | None
    frames: np.ndarray        # (N,)
    returns: np.ndarray       # (N,) mean return of the last 100 episodes (NaN before the first)
    episodes: np.ndarray      # (N,) episodes finished when the row was logged


def load_curve(run: Path) -> Curve:
    log = read_log(run)                                                    # ValueError naming the file
    try:
        config = read_config(run)
    except ValueError:
        config = None
    return Curve(Path(run), config, np.asarray(log["frames"]), np.asarray(log["mean_return"]),
                 np.asarray(log["episodes"]))


def differing_fields(configs: list[Config | None]) -> list[str]:
    """The config fields whose values differ between the runs (seed included), in field order."""
    known = [c for c in configs if c is not None]
    return [f.name for f in dataclasses.fields(Config) if f.name not in NOT_A_SETTING
            and len({repr(getattr(c, f.name)) for c in known}) > 1]


def setting_label(curve: Curve, fields: list[str]) -> str:
    """The label of a run's setting: the differing fields other than the seed (name=value)."""
    if curve.config is None:
        return curve.run.name
    shown = [f for f in fields if f != "seed"]
    if not shown:
        return curve.config.learner
    return ", ".join(f"{f}={getattr(curve.config, f)}" if f not in ("env", "learner") else
                     str(getattr(curve.config, f)) for f in shown)


def smooth(y: np.ndarray, spec: str) -> np.ndarray:
    """Smooth a curve: '' none, 'N' a trailing window of N points, 'ema:A' an EMA keeping A of the past."""
    if not spec:
        return y
    out = y.astype(float).copy()
    valid = np.isfinite(out)
    if spec.startswith("ema:"):
        alpha = float(spec[4:])
        acc = np.nan
        for i in np.flatnonzero(valid):
            acc = out[i] if np.isnan(acc) else alpha * acc + (1 - alpha) * out[i]
            out[i] = acc
        return out
    window = int(spec)
    idx = np.flatnonzero(valid)
    values = out[idx]
    csum = np.concatenate([[0.0], np.cumsum(values)])                    # (n + 1,)
    lo = np.maximum(np.arange(len(values)) + 1 - window, 0)
    out[idx] = (csum[1:] - csum[lo]) / (np.arange(len(values)) + 1 - lo)
    return out


def parse_smooth(spec: str) -> str:
    try:
        if spec.startswith("ema:"):
            if not 0 <= float(spec[4:]) < 1:
                raise ValueError
        elif spec and int(spec) < 1:
            raise ValueError
    except ValueError:
        raise ValueError(f"--smooth {spec}: expected a window of N >= 1 rows (e.g. 5) or ema:A with 0 <= A < 1 "
                         f"(e.g. ema:0.9)") from None
    return spec


def _colours(n: int) -> list:
    import matplotlib

    if n <= 10:
        return [matplotlib.colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [matplotlib.colormaps["tab20"](i) for i in range(n)]
    return [matplotlib.colormaps["viridis"](i / (n - 1)) for i in range(n)]


def _aggregate(curves: list[Curve], smoothing: str, band: str):
    """Seeds of one setting on a common frame grid: (x, mean, low, high, few) with few the points
    where some seed had averaged fewer than the minimum of episodes (set by the caller)."""
    ys = [smooth(c.returns, smoothing) for c in curves]
    lo = max(c.frames[np.isfinite(y)].min(initial=np.inf) for c, y in zip(curves, ys))
    hi = min(c.frames[np.isfinite(y)].max(initial=-np.inf) for c, y in zip(curves, ys))
    x = np.unique(np.concatenate([c.frames for c in curves]))
    x = x[(x >= lo) & (x <= hi)]                                           # (N,) where every seed has data
    stack = np.stack([np.interp(x, c.frames[np.isfinite(y)], y[np.isfinite(y)]) for c, y in zip(curves, ys)])
    mean = stack.mean(0)                                                   # (N,)
    if band == "se":
        se = stack.std(0, ddof=1) / np.sqrt(len(curves))
        low, high = mean - se, mean + se
    else:
        low, high = stack.min(0), stack.max(0)
    episodes = np.stack([np.interp(x, c.frames, c.episodes) for c in curves]).min(0)   # (N,)
    return x, mean, low, high, episodes


def plot_runs(runs: list[Path], out: Path, title: str = "", labels: list[str] | None = None, smoothing: str = "",
              band: str = "minmax", baseline: float | None = None, baseline_label: str = "random policy",
              min_episodes: int = 10) -> Path:
    """Draw the runs' curves on one figure and save it as `out` (parent folders are created)."""
    curves = [load_curve(run) for run in runs]
    if labels and len(labels) != len(curves):
        raise ValueError(f"--label: expected one label per run ({len(curves)}), got {len(labels)}")
    fields = differing_fields([c.config for c in curves])
    names = labels or [setting_label(c, fields) for c in curves]
    groups: dict[str, list[Curve]] = {}
    for name, curve in zip(names, curves):
        groups.setdefault(name, []).append(curve)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    few_drawn = False
    for (name, members), colour in zip(groups.items(), _colours(len(groups))):
        if len(members) > 1 and band != "none":
            x, y, low, high, episodes = _aggregate(members, smoothing, band)
            ax.fill_between(x, low, high, color=colour, alpha=0.2, linewidth=0)
            name = f"{name} ({len(members)} runs, {'mean +- s.e.' if band == 'se' else 'mean, min-max'})"
            lines = [(x, y, episodes)]
        else:
            lines = [(c.frames, smooth(c.returns, smoothing), c.episodes) for c in members]
            if len(members) == 1 and "seed" in fields and members[0].config is not None and not labels:
                name = f"{name} (seed {members[0].config.seed})"
        for i, (x, y, episodes) in enumerate(lines):
            few = episodes < min_episodes
            solid = np.where(few, np.nan, y)
            dotted = np.where(few | np.r_[False, few[:-1]], y, np.nan)      # dotted up to the first solid point
            ax.plot(x, solid, color=colour, alpha=0.9, label=name if i == 0 and not few.all() else None)
            if few.any():
                few_drawn = True
                ax.plot(x, dotted, color=colour, alpha=0.6, linestyle=":",
                        label=name if i == 0 and few.all() else None)
    if baseline is not None:
        ax.axhline(baseline, color="0.4", linestyle="--", linewidth=1, label=baseline_label)
    ax.set_xlabel("frames (agent steps, all environments)")
    ax.set_ylabel("mean episode return (last 100)")
    envs_shown = sorted({c.config.env for c in curves if c.config is not None})
    ax.set_title(title or ", ".join(envs_shown), fontsize=10)
    if few_drawn:
        ax.text(0.99, 0.01, f"dotted: fewer than {min_episodes} episodes averaged", transform=ax.transAxes,
                ha="right", va="bottom", fontsize=7, color="0.4")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=110)
    except OSError as err:
        raise ValueError(f"--out {out}: cannot write it ({err.strerror or err})") from None
    finally:
        plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    prog = "python -m rtrl_ref.plot"
    parser = ArgumentParser(prog=prog, description=__doc__.splitlines()[0], epilog=__doc__.split("\n", 2)[2],
                            formatter_class=_Formatter)
    parser.add_argument("runs", nargs="+", type=Path,
                        help="run folders (each with log.csv): training runs, or copy-task runs (python -m "
                             "rtrl_ref.copy_task), whose accuracy and longest pattern solved are drawn instead")
    parser.add_argument("--out", type=Path, default=Path("curve.png"), help="output PNG (folders are created)")
    parser.add_argument("--title", default="", help="figure title (default: the environments)")
    parser.add_argument("--label", action="append", default=None,
                        help="label of each run, in order (repeat once per run); runs with one label form a setting")
    parser.add_argument("--smooth", default="", help="N (trailing window of N log rows) or ema:A (0 <= A < 1)")
    parser.add_argument("--band", choices=("minmax", "se", "none"), default="minmax",
                        help="band across the seeds of a setting: min-max, standard error, or none (one line per run)")
    parser.add_argument("--baseline", type=float, default=None, help="draw a reference return (e.g. a random policy's)")
    parser.add_argument("--baseline-label", default="random policy", help="legend entry of --baseline")
    parser.add_argument("--min-episodes", type=int, default=10,
                        help="points averaged over fewer finished episodes are drawn dotted")
    args = parser.parse_args(argv)
    from rtrl_ref.r2ac.copy_plot import is_copy_run, plot_copy_runs

    copy_runs = [is_copy_run(r) for r in args.runs]
    try:
        if any(copy_runs):
            if not all(copy_runs):
                raise ValueError(f"runs: expected only training runs or only copy-task runs, got both "
                                 f"({args.runs[copy_runs.index(True)]} and {args.runs[copy_runs.index(False)]})")
            out = plot_copy_runs(args.runs, args.out, args.title, args.label)
            print(f"wrote {out}")
            return 0
        out = plot_runs(args.runs, args.out, args.title, args.label, parse_smooth(args.smooth), args.band,
                        args.baseline, args.baseline_label, args.min_episodes)
    except ValueError as err:
        return report(prog, err)
    print(f"wrote {out}")
    return 0


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in --help, and the epilog's line breaks kept."""


if __name__ == "__main__":
    sys.exit(main())
