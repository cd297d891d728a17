"""End-to-end confirmations: `python -m rtrl_ref.confirm memory-span [--seeds 3]`.

memory-span-sweep: delays 8 to 128 at unroll 4 (rtrl_ref.r2ac.sweep has its options).

popgym: the same comparison on POPGym's RepeatPreviousEasy with an unroll of 2.

memory-span: the paper's central claim in miniature. On `memory:cue?delay=8` the cue must be
remembered for 9 steps, longer than the unroll of 4: only the exact, untruncated RTRL gradient
connects the reward to the cue. rtrl, tbptt and feedforward train with the same budget and
seeds; each final checkpoint is evaluated on fresh episodes. Writes, under --out:
runs/ (one run folder each), curves.png (all runs on one figure), results.md and results.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from rtrl_ref.r2ac import sweep
from rtrl_ref.r2ac.cli import ArgumentParser, report
from rtrl_ref.r2ac.config import read_run_record
from rtrl_ref.r2ac.evaluate import evaluate_run
from rtrl_ref.r2ac.plot import plot_runs

EXPERIMENTS = {
    "memory-span": dict(env="memory:cue?delay=8", learners=("rtrl", "tbptt", "feedforward"),
                        # the memory preset before the sweep chose chrono: what the committed results used
                        flags=["--unroll", "4", "--forget-init", "constant", "--forget-bias", "1",
                               "--rms-eps", "0.01", "--total-frames", "600000"],
                        optimal=1.0, chance=0.5, title="memory:cue?delay=8, unroll 4 (span 9)"),
    # POPGym RepeatPreviousEasy: name the suit seen 4 cards ago (52 cards per episode); returns
    # are scaled to [-1, 1], a uniformly random policy gets about -0.5
    "popgym": dict(env="popgym:RepeatPreviousEasy", learners=("rtrl", "tbptt", "feedforward"),
                   flags=["--unroll", "2", "--stem", "identity", "--forget-bias", "1",
                          "--total-frames", "400000"],
                   optimal=1.0, chance=-0.5, title="popgym:RepeatPreviousEasy, unroll 2 (span 5)"),
    # the same task with the memory family's forget gate (chrono) and RMSProp eps (1e-5), 2M frames
    "popgym-chrono": dict(env="popgym:RepeatPreviousEasy", learners=("rtrl", "tbptt", "feedforward"),
                          flags=["--unroll", "2", "--stem", "identity", "--forget-init", "chrono",
                                 "--rms-eps", "1e-5", "--total-frames", "2000000"],
                          optimal=1.0, chance=-0.5,
                          title="popgym:RepeatPreviousEasy, unroll 2 (span 5), chrono, eps 1e-5"),
}


def run_one(out: Path, exp: dict, learner: str, seed: int) -> Path:
    name = f"{learner}-s{seed}"
    cmd = [sys.executable, "-m", "rtrl_ref.train", "--env", exp["env"], "--learner", learner,
           "--seed", str(seed), "--run-dir", str(out / "runs"), "--run-name", name, "--no-progress",
           *exp["flags"]]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return out / "runs" / name


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["memory-span-sweep"]:
        return sweep.main(argv[1:])
    parser = ArgumentParser(prog="python -m rtrl_ref.confirm", description=__doc__.splitlines()[0],
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("experiment", choices=sorted(EXPERIMENTS),
                        help="an experiment; memory-span-sweep (delays 8-128) has its own options: "
                             "python -m rtrl_ref.confirm memory-span-sweep --help")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per learner")
    parser.add_argument("--parallel", type=int, default=2, help="runs at once")
    parser.add_argument("--episodes", type=int, default=200, help="evaluation episodes per run")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default docs/results/EXPERIMENT)")
    parser.add_argument("--overwrite", action="store_true",
                        help="rerun into an --out that holds a previous result (its runs/ are deleted first)")
    args = parser.parse_args(argv)
    for flag, value in (("--seeds", args.seeds), ("--parallel", args.parallel), ("--episodes", args.episodes)):
        if value < 1:
            return report(parser.prog, f"{flag} {value}: expected an integer >= 1")
    exp = EXPERIMENTS[args.experiment]
    args.out = args.out or Path("docs/results") / args.experiment
    if (args.out / "runs").exists():
        if not args.overwrite:
            return report(parser.prog, f"--out {args.out}: holds a previous result ({args.out / 'runs'}); pass "
                                       "--overwrite to rerun into it (its runs/ are deleted), or give another --out")
        shutil.rmtree(args.out / "runs")
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = [(learner, seed) for seed in range(args.seeds) for learner in exp["learners"]]
    start = time.monotonic()
    done = []

    def job(learner_seed):
        run = run_one(args.out, exp, *learner_seed)
        done.append(run)                                                   # progress: one line per run
        print(f"[{len(done)}/{len(jobs)}] trained {run.name} ({time.monotonic() - start:.0f} s)",
              file=sys.stderr, flush=True)
        return run

    print(f"{args.experiment}: {len(jobs)} runs, {args.parallel} at a time, into {args.out}", file=sys.stderr,
          flush=True)
    with ThreadPoolExecutor(args.parallel) as pool:
        runs = list(pool.map(job, jobs))
    rows = []
    for k, ((learner, seed), run) in enumerate(zip(jobs, runs), start=1):
        print(f"[{k}/{len(jobs)}] evaluating {run.name} ({args.episodes} episodes)", file=sys.stderr, flush=True)
        ev = evaluate_run(run, episodes=args.episodes, seed=10_000 + seed)
        log = (run / "log.csv").read_text().strip().splitlines()
        last = dict(zip(log[0].split(","), log[-1].split(",")))
        rows.append(dict(learner=learner, seed=seed, eval_mean=ev.mean, eval_std=ev.std,
                         train_return=float(last["mean_return"]), frames=int(last["frames"]),
                         seconds=float(last["seconds"]), fps=float(last["fps"]),
                         git_revision=read_run_record(run).git_revision))
    plot_runs(runs, args.out / "curves.png", title=exp["title"])
    lines = [f"# {args.experiment}: {exp['env']}", "",
             f"Command: `python -m rtrl_ref.confirm {args.experiment} --seeds {args.seeds}` "
             f"({time.monotonic() - start:.0f} s on this machine). Optimal return {exp['optimal']}, "
             f"chance {exp['chance']}. Evaluation: {args.episodes} fresh episodes per run, sampled actions.", "",
             "| learner | seed | eval return (mean +- std) | train return (last 100) | frames | frames/s |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['learner']} | {r['seed']} | {r['eval_mean']:.3f} +- {r['eval_std']:.3f} | "
                     f"{r['train_return']:.3f} | {r['frames']} | {r['fps']:.0f} |")
    lines += ["", "| learner | mean eval return over seeds | share of the way from chance to optimal |",
              "|---|---:|---:|"]
    for learner in exp["learners"]:
        m = float(np.mean([r["eval_mean"] for r in rows if r["learner"] == learner]))
        share = (m - exp["chance"]) / (exp["optimal"] - exp["chance"])
        lines.append(f"| {learner} | {m:.3f} | {share:.0%} |")
    lines += ["", "![learning curves](curves.png)", ""]
    (args.out / "results.md").write_text("\n".join(lines))
    (args.out / "results.json").write_text(json.dumps(rows, indent=2))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
