"""What a finished run says about why it learned or not: its return curve, its core gradients and
its forget gates (used by `python -m rtrl_ref.confirm popgym-table`).

- Return curve: the training return (mean of the last 100 episodes) at half the budget and at the
  end; a curve still rising at the end points to the budget, a flat one to the model or the
  credit assignment.
- Core gradient: the mean norm of the eLSTM's gradient (`grad_norm_core` of log.csv, before the
  clip) over the last tenth of the log.
- Forget gates: each cell's memory time at zero input, tau = 1 / (1 - sigmoid(b_f)) steps (what
  a cell wrote decays as f^t = exp(-t / tau) for f close to 1), from the checkpoint's b_f, against
  the task's memory span. Input-driven parts of f (W_f x + w_f c) are not included.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from rtrl_ref.r2ac.checkpoint import CHECKPOINT_FILE, read_checkpoint
from rtrl_ref.r2ac.runs import LOG_FILE

FORGET_BIAS = "params/core.elstm.b_f"


def log_rows(run: Path) -> list[dict]:
    """The rows of RUN/log.csv that report a training return (rows before the first finished episode have none)."""
    with open(run / LOG_FILE, newline="") as f:
        return [row for row in csv.DictReader(f) if np.isfinite(float(row.get("mean_return") or "nan"))]


def memory_times(b_f: np.ndarray) -> np.ndarray:
    """tau = 1 / (1 - sigmoid(b_f)) = 1 + exp(b_f), the zero-input memory time of each cell (steps)."""
    return 1.0 + np.exp(np.asarray(b_f, np.float64))


def run_evidence(run: Path, span: int | None) -> dict:
    """Return curve, core gradient norm and forget-gate memory times of one finished run."""
    with open(run / LOG_FILE, newline="") as f:
        every = list(csv.DictReader(f))
    if not every:
        raise ValueError(f"{run / LOG_FILE}: no rows")
    total = float(every[-1]["frames"])
    rows = log_rows(run)
    frames = np.array([float(r["frames"]) for r in rows])
    returns = np.array([float(r["mean_return"]) for r in rows])
    half = frames <= total / 2
    tail = every[-max(1, len(every) // 10):]
    grads = [float(r["grad_norm_core"]) for r in tail if r.get("grad_norm_core") not in (None, "")]
    out = dict(return_half=float(returns[half][-1]) if half.any() else None,
               return_end=float(returns[-1]) if len(rows) and frames[-1] == total else None,
               grad_norm_core=float(np.mean(grads)) if grads else None,
               tau_median=None, tau_max=None, share_tau_ge_span=None)
    arrays, _ = read_checkpoint(run / CHECKPOINT_FILE)
    if FORGET_BIAS in arrays:                                    # (H,) an eLSTM core; other cores have no b_f
        tau = memory_times(arrays[FORGET_BIAS])
        out.update(tau_median=float(np.median(tau)), tau_max=float(tau.max()),
                   share_tau_ge_span=None if span is None else float(np.mean(tau >= span)))
    return out


def mean_evidence(items: list[dict]) -> dict:
    """The mean of each field over seeds (None where no seed has it)."""
    keys = items[0].keys() if items else ()
    return {k: (float(np.mean(vals)) if (vals := [d[k] for d in items if d[k] is not None]) else None)
            for k in keys}


def evidence_markdown(evidence: dict[str, dict], spans: dict[str, int | None], learner: str) -> list[str]:
    """A table of one learner's evidence per task (means over seeds)."""
    def f(value, spec=".3f"):
        return "-" if value is None else format(value, spec)

    lines = [f"| task | memory span | {learner}: train return at half the budget | at the end | core gradient "
             "norm (last tenth) | memory time tau, median / max (steps) | cells with tau >= span |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for task, e in evidence.items():
        lines.append(f"| {task} | {f(spans[task], 'd')} | {f(e['return_half'])} | {f(e['return_end'])} | "
                     f"{f(e['grad_norm_core'], '.2f')} | {f(e['tau_median'], '.1f')} / {f(e['tau_max'], '.0f')} | "
                     f"{f(e['share_tau_ge_span'], '.0%')} |")
    return lines


def plot_task_curves(task_runs: dict[str, list[Path]], out: Path, title: str) -> Path:
    """One panel per task: the training return of every learner (mean over seeds, min-max band)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rtrl_ref.r2ac.config import read_config

    tasks = list(task_runs)
    cols = min(4, len(tasks))
    rows = -(-len(tasks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.6 * rows), squeeze=False)
    for ax, task in zip(axes.flat, tasks):
        by_learner: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        for run in task_runs[task]:
            rows_ = log_rows(run)
            if rows_:                                                    # a run may end before any episode does
                curve = (np.array([float(r["frames"]) for r in rows_]),
                         np.array([float(r["mean_return"]) for r in rows_]))
                by_learner.setdefault(read_config(run).learner, []).append(curve)
        for k, (learner, curves) in enumerate(sorted(by_learner.items(), key=lambda kv: kv[0] != "rtrl")):
            grid = np.linspace(0, min(c[0][-1] for c in curves), 200)
            ys = np.array([np.interp(grid, x, y) for x, y in curves])        # (seeds, 200)
            ax.plot(grid / 1e6, ys.mean(0), color=f"C{k}", lw=1.2, label=learner)
            ax.fill_between(grid / 1e6, ys.min(0), ys.max(0), color=f"C{k}", alpha=0.2, lw=0)
        ax.set_title(task, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("frames (M)", fontsize=7)
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    axes.flat[0].set_ylabel("training return", fontsize=7)
    if axes.flat[0].get_legend_handles_labels()[0]:                    # no curve when no episode ended
        axes.flat[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
