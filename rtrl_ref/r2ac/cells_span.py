"""`python -m rtrl_ref.confirm cells-span`: the memory-span sweep of every cell, side by side.

Reads the results.json of one memory-span sweep per cell (written by `python -m rtrl_ref.confirm
memory-span-sweep ... --train-flags "--cell NAME --backend numba" --out docs/results/cells/NAME`;
the eLSTM's is the main sweep, docs/results/memory-span-sweep) and writes, into --out:

    results.md   per cell and learner: mean evaluation return per delay, the longest delay learned
                 (mean >= 90% of optimal) and the median frames until the training return got there
    span.png     evaluation return against delay, one panel per learner, one line per cell (seeds as
                 points)

Only the learners that every given sweep ran are compared; a delay a sweep did not run shows as -.
Nothing is trained here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from rtrl_ref.r2ac import cli
from rtrl_ref.r2ac.sweep import CHANCE, LEARNED, OPTIMAL, UNROLL

DEFAULT_SWEEPS = (("elstm", "docs/results/memory-span-sweep"),
                  *((f"{c}{tag}", f"docs/results/cells/{c}{tag}") for c in ("lru", "indrnn", "mingru")
                    for tag in ("", "-chrono")))


def load(folder: Path) -> dict:
    path = Path(folder) / "results.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise SystemExit(f"cells-span: expected a sweep's results.json in {folder}, got {err}") from err


def common(sweeps: dict[str, dict]) -> tuple[list[int], list[str]]:
    """Every delay any sweep ran (sorted; a sweep's missing ones show as -), and the learners that
    every sweep ran (in the first sweep's order)."""
    def keys(s, field):
        return [r[field] for r in s["runs"]]
    first = next(iter(sweeps.values()))
    delays = sorted({d for s in sweeps.values() for d in keys(s, "delay")})
    learners = [lr for lr in dict.fromkeys(keys(first, "learner"))
                if all(lr in keys(s, "learner") for s in sweeps.values())]
    return delays, learners


def table(sweeps: dict[str, dict], delays: list[int], learners: list[str]) -> list[str]:
    lines = ["| cell | learner | seeds | " + " | ".join(f"D={d}" for d in delays) + " | longest delay learned |",
             "|---|---|---:|" + "---:|" * (len(delays) + 1)]
    for learner in learners:
        for cell, s in sweeps.items():
            rows = [r for r in s["runs"] if r["learner"] == learner]
            seeds = len({r["seed"] for r in rows})
            means = {d: float(np.mean(v)) for d in delays if (v := [r["eval_mean"] for r in rows if r["delay"] == d])}
            longest = max([d for d in means if means[d] >= LEARNED * OPTIMAL], default=None)
            lines.append(f"| {cell} | {learner} | {seeds} | "
                         + " | ".join(f"{means[d]:.3f}" if d in means else "-" for d in delays)
                         + f" | {longest if longest is not None else 'none'} |")
    return lines


def frames_table(sweeps: dict[str, dict], delays: list[int], learner: str) -> list[str]:
    lines = ["| cell | " + " | ".join(f"D={d}" for d in delays) + " |", "|---|" + "---:|" * len(delays)]
    for cell, s in sweeps.items():
        got = s["summary"]["median_frames_to_learn"].get(learner, {})
        cells = [f"{v:,.0f}" if (v := got.get(str(d))) is not None else "-" for d in delays]
        lines.append(f"| {cell} | " + " | ".join(cells) + " |")
    return lines


def plot(sweeps: dict[str, dict], delays: list[int], learners: list[str], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(learners), figsize=(5.2 * len(learners), 4.0), sharey=True, squeeze=False)
    bases = list(dict.fromkeys(cell.split("-")[0] for cell in sweeps))     # one colour per cell, dashed: chrono
    for ax, learner in zip(axes[0], learners):
        for k, (cell, s) in enumerate(sweeps.items()):
            colour = f"C{bases.index(cell.split('-')[0])}"
            rows = [r for r in s["runs"] if r["learner"] == learner and r["delay"] in delays]
            jitter = 2 ** ((k - (len(sweeps) - 1) / 2) * 0.04)
            ax.scatter([r["delay"] * jitter for r in rows], [r["eval_mean"] for r in rows], color=colour,
                       alpha=0.45, s=16)
            ran = sorted({r["delay"] for r in rows})
            mean = [np.mean([r["eval_mean"] for r in rows if r["delay"] == d]) for d in ran]
            ax.plot(ran, mean, color=colour, marker="o", ls="--" if "chrono" in cell else "-", label=cell)
        ax.axhline(OPTIMAL, color="0.6", ls=":", lw=1)
        ax.axhline(CHANCE, color="0.6", ls="--", lw=1)
        ax.axvline(UNROLL, color="0.8", lw=1)
        ax.set_xscale("log", base=2)
        ax.set_xticks(delays, [str(d) for d in delays])
        ax.set_xlabel(f"delay D (unroll {UNROLL})")
        ax.set_title(learner, fontsize=10)
        ax.set_ylim(0.3, 1.05)
    axes[0][0].set_ylabel("evaluation return (points: seeds; line: mean)")
    axes[0][0].legend(fontsize=8, loc="center left")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def write(sweeps: dict[str, dict], folders: dict[str, Path], out: Path, command: str) -> Path:
    delays, learners = common(sweeps)
    if not delays or not learners:
        raise SystemExit("cells-span: the sweeps share no delay or no learner")
    out.mkdir(parents=True, exist_ok=True)
    plot(sweeps, delays, learners, out / "span.png")
    lines = ["# Memory span per cell: memory:cue at several delays, unroll 4", "",
             f"Written by `{command}` from one memory-span sweep per cell:", ""]
    for cell, s in sweeps.items():
        lines.append(f"- {cell}: `{s['command']}` ({folders[cell]}, {s['episodes_per_run']:,} training episodes "
                     f"per run, {s['eval_episodes']} evaluation episodes)")
    lines += ["", f"Mean evaluation return over seeds (optimal {OPTIMAL}, chance {CHANCE}; learned = mean >= "
              f"{LEARNED:.0%} of optimal):", ""] + table(sweeps, delays, learners)
    if "rtrl" in learners:
        lines += ["", f"rtrl: frames until the training return first reached {LEARNED:.0%} of optimal (median "
                  "over seeds; - where a seed never did):", ""] + frames_table(sweeps, delays, "rtrl")
    lines += ["", "![evaluation return against delay, per cell](span.png)", ""]
    (out / "results.md").write_text("\n".join(lines))
    return out / "results.md"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = cli.ArgumentParser(prog="python -m rtrl_ref.confirm cells-span", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--sweeps", nargs="+", default=[f"{c}={p}" for c, p in DEFAULT_SWEEPS],
                        help="CELL=FOLDER pairs, each FOLDER holding a memory-span sweep's results.json")
    parser.add_argument("--out", type=Path, default=Path("docs/results/cells"), help="output folder")
    args = parser.parse_args(argv)
    folders = {}
    for pair in args.sweeps:
        cell, sep, folder = pair.partition("=")
        if not sep or not cell or not folder:
            parser.error(f"--sweeps: expected CELL=FOLDER, got {pair!r}")
        folders[cell] = Path(folder)
    sweeps = {cell: load(folder) for cell, folder in folders.items()}
    path = write(sweeps, folders, args.out, "python -m rtrl_ref.confirm cells-span " + " ".join(argv))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
