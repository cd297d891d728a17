"""Run folders: names, checks before creation, the writer's lock, log.csv (config.json is config.py's).

A run folder is created only after every check has passed (see `check_new_run`), with a
collision-free name: `[EXP-]ENV-LEARNER-sSEED-YYYYmmdd-HHMMSS-TAG`, TAG four random hex digits
(`--run-name` names it exactly, and an existing folder of that name is refused). One process at
a time writes a run: `RunLock` holds an exclusive lock on RUN/.lock while training (released by
the operating system when the process dies, so a crash never leaves a stale lock).
"""

from __future__ import annotations

import csv
import os
import secrets
import subprocess
import time
from pathlib import Path

from rtrl_ref.r2ac.config import Config

try:
    import fcntl
except ImportError:            # Windows: no advisory locks; two writers are not detected there
    fcntl = None

LOG_FIELDS = ("frames", "updates", "seconds", "fps", "episodes", "mean_return", "mean_length",
              "loss", "pg_loss", "baseline_loss", "entropy", "grad_norm", "lr", "eval_return",
              # learner diagnostics (means over the updates of a row): gradient norms before the clip
              # per part, fraction of clipped updates, mean |advantage|, the norms of the policy-gradient
              # and entropy parts of d loss / d logits, and the baseline's explained variance
              "grad_norm_stem", "grad_norm_core", "grad_norm_heads", "clipped", "adv_abs",
              "pg_logit_grad", "entropy_logit_grad", "explained_variance",
              # with --actors: mean updates between the parameters a rollout was acted with and those
              # that learn from it, and the rollouts lost to actors that died (a running count)
              "policy_lag", "lost_rollouts")
LOG_FILE = "log.csv"
LOCK_FILE = ".lock"


def git_revision() -> str:
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True, timeout=5)
        rev = out.stdout.strip() or "unknown"
        return rev + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _slug(text: str) -> str:
    return text.replace(":", "_").replace("?", "_").replace("=", "").replace("&", "_").replace("/", "_")


def run_base_name(config: Config) -> str:
    """The name without its random tag: [EXP-]ENV-LEARNER-sSEED-TIME."""
    parts = [config.exp_name] if config.exp_name else []
    parts += [_slug(config.env), config.learner, f"s{config.seed}", time.strftime("%Y%m%d-%H%M%S")]
    return "-".join(parts)


def check_new_run(config: Config) -> None:
    """Refuse (ValueError naming the flag) a run folder that cannot be created; creates nothing."""
    parent = Path(config.run_dir)
    if parent.exists() and not parent.is_dir():
        raise ValueError(f"--run-dir {config.run_dir}: expected a folder, got a file")
    existing = parent
    while not existing.exists():                    # the nearest folder that exists must be writable
        existing = existing.parent
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"--run-dir {config.run_dir}: cannot create it ({existing} is not writable)")
    if config.run_name:
        if "/" in config.run_name or config.run_name in (".", ".."):
            raise ValueError(f"--run-name {config.run_name}: expected a folder name without '/'")
        if (parent / config.run_name).exists():
            raise ValueError(f"--run-name {config.run_name}: {parent / config.run_name} exists (continue it "
                             f"with --resume {parent / config.run_name}, or choose another name)")
    if config.exp_name and ("/" in config.exp_name or config.exp_name in (".", "..")):
        raise ValueError(f"--exp-name {config.exp_name}: expected a tag without '/'")


def new_run_dir(config: Config) -> Path:
    """Create the run folder (after `check_new_run`); a random tag makes concurrent names distinct."""
    parent = Path(config.run_dir)
    parent.mkdir(parents=True, exist_ok=True)
    if config.run_name:
        path = parent / config.run_name
        try:
            path.mkdir()
        except FileExistsError:
            raise ValueError(f"--run-name {config.run_name}: {path} exists (continue it with --resume "
                             f"{path}, or choose another name)") from None
        return path
    base = run_base_name(config)
    while True:                                     # 65536 tags a second: a retry is rare
        path = parent / f"{base}-{secrets.token_hex(2)}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue


class RunLock:
    """An exclusive, non-blocking lock on RUN/.lock, held while one process writes the run."""

    def __init__(self, run_dir: Path):
        self.file = Path(run_dir) / LOCK_FILE
        self._fh = None

    def acquire(self) -> RunLock:
        try:
            fh = open(self.file, "a+")
        except OSError as err:
            raise ValueError(f"{self.file.parent}: cannot write the run folder ({err.strerror or err})") from None
        if fcntl is not None:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                fh.close()
                raise ValueError(f"--resume {self.file.parent}: the run is being written by {holder} "
                                 f"(it holds {self.file}); wait for it to finish or stop it first") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}\n")
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()                        # closing the file releases the lock
            self._fh = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def remove_orphans(run_dir: Path) -> list[Path]:
    """Delete temporary files a killed writer left behind (.checkpoint.npz.*.tmp, config.json.tmp)."""
    removed = [file for file in Path(run_dir).iterdir() if file.name.endswith(".tmp") and file.is_file()]
    for file in removed:
        file.unlink(missing_ok=True)
    return removed


def truncate_log(run_dir: Path, frames: int) -> int:
    """Drop log.csv rows logged after `frames` (those after the checkpoint a resume restarts from).

    Returns the number of rows dropped; the file is rewritten atomically.
    """
    file = Path(run_dir) / LOG_FILE
    if not file.exists():
        return 0
    with open(file, newline="") as fh:
        rows = list(csv.DictReader(fh))
    keep = [r for r in rows if _as_float(r.get("frames")) <= frames]
    if len(keep) == len(rows):
        return 0
    _write_rows(file, keep)
    return len(rows) - len(keep)


def _as_float(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("inf")


class CSVLog:
    """Appends rows to log.csv; safe to reopen on resume (an older header is upgraded in place)."""

    def __init__(self, path: Path):
        self.file = Path(path) / LOG_FILE
        if self.file.exists():
            with open(self.file, newline="") as fh:
                header = next(csv.reader(fh), [])
            if header and tuple(header) != LOG_FIELDS:   # a log of an older version: add the new columns
                _rewrite_header(self.file)
        new = not self.file.exists() or self.file.stat().st_size == 0
        self._fh = open(self.file, "a", newline="")
        self._writer = csv.DictWriter(self._fh, fieldnames=LOG_FIELDS)
        if new:
            self._writer.writeheader()

    def write(self, row: dict) -> None:
        self._writer.writerow({k: row.get(k, "") for k in LOG_FIELDS})
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def _rewrite_header(file: Path) -> None:
    with open(file, newline="") as fh:
        _write_rows(file, list(csv.DictReader(fh)))


def _write_rows(file: Path, rows: list[dict]) -> None:
    """Rewrite log.csv atomically with the current columns (missing ones left empty)."""
    tmp = file.with_name(f".{LOG_FILE}.tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=LOG_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({k: r.get(k, "") for k in LOG_FIELDS} for r in rows)
    os.replace(tmp, file)


def read_log(run: Path) -> dict[str, list[float]]:
    """The columns of RUN/log.csv as floats (NaN where empty); ValueError naming the file if it is
    missing, empty (no rows) or not a training log."""
    file = Path(run) / LOG_FILE
    if not file.exists():
        raise ValueError(f"{run}: no {LOG_FILE} (is it a run folder?)")
    cols: dict[str, list[float]] = {k: [] for k in LOG_FIELDS}
    try:
        with open(file, newline="") as fh:
            reader = csv.DictReader(fh)
            missing = [k for k in ("frames", "mean_return") if k not in (reader.fieldnames or ())]
            if missing:
                raise ValueError(f"{file}: not a training log (no column {missing[0]!r})")
            for line, row in enumerate(reader, start=2):
                for k in LOG_FIELDS:
                    v = row.get(k, "")
                    try:
                        cols[k].append(float(v) if v not in ("", None) else float("nan"))
                    except ValueError:
                        raise ValueError(f"{file}, line {line}: column {k!r} holds {v!r}, not a number") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{file}: not a text file ({err})") from None
    if not cols["frames"]:
        raise ValueError(f"{file}: empty log (no rows)")
    return cols
