"""Learning curves: `python -m rtrl_ref.plot RUN [RUN ...] [--out curve.png]`.

Several runs go on one figure (mean episode return against frames); runs of the same
environment and learner share a colour.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rtrl_ref.r2ac.config import read_config
from rtrl_ref.r2ac.runs import read_log


def run_label(run: Path) -> str:
    try:
        config = read_config(run)
    except ValueError:
        return Path(run).name
    return f"{config.learner} (seed {config.seed})"


def plot_runs(runs: list[Path], out: Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    colours: dict[str, str] = {}
    for run in runs:
        log = read_log(run)
        label = run_label(run)
        key = label.split(" (")[0]
        first = key not in colours
        colour = colours.setdefault(key, f"C{len(colours)}")
        same = sum(1 for r in runs if run_label(r).split(" (")[0] == key)
        legend = (key if same > 1 else label) if first else None   # one entry per learner
        ax.plot(log["frames"], log["mean_return"], color=colour, alpha=0.85, label=legend)
    ax.set_xlabel("frames (agent steps, all environments)")
    ax.set_ylabel("mean episode return (last 100)")
    ax.set_title(title or ", ".join(sorted({Path(r).name.split("-")[0] for r in runs})))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rtrl_ref.plot", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (each with log.csv)")
    parser.add_argument("--out", type=Path, default=Path("curve.png"), help="output PNG")
    parser.add_argument("--title", default="", help="figure title")
    args = parser.parse_args(argv)
    try:
        out = plot_runs(args.runs, args.out, args.title)
    except ValueError as err:
        parser.error(str(err))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
