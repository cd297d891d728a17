"""The copy task's run files and their plots: the log's columns, reading a log, and the figures
(`plot_copy_log` for one run's curve.png, `plot_copy_runs` for `python -m rtrl_ref.plot` on
copy-task run folders). Kept apart from `copy_online` so that the plot command needs no training code.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

CONFIG_FILE = "config.json"
LOG_FILE = "log.csv"
CURVE_FILE = "curve.png"
LOG_FIELDS = ("sequences", "seconds", "loss", "symbol_accuracy", "sequence_accuracy", "longest_solved")
OLD_LOG_FIELDS = LOG_FIELDS[:-1]  # logs written before longest_solved was added (blank there on resume)
KIND = "copy_task"


def parse_number(text) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("inf")


def read_copy_log(log_path) -> dict[str, np.ndarray]:
    """The columns of a copy-task log as float arrays; ValueError naming the file if it is not one."""
    try:
        with open(log_path, newline="") as fh:
            reader = csv.DictReader(fh)
            missing = [k for k in OLD_LOG_FIELDS if k not in (reader.fieldnames or ())]
            if missing:
                raise ValueError(f"{log_path}: not a copy-task log (no column {missing[0]!r})")
            rows = list(reader)
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{log_path}: unreadable ({err})") from None
    blank = float("nan")                                 # longest_solved in an older run's log
    return {k: np.array([parse_number(r.get(k) or blank) for r in rows], float) for k in LOG_FIELDS}


def plot_copy_log(log_path: str | Path, out: str | Path | None = None, title: str | None = None) -> Path:
    """Sequence and symbol accuracy against minutes and against sequences seen, from a copy-task log
    (a run's log.csv or a --log CSV), and below them the longest pattern length solved where the log
    has it; PNG `out`, default next to the log. ValueError if it has no row."""
    data = read_copy_log(log_path)
    if not len(data["sequences"]):
        raise ValueError(f"{log_path}: no rows yet")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out) if out is not None else Path(log_path).with_suffix(".png")
    longest = data["longest_solved"]
    rows = 2 if np.isfinite(longest).any() else 1
    fig, grid = plt.subplots(rows, 2, figsize=(10, 3.5 * rows), squeeze=False)
    axes = grid[0]
    for ax, x, label in ((axes[0], data["seconds"] / 60, "minutes of training"),
                         (axes[1], data["sequences"], "sequences seen")):
        ax.plot(x, data["sequence_accuracy"], marker="." if len(x) < 3 else None, label="sequence accuracy")
        ax.plot(x, data["symbol_accuracy"], marker="." if len(x) < 3 else None, label="symbol accuracy", alpha=0.7)
        ax.set_xlabel(label)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("held-out accuracy")
    axes[0].legend()
    if rows == 2:
        for ax, x, label in ((grid[1, 0], data["seconds"] / 60, "minutes of training"),
                             (grid[1, 1], data["sequences"], "sequences seen")):
            ax.step(x, longest, where="post", color="C2")
            ax.set_xlabel(label)
            ax.set_ylim(0, np.nanmax(longest) + 1)
            ax.grid(alpha=0.3)
        grid[1, 0].set_ylabel("longest pattern length\nwith all held-out sequences right")
    fig.suptitle(title or Path(log_path).stem, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def is_copy_run(run) -> bool:
    """Whether `run` is a copy-task run folder (its config.json written by this command)."""
    try:
        return json.loads((Path(run) / CONFIG_FILE).read_text()).get("kind") == KIND
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return False


def plot_copy_runs(runs, out, title: str = "", labels=None) -> Path:
    """Several copy-task runs on one figure (what `python -m rtrl_ref.plot` draws for copy-task run
    folders): held-out sequence accuracy (top) and the longest pattern length solved (bottom: each
    evaluation faint, the best so far bold) against minutes and against sequences seen, a line per
    run. labels: one per run (default: the folder names). ValueError naming the run that is not a
    copy-task run or has no row."""
    runs = [Path(r) for r in runs]
    if labels is not None and len(labels) != len(runs):
        raise ValueError(f"--label: expected one per run ({len(runs)}), got {len(labels)}")
    logs = []
    for run in runs:
        if not is_copy_run(run):
            raise ValueError(f"{run}: not a copy-task run folder (no copy-task {CONFIG_FILE})")
        data = read_copy_log(run / LOG_FILE)
        if not len(data["sequences"]):
            raise ValueError(f"{run}: its {LOG_FILE} has no row yet")
        logs.append(data)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, grid = plt.subplots(2, 2, figsize=(11, 7), sharex="col")
    for i, (run, data) in enumerate(zip(runs, logs)):
        label = labels[i] if labels is not None else run.name
        for col, x in enumerate((data["seconds"] / 60, data["sequences"])):
            grid[0, col].plot(x, data["sequence_accuracy"], color=f"C{i}", label=label, lw=1)
            longest = data["longest_solved"]
            grid[1, col].plot(x, longest, color=f"C{i}", lw=0.5, alpha=0.3)
            best = np.fmax.accumulate(np.where(np.isnan(longest), -np.inf, longest))
            grid[1, col].step(x, np.where(np.isinf(best), np.nan, best), where="post", color=f"C{i}", lw=1.5)
    for col, label in enumerate(("minutes of training", "sequences seen")):
        grid[1, col].set_xlabel(label)
        for row in range(2):
            grid[row, col].grid(alpha=0.3)
    grid[0, 0].set_ylabel("held-out sequence accuracy")
    grid[1, 0].set_ylabel("longest pattern length\nwith all held-out sequences right\n(bold: best so far)")
    grid[0, 0].legend(fontsize=8)
    fig.suptitle(title or "copy task, fully online RTRL", fontsize=10)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
