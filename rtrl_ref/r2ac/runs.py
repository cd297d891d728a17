"""Run folders: their names, the git revision, log.csv (config.json is written by config.py)."""

from __future__ import annotations

import csv
import subprocess
import time
from pathlib import Path

from rtrl_ref.r2ac.config import Config

LOG_FIELDS = ("frames", "updates", "seconds", "fps", "episodes", "mean_return", "mean_length",
              "loss", "pg_loss", "baseline_loss", "entropy", "grad_norm", "lr")


def git_revision() -> str:
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True, timeout=5)
        rev = out.stdout.strip() or "unknown"
        return rev + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def new_run_dir(config: Config) -> Path:
    name = config.run_name or "{}-{}-s{}-{}".format(
        config.env.replace(":", "_").replace("?", "_").replace("=", "").replace("&", "_"),
        config.learner, config.seed, time.strftime("%Y%m%d-%H%M%S"))
    path = Path(config.run_dir) / name
    path.mkdir(parents=True, exist_ok=False)
    return path


class CSVLog:
    """Appends rows to log.csv; safe to reopen on resume."""

    def __init__(self, path: Path):
        self.file = Path(path) / "log.csv"
        new = not self.file.exists()
        self._fh = open(self.file, "a", newline="")
        self._writer = csv.DictWriter(self._fh, fieldnames=LOG_FIELDS)
        if new:
            self._writer.writeheader()

    def write(self, row: dict) -> None:
        self._writer.writerow({k: row.get(k, "") for k in LOG_FIELDS})
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def read_log(run: Path) -> dict[str, list[float]]:
    file = Path(run) / "log.csv"
    if not file.exists():
        raise ValueError(f"{run}: no log.csv (is it a run folder?)")
    cols: dict[str, list[float]] = {k: [] for k in LOG_FIELDS}
    with open(file, newline="") as fh:
        for row in csv.DictReader(fh):
            for k in LOG_FIELDS:
                v = row.get(k, "")
                cols[k].append(float(v) if v not in ("", None) else float("nan"))
    return cols
