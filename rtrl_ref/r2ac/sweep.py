"""Memory-span sweep: `python -m rtrl_ref.confirm memory-span-sweep`.

The paper's claim is that exact RTRL carries credit across any span, while truncated BPTT sees
only its unroll. On `memory:cue?delay=D` the cue must be remembered for D + 1 steps; every run
here uses an unroll of 4 and the project's defaults for the memory family (the `cpu-memory`
preset: no per-delay flags), and trains rtrl, tbptt and feedforward with several seeds at each
delay. The budget grows with the episode length: every run gets the same number of training
episodes, `--episodes-per-run` (so D + 2 frames per episode times that number). Each final
checkpoint is evaluated on fresh episodes (sampled actions).

Writes under --out (default docs/results/memory-span-sweep): runs/ (config.json and log.csv of
each run), results.json (one row per run), results.md (tables) and span.png (evaluation return
against delay: seeds as points, the mean as a line, per learner).
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np

from rtrl_ref.r2ac import cli
from rtrl_ref.r2ac.evaluate import evaluate_run

DELAYS = (8, 16, 32, 64, 128)
LEARNERS = ("rtrl", "tbptt", "feedforward")
UNROLL = 4
OPTIMAL, CHANCE = 1.0, 0.5          # two cues: a memoryless policy can do no better than chance
LEARNED = 0.9                       # "learned": mean evaluation return >= 90% of optimal


class Job(NamedTuple):
    delay: int
    learner: str
    seed: int
    frames: int

    @property
    def name(self) -> str:
        return f"d{self.delay}-{self.learner}-s{self.seed}"


def frames_for(delay: int, episodes: int) -> int:
    """The budget of one run: `episodes` episodes of delay + 2 frames each."""
    return episodes * (delay + 2)


def train_run(name: str, argv: list[str]) -> None:
    """`python -m rtrl_ref.train --no-progress ARGV` in a subprocess (a new run, or `--resume RUN`);
    RuntimeError naming the run if it fails. Shared by the experiments of `rtrl_ref.confirm`."""
    cmd = [sys.executable, "-m", "rtrl_ref.train", "--no-progress", *argv]
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{name}: training failed (rc {proc.returncode}): {proc.stderr.strip()[-500:]}")


def run_parallel(jobs: list, work, parallel: int, label=str) -> list:
    """work(job) for every job, `parallel` at a time, in order; one progress line per finished job."""
    start = time.monotonic()
    done = []

    def run(job):
        result = work(job)
        done.append(job)
        print(f"[{len(done)}/{len(jobs)}] {label(job)} ({(time.monotonic() - start) / 60:.1f} min)", flush=True)
        return result

    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(run, jobs))


def train_one(out: Path, job: Job, train_flags: str = "") -> Path:
    train_run(job.name, ["--env", f"memory:cue?delay={job.delay}", "--learner", job.learner, "--seed", str(job.seed),
                         "--unroll", str(UNROLL), "--total-frames", str(job.frames), "--run-dir", str(out / "runs"),
                         "--run-name", job.name, *shlex.split(train_flags)])
    return out / "runs" / job.name


def last_log_row(run: Path) -> dict:
    lines = (run / "log.csv").read_text().strip().splitlines()
    return dict(zip(lines[0].split(","), lines[-1].split(",")))


def frames_to_learn(run: Path) -> int | None:
    """Frames at the first log row whose training return (last 100 episodes) reached LEARNED * OPTIMAL."""
    lines = (run / "log.csv").read_text().strip().splitlines()
    header = lines[0].split(",")
    for line in lines[1:]:
        row = dict(zip(header, line.split(",")))
        if row.get("mean_return") not in ("", "nan", None) and float(row["mean_return"]) >= LEARNED * OPTIMAL:
            return int(row["frames"])
    return None


def summarise(rows: list[dict], delays, learners) -> dict:
    """Mean evaluation return per (learner, delay), and the longest delay each learner learned."""
    means = {lr: {d: float(np.mean([r["eval_mean"] for r in rows if r["learner"] == lr and r["delay"] == d]))
                  for d in delays} for lr in learners}
    longest = {lr: max([d for d in delays if means[lr][d] >= LEARNED * OPTIMAL], default=None) for lr in learners}
    to_learn = {lr: {d: _median_or_none([r.get("frames_to_learn") for r in rows
                                          if r["learner"] == lr and r["delay"] == d]) for d in delays}
                for lr in learners}
    return dict(means=means, longest_learned=longest, median_frames_to_learn=to_learn)


def _median_or_none(values: list) -> float | None:
    """The median over seeds, or None unless every seed got there."""
    if not values or any(v is None for v in values):
        return None
    return float(np.median(values))


def plot_span(rows: list[dict], delays, learners, out: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for k, learner in enumerate(learners):
        colour = f"C{k}"
        pts = [(r["delay"], r["eval_mean"]) for r in rows if r["learner"] == learner]
        jitter = (k - 1) * 0.04
        ax.scatter([d * 2 ** jitter for d, _ in pts], [v for _, v in pts], color=colour, alpha=0.5, s=18)
        mean = [np.mean([v for d, v in pts if d == delay]) for delay in delays]
        ax.plot(delays, mean, color=colour, marker="o", label=f"{learner} (mean over seeds)")
    ax.axhline(OPTIMAL, color="0.6", ls=":", lw=1, label="optimal")
    ax.axhline(CHANCE, color="0.6", ls="--", lw=1, label="chance (memoryless)")
    ax.axvline(UNROLL, color="0.8", lw=1)
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(delays), [str(d) for d in delays])
    ax.set_xlabel("delay D (memory span D + 1 steps; unroll 4)")
    ax.set_ylabel("evaluation return")
    ax.set_ylim(0.3, 1.05)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="center left")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def results_markdown(rows, summary, args, seconds: float) -> str:
    delays, learners = args.delays, args.learners
    budget = ", ".join(f"D={d}: {frames_for(d, args.episodes_per_run):,}" for d in delays)
    extra = f", plus `{args.train_flags}` on every run" if args.train_flags else ""
    lines = ["# Memory-span sweep: memory:cue at several delays, unroll 4", "",
             f"Command: `{args.command}` ({seconds / 60:.0f} min on this machine, "
             f"{args.parallel} runs at once).", "",
             f"Every run: the memory family's defaults (preset `cpu-memory`), unroll {UNROLL}{extra}, "
             f"{args.episodes_per_run:,} training episodes, so frames = episodes x (D + 2) ({budget}). "
             f"Evaluation: {args.eval_episodes} fresh episodes per run, sampled actions. Optimal return "
             f"{OPTIMAL}, chance {CHANCE}. \"Learned\" = mean evaluation return >= {LEARNED:.0%} of optimal.", "",
             "| learner | " + " | ".join(f"D={d}" for d in delays) + " | longest delay learned |",
             "|---|" + "---:|" * (len(delays) + 1)]
    for lr in learners:
        cells = [f"{summary['means'][lr][d]:.3f}" for d in delays]
        longest = summary["longest_learned"][lr]
        lines.append(f"| {lr} | " + " | ".join(cells) + f" | {longest if longest is not None else 'none'} |")
    lines += ["", "Mean evaluation return over seeds.", "",
              f"Frames until the training return (mean of the last 100 episodes) first reached {LEARNED:.0%} "
              "of optimal (median over seeds; - where a seed never did):", "",
              "| learner | " + " | ".join(f"D={d}" for d in delays) + " |",
              "|---|" + "---:|" * len(delays)]
    for lr in learners:
        cells = [f"{v:,.0f}" if (v := summary["median_frames_to_learn"][lr][d]) is not None else "-" for d in delays]
        lines.append(f"| {lr} | " + " | ".join(cells) + " |")
    lines += ["", "![evaluation return against delay](span.png)", "",
              "| delay | learner | seed | eval return (mean +- std) | train return (last 100) | frames | "
              "frames to learn | frames/s |",
              "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        learned = f"{r['frames_to_learn']:,}" if r.get("frames_to_learn") is not None else "-"
        lines.append(f"| {r['delay']} | {r['learner']} | {r['seed']} | {r['eval_mean']:.3f} +- {r['eval_std']:.3f} "
                     f"| {r['train_return']:.3f} | {r['frames']} | {learned} | {r['fps']:.0f} |")
    return "\n".join(lines) + "\n"


def run_sweep(args) -> dict:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    jobs = [Job(d, lr, s, frames_for(d, args.episodes_per_run))
            for d in args.delays for s in range(args.seeds) for lr in args.learners]
    start = time.monotonic()
    runs = run_parallel(jobs, lambda job: train_one(out, job, args.train_flags), args.parallel,
                        label=lambda job: f"{job.name}: {job.frames:,} frames")
    rows = []
    for job, path in zip(jobs, runs):
        ev = evaluate_run(path, episodes=args.eval_episodes, seed=10_000 + job.seed)
        last = last_log_row(path)
        rows.append(dict(delay=job.delay, learner=job.learner, seed=job.seed, eval_mean=ev.mean,
                         eval_std=ev.std, train_return=float(last["mean_return"]),
                         frames=int(last["frames"]), fps=float(last["fps"]), frames_to_learn=frames_to_learn(path)))
    summary = summarise(rows, args.delays, args.learners)
    seconds = time.monotonic() - start
    plot_span(rows, args.delays, args.learners, out / "span.png",
              f"memory:cue, unroll {UNROLL}, {args.episodes_per_run:,} episodes per run, {args.seeds} seeds")
    (out / "results.md").write_text(results_markdown(rows, summary, args, seconds))
    (out / "results.json").write_text(json.dumps(dict(command=args.command, unroll=UNROLL, train_flags=args.train_flags,
                                                      episodes_per_run=args.episodes_per_run,
                                                      eval_episodes=args.eval_episodes, seconds=seconds,
                                                      summary=summary, runs=rows), indent=2))
    return summary


def positive_ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected non-negative integers, got {text!r}")
    return values


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = cli.ArgumentParser(prog="python -m rtrl_ref.confirm memory-span-sweep",
                                     description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--delays", type=positive_ints, default=DELAYS, help="comma-separated delays D")
    parser.add_argument("--learners", type=lambda s: tuple(s.split(",")), default=LEARNERS,
                        help="comma-separated learners")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per learner and delay")
    parser.add_argument("--episodes-per-run", type=int, default=40_000,
                        help="training episodes per run (frames = episodes x (D + 2))")
    parser.add_argument("--eval-episodes", type=int, default=200, help="evaluation episodes per run")
    parser.add_argument("--parallel", type=int, default=2, help="runs at once")
    parser.add_argument("--train-flags", default="",
                        help="extra flags for every run (the same at every delay), e.g. to compare an option "
                             "with the defaults: \"--forget-init constant --forget-bias 1\"")
    parser.add_argument("--out", type=Path, default=Path("docs/results/memory-span-sweep"), help="output folder")
    parser.add_argument("--overwrite", action="store_true",
                        help="rerun into an --out that holds a previous result (its runs/ are deleted first)")
    args = parser.parse_args(argv)
    for name in ("seeds", "episodes_per_run", "eval_episodes", "parallel"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}: expected an integer >= 1, got {getattr(args, name)}")
    unknown = sorted(set(args.learners) - set(LEARNERS))
    if unknown:
        parser.error(f"--learners: expected a subset of {','.join(LEARNERS)}, got {','.join(unknown)}")
    if (args.out / "runs").exists():
        if not args.overwrite:
            parser.error(f"--out {args.out}: holds a previous result ({args.out / 'runs'}); pass --overwrite to "
                         "rerun into it (its runs/ are deleted), or give another --out")
        shutil.rmtree(args.out / "runs")
    args.command = "python -m rtrl_ref.confirm memory-span-sweep " + shlex.join(argv)
    summary = run_sweep(args)
    for learner, longest in summary["longest_learned"].items():
        print(f"{learner}: longest delay learned {longest if longest is not None else 'none'}")
    print(f"wrote {args.out / 'results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
