"""Signals against a real `python -m rtrl_ref.train` process: SIGINT, SIGTERM and SIGHUP each
checkpoint, print the resume command and exit with 128 + the signal; the run then resumes to its
budget. A first checkpoint exists right after the first update. A second writer is locked out."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rtrl_ref.r2ac.checkpoint import read_checkpoint
from rtrl_ref.r2ac.runs import read_log

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

ROOT = Path(__file__).resolve().parents[1]
SLOW = ["--env", "memory:cue?delay=2", "--num-envs", "2", "--unroll", "2", "--hidden", "4", "--features", "4",
        "--backend", "numpy", "--no-progress", "--log-every", "1", "--checkpoint-minutes", "60"]


def start(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "rtrl_ref.train", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"training ended (rc {proc.returncode}) before {path} appeared: {err[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"{path} did not appear within {timeout} s")
        time.sleep(0.05)


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rtrl_ref.train", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_signal_checkpoints_and_the_run_resumes(tmp_path, sig):
    run_dir = tmp_path / "r"
    # a budget far beyond what runs before the signal, and no timed checkpoint: the one found
    # on disk is the first-update checkpoint
    proc = start(*SLOW, "--run-dir", str(tmp_path), "--run-name", "r", "--total-frames", "100000000")
    wait_for(run_dir / "checkpoint.npz", proc)
    first = read_checkpoint(run_dir / "checkpoint.npz")[1]["meta"]["counters"]
    assert first["updates"] >= 1
    proc.send_signal(getattr(signal, sig))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + getattr(signal, sig), err
    assert f"interrupted by {sig}" in err and f"--resume {run_dir}" in err
    stopped = read_checkpoint(run_dir / "checkpoint.npz")[1]["meta"]["counters"]
    assert stopped["frames"] >= first["frames"]
    assert read_log(run_dir)["frames"][-1] == stopped["frames"]      # the log ends at the checkpoint
    budget = stopped["frames"] + 8
    done = run("--resume", str(run_dir), "--total-frames", str(budget), "--no-progress")
    assert done.returncode == 0, done.stderr
    assert read_checkpoint(run_dir / "checkpoint.npz")[1]["meta"]["counters"]["frames"] == budget
    frames = read_log(run_dir)["frames"]
    assert frames == sorted(frames) and len(set(frames)) == len(frames)   # no row twice


def test_a_second_writer_is_locked_out_and_a_crash_leaves_no_stale_lock(tmp_path):
    run_dir = tmp_path / "r"
    proc = start(*SLOW, "--run-dir", str(tmp_path), "--run-name", "r", "--total-frames", "100000000")
    try:
        wait_for(run_dir / "checkpoint.npz", proc)
        second = run("--resume", str(run_dir), "--no-progress")
        assert second.returncode == 2
        assert len(second.stderr.strip().splitlines()) == 1
        assert "being written by pid" in second.stderr and str(proc.pid) in second.stderr
    finally:
        proc.kill()                                   # SIGKILL: no handler runs, the lock dies with it
        proc.communicate()
    frames = read_checkpoint(run_dir / "checkpoint.npz")[1]["meta"]["counters"]["frames"]
    logged = read_log(run_dir)["frames"]
    kept = sum(f <= frames for f in logged)
    (run_dir / ".checkpoint.npz.abc123.tmp").write_bytes(b"half a checkpoint")   # a write the kill cut
    done = run("--resume", str(run_dir), "--total-frames", str(frames + 4), "--no-progress")
    assert done.returncode == 0, done.stderr
    log = read_log(run_dir)
    # rows logged after the checkpoint were dropped on resume: frames never go back
    assert log["frames"] == sorted(log["frames"]) and len(set(log["frames"])) == len(log["frames"])
    assert len(log["frames"]) == kept + 1 and log["frames"][-1] == frames + 4
    assert not list(run_dir.glob("*.tmp"))
