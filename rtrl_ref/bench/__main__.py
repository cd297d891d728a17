"""`python -m rtrl_ref.bench [--quick] [--out DIR]`: check, then time, then judge the goals.

Every timing task runs in a worker subprocess with all thread pools (OpenBLAS, OpenMP, MKL,
Numba) fixed by environment variables before NumPy loads; the 1- and 2-thread runs alternate.
Writes results.json, summary.md, command.txt and the plots memory.png (peak memory vs T),
bandwidth.png (per-step update vs triad) and segment.png (one unroll vs BPTT) to --out
(default bench_results/latest).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from rtrl_ref.bench import report
from rtrl_ref.bench.timing import machine, thread_env


def run_worker(task: str, args: dict, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.json")
        cmd = [sys.executable, "-m", "rtrl_ref.bench.worker", task, json.dumps(args), out]
        proc = subprocess.run(cmd, env=thread_env(threads), capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"bench worker {task} (threads={threads}) failed:\n{proc.stderr[-4000:]}")
        with open(out) as f:
            return json.load(f)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rtrl_ref.bench", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes, few rounds (minutes -> seconds)")
    ap.add_argument("--out", default=os.path.join("bench_results", "latest"), help="output folder")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds per timing (>= 5)")
    ap.add_argument("--check-only", action="store_true", help="correctness checks only, no timing")
    ap.add_argument("--tasks", default="ops,torch,memory,warm_start",
                    help="comma-separated subset of ops,torch,memory,warm_start")
    ap.add_argument("--threads", default=None,
                    help="thread counts of the alternating ops runs (default 1,2,1,2,1,2: three runs "
                         "of each, whose medians the verdicts take; quick 1,2)")
    args = ap.parse_args(argv)

    tasks = set(args.tasks.split(","))
    unknown = tasks - {"ops", "torch", "memory", "warm_start"}
    if unknown:
        raise SystemExit(f"--tasks: expected a subset of ops,torch,memory,warm_start, got {sorted(unknown)}")
    from rtrl_ref.bench import cases, checks

    t_start = time.perf_counter()
    rows = checks.run_checks(quick=args.quick)
    bad = [r for r in rows if not r["ok"]]
    for r in bad:
        print(f"CHECK FAILED {r['name']}: rel {r['rel']:.3e} > tol {r['tol']:.1e}", file=sys.stderr)
    print(f"correctness: {len(rows) - len(bad)}/{len(rows)} comparisons passed")
    if bad:
        return 1
    if args.check_only:
        return 0

    quick = args.quick
    sizes = dict(cases.QUICK_SIZES if quick else cases.SIZES)
    rounds = args.rounds or (5 if quick else 7)
    dtypes = ["float32", "float64"]
    results = dict(command=" ".join(["python -m rtrl_ref.bench"] + (argv if argv is not None else sys.argv[1:])),
                   quick=quick, sizes=sizes, dtypes=dtypes, rounds=rounds, machine=machine(),
                   checks_total=len(rows), checks_passed=len(rows) - len(bad),
                   checks_max_rel={dn: max(r["rel"] for r in rows if dn in r["name"]) for dn in dtypes},
                   thread_method="environment variables (OPENBLAS/OMP/MKL/NUMBA_NUM_THREADS) in a "
                                 "worker subprocess; threadpoolctl is not used", ops_runs=[])
    ops_args = dict(sizes=sizes, dtypes=dtypes, rounds=rounds, triad_n=2**20 if quick else 2**24,
                    segment_B=[sizes["B"], 1])
    thread_runs = [int(n) for n in (args.threads or ("1,2" if quick else "1,2,1,2,1,2")).split(",")]
    for threads in thread_runs if "ops" in tasks else []:
        print(f"timing ops with {threads} thread(s) ...", flush=True)
        results["ops_runs"].append(run_worker("ops", ops_args, threads))
    if "torch" in tasks:
        print("torch ...", flush=True)
        torch_args = dict(sizes=sizes, dtypes=dtypes, rounds=rounds, B_list=[sizes["B"], 1])
        runs = {str(n): run_worker("torch", torch_args, n) for n in (1, 2)}
        results["torch"] = runs["1"] if "skipped" in runs["1"] else dict(threads=runs)
    if "memory" in tasks:
        print("memory ...", flush=True)
        T_grid = [10, 100, 1000] if quick else [10, 30, 100, 300, 1000, 3000, 10000, 30000, 100000]
        results["memory"] = run_worker("memory", dict(
            H=sizes["H"], I=sizes["I"], dtype="float32", T_grid=T_grid, B_state=sizes["B"],
            T_state=[1, 10, 100] if quick else [1, 10, 100, 1000]), 1)
    if "warm_start" in tasks:
        print("warm start ...", flush=True)
        run_worker("warm_start", {}, 1)                               # fills the cache if needed
        results["warm_start"] = run_worker("warm_start", {}, 1)
    results["seconds"] = time.perf_counter() - t_start

    v = report.verdicts(results)
    results["verdicts"] = v
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    text = report.summary_text(results, v)
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write(text)
    with open(os.path.join(args.out, "command.txt"), "w") as f:
        f.write(results["command"] + "\n" + json.dumps(results["machine"], indent=1) + "\n")
    if "memory" in results:
        report.plot_memory(results["memory"], os.path.join(args.out, "memory.png"))
    if results["ops_runs"] and any(r["threads"]["numba_num_threads"] == 1 for r in results["ops_runs"]):
        report.plot_bandwidth(results, os.path.join(args.out, "bandwidth.png"))
        report.plot_segment(results, os.path.join(args.out, "segment.png"))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
