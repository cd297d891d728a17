"""One prepared GPU check of the CuPy backend (< 3 minutes on one H100/H200).

    python scripts/gpu_check.py [--out gpu_check.json] [--quick]

1. correctness: every CuPy kernel and both drivers vs the NumPy reference, float64 to
   tolerance('kernel', 'float64') and float32 to tolerance('kernel', 'float32'), over sizes that
   include B = 1, odd I and every reset pattern, plus negative twins (a skipped reset and an
   undecayed carried trace must fail);
2. timings with CUDA events after synchronising (median of interleaved rounds):
   - per-step kernel: achieved bandwidth (4 B H I + B I) * itemsize / time vs the nominal HBM
     bandwidth (from the device's memory clock and bus width) and vs a device-to-device copy;
   - segment form: carried pass vs the cuBLAS GEMM it contains (and a single large GEMM's
     throughput), and the whole rtrl_segment driver, against the NumPy CPU reference;
3. writes everything to a JSON file (default $OUT/gpu_check.json when $OUT is set).

Exit status 0 when every correctness check passes, 1 otherwise; timings never fail the script.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

from rtrl_ref import rtrl
from rtrl_ref.cell import CellCache
from rtrl_ref.params import ELSTMParams
from rtrl_ref.rtrl import Traces, rtrl_segment, rtrl_sequence
from verify.compare import compare_fields, tolerance
from verify.problem import RESET_PATTERNS, bptt_grads, make_problem, reset_mask


def to_dev(cp, tree):
    return type(tree)(*(cp.asarray(a) for a in tree))


def rand_step(seed, B, H, I, dtype, pattern):
    rng = np.random.default_rng(seed)
    draw = lambda *s: rng.standard_normal(s).astype(dtype)
    traces = Traces(draw(B, H, I), draw(B, H, I), draw(B, H), draw(B, H), draw(B, H), draw(B, H))
    grads = ELSTMParams(draw(H, I), draw(H, I), draw(H), draw(H), draw(H), draw(H))
    J = rng.uniform(0.5, 1.0, (B, H)).astype(dtype)
    cache = CellCache(draw(B, I), draw(B, H), draw(B, H), draw(B, H), draw(B, H), draw(B, H), draw(B, H), J)
    return traces, cache, reset_mask(rng, 1, B, pattern)[0], draw(B, H), grads


def rand_segment(seed, T, B, H, I, dtype):
    rng = np.random.default_rng(seed)
    draw = lambda *s: rng.standard_normal(s).astype(dtype)
    traces = Traces(draw(B, H, I), draw(B, H, I), draw(B, H), draw(B, H), draw(B, H), draw(B, H))
    return traces, (draw(B, H), draw(B, H), draw(T, B, H), draw(T, B, H), draw(T, B, I), draw(T, B, H))


def rows(comparisons):
    return [dict(name=c.name, rel=c.rel, tol=c.tol, ok=bool(c.ok)) for c in comparisons]


def correctness(cp, be, quick: bool) -> list[dict]:
    out = []
    sizes = [(1, 1, 1, 1), (1, 7, 5, 3), (3, 9, 17, 6), (32, 256, 257, 50)]
    if not quick:
        sizes += [(5, 33, 129, 11), (64, 512, 257, 20)]
    for dtype in (np.float64, np.float32):
        tol = tolerance("kernel", dtype)
        dn = np.dtype(dtype).name
        for k, (B, H, I, T) in enumerate(sizes):
            for pattern in RESET_PATTERNS:
                traces, cache, reset_t, g_c_t, grads = rand_step(k, B, H, I, dtype, pattern)
                want = rtrl.trace_step_accumulate(traces.copy(), cache, reset_t, g_c_t, grads)
                got = be.trace_step_accumulate(to_dev(cp, traces), to_dev(cp, cache), cp.asarray(reset_t),
                                               cp.asarray(g_c_t), to_dev(cp, grads))
                tag = f"{dn} B={B} H={H} I={I} reset={pattern}"
                out += rows(compare_fields(f"step traces {tag}", got[0], want[0], tol))
                out += rows(compare_fields(f"step grads {tag}", got[1], want[1], tol))
            traces, args = rand_segment(k, T, B, H, I, dtype)
            want = rtrl.segment_carried_pass(traces.copy(), *args)
            got = be.segment_carried_pass(to_dev(cp, traces), *(cp.asarray(a) for a in args))
            tag = f"{dn} T={T} B={B} H={H} I={I}"
            out += rows(compare_fields(f"carried grads {tag}", got[0], want[0], tol))
            out += rows(compare_fields(f"carried traces {tag}", got[1], want[1], tol))
        # drivers on real problems (all regimes, random resets)
        for k, regime in enumerate(("normal", "saturated", "forget_open", "forget_closed")):
            prob = make_problem(k, T=12, B=3, I=7, H=6, dtype=dtype, regime=regime, resets="random")
            back = bptt_grads(prob)
            traj, reset, g_c = to_dev(cp, back.traj), cp.asarray(prob.reset), cp.asarray(back.g_c)
            want = rtrl_sequence(back.traj, prob.reset, back.g_c)
            got = rtrl_sequence(traj, reset, g_c, backend="cupy")
            out += rows(compare_fields(f"rtrl_sequence grads {dn} {regime}", got.grads, want.grads, tol,
                                       allow_zero=ELSTMParams._fields))
            want = rtrl_segment(prob.p, back.traj, prob.reset, back.g_c)
            got = rtrl_segment(to_dev(cp, prob.p), traj, reset, g_c, backend="cupy")
            out += rows(compare_fields(f"rtrl_segment grads {dn} {regime}", got.grads, want.grads, tol,
                                       allow_zero=ELSTMParams._fields))
            out += rows(compare_fields(f"rtrl_segment traces {dn} {regime}", got.traces, want.traces, tol,
                                       allow_zero=Traces._fields))
        # negative twins: these comparisons must FAIL
        traces, cache, reset_t, g_c_t, grads = rand_step(99, 4, 8, 9, dtype, "every")
        want = rtrl.trace_step_accumulate(traces.copy(), cache, reset_t, g_c_t, grads)
        got = be.trace_step_accumulate(to_dev(cp, traces), to_dev(cp, cache), cp.zeros(4, bool),
                                       cp.asarray(g_c_t), to_dev(cp, grads))
        caught = not all(c.ok for c in compare_fields("t", got[0], want[0], tol))
        out.append(dict(name=f"negative twin: skipped reset detected {dn}", rel=0.0, tol=tol, ok=caught))
        traces, args = rand_segment(98, 5, 3, 8, 9, dtype)
        want = rtrl.segment_carried_pass(traces.copy(), *args)
        bad_args = (args[0], np.ones_like(args[1])) + args[2:]
        got = be.segment_carried_pass(to_dev(cp, traces), *(cp.asarray(a) for a in bad_args))
        caught = not all(c.ok for c in compare_fields("t", got[1], want[1], tol))
        out.append(dict(name=f"negative twin: undecayed carried trace detected {dn}", rel=0.0, tol=tol, ok=caught))
    return out


def event_time(cp, fn, rounds: int) -> float:
    """Median seconds of fn() over rounds, CUDA events around each call, after synchronising."""
    fn()
    cp.cuda.Device().synchronize()
    times = []
    for _ in range(rounds):
        start, stop = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, stop) * 1e-3)
    return statistics.median(times)


def cpu_time(fn, rounds: int) -> float:
    fn()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def nominal_bandwidth(cp) -> dict:
    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
    clock_khz = props.get("memoryClockRate", 0)
    bus_bits = props.get("memoryBusWidth", 0)
    name = props.get("name", b"")
    return dict(name=name.decode() if isinstance(name, bytes) else str(name), memory_clock_khz=clock_khz,
                bus_width_bits=bus_bits, nominal_GBps=2 * clock_khz * 1e3 * bus_bits / 8 / 1e9,
                total_memory_GiB=props.get("totalGlobalMem", 0) / 2**30, sm_count=props.get("multiProcessorCount"))


def timings(cp, be, quick: bool) -> dict:
    rounds = 10 if quick else 25
    dev = nominal_bandwidth(cp)
    out = dict(device=dev, step={}, segment={})
    n_copy = 2**28 // 4
    a = cp.empty(n_copy, cp.float32)
    b = cp.ones(n_copy, cp.float32)
    t_copy = event_time(cp, lambda: cp.copyto(a, b), rounds)
    out["d2d_copy_GBps"] = 2 * a.nbytes / t_copy / 1e9
    del a, b
    for dtype in (np.float32, np.float64):
        dn = np.dtype(dtype).name
        out["step"][dn] = {}
        for B in ((32,) if quick else (1, 32, 256)):
            H, I = 256, 257
            traces, cache, reset_t, g_c_t, grads = rand_step(0, B, H, I, dtype, "first")
            S_d, c_d, r_d, g_d, G_d = (to_dev(cp, traces), to_dev(cp, cache), cp.asarray(reset_t),
                                       cp.asarray(g_c_t), to_dev(cp, grads))
            t_gpu = event_time(cp, lambda: be.trace_step_accumulate(S_d, c_d, r_d, g_d, G_d), rounds)
            bytes_ = (4 * B * H * I + B * I) * np.dtype(dtype).itemsize
            row = dict(gpu_ms=t_gpu * 1e3, GBps=bytes_ / t_gpu / 1e9,
                       fraction_of_nominal=bytes_ / t_gpu / 1e9 / dev["nominal_GBps"],
                       fraction_of_d2d_copy=bytes_ / t_gpu / 1e9 / out["d2d_copy_GBps"])
            if B == 32:
                row["numpy_cpu_ms"] = cpu_time(lambda: rtrl.trace_step_accumulate(
                    traces, cache, reset_t, g_c_t, grads), 3) * 1e3
                row["speedup_vs_numpy_cpu"] = row["numpy_cpu_ms"] / row["gpu_ms"]
            out["step"][dn][str(B)] = row
        # segment form at the learner's sizes
        T, B, H, I = 50, 32, 256, 257
        traces, args = rand_segment(1, T, B, H, I, dtype)
        S_d = to_dev(cp, traces)
        args_d = tuple(cp.asarray(x) for x in args)
        t_pass = event_time(cp, lambda: be.segment_carried_pass(S_d, *args_d), rounds)
        U = cp.asarray(np.random.default_rng(2).standard_normal((B, 2 * H, T)).astype(dtype))
        x_b = cp.ascontiguousarray(args_d[4].transpose(1, 0, 2))
        M = cp.empty((B, 2 * H, I), dtype)
        t_bgemm = event_time(cp, lambda: cp.matmul(U, x_b, out=M), rounds)
        g_pre = cp.asarray(np.random.default_rng(3).standard_normal((T * B, 2 * H)).astype(dtype))
        x2d = x_b.reshape(B * T, I)
        t_gemm = event_time(cp, lambda: g_pre.T @ x2d, rounds)
        flops = 2 * B * 2 * H * T * I
        prob = make_problem(5, T=T, B=B, I=I, H=H, dtype=dtype, resets="random")
        back = bptt_grads(prob)
        traj, reset, g_c = to_dev(cp, back.traj), cp.asarray(prob.reset), cp.asarray(back.g_c)
        p_d = to_dev(cp, prob.p)
        t_driver = event_time(cp, lambda: rtrl_segment(p_d, traj, reset, g_c, backend="cupy"), rounds)
        t_driver_cpu = cpu_time(lambda: rtrl_segment(prob.p, back.traj, prob.reset, back.g_c), 3)
        out["segment"][dn] = dict(
            carried_pass_ms=t_pass * 1e3, batched_gemm_ms=t_bgemm * 1e3,
            batched_gemm_TFLOPs=flops / t_bgemm / 1e12, large_gemm_TFLOPs=flops / t_gemm / 1e12,
            carried_pass_over_its_gemm=t_pass / t_bgemm,
            carried_pass_effective_TFLOPs=flops / t_pass / 1e12,
            rtrl_segment_driver_ms=t_driver * 1e3, rtrl_segment_numpy_cpu_ms=t_driver_cpu * 1e3,
            driver_speedup_vs_numpy_cpu=t_driver_cpu / t_driver)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = os.path.join(os.environ["OUT"], "gpu_check.json") if os.environ.get("OUT") else "gpu_check.json"
    ap.add_argument("--out", default=default_out)
    ap.add_argument("--quick", action="store_true", help="fewer sizes and rounds")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    report = dict(command="python scripts/gpu_check.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                  host=platform.node(), python=platform.python_version(), numpy=np.__version__)
    try:
        from rtrl_ref.kernels.cupy_backend import backend, require_cupy

        cp = require_cupy()
        be = backend()
    except (ImportError, RuntimeError) as err:
        report["error"] = str(err)
        print(f"gpu_check: {err}", file=sys.stderr)
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
        return 2
    report["cupy"] = cp.__version__
    try:
        report["cuda_runtime"] = cp.cuda.runtime.runtimeGetVersion()
        report["device"] = nominal_bandwidth(cp)
    except Exception as err:  # noqa: BLE001 - informative only
        report["device_error"] = repr(err)
    checks = correctness(cp, be, args.quick)
    failed = [c for c in checks if not c["ok"]]
    report["checks_total"] = len(checks)
    report["checks_failed"] = failed
    report["max_rel"] = {dn: max((c["rel"] for c in checks if dn in c["name"]), default=0.0)
                         for dn in ("float32", "float64")}
    print(f"correctness: {len(checks) - len(failed)}/{len(checks)} passed; max rel {report['max_rel']}")
    for c in failed:
        print(f"FAILED {c['name']}: rel {c['rel']:.3e} tol {c['tol']:.1e}", file=sys.stderr)
    try:
        report["timings"] = timings(cp, be, args.quick)
    except Exception as err:  # noqa: BLE001 - timings are informative; keep the correctness result
        report["timings_error"] = repr(err)
    report["seconds"] = time.perf_counter() - t0
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    print(json.dumps(report.get("timings", report.get("timings_error")), indent=1))
    print(f"gpu_check: wrote {args.out} in {report['seconds']:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
