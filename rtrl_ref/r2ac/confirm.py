"""End-to-end confirmations: `python -m rtrl_ref.confirm memory-span [--seeds 3]`.

memory-span-sweep: delays 8 to 128 at unroll 4 (rtrl_ref.r2ac.sweep has its options).

cells-span: the memory-span sweeps of the cells (one per cell, run with --train-flags "--cell NAME
--backend numba") side by side: docs/results/cells (rtrl_ref.r2ac.cells_span).

popgym-table: rtrl, tbptt and feedforward on eight POPGym tasks at Easy (RepeatPrevious, RepeatFirst,
CountRecall, Autoencode, HigherLower and the position-only, velocity-only and noisy position-only
CartPoles), the same settings and frame budget for every task (TABLE_FLAGS: the best measured POPGym
settings, docs/results/popgym/repeat-previous-chrono):

    python -m rtrl_ref.confirm popgym-table [--tasks A,B] [--seeds 3] [--frames 2000000] [--parallel 2]
                                            [--out docs/results/popgym/table]

Resumable: a run whose checkpoint has reached the budget is not trained again, an interrupted one is
continued (--resume), and evaluations are kept in each run's eval.json; --overwrite starts afresh.
Writes results.json, results.md (one row per task: per-seed and mean evaluation return per learner,
chance and optimal returns, rtrl >= tbptt, rtrl > feedforward, the POPGym paper's best model) and
table.png (tasks x learners: seeds as points, means as bars).

popgym: the same comparison on POPGym's RepeatPreviousEasy with an unroll of 2.

memory-span: the paper's central claim in miniature. On `memory:cue?delay=8` the cue must be
remembered for 9 steps, longer than the unroll of 4: only the exact, untruncated RTRL gradient
connects the reward to the cue. rtrl, tbptt and feedforward train with the same budget and
seeds; each final checkpoint is evaluated on fresh episodes. Writes, under --out:
runs/ (one run folder each), curves.png (all runs on one figure), results.md and results.json.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
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

from rtrl_ref.r2ac import cells_span, sweep
from rtrl_ref.r2ac.checkpoint import CHECKPOINT_FILE, read_checkpoint
from rtrl_ref.r2ac.cli import ArgumentParser, report
from rtrl_ref.r2ac.config import Config, make_config, read_config, read_run_record
from rtrl_ref.r2ac.evaluate import evaluate_run
from rtrl_ref.r2ac.evidence import evidence_markdown, mean_evidence, plot_task_curves, run_evidence
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
                   # the settings before the popgym family got its preset (cpu-popgym): what the committed results used
                   flags=["--unroll", "2", "--stem", "identity", "--forget-init", "constant", "--forget-bias", "1",
                          "--rms-eps", "0.01", "--total-frames", "400000"],
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
    if argv[:1] == ["popgym-table"]:
        return popgym_table_main(argv[1:])
    if argv[:1] == ["cells-span"]:
        return cells_span.main(argv[1:])
    parser = ArgumentParser(prog="python -m rtrl_ref.confirm", description=__doc__.splitlines()[0],
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("experiment", choices=sorted(EXPERIMENTS),
                        help="an experiment; memory-span-sweep (delays 8-128), popgym-table (eight POPGym "
                             "tasks) and cells-span (the cells' sweeps side by side) have their own options: "
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


# ============================================================================= popgym-table

TABLE_TASKS = ("RepeatPreviousEasy", "RepeatFirstEasy", "CountRecallEasy", "AutoencodeEasy", "HigherLowerEasy",
               "PositionOnlyCartPoleEasy", "VelocityOnlyCartPoleEasy", "NoisyPositionOnlyCartPoleEasy")
TABLE_LEARNERS = ("rtrl", "tbptt", "feedforward")
# The same settings on every task: the popgym family's defaults (preset cpu-popgym: unroll 2,
# observations straight into the eLSTM, chrono forget gate with T_max 100, RMSProp eps 1e-5), those
# of the best measured POPGym result before the table (docs/results/popgym/repeat-previous-chrono).
# Spelled out so that a table keeps its meaning if the family's defaults change.
TABLE_FLAGS = ("--unroll", "2", "--stem", "identity", "--forget-init", "chrono", "--chrono-t-max", "100",
               "--rms-eps", "1e-5")
TABLE_FRAMES = 2_000_000
# set per run by popgym-table itself: not allowed in --train-flags
TABLE_RESERVED = ("--env", "--learner", "--seed", "--total-frames", "--run-dir", "--run-name", "--resume")
# config fields that do not change what a run learns: a finished run with other values still counts
# (`preset` only names where the values came from: the values themselves are compared)
NOT_COMPARED = ("run_dir", "run_name", "resume", "progress", "checkpoint_minutes", "log_every", "blas_threads",
                "backend", "tensorboard", "preset")


class TaskInfo(NamedTuple):
    """What the reward definitions of a POPGym task (popgym 1.0.7, popgym/envs/*.py) say about its returns."""

    optimal: float | None    # the best possible episode return (None: not derived)
    chance: str              # "pm": every scored step +-1/N_scored, a random action right with prob. 1/n: 2/n - 1;
    #                          "zero": right/wrong equally likely for a random guess, pushes 0; "none": no closed form
    span: dict               # level -> steps over which something must be remembered (None: no fixed span)
    span_text: str
    needs_memory: bool       # a memoryless policy cannot reach the optimum


TASK_INFO = {
    "RepeatPrevious": TaskInfo(1.0, "pm", {"Easy": 5, "Medium": 33, "Hard": 65},
                               "the suit seen k = 4 (32, 64) cards ago", True),
    "RepeatFirst": TaskInfo(1.0, "pm", {"Easy": 51, "Medium": 415, "Hard": 831},
                            "the first card, for the whole episode", True),
    "Autoencode": TaskInfo(1.0, "pm", {"Easy": 103, "Medium": 207, "Hard": 311},
                           "the deck is recited backwards: the first card shown is the last answer", True),
    "CountRecall": TaskInfo(1.0, "pm", {"Easy": 51, "Medium": 103, "Hard": 207},
                            "counts of every value seen in the episode", True),
    "HigherLower": TaskInfo(None, "zero", {}, "none needed: guessing from the current card is memoryless; "
                            "counting the cards seen helps a little", False),
    "PositionOnlyCartPole": TaskInfo(1.0, "none", {"Easy": 2, "Medium": 2, "Hard": 2},
                                     "velocities from two consecutive positions", True),
    "VelocityOnlyCartPole": TaskInfo(1.0, "none", {"Easy": 200, "Medium": 400, "Hard": 600},
                                     "position and angle are integrals of the observed velocities: the episode", True),
    "NoisyPositionOnlyCartPole": TaskInfo(1.0, "none", {}, "velocities from noisy positions (sigma 0.1): a few "
                                          "steps, not fixed", True),
}
CHANCE_HOW = {
    "pm": "each scored step gives +-1/N (N scored steps, so the optimum is 1); a uniformly random action is right "
          "with probability 1/n (n actions): 2/n - 1",
    "zero": "a correct guess +1/52, a wrong one -1/52, a push 0: a random guess is right as often as wrong, 0",
    "none": "no closed form (CartPole: +1/200 per step survived, 200 steps at most, so the optimum is 1); the "
            "random-policy column measures it",
}
# The best memory model of the POPGym paper (Morad et al., ICLR 2023) per task at Easy: (model, MMER, budget).
# None = not found: the paper's appendix tables could not be retrieved when this table was prepared (searched:
# the popgym repository's README and docs, which quote no per-task scores, and stored copies of the paper, whose
# appendix was out of reach). Fill in from the paper's results table; never from memory.
POPGYM_PAPER_BEST: dict[str, tuple[str, float, str] | None] = {task: None for task in TABLE_TASKS}


class TableJob(NamedTuple):
    task: str
    learner: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.task}-{self.learner}-s{self.seed}"


def task_info(task: str) -> tuple[TaskInfo, str]:
    """(TaskInfo, level) of a POPGym task name such as RepeatPreviousEasy."""
    for level in ("Easy", "Medium", "Hard"):
        if task.endswith(level):
            return TASK_INFO[task[: -len(level)]], level
    raise ValueError(f"{task}: not a POPGym task name ending in Easy, Medium or Hard")


def chance_return(info: TaskInfo, num_actions: int) -> float | None:
    """The expected return of uniformly random actions, from the reward definition (None: no closed form)."""
    return {"pm": 2.0 / num_actions - 1.0, "zero": 0.0}.get(info.chance)


def table_argv(out: Path, job: TableJob, frames: int, train_flags: str) -> list[str]:
    """The flags of `python -m rtrl_ref.train` for one run of the table (--train-flags win over TABLE_FLAGS)."""
    return ["--env", f"popgym:{job.task}", "--learner", job.learner, "--seed", str(job.seed), *TABLE_FLAGS,
            "--total-frames", str(frames), *shlex.split(train_flags), "--run-dir", str(out / "runs"),
            "--run-name", job.name]


def checkpoint_frames(run: Path) -> int:
    return int(read_checkpoint(run / CHECKPOINT_FILE)[1]["meta"]["counters"]["frames"])


def run_status(run: Path, expected: Config) -> str:
    """new (no folder), restart (no checkpoint yet), done (budget reached) or resume (interrupted);
    ValueError if the folder holds a run with other settings."""
    if not run.exists():
        return "new"
    if not (run / "config.json").exists() or not (run / CHECKPOINT_FILE).exists():
        return "restart"
    saved = read_config(run)
    for f in dataclasses.fields(Config):
        if f.name not in NOT_COMPARED and getattr(saved, f.name) != getattr(expected, f.name):
            raise ValueError(f"{run} was trained with {f.name} {getattr(saved, f.name)!r}, this table asks for "
                             f"{getattr(expected, f.name)!r}")
    return "done" if checkpoint_frames(run) >= expected.total_frames else "resume"


def evaluate_cached(run: Path, episodes: int, seed: int) -> dict:
    """evaluate_run, kept in RUN/eval.json (reused while episodes, seed and the checkpoint's frames match)."""
    key = dict(episodes=episodes, seed=seed, frames=checkpoint_frames(run))
    file = run / "eval.json"
    if file.exists():
        data = json.loads(file.read_text())
        if data.get("key") == key:
            return data
    ev = evaluate_run(run, episodes=episodes, seed=seed)
    data = dict(key=key, mean=ev.mean, std=ev.std)
    file.write_text(json.dumps(data, indent=2))
    return data


def summarise_table(rows: list[dict], tasks, learners, facts: dict, unroll: int) -> dict:
    """Per task: per-seed and mean evaluation return per learner, the two comparisons and whether each is a target."""
    out = {}
    for task in tasks:
        seeds = {lr: [r["eval_mean"] for r in sorted(rows, key=lambda r: r["seed"])
                      if r["task"] == task and r["learner"] == lr] for lr in learners}
        means = {lr: float(np.mean(v)) for lr, v in seeds.items() if v}
        span = facts[task]["span"]
        ge = means["rtrl"] >= means["tbptt"] if {"rtrl", "tbptt"} <= set(means) else None
        gt = means["rtrl"] > means["feedforward"] if {"rtrl", "feedforward"} <= set(means) else None
        out[task] = dict(seeds=seeds, means=means, rtrl_ge_tbptt=ge, rtrl_gt_feedforward=gt,
                         ge_is_target=None if span is None else span > unroll,
                         gt_is_target=facts[task]["needs_memory"])
    return out


def plot_table(summary: dict, facts: dict, learners, out: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(summary)
    width = 0.8 / len(learners)
    fig, ax = plt.subplots(figsize=(max(6.4, 1.25 * len(tasks) + 1.5), 4.4))
    for k, learner in enumerate(learners):
        offset = (k - (len(learners) - 1) / 2) * width
        for i, task in enumerate(tasks):
            values = summary[task]["seeds"][learner]
            if not values:
                continue
            ax.bar(i + offset, np.mean(values), width * 0.9, color=f"C{k}", alpha=0.55,
                   label=f"{learner} (mean over seeds)" if i == 0 else None)
            ax.scatter([i + offset] * len(values), values, color=f"C{k}", edgecolor="k", linewidth=0.4, s=16,
                       zorder=3)
    for i, task in enumerate(tasks):
        chance = facts[task]["chance"] if facts[task]["chance"] is not None else facts[task]["random"]
        for value, style, label in ((chance, "--", "chance (random policy)"), (facts[task]["optimal"], ":", "optimal")):
            if value is not None:
                ax.hlines(value, i - 0.45, i + 0.45, colors="0.3", linestyles=style, lw=1,
                          label=label if i == 0 else None)
    ax.axhline(0, color="0.85", lw=0.8, zorder=0)
    ax.set_xticks(range(len(tasks)), [t.replace("Easy", "").replace("CartPole", "\nCartPole") for t in tasks],
                  fontsize=7)
    ax.set_ylabel("evaluation return")
    ax.set_ylim(-1.05, 1.05)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3)
    fig.tight_layout()
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out


def _fmt(value, spec=".3f", none="-") -> str:
    return none if value is None else format(value, spec)


def _yes_no(value, target) -> str:
    word = {True: "yes", False: "no", None: "-"}[value]
    return f"**{word}**" if target and value is False else word


def table_markdown(summary: dict, facts: dict, rows: list[dict], settings: dict, args, seconds: float,
                   evidence: dict | None = None) -> str:
    learners = args.learners
    flags = " ".join(TABLE_FLAGS) + (f" {args.train_flags}" if args.train_flags else "")
    lines = ["# POPGym table: rtrl, tbptt and feedforward on POPGym tasks", "",
             f"Command: `{args.command}` ({args.parallel} runs at once; the runs trained for "
             f"{sum(r['seconds'] for r in rows) / 3600:.1f} h in total on this machine, this call took "
             f"{seconds / 60:.0f} min: finished runs are kept, so a rerun only trains what is missing).", "",
             f"Every run: `python -m rtrl_ref.train --env popgym:TASK --learner L --seed S {flags} "
             f"--total-frames {args.frames}`, the same settings on every task (no per-task flags); resolved: "
             + ", ".join(f"{k} {v}" for k, v in settings.items()) + f". {args.seeds} seeds per learner. "
             f"Evaluation: {args.eval_episodes} fresh episodes per run (seed 10000 + training seed), sampled "
             "actions. Returns are POPGym's, scaled so that an episode's return lies in [-1, 1].", "",
             "| task | memory span (steps) | chance | optimal | random policy (measured) | "
             + " | ".join(f"{lr}: mean (seeds)" for lr in learners)
             + " | rtrl >= tbptt | rtrl > feedforward | POPGym paper, best memory model |",
             "|---|---:|---:|---:|---:|" + "---:|" * len(learners) + "---|---|---|"]
    for task, s in summary.items():
        f = facts[task]
        cells = [f"{s['means'][lr]:.3f} ({', '.join(f'{v:.2f}' for v in s['seeds'][lr])})" if s["seeds"][lr]
                 else "-" for lr in learners]
        paper = f["paper"]
        paper_cell = f"{paper[0]} {paper[1]:.2f} ({paper[2]})" if paper else "not found"
        lines.append(f"| {task} | {_fmt(f['span'], 'd', 'not fixed')} | {_fmt(f['chance'], '.3f', 'see random')} | "
                     f"{_fmt(f['optimal'], '.1f', 'unknown (< 1)')} | {f['random']:.3f} | " + " | ".join(cells)
                     + f" | {_yes_no(s['rtrl_ge_tbptt'], s['ge_is_target'])} | "
                     f"{_yes_no(s['rtrl_gt_feedforward'], s['gt_is_target'])} | {paper_cell} |")
    ge_targets = [t for t, s in summary.items() if s["ge_is_target"]]
    gt_targets = [t for t, s in summary.items() if s["gt_is_target"]]
    missed = [t for t in ge_targets if summary[t]["rtrl_ge_tbptt"] is False] + \
             [t for t in gt_targets if summary[t]["rtrl_gt_feedforward"] is False]
    unroll = settings.get("unroll")
    lines += ["", "Comparisons are of the means over seeds. Targets (generality issue): rtrl >= tbptt on every task "
              f"whose memory span exceeds the unroll ({unroll}): {', '.join(ge_targets) or 'none'}; rtrl > "
              f"feedforward on every task that needs memory: {', '.join(gt_targets) or 'none'}. A missed target is "
              f"in bold ({', '.join(sorted(set(missed))) or 'none missed'}).", "",
              "How the reference columns are derived (POPGym 1.0.7, `popgym/envs/*.py`):", ""]
    for task in summary:
        f = facts[task]
        lines.append(f"- {task}: {f['span_text']}; chance: {CHANCE_HOW[f['chance_rule']]}"
                     + (f" (n = {f['num_actions']})" if f["chance_rule"] == "pm" else "") + ".")
    lines += ["- random policy (measured): `evaluate_run(..., random_policy=True)` on the task, "
              f"{args.eval_episodes} episodes.",
              "- POPGym paper: the best memory model's score at the task's level in Morad et al., ICLR 2023 (their "
              "MMER, with their budget). \"not found\": the number could not be retrieved when the table was "
              "prepared; it is not quoted rather than guessed (`POPGYM_PAPER_BEST` in rtrl_ref/r2ac/confirm.py).", "",
              "![evaluation return per task and learner](table.png)", ""]
    if evidence:
        lines += ["Evidence for where rtrl learns and where not (means over seeds; `rtrl_ref/r2ac/evidence.py`: the "
                  "training return, the eLSTM's gradient norm before the clip, and each cell's zero-input memory time "
                  "tau = 1 + exp(b_f) from the final forget-gate bias):", "",
                  *evidence_markdown(evidence, {t: facts[t]["span"] for t in evidence}, "rtrl"), "",
                  "![training return per task, every learner (mean over seeds, min-max band)](curves.png)", ""]
    lines += ["| task | learner | seed | eval return (mean +- std) | train return (last 100) | frames | frames/s |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['learner']} | {r['seed']} | {r['eval_mean']:.3f} +- {r['eval_std']:.3f} | "
                     f"{r['train_return']:.3f} | {r['frames']} | {r['fps']:.0f} |")
    return "\n".join(lines) + "\n"


SETTINGS_SHOWN = ("unroll", "stem", "forget_init", "chrono_t_max", "rms_eps", "num_envs", "hidden", "lr",
                  "entropy_cost", "discount", "preset")


def _task_list(text: str) -> tuple[str, ...]:
    from envs.popgym import LEVELS, TASKS

    known = [t + level for t in TASKS for level in LEVELS]
    tasks = tuple(t.strip().removeprefix("popgym:") for t in text.split(",") if t.strip())
    unknown = [t for t in tasks if t not in known]
    if unknown or not tasks:
        raise argparse.ArgumentTypeError(f"expected comma-separated POPGym tasks from {','.join(known)}, "
                                         f"got {text!r}")
    return tasks


def _learner_list(text: str) -> tuple[str, ...]:
    learners = tuple(text.split(","))
    if not learners or set(learners) - set(TABLE_LEARNERS):
        raise argparse.ArgumentTypeError(f"expected a subset of {','.join(TABLE_LEARNERS)}, got {text!r}")
    return learners


def _quiet_config(argv: list[str]) -> Config:
    """make_config, with a parse error as ValueError (its message) instead of a printed exit."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return make_config(argv)
    except SystemExit:
        raise ValueError(err.getvalue().strip().split("error: ", 1)[-1]) from None


def popgym_table_main(argv: list[str]) -> int:
    parser = ArgumentParser(prog="python -m rtrl_ref.confirm popgym-table",
                            description="rtrl, tbptt and feedforward on POPGym tasks, the same settings for every "
                                        "task (resumable: finished runs are kept)",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--tasks", type=_task_list, default=TABLE_TASKS, help="comma-separated POPGym tasks")
    parser.add_argument("--learners", type=_learner_list, default=TABLE_LEARNERS, help="comma-separated learners")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per learner and task")
    parser.add_argument("--frames", type=int, default=TABLE_FRAMES, help="training frames per run (every task)")
    parser.add_argument("--eval-episodes", type=int, default=200, help="evaluation episodes per run")
    parser.add_argument("--parallel", type=int, default=2, help="runs at once")
    parser.add_argument("--train-flags", default="", help="extra flags for every run (the same on every task), "
                                                          "after the table's own: " + " ".join(TABLE_FLAGS))
    parser.add_argument("--out", type=Path, default=Path("docs/results/popgym/table"), help="output folder")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete the runs/ of a previous table in --out and train every run again (without "
                             "it, finished runs are kept and interrupted ones continued)")
    args = parser.parse_args(argv)
    for name in ("seeds", "frames", "eval_episodes", "parallel"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}: expected an integer >= 1, got {getattr(args, name)}")
    try:
        extra = shlex.split(args.train_flags)
    except ValueError as err:
        parser.error(f"--train-flags {args.train_flags!r}: {err}")
    reserved = sorted({flag.split("=", 1)[0] for flag in extra} & set(TABLE_RESERVED))
    if reserved:
        parser.error(f"--train-flags: {', '.join(reserved)} is set by popgym-table itself (use --tasks, --learners, "
                     "--seeds, --frames or --out)")
    out: Path = args.out
    jobs = [TableJob(t, lr, s) for t in args.tasks for s in range(args.seeds) for lr in args.learners]
    try:
        expected = {job: _quiet_config(table_argv(out, job, args.frames, args.train_flags)) for job in jobs}
    except ValueError as err:
        parser.error(f"--train-flags {args.train_flags!r}: {err}")
    import envs

    facts = {}
    for task in args.tasks:
        info, level = task_info(task)
        try:
            with envs.make(f"popgym:{task}", num_envs=1, seed=0) as env:
                num_actions = env.num_actions
        except (ImportError, ValueError) as err:
            parser.error(f"--tasks {task}: cannot be created ({err})")
        facts[task] = dict(optimal=info.optimal, chance=chance_return(info, num_actions), chance_rule=info.chance,
                           num_actions=num_actions, span=info.span.get(level), span_text=info.span_text,
                           needs_memory=info.needs_memory, paper=POPGYM_PAPER_BEST.get(task))
    if args.overwrite and (out / "runs").exists():
        shutil.rmtree(out / "runs")
    try:
        status = {job: run_status(out / "runs" / job.name, expected[job]) for job in jobs}
    except ValueError as err:
        parser.error(f"--out {out}: {err}; pass --overwrite to train every run again, or give another --out")
    args.command = "python -m rtrl_ref.confirm popgym-table " + shlex.join(argv)
    todo = sum(s != "done" for s in status.values())
    print(f"popgym-table: {len(jobs)} runs ({len(jobs) - todo} already trained), {args.parallel} at a time, "
          f"into {out}", flush=True)
    start = time.monotonic()
    failed = []

    def work(job: TableJob) -> Path:
        run = out / "runs" / job.name
        try:
            if status[job] == "restart":
                shutil.rmtree(run)
            if status[job] == "resume":
                sweep.train_run(job.name, ["--resume", str(run)])
            elif status[job] != "done":
                sweep.train_run(job.name, table_argv(out, job, args.frames, args.train_flags))
        except RuntimeError as err:
            failed.append(str(err))
        return run

    words = dict(new="trained", restart="trained (restarted)", resume="continued", done="already trained")
    runs = sweep.run_parallel(jobs, work, args.parallel, label=lambda job: f"{job.name}: {words[status[job]]}")
    if failed:
        for line in failed:
            print(line, file=sys.stderr)
        return report(parser.prog, f"{len(failed)} of {len(jobs)} runs failed (see above); rerun the same command "
                                   "to continue: finished runs are kept")
    rows = []
    for job, run in zip(jobs, runs):
        ev = evaluate_cached(run, args.eval_episodes, 10_000 + job.seed)
        last = sweep.last_log_row(run)
        rows.append(dict(task=job.task, learner=job.learner, seed=job.seed, eval_mean=ev["mean"], eval_std=ev["std"],
                         train_return=float(last["mean_return"]), frames=int(last["frames"]),
                         seconds=float(last["seconds"]), fps=float(last["fps"]),
                         git_revision=read_run_record(run).git_revision))
    for task in args.tasks:
        first = next(run for job, run in zip(jobs, runs) if job.task == task)
        facts[task]["random"] = evaluate_run(first, episodes=args.eval_episodes, seed=20_000, random_policy=True).mean
    config = read_config(runs[0])
    settings = {k: getattr(config, k) for k in SETTINGS_SHOWN}
    settings["preset"] = settings["preset"] or "none"
    summary = summarise_table(rows, args.tasks, args.learners, facts, config.unroll)
    seconds = time.monotonic() - start
    plot_table(summary, facts, args.learners, out / "table.png",
               f"POPGym, {args.frames:,} frames per run, {args.seeds} seeds (points), mean (bars)")
    evidence = {task: mean_evidence([run_evidence(run, facts[task]["span"]) for job, run in zip(jobs, runs)
                                     if job.task == task and job.learner == "rtrl"])
                for task in args.tasks if "rtrl" in args.learners}
    plot_task_curves({task: [run for job, run in zip(jobs, runs) if job.task == task] for task in args.tasks},
                     out / "curves.png", f"POPGym, training return, {args.seeds} seeds per learner")
    (out / "results.md").write_text(table_markdown(summary, facts, rows, settings, args, seconds, evidence))
    (out / "results.json").write_text(json.dumps(dict(
        command=args.command, flags=list(TABLE_FLAGS), train_flags=args.train_flags, frames=args.frames,
        seeds=args.seeds, eval_episodes=args.eval_episodes, settings=settings, seconds=seconds,
        tasks={t: dict(**facts[t], **summary[t], rtrl_evidence=evidence.get(t)) for t in args.tasks}, runs=rows),
        indent=2))
    for task, s in summary.items():
        print(f"{task}: " + ", ".join(f"{lr} {m:.3f}" for lr, m in s["means"].items()))
    print(f"wrote {out / 'results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
