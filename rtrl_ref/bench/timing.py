"""Timing helpers: interleaved rounds, medians, explicit thread counts, machine description."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from collections.abc import Callable
from typing import NamedTuple

THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


class Timing(NamedTuple):
    median_s: float
    min_s: float
    rounds: int

    def as_dict(self) -> dict:
        return dict(median_s=self.median_s, min_s=self.min_s, rounds=self.rounds)


def _median(values: list[float]) -> float:
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def interleaved(candidates: dict[str, Callable[[], object]], rounds: int = 7,
                warmup: int = 1) -> dict[str, Timing]:
    """Time each candidate once per round, candidates interleaved; medians over rounds.

    `warmup` untimed calls of every candidate first (JIT compile or cache load, page faults).
    """
    if rounds < 1:
        raise ValueError(f"rounds: expected >= 1, got {rounds}")
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: Timing(_median(t), min(t), rounds) for name, t in times.items()}


def thread_env(n_threads: int, base: dict | None = None) -> dict:
    """Environment with every thread pool (OpenBLAS, OpenMP, MKL, Numba) set to n_threads."""
    env = dict(os.environ if base is None else base)
    for var in THREAD_VARS:
        env[var] = str(n_threads)
    return env


def thread_settings() -> dict:
    """The thread settings this process runs with (as seen by Numba and the environment)."""
    import numba

    out = {var: os.environ.get(var) for var in THREAD_VARS}
    out["numba_num_threads"] = numba.get_num_threads()
    out["numba_threading_layer_config"] = numba.config.THREADING_LAYER
    return out


def machine() -> dict:
    """CPU model, core count, caches, memory, library versions."""
    import numba
    import numpy as np

    info = dict(platform=platform.platform(), python=platform.python_version(),
                numpy=np.__version__, numba=numba.__version__, cpu_count=os.cpu_count())
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in lscpu.splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("Model name", "L1d cache", "L2 cache", "L3 cache", "Core(s) per socket",
                               "Thread(s) per core", "Socket(s)"):
                info[key.strip()] = value.strip()
        info["avx2"] = " avx2 " in lscpu + " "
        info["avx512f"] = " avx512f " in lscpu + " "
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        with open("/proc/meminfo") as f:
            info["MemTotal"] = f.readline().split(":")[1].strip()
    except OSError:
        pass
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["blas"] = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # show_config's layout is informational only
        pass
    try:
        info["loadavg"] = os.getloadavg()
    except OSError:
        pass
    return info


def write_results(out, module: str, argv: list[str], rows: list[dict]) -> None:
    """Write a benchmark's rows as JSON with the command that made them, the machine and the thread settings."""
    import json
    from pathlib import Path

    Path(out).parent.mkdir(parents=True, exist_ok=True)
    data = dict(command=["python", "-m", module, *argv], rows=rows, machine=machine(), threads=thread_settings())
    Path(out).write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {out}")


def peak_bytes(fn) -> int:
    """tracemalloc's peak (bytes of NumPy data buffers and Python objects) over one call of fn."""
    import gc
    import tracemalloc

    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
